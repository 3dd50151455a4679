//! Model-based randomised test: long random sequences of alloc, free, in-place or moving
//! realloc, and aligned alloc against a shadow model of live blocks. Every block's contents are
//! checked before it is freed or resized, live blocks must never overlap, and the whole-heap
//! checker runs as it goes. A failure names the seed to replay with `BINMALLOC_TEST_SEED`.

use std::collections::BTreeMap;

use super::support::{assert_sound, pattern, test_arena, Rng};
use crate::bins::Fit;
use crate::block::{block_of, block_size_for, payload_capacity, read_header};
use crate::heap::EMPTY_REGIONS_KEPT;

struct Live {
    size: usize,
    tag: u64,
}

struct Model {
    /// payload address -> block facts
    blocks: BTreeMap<usize, Live>,
}

impl Model {
    fn assert_disjoint(&self, p: usize, size: usize) {
        if let Some((&start, live)) = self.blocks.range(..=p).next_back() {
            assert!(start + live.size.max(1) <= p, "block {p:#x} overlaps {start:#x}");
        }
        if let Some((&start, _)) = self.blocks.range(p..).next() {
            assert!(p + size.max(1) <= start, "block {p:#x}+{size} overlaps {start:#x}");
        }
    }
}

fn fill(p: *mut u8, size: usize, tag: u64) {
    for i in 0..size {
        // SAFETY: `p` is a live block of at least `size` bytes.
        unsafe { p.add(i).write(pattern(tag, i)) };
    }
}

fn verify(p: *mut u8, size: usize, tag: u64) {
    for i in 0..size {
        // SAFETY: as in `fill`.
        let got = unsafe { p.add(i).read() };
        assert_eq!(got, pattern(tag, i), "block {p:?} byte {i} of {size} corrupted");
    }
}

fn run(fit: Fit, seed: u64, ops: usize, max_size: usize) {
    let arena = test_arena(fit);
    let mut rng = Rng::new(seed);
    let mut model = Model { blocks: BTreeMap::new() };
    let mut next_tag = 1u64;
    for op in 0..ops {
        let choice = rng.below(100);
        if choice < 45 || model.blocks.is_empty() {
            let size = rng.size(max_size);
            let aligned = rng.below(10) == 0;
            let align = 32usize << rng.below(8);
            let need = block_size_for(size).unwrap();
            let p = {
                let mut heap = arena.lock();
                if aligned { heap.alloc_aligned(need, align) } else { heap.alloc(need) }
            };
            assert!(!p.is_null(), "seed {seed} op {op}: allocation of {size} failed");
            assert_eq!(p as usize % 16, 0);
            if aligned {
                assert_eq!(p as usize % align, 0, "seed {seed} op {op}: misaligned");
            }
            // SAFETY: `p` was just allocated; its header is valid.
            assert!(payload_capacity(unsafe { read_header(block_of(p)) }.size()) >= size);
            model.assert_disjoint(p as usize, size);
            fill(p, size, next_tag);
            model.blocks.insert(p as usize, Live { size, tag: next_tag });
            next_tag += 1;
        } else if choice < 85 {
            let victim = *model.blocks.keys().nth(rng.below(model.blocks.len() as u64) as usize).unwrap();
            let live = model.blocks.remove(&victim).unwrap();
            verify(victim as *mut u8, live.size, live.tag);
            // SAFETY: `victim` is a live block of this heap.
            unsafe { arena.lock().free_block(block_of(victim as *mut u8), "free") };
        } else {
            let victim = *model.blocks.keys().nth(rng.below(model.blocks.len() as u64) as usize).unwrap();
            let live = model.blocks.remove(&victim).unwrap();
            let new_size = rng.size(max_size);
            let need = block_size_for(new_size).unwrap();
            let p = victim as *mut u8;
            verify(p, live.size, live.tag);
            // SAFETY: `p` is a live block of this heap.
            let in_place = unsafe { arena.lock().resize_in_place(block_of(p), need) };
            let kept = live.size.min(new_size);
            let q = if in_place {
                p
            } else {
                let q = arena.lock().alloc(need);
                assert!(!q.is_null());
                // SAFETY: both blocks are live and distinct.
                unsafe { core::ptr::copy_nonoverlapping(p, q, kept) };
                // SAFETY: `p` is a live block of this heap.
                unsafe { arena.lock().free_block(block_of(p), "realloc") };
                q
            };
            verify(q, kept, live.tag);
            model.assert_disjoint(q as usize, new_size);
            fill(q, new_size, live.tag);
            model.blocks.insert(q as usize, Live { size: new_size, tag: live.tag });
        }
        if op % 97 == 0 {
            assert_sound(arena, &format!("fit {fit:?} seed {seed} op {op}"));
        }
    }
    for (&p, live) in &model.blocks {
        verify(p as *mut u8, live.size, live.tag);
        // SAFETY: `p` is a live block of this heap.
        unsafe { arena.lock().free_block(block_of(p as *mut u8), "free") };
    }
    assert_sound(arena, &format!("fit {fit:?} seed {seed} after freeing everything"));
    let heap = arena.lock();
    let c = heap.counters();
    assert_eq!(c.in_use_bytes, 0);
    assert!(c.empty_regions <= EMPTY_REGIONS_KEPT);
    let mut regions = 0;
    let mut r = heap.regions;
    while !r.is_null() {
        regions += 1;
        // SAFETY: regions on the list are live.
        r = unsafe { (*r).next };
    }
    assert!(regions <= EMPTY_REGIONS_KEPT, "{regions} regions still mapped after freeing everything");
    assert!(c.regions_mapped > 0 && c.regions_unmapped + regions as u64 == c.regions_mapped);
}

fn seeds() -> Vec<u64> {
    match std::env::var("BINMALLOC_TEST_SEED") {
        Ok(s) => vec![s.parse().expect("BINMALLOC_TEST_SEED must be a number")],
        Err(_) => (1..=4).collect(),
    }
}

fn ops() -> usize {
    std::env::var("BINMALLOC_TEST_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000)
}

#[test]
fn random_operations_keep_the_heap_sound_first_fit() {
    for seed in seeds() {
        run(Fit::First, seed, ops(), 4096);
        run(Fit::First, seed + 100, ops() / 4, 600_000);
    }
}

#[test]
fn random_operations_keep_the_heap_sound_best_fit() {
    for seed in seeds() {
        run(Fit::Best, seed, ops(), 4096);
        run(Fit::Best, seed + 100, ops() / 4, 600_000);
    }
}

#[test]
fn random_operations_keep_the_heap_sound_worst_fit() {
    for seed in seeds() {
        run(Fit::Worst, seed, ops(), 4096);
        run(Fit::Worst, seed + 100, ops() / 4, 600_000);
    }
}
