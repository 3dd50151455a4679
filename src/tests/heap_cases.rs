//! Targeted cases of splitting, coalescing by address, in-place resizing and region return.

use super::support::{assert_sound, test_arena};
use crate::bins::Fit;
use crate::block::{block_of, block_size_for, read_header, MIN_BLOCK_SIZE};
use crate::region::{Region, REGION_ALIGN};

fn alloc(arena: &crate::arena::Arena, size: usize) -> *mut u8 {
    let p = arena.lock().alloc(block_size_for(size).unwrap());
    assert!(!p.is_null());
    p
}

fn free(arena: &crate::arena::Arena, p: *mut u8) {
    // SAFETY: every pointer passed here is a live block of `arena`.
    unsafe { arena.lock().free_block(block_of(p), "free") };
}

fn size_of_block(p: *mut u8) -> usize {
    // SAFETY: `p` is a live payload.
    unsafe { read_header(block_of(p)) }.size()
}

#[test]
fn neighbours_coalesce_by_address_in_any_order() {
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1], [2, 0, 1], [1, 2, 0]] {
        let arena = test_arena(Fit::Best);
        let guard = alloc(&arena, 100); // keeps the region from becoming empty
        let blocks = [alloc(&arena, 200), alloc(&arena, 300), alloc(&arena, 400)];
        assert_eq!(blocks[1] as usize - blocks[0] as usize, size_of_block(blocks[0]));
        let total: usize = blocks.iter().map(|&p| size_of_block(p)).sum();
        for i in order {
            free(&arena, blocks[i]);
            assert_sound(&arena, "after a free");
        }
        // The three blocks and the rest of the region are now one free block.
        let (free_blocks, _) = arena.lock().free_census();
        assert_eq!(free_blocks, 1, "order {order:?}");
        // The merged block is reused for a request as large as all three together.
        let again = alloc(&arena, total - 8);
        assert_eq!(again, blocks[0]);
        free(&arena, again);
        free(&arena, guard);
        assert_sound(&arena, "end");
    }
}

#[test]
fn exact_fit_reuses_the_freed_block() {
    let arena = test_arena(Fit::First);
    let a = alloc(&arena, 64);
    let _b = alloc(&arena, 64);
    free(&arena, a);
    assert_eq!(alloc(&arena, 64), a);
    assert_sound(&arena, "end");
}

#[test]
fn split_leaves_no_fragment_smaller_than_a_block() {
    let arena = test_arena(Fit::Best);
    let a = alloc(&arena, 100);
    let _fence = alloc(&arena, 16);
    let a_size = size_of_block(a);
    free(&arena, a);
    // A request leaving less than a minimum block takes the whole block.
    let b = alloc(&arena, a_size - 8 - (MIN_BLOCK_SIZE - 16));
    assert_eq!(b, a);
    assert_eq!(size_of_block(b), a_size);
    assert_sound(&arena, "end");
}

#[test]
fn realloc_grows_in_place_into_a_free_neighbour_and_shrinks_in_place() {
    let arena = test_arena(Fit::Best);
    let a = alloc(&arena, 100);
    let b = alloc(&arena, 500);
    let _fence = alloc(&arena, 16);
    free(&arena, b);
    // SAFETY: `a` is live in `arena`.
    assert!(unsafe { arena.lock().resize_in_place(block_of(a), block_size_for(550).unwrap()) });
    assert!(size_of_block(a) >= block_size_for(550).unwrap());
    assert_sound(&arena, "after growing");
    // SAFETY: as above.
    assert!(unsafe { arena.lock().resize_in_place(block_of(a), block_size_for(40).unwrap()) });
    assert_eq!(size_of_block(a), block_size_for(40).unwrap());
    assert_sound(&arena, "after shrinking");
    // Growing past a used neighbour is refused.
    // SAFETY: as above.
    assert!(!unsafe { arena.lock().resize_in_place(block_of(a), block_size_for(10_000).unwrap()) });
}

#[test]
fn wholly_free_regions_go_back_to_the_os_keeping_a_few() {
    let arena = test_arena(Fit::Best);
    let blocks: Vec<_> = (0..40).map(|_| alloc(&arena, 200_000)).collect();
    let mapped = arena.lock().counters().regions_mapped;
    assert!(mapped >= 4, "expected several regions, got {mapped}");
    for p in blocks {
        free(&arena, p);
    }
    assert_sound(&arena, "after freeing");
    let c = arena.lock().counters();
    assert_eq!(c.empty_regions as usize, crate::heap::EMPTY_REGIONS_KEPT);
    assert_eq!(c.regions_unmapped, mapped - crate::heap::EMPTY_REGIONS_KEPT as u64);
    // A loop allocating and freeing a large block reuses the kept region instead of mapping.
    for _ in 0..100 {
        let p = alloc(&arena, 700_000);
        free(&arena, p);
    }
    assert_eq!(arena.lock().counters().regions_mapped, mapped);
}

