//! First-class heaps: private blocks, big blocks of their own, reset and destroy at once.

use crate::user_heap::{create, destroy, HeapConfig};

#[test]
fn a_heap_allocates_resizes_frees_resets_and_is_destroyed() {
    for fit in [0, 1, 2] {
        let heap = create(HeapConfig { fit, region_size: 2 << 20, mmap_threshold: 256 << 10 });
        assert!(!heap.is_null());
        // SAFETY: `heap` is live until `destroy` below.
        let h = unsafe { &*heap };
        let mut blocks = Vec::new();
        for i in 0..2000usize {
            let size = 1 + (i * 7919) % 5000 + if i % 97 == 0 { 300_000 } else { 0 };
            let p = h.alloc(size);
            assert!(!p.is_null());
            // SAFETY: `p` holds `size` bytes.
            unsafe { p.write_bytes(i as u8, size) };
            blocks.push((p, size, i as u8));
        }
        assert_eq!(h.check(), 0);
        for b in blocks.iter_mut().step_by(3) {
            let grown = b.1 * 2 + 10;
            let q = h.realloc(b.0, grown);
            assert!(!q.is_null());
            // SAFETY: `q` holds `grown` bytes, the first `b.1` kept from `b.0`.
            unsafe {
                assert_eq!(*q.add(b.1 - 1), b.2);
                q.write_bytes(b.2, grown);
            }
            *b = (q, grown, b.2);
        }
        for (i, &(p, size, fill)) in blocks.iter().enumerate() {
            // SAFETY: live block of `size` bytes.
            assert_eq!(unsafe { *p.add(size - 1) }, fill);
            if i % 2 == 0 {
                h.free(p);
            }
        }
        assert_eq!(h.check(), 0);
        assert!(h.mapped_bytes() > 0);
        // Counts that only grow: other tests' mappings cannot make them fall.
        let before = crate::stats::summary();
        h.reset();
        assert_eq!(h.check(), 0);
        assert_eq!(h.mapped_bytes(), 0, "a reset unmaps every region and big block");
        let after = crate::stats::summary();
        assert!(after.regions_returned > before.regions_returned, "the statistics missed the regions");
        assert!(after.big_unmappings > before.big_unmappings, "the statistics missed the big blocks");
        // Usable again after a reset.
        let p = h.alloc(100);
        assert!(!p.is_null());
        // SAFETY: `heap` came from `create` and is not used again.
        unsafe { destroy(heap) };
    }
}

#[test]
fn heap_blocks_never_enter_the_process_allocator() {
    let heap = create(HeapConfig::default());
    // SAFETY: live until destroyed.
    let h = unsafe { &*heap };
    let p = h.alloc(64);
    let region = crate::region_map::lookup(p as usize);
    // SAFETY: `p` is in a live region.
    assert!(!crate::arena::is_process_arena(unsafe { (*region).arena }));
    // The map tells `free`'s fast path the same: no thread's home has this number.
    assert_eq!(crate::region_map::lookup_entry(p as usize).arena_number(), crate::arena::OTHER_ARENA_NUMBER);
    h.free(p);
    // SAFETY: as above.
    unsafe { destroy(heap) };
}

#[test]
fn the_region_map_names_each_process_blocks_arena() {
    let _alone = super::support::process_arenas_lock();
    let p = crate::alloc::allocate(100);
    assert!(!p.is_null());
    let entry = crate::region_map::lookup_entry(p as usize);
    let region = entry.region();
    assert_eq!(region, crate::region_map::lookup(p as usize));
    // SAFETY: `p` is a live block, so its region is live.
    let arena = unsafe { (*region).arena };
    assert!(crate::arena::is_process_arena(arena));
    assert_eq!(entry.arena_number(), crate::arena::number_of(arena));
    assert!((1..=crate::config::MAX_ARENAS).contains(&entry.arena_number()));
    crate::alloc::deallocate(p, "free");
    // An address in no region has an empty entry.
    let on_stack = 0u64;
    assert!(crate::region_map::lookup_entry(&on_stack as *const u64 as usize).region().is_null());
}
