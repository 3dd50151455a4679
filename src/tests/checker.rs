//! The checker must find what it claims to find: damage a heap on purpose and count the errors.

use super::support::test_arena;
use crate::bins::Fit;
use crate::block::{block_of, block_size_for, read_header};
use crate::check::{check_heap, Findings};

fn errors(arena: &crate::arena::Arena) -> usize {
    let mut findings = Findings::new(false);
    check_heap(&arena.lock(), &mut findings);
    findings.errors
}

#[test]
fn a_sound_heap_has_no_errors() {
    let arena = test_arena(Fit::Best);
    let p = arena.lock().alloc(block_size_for(100).unwrap());
    assert_eq!(errors(arena), 0);
    // SAFETY: `p` is live.
    unsafe { arena.lock().free_block(block_of(p), "free") };
    assert_eq!(errors(arena), 0);
}

#[test]
fn an_overwritten_header_is_found() {
    let arena = test_arena(Fit::Best);
    let a = arena.lock().alloc(block_size_for(24).unwrap());
    let _b = arena.lock().alloc(block_size_for(24).unwrap());
    // SAFETY: deliberately overflow `a` by 16 bytes into `b`'s header (memory we mapped).
    unsafe { a.write_bytes(0x41, 40) };
    assert!(errors(arena) > 0);
}

#[test]
fn a_wrong_footer_is_found() {
    let arena = test_arena(Fit::Best);
    let a = arena.lock().alloc(block_size_for(200).unwrap());
    let _fence = arena.lock().alloc(block_size_for(16).unwrap());
    // SAFETY: `a` is live.
    let size = unsafe { read_header(block_of(a)) }.size();
    // SAFETY: `a` is live.
    unsafe { arena.lock().free_block(block_of(a), "free") };
    assert_eq!(errors(arena), 0);
    // SAFETY: the footer is the last word of the now free block, in memory we mapped.
    unsafe { block_of(a).add(size - 8).cast::<usize>().write(size + 16) };
    assert!(errors(arena) > 0);
}

#[test]
fn a_counter_out_of_step_is_found() {
    let arena = test_arena(Fit::Best);
    let _a = arena.lock().alloc(block_size_for(200).unwrap());
    arena.lock().counters.in_use_bytes += 16;
    assert!(errors(arena) > 0);
}

#[test]
fn a_bitmap_out_of_step_is_found() {
    let arena = test_arena(Fit::Best);
    let a = arena.lock().alloc(block_size_for(200).unwrap());
    let _fence = arena.lock().alloc(block_size_for(16).unwrap());
    // SAFETY: `a` is live.
    unsafe { arena.lock().free_block(block_of(a), "free") };
    // Unlist a free block behind the heap's back.
    // SAFETY: `a`'s block is listed on its bin.
    unsafe {
        let size = read_header(block_of(a)).size();
        arena.lock().bins.remove(block_of(a), size);
    }
    assert!(errors(arena) > 0);
}
