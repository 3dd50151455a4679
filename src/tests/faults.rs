//! Fault injection: a failing mmap at each point where binmalloc asks the OS for memory gives a
//! clean out-of-memory answer, leaves the heap sound, and the next request succeeds.

use super::support::{assert_sound, test_arena};
use crate::bins::Fit;
use crate::block::block_size_for;
use crate::os;

#[test]
fn a_failed_region_mapping_is_out_of_memory_and_recoverable() {
    let arena = test_arena(Fit::Best);
    let first = arena.lock().alloc(block_size_for(100).unwrap());
    assert!(!first.is_null());
    for size in [1_200_000usize, 3 << 20, 9 << 20] {
        let before = os::injected_faults();
        os::fail_nth_mapping(1);
        let p = arena.lock().alloc(block_size_for(size).unwrap());
        assert!(p.is_null(), "allocation of {size} must fail when the OS refuses");
        assert!(os::injected_faults() > before);
        assert_sound(arena, "after an injected failure");
        let q = arena.lock().alloc(block_size_for(size).unwrap());
        assert!(!q.is_null(), "the next allocation of {size} must succeed");
        assert_sound(arena, "after recovering");
        // SAFETY: `q` is live in `arena`.
        unsafe { arena.lock().free_block(crate::block::block_of(q), "free") };
    }
    let aligned = {
        os::fail_nth_mapping(1);
        arena.lock().alloc_aligned(block_size_for(20 << 20).unwrap(), 4096)
    };
    assert!(aligned.is_null());
    assert_sound(arena, "after a failed aligned allocation");
    os::fail_nth_mapping(0);
}

#[test]
fn a_failed_big_mapping_or_remap_is_out_of_memory_and_recoverable() {
    os::fail_nth_mapping(1);
    assert!(crate::large::alloc(5 << 20, 16).is_null());
    let p = crate::large::alloc(5 << 20, 16);
    assert!(!p.is_null());
    // SAFETY: `p` maps 5 MiB.
    unsafe { p.write_bytes(7, 5 << 20) };
    os::fail_nth_mapping(1);
    assert!(matches!(crate::large::resize(p, 50 << 20), crate::large::Resized::OutOfMemory));
    // The block is untouched and still resizable.
    // SAFETY: `p` still maps 5 MiB.
    assert_eq!(unsafe { *p.add((5 << 20) - 1) }, 7);
    let crate::large::Resized::Done(q) = crate::large::resize(p, 50 << 20) else { panic!("resize failed") };
    // SAFETY: `q` maps 50 MiB and kept the first 5.
    assert_eq!(unsafe { *q.add((5 << 20) - 1) }, 7);
    assert!(crate::large::free(q));
}

#[test]
fn the_nth_mapping_fails_not_the_first() {
    let arena = test_arena(Fit::First);
    let before = os::injected_faults();
    os::fail_nth_mapping(3);
    let mut failures = 0;
    let mut blocks = Vec::new();
    for _ in 0..6 {
        let p = arena.lock().alloc(block_size_for(900_000).unwrap());
        if p.is_null() {
            failures += 1;
        } else {
            blocks.push(p);
        }
    }
    assert_eq!(failures, 1);
    assert!(os::injected_faults() > before);
    for p in blocks {
        // SAFETY: live blocks of `arena`.
        unsafe { arena.lock().free_block(crate::block::block_of(p), "free") };
    }
    assert_sound(arena, "end");
}