#[test]
fn a_heap_keeps_the_empty_region_its_large_requests_need() {
    let arena = test_arena(Fit::Best);
    let small: Vec<_> = (0..4).map(|_| alloc(&arena, 600_000)).collect();
    let large = alloc(&arena, 6 << 20);
    let mapped = arena.lock().counters().regions_mapped;
    assert_eq!(mapped, 5, "one region per block");
    for p in small {
        free(&arena, p);
    }
    assert_eq!(arena.lock().counters().empty_regions as usize, crate::heap::EMPTY_REGIONS_KEPT);
    // A fifth empty region: a small kept one goes, not the one that fits the large request.
    free(&arena, large);
    assert_sound(&arena, "after freeing");
    let c = arena.lock().counters();
    assert_eq!(c.empty_regions as usize, crate::heap::EMPTY_REGIONS_KEPT);
    assert_eq!(c.regions_unmapped, 1);
    let again = alloc(&arena, 6 << 20);
    assert_eq!(arena.lock().counters().regions_mapped, mapped, "the large request mapped a region again");
    free(&arena, again);
    assert_sound(&arena, "after reuse");
}

#[test]
fn purge_unmaps_empty_regions_and_keeps_the_heap_sound() {
    let arena = test_arena(Fit::Best);
    let keep = alloc(&arena, 64);
    let big = alloc(&arena, 800_000);
    let rest = alloc(&arena, 300_000);
    free(&arena, big);
    let released = crate::purge::purge_heap(&mut arena.lock());
    assert!(released >= 700_000, "released only {released}");
    assert_sound(&arena, "after purge");
    // Purged memory reads as zero and is usable again.
    let again = alloc(&arena, 800_000);
    // SAFETY: `again` has 800000 usable bytes.
    unsafe { again.write_bytes(0x5a, 800_000) };
    free(&arena, again);
    free(&arena, rest);
    free(&arena, keep);
    assert!(crate::purge::purge_heap(&mut arena.lock()) >= REGION_ALIGN / 2);
    assert_eq!(arena.lock().counters().region_bytes, 0);
    assert_sound(&arena, "after purging everything");
}

#[test]
fn region_span_matches_the_one_free_block_of_a_new_region() {
    let arena = test_arena(Fit::Best);
    let p = alloc(&arena, 10);
    let region = crate::region_map::lookup(p as usize);
    assert!(!region.is_null());
    assert_eq!(Region::first_block(region), block_of(p));
    // SAFETY: `region` is live.
    assert!(unsafe { Region::contains(region, p as usize) });
    free(&arena, p);
}

/// Pages of `[p, p + len)` that are resident, by `mincore`.
fn resident_pages(p: *mut u8, len: usize) -> usize {
    let start = (p as usize + 4095) & !4095;
    let end = (p as usize + len) & !4095;
    let pages = (end - start) / 4096;
    let mut vec = vec![0u8; pages];
    // SAFETY: the range is mapped (inside a region) and `vec` has one byte per page.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, end - start, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

/// The timing tests below assume the 200 ms delay, which applies once the big-allocation cutoff
/// has risen (as other tests may make it do at any time): raising it here first makes "a block
/// freed just now keeps its pages" hold however slowly the test runs.
fn use_the_long_purge_delay() {
    crate::config::note_big_block_freed(crate::config::DEFAULT_MMAP_THRESHOLD + 4096);
    assert_eq!(crate::purge::delay_ms(), crate::config::DEFAULT_PURGE_DELAY_MS);
}

#[test]
fn the_purge_delay_is_short_until_the_heap_serves_big_blocks() {
    use crate::config::{DEFAULT_MMAP_THRESHOLD, DEFAULT_PURGE_DELAY_MS};
    use crate::purge::{delay_for, QUICK_PURGE_DELAY_MS};
    assert_eq!(delay_for(false, DEFAULT_PURGE_DELAY_MS, DEFAULT_MMAP_THRESHOLD), QUICK_PURGE_DELAY_MS);
    assert_eq!(delay_for(false, DEFAULT_PURGE_DELAY_MS, 256 << 10), QUICK_PURGE_DELAY_MS);
    assert_eq!(delay_for(false, DEFAULT_PURGE_DELAY_MS, 2 * DEFAULT_MMAP_THRESHOLD), DEFAULT_PURGE_DELAY_MS);
    // A delay the user chose holds from the start, whatever the cutoff.
    assert_eq!(delay_for(true, 50, DEFAULT_MMAP_THRESHOLD), 50);
    assert_eq!(delay_for(true, 0, 2 * DEFAULT_MMAP_THRESHOLD), 0);
}

#[test]
fn large_free_blocks_lose_their_pages_after_the_purge_delay() {
    use_the_long_purge_delay();
    let arena = test_arena(Fit::Best);
    let keep = alloc(&arena, 64);
    let big = alloc(&arena, 600_000);
    let _fence = alloc(&arena, 64);
    // The smallest block the purge releases pages of (20 KiB).
    let hole_size = crate::purge::PURGE_MIN_BLOCK + 4096;
    let hole = alloc(&arena, hole_size);
    let _fence2 = alloc(&arena, 64);
    // SAFETY: `big` has 600000 usable bytes, `hole` `hole_size`.
    unsafe {
        big.write_bytes(1, 600_000);
        hole.write_bytes(1, hole_size);
    }
    assert!(resident_pages(big, 600_000) > 140);
    let hole_before = resident_pages(hole, hole_size);
    assert!(hole_before >= 4, "{hole_before} pages resident after writing them all");
    free(&arena, big);
    free(&arena, hole);
    // Within the delay, the pages stay (a quick reuse costs no page faults).
    assert!(resident_pages(big, 600_000) > 140);
    std::thread::sleep(std::time::Duration::from_millis(crate::config::DEFAULT_PURGE_DELAY_MS + 100));
    // Operations on the heap look at the clock often enough to release them soon.
    free(&arena, keep);
    for _ in 0..crate::heap::PURGE_CLOCK_EVERY {
        let p = alloc(&arena, 64);
        free(&arena, p);
    }
    let resident = resident_pages(big, 600_000);
    assert!(resident <= 2, "{resident} pages still resident after the purge delay");
    // Of the small block, only the pages holding its header, links and footer stay.
    let hole_after = resident_pages(hole, hole_size);
    assert!(hole_after <= 2, "{hole_after} of {hole_before} pages of a 20 KiB block still resident after the purge delay");
    assert_sound(&arena, "after the delayed purge");
}

#[test]
fn a_run_of_blocks_fills_holes_first_and_is_freed_back_whole() {
    for fit in [Fit::First, Fit::Best, Fit::Worst] {
        let arena = test_arena(fit);
        let guard = alloc(&arena, 100);
        // A hole of exactly five 96-byte blocks plus 16 bytes, fenced in.
        let hole = alloc(&arena, 5 * 96 + 16 - 8);
        let fence = alloc(&arena, 100);
        free(&arena, hole);
        for (need, count) in [(96, 5), (32, 1), (48, 32), (1024, 7), (4096, 3)] {
            let mut run = Vec::new();
            let first = arena.lock().alloc_run(need, count, |p| run.push(p));
            assert!(!first.is_null());
            run.insert(0, first);
            assert_eq!(run.len(), count, "fit {fit:?} need {need}");
            let mut sorted = run.clone();
            sorted.sort();
            for pair in sorted.windows(2) {
                assert!(pair[0] as usize + size_of_block(pair[0]) <= pair[1] as usize, "blocks overlap");
            }
            assert!(run.iter().all(|&p| size_of_block(p) >= need));
            if need == 96 && fit != Fit::Worst {
                // The run fills the hole: side by side from its start, the last block taking
                // the 16 bytes too small to be a block of their own.
                assert_eq!(run[0], hole);
                for pair in run.windows(2) {
                    assert_eq!(pair[1] as usize - pair[0] as usize, size_of_block(pair[0]));
                }
                assert_eq!(size_of_block(run[4]), 96 + 16);
            }
            assert_sound(&arena, "after a run");
            for &p in run.iter().rev() {
                free(&arena, p);
            }
            assert_sound(&arena, "after freeing a run");
        }
        free(&arena, guard);
        free(&arena, fence);
        assert_sound(&arena, "at the end");
    }
}

#[test]
fn the_delayed_purge_releases_only_blocks_free_for_the_whole_delay() {
    use_the_long_purge_delay();
    let arena = test_arena(Fit::Best);
    let delay = std::time::Duration::from_millis(crate::config::DEFAULT_PURGE_DELAY_MS + 100);
    let _keep = alloc(&arena, 64);
    let old = alloc(&arena, 600_000);
    let _fence = alloc(&arena, 64);
    let fresh = alloc(&arena, 600_000);
    let _fence2 = alloc(&arena, 64);
    // SAFETY: both blocks have 600000 usable bytes.
    unsafe {
        old.write_bytes(1, 600_000);
        fresh.write_bytes(2, 600_000);
    }
    free(&arena, old);
    std::thread::sleep(delay);
    free(&arena, fresh);
    for _ in 0..crate::heap::PURGE_CLOCK_EVERY {
        let p = alloc(&arena, 64);
        free(&arena, p);
    }
    assert!(resident_pages(old, 600_000) <= 2, "the old free block kept its pages");
    assert!(resident_pages(fresh, 600_000) > 140, "a block freed just now lost its pages");
    assert_sound(&arena, "after the first purge");
    std::thread::sleep(delay);
    for _ in 0..crate::heap::PURGE_CLOCK_EVERY {
        let p = alloc(&arena, 64);
        free(&arena, p);
    }
    assert!(resident_pages(fresh, 600_000) <= 2, "the second block was not purged once due");
    assert_sound(&arena, "after the second purge");
}
