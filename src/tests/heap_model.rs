//! Model-based randomised test: long random sequences of alloc, free, in-place or moving
//! realloc, and aligned alloc against a shadow model of live blocks. Every block's contents are
//! checked before it is freed or resized, live blocks must never overlap, and the whole-heap
//! checker runs as it goes.
//!
//! A sequence is generated from a seed up front and replayed on a fresh heap; a replay reports a
//! failure instead of panicking, so a failing sequence is shrunk (delta debugging: drop chunks
//! of operations, then single ones, then make sizes small) to a short one that fails the same
//! way, which the test prints with the seed to replay with `BINMALLOC_TEST_SEED` and
//! `BINMALLOC_TEST_OPS`. Operations name blocks by slot (the number of the `alloc` that made
//! them), and one whose block was never allocated in a shrunk sequence does nothing, so every
//! subsequence is a valid program.
//!
//! What cannot be shrunk: a bug that makes the heap itself detect damage and end the process
//! (`fatal::misuse` or `fatal::internal`, then `abort()`) or crash. Those print binmalloc's
//! one-line diagnosis; the test name and `BINMALLOC_TEST_SEED` still replay them.

use std::collections::BTreeMap;
use std::fmt;

use super::support::{pattern, test_arena, Rng};
use crate::arena::Arena;
use crate::bins::Fit;
use crate::block::{block_of, block_size_for, payload_capacity, read_header};
use crate::check::{check_heap, Findings};
use crate::heap::EMPTY_REGIONS_KEPT;

/// The heap checker runs after every this many operations.
const CHECK_EVERY: usize = 97;
/// A shrink gives up after this many replays and reports the shortest failing sequence so far.
const SHRINK_REPLAYS_MAX: usize = 4000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Allocates `size` bytes, aligned to `align` if it is not 0, as block `slot`.
    Alloc { slot: usize, size: usize, align: usize },
    Free { slot: usize },
    /// Resizes block `slot` to `size` bytes: in place if the heap can, else allocate, copy, free.
    Realloc { slot: usize, size: usize },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Alloc { slot, size, align: 0 } => write!(f, "alloc   #{slot} size {size}"),
            Op::Alloc { slot, size, align } => write!(f, "alloc   #{slot} size {size} align {align}"),
            Op::Free { slot } => write!(f, "free    #{slot}"),
            Op::Realloc { slot, size } => write!(f, "realloc #{slot} to {size}"),
        }
    }
}

/// The operation mix of the original test: 45% alloc (a tenth of them aligned), 40% free, 15%
/// realloc, each on a random live block.
fn generate(seed: u64, count: usize, max_size: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut live: Vec<usize> = Vec::new();
    let mut ops = Vec::with_capacity(count);
    // A block's slot is the number of the operation that allocated it.
    for slot in 0..count {
        let choice = rng.below(100);
        if choice < 45 || live.is_empty() {
            let size = rng.size(max_size);
            let align = if rng.below(10) == 0 { 32usize << rng.below(8) } else { 0 };
            ops.push(Op::Alloc { slot, size, align });
            live.push(slot);
        } else if choice < 85 {
            let victim = live.swap_remove(rng.below(live.len() as u64) as usize);
            ops.push(Op::Free { slot: victim });
        } else {
            let victim = live[rng.below(live.len() as u64) as usize];
            ops.push(Op::Realloc { slot: victim, size: rng.size(max_size) });
        }
    }
    ops
}

/// Why a replay failed: a kind that shrinking must preserve, and the particulars.
#[derive(Clone, Debug)]
struct Failure {
    kind: &'static str,
    /// The operation at which it was noticed (None: in the final checks).
    at: Option<usize>,
    detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{} at op {at}: {}", self.kind, self.detail),
            None => write!(f, "{} after the last op: {}", self.kind, self.detail),
        }
    }
}

const INJECTED: &str = "injected fault";

/// A deliberate failure for testing the shrinker: called with the size of each block freed and
/// whether it was ever resized; `true` fails the replay.
type Fault = fn(size: usize, resized: bool) -> bool;

#[derive(Clone, Copy)]
struct Setup {
    fit: Fit,
    fault: Option<Fault>,
    /// Let the heap checker describe what it finds on stderr.
    report: bool,
}

struct Live {
    addr: usize,
    size: usize,
    tag: u64,
    resized: bool,
}

fn fail<T>(kind: &'static str, at: Option<usize>, detail: String) -> Result<T, Failure> {
    Err(Failure { kind, at, detail })
}

/// The bytes of a block that `fill` and `verify` touch: all of them.
#[cfg(not(miri))]
fn checked_bytes(size: usize) -> core::ops::Range<usize> {
    0..size
}

/// Under Miri, where touching every byte of large blocks would take hours: the first 256 and
/// then every 64th (chosen by offset, not size, so a resized block keeps its checked bytes).
#[cfg(miri)]
fn checked_bytes(size: usize) -> impl Iterator<Item = usize> {
    (0..size.min(256)).chain((256..size).step_by(64))
}

fn fill(p: usize, size: usize, tag: u64) {
    for i in checked_bytes(size) {
        // SAFETY: `p` is a live block of at least `size` bytes.
        unsafe { (p as *mut u8).add(i).write(pattern(tag, i)) };
    }
}

fn verify(p: usize, size: usize, tag: u64, at: Option<usize>) -> Result<(), Failure> {
    for i in checked_bytes(size) {
        // SAFETY: as in `fill`.
        let got = unsafe { (p as *mut u8).add(i).read() };
        if got != pattern(tag, i) {
            return fail("contents changed", at, format!("block {p:#x} byte {i} of {size}"));
        }
    }
    Ok(())
}

fn check(arena: &Arena, setup: Setup, at: Option<usize>) -> Result<(), Failure> {
    let heap = arena.lock();
    let mut findings = Findings::new(setup.report);
    check_heap(&heap, &mut findings);
    if findings.errors != 0 {
        return fail("heap check", at, format!("{} problems", findings.errors));
    }
    Ok(())
}

/// The model of live blocks: by slot, and by address for the overlap check.
struct Model {
    slots: Vec<Option<Live>>,
    by_addr: BTreeMap<usize, usize>,
}

impl Model {
    fn disjoint(&self, p: usize, size: usize, at: usize) -> Result<(), Failure> {
        if let Some((&start, &len)) = self.by_addr.range(..=p).next_back() {
            if start + len.max(1) > p {
                return fail("overlap", Some(at), format!("block {p:#x} overlaps {start:#x}+{len}"));
            }
        }
        if let Some((&start, _)) = self.by_addr.range(p..).next() {
            if p + size.max(1) > start {
                return fail("overlap", Some(at), format!("block {p:#x}+{size} overlaps {start:#x}"));
            }
        }
        Ok(())
    }

    fn insert(&mut self, slot: usize, live: Live) {
        self.by_addr.insert(live.addr, live.size);
        self.slots[slot] = Some(live);
    }

    fn take(&mut self, slot: usize) -> Option<Live> {
        let live = self.slots[slot].take()?;
        self.by_addr.remove(&live.addr);
        Some(live)
    }
}

/// Runs `ops` on a fresh heap against the model. The heap is left as it is (a passing run keeps
/// at most its few empty regions), unless `release` asks for its regions to be unmapped, as the
/// shrinker's hundreds of replays need; a heap found damaged is never touched again.
fn replay(setup: Setup, ops: &[Op], release: bool) -> Result<(), Failure> {
    let arena = test_arena(setup.fit);
    let result = replay_on(arena, setup, ops);
    if release && (result.is_ok() || check(arena, Setup { report: false, ..setup }, None).is_ok()) {
        arena.lock().release_everything();
    }
    result
}

fn replay_on(arena: &Arena, setup: Setup, ops: &[Op]) -> Result<(), Failure> {
    let slot_count = ops.iter().map(|op| match *op {
        Op::Alloc { slot, .. } | Op::Free { slot } | Op::Realloc { slot, .. } => slot + 1,
    });
    let mut model = Model { slots: Vec::new(), by_addr: BTreeMap::new() };
    model.slots.resize_with(slot_count.max().unwrap_or(0), || None);
    let mut next_tag = 1u64;
    for (at, op) in ops.iter().enumerate() {
        match *op {
            Op::Alloc { slot, size, align } => {
                let need = block_size_for(size).unwrap();
                let p = {
                    let mut heap = arena.lock();
                    if align != 0 { heap.alloc_aligned(need, align) } else { heap.alloc(need) }
                } as usize;
                if p == 0 {
                    return fail("allocation failed", Some(at), format!("{size} bytes"));
                }
                if p % 16 != 0 || (align != 0 && p % align != 0) {
                    return fail("misaligned", Some(at), format!("{p:#x} for alignment {}", align.max(16)));
                }
                // SAFETY: `p` was just allocated; its header is valid.
                let capacity = payload_capacity(unsafe { read_header(block_of(p as *mut u8)) }.size());
                if capacity < size {
                    return fail("block too small", Some(at), format!("{capacity} bytes for {size}"));
                }
                model.disjoint(p, size, at)?;
                fill(p, size, next_tag);
                model.insert(slot, Live { addr: p, size, tag: next_tag, resized: false });
                next_tag += 1;
            }
            Op::Free { slot } => {
                let Some(live) = model.take(slot) else { continue };
                verify(live.addr, live.size, live.tag, Some(at))?;
                if setup.fault.is_some_and(|fault| fault(live.size, live.resized)) {
                    return fail(INJECTED, Some(at), format!("free of {} bytes", live.size));
                }
                // SAFETY: `live.addr` is a live block of this heap.
                unsafe { arena.lock().free_block(block_of(live.addr as *mut u8), "free") };
            }
            Op::Realloc { slot, size } => {
                let Some(live) = model.take(slot) else { continue };
                let need = block_size_for(size).unwrap();
                let p = live.addr as *mut u8;
                verify(live.addr, live.size, live.tag, Some(at))?;
                // SAFETY: `p` is a live block of this heap.
                let in_place = unsafe { arena.lock().resize_in_place(block_of(p), need) };
                let kept = live.size.min(size);
                let q = if in_place {
                    p
                } else {
                    let q = arena.lock().alloc(need);
                    if q.is_null() {
                        return fail("allocation failed", Some(at), format!("{size} bytes (moving realloc)"));
                    }
                    // SAFETY: both blocks are live and distinct.
                    unsafe { core::ptr::copy_nonoverlapping(p, q, kept) };
                    // SAFETY: `p` is a live block of this heap.
                    unsafe { arena.lock().free_block(block_of(p), "realloc") };
                    q
                };
                verify(q as usize, kept, live.tag, Some(at))?;
                model.disjoint(q as usize, size, at)?;
                fill(q as usize, size, live.tag);
                model.insert(slot, Live { addr: q as usize, size, tag: live.tag, resized: true });
            }
        }
        if at % CHECK_EVERY == 0 {
            check(arena, setup, Some(at))?;
        }
    }
    for slot in 0..model.slots.len() {
        let Some(live) = model.take(slot) else { continue };
        verify(live.addr, live.size, live.tag, None)?;
        // SAFETY: `live.addr` is a live block of this heap.
        unsafe { arena.lock().free_block(block_of(live.addr as *mut u8), "free") };
    }
    check(arena, setup, None)?;
    let heap = arena.lock();
    let c = heap.counters();
    if c.in_use_bytes != 0 || c.empty_regions > EMPTY_REGIONS_KEPT {
        return fail("not all returned", None, format!("{} bytes in use, {} empty regions", c.in_use_bytes, c.empty_regions));
    }
    let mut regions = 0;
    let mut r = heap.regions;
    while !r.is_null() {
        regions += 1;
        // SAFETY: regions on the list are live.
        r = unsafe { (*r).next };
    }
    if regions > EMPTY_REGIONS_KEPT || c.regions_unmapped + regions as u64 != c.regions_mapped {
        return fail("not all returned", None, format!("{regions} regions still mapped, counters {c:?}"));
    }
    Ok(())
}

/// Shrinks a failing sequence to a short one that fails with the same kind of failure; returns
/// it, its failure and the number of replays it took.
fn shrink(setup: Setup, mut ops: Vec<Op>, mut failure: Failure) -> (Vec<Op>, Failure, usize) {
    let silent = Setup { report: false, ..setup };
    let kind = failure.kind;
    let mut replays = 0;
    let still_fails = |candidate: &[Op], replays: &mut usize| -> Option<Failure> {
        *replays += 1;
        replay(silent, candidate, true).err().filter(|f| f.kind == kind)
    };
    // Nothing after the failing operation matters.
    if let Some(at) = failure.at {
        let head = ops[..=at].to_vec();
        if let Some(f) = still_fails(&head, &mut replays) {
            ops = head;
            failure = f;
        }
    }
    let mut chunk = (ops.len() / 2).max(1);
    loop {
        // Remove runs of `chunk` operations wherever the rest still fails.
        let mut removed = false;
        let mut i = 0;
        while i < ops.len() && replays < SHRINK_REPLAYS_MAX {
            let end = (i + chunk).min(ops.len());
            let candidate: Vec<Op> = ops[..i].iter().chain(&ops[end..]).copied().collect();
            match still_fails(&candidate, &mut replays) {
                Some(f) => {
                    ops = candidate;
                    failure = f;
                    removed = true;
                }
                None => i += chunk,
            }
        }
        if replays >= SHRINK_REPLAYS_MAX {
            break;
        }
        if chunk > 1 {
            chunk /= 2;
            continue;
        }
        // Single operations are as far as removal goes: now make sizes as small as they can be
        // (the smallest that still fails, by bisection), drop alignments, and go round again if
        // that let anything change.
        let mut simpler = false;
        for i in 0..ops.len() {
            if let Op::Alloc { align, .. } = ops[i] {
                if align != 0 {
                    let mut candidate = ops.clone();
                    candidate[i] = with_align(ops[i], 0);
                    if let Some(f) = still_fails(&candidate, &mut replays) {
                        ops = candidate;
                        failure = f;
                        simpler = true;
                    }
                }
            }
            let Some(size) = size_of(ops[i]) else { continue };
            let (mut lo, mut hi) = (0, size);
            while lo < hi && replays < SHRINK_REPLAYS_MAX {
                let mid = lo + (hi - lo) / 2;
                let mut candidate = ops.clone();
                candidate[i] = with_size(ops[i], mid);
                match still_fails(&candidate, &mut replays) {
                    Some(f) => {
                        ops = candidate;
                        failure = f;
                        hi = mid;
                        simpler = true;
                    }
                    None => lo = mid + 1,
                }
            }
        }
        if !(removed || simpler) || replays >= SHRINK_REPLAYS_MAX {
            break;
        }
    }
    (ops, failure, replays)
}

fn size_of(op: Op) -> Option<usize> {
    match op {
        Op::Alloc { size, .. } | Op::Realloc { size, .. } => Some(size),
        Op::Free { .. } => None,
    }
}

fn with_size(op: Op, size: usize) -> Op {
    match op {
        Op::Alloc { slot, align, .. } => Op::Alloc { slot, size, align },
        Op::Realloc { slot, .. } => Op::Realloc { slot, size },
        free => free,
    }
}

fn with_align(op: Op, align: usize) -> Op {
    match op {
        Op::Alloc { slot, size, .. } => Op::Alloc { slot, size, align },
        other => other,
    }
}

/// One seeded run of a test.
struct Run<'a> {
    test: &'a str,
    fit: Fit,
    /// What `BINMALLOC_TEST_SEED` must be to replay it.
    base_seed: u64,
    seed: u64,
    count: usize,
    max_size: usize,
}

/// What a failing run prints: the failure, the shrunk sequence one operation per line, and how
/// to replay the original.
fn report(run: &Run, original: &Failure, shrunk: &[Op], failure: &Failure, replays: usize) -> String {
    let Run { test, fit, base_seed, seed, count, max_size } = *run;
    let mut text = format!(
        "heap model: fit {fit:?}, seed {seed}, {count} ops, sizes up to {max_size}: {original}\n\
         shrunk to {} operations ({replays} replays), which fail with {failure}:\n",
        shrunk.len()
    );
    for (i, op) in shrunk.iter().enumerate() {
        text += &format!("  {i:4}: {op}\n");
    }
    text += &format!(
        "replay: BINMALLOC_TEST_SEED={base_seed} BINMALLOC_TEST_OPS={} cargo test --release --lib {test}",
        ops_setting()
    );
    text
}

/// Under Miri, which interprets every access and is thousands of times slower, the runs are
/// short: they are there for Miri's checks of the unsafe heap code, not for the search.
const DEFAULT_SEEDS: u64 = if cfg!(miri) { 1 } else { 4 };
const DEFAULT_OPS: usize = if cfg!(miri) { 200 } else { 20_000 };

fn seeds() -> Vec<u64> {
    match std::env::var("BINMALLOC_TEST_SEED") {
        Ok(s) => vec![s.parse().expect("BINMALLOC_TEST_SEED must be a number")],
        Err(_) => (1..=DEFAULT_SEEDS).collect(),
    }
}

fn ops_setting() -> usize {
    std::env::var("BINMALLOC_TEST_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_OPS)
}

/// Replays one seeded run; on failure, shrinks it and panics with the report.
fn check_run(run: Run) {
    let setup = Setup { fit: run.fit, fault: None, report: false };
    let ops = generate(run.seed, run.count, run.max_size);
    if let Err(original) = replay(setup, &ops, false) {
        let (shrunk, failure, replays) = shrink(setup, ops, original.clone());
        // Once more with the checker's own description of what it finds.
        let _ = replay(Setup { report: true, ..setup }, &shrunk, true);
        panic!("{}", report(&run, &original, &shrunk, &failure, replays));
    }
}

fn run_seeds(test: &str, fit: Fit) {
    for seed in seeds() {
        check_run(Run { test, fit, base_seed: seed, seed, count: ops_setting(), max_size: 4096 });
        check_run(Run { test, fit, base_seed: seed, seed: seed + 100, count: ops_setting() / 4, max_size: 600_000 });
    }
}

#[test]
fn random_operations_keep_the_heap_sound_first_fit() {
    run_seeds("random_operations_keep_the_heap_sound_first_fit", Fit::First);
}

#[test]
fn random_operations_keep_the_heap_sound_best_fit() {
    run_seeds("random_operations_keep_the_heap_sound_best_fit", Fit::Best);
}

#[test]
fn random_operations_keep_the_heap_sound_worst_fit() {
    run_seeds("random_operations_keep_the_heap_sound_worst_fit", Fit::Worst);
}

/// The shrinker, on a deliberate fault in the model check: "freeing a block of 2000 bytes or
/// more that was resized fails". Of thousands of random operations, three are needed: allocate a
/// block, resize it to exactly 2000 bytes, free it.
#[test]
#[cfg_attr(miri, ignore = "safe code; hundreds of replays are too slow under Miri")]
fn a_failing_sequence_shrinks_to_the_operations_that_matter() {
    let fault: Fault = |size, resized| resized && size >= 2000;
    let setup = Setup { fit: Fit::Best, fault: Some(fault), report: false };
    let count = 3000;
    let ops = generate(7, count, 4096);
    let original = replay(setup, &ops, true).expect_err("the injected fault must fire");
    assert_eq!(original.kind, INJECTED);
    assert!(original.at.unwrap() > 10, "the fault fired too early to show shrinking: {original}");

    let (shrunk, failure, replays) = shrink(setup, ops, original.clone());
    let listing: Vec<String> = shrunk.iter().map(Op::to_string).collect();
    assert_eq!(failure.kind, INJECTED);
    match shrunk[..] {
        [Op::Alloc { slot: a, size: 0, align: 0 }, Op::Realloc { slot: b, size: 2000 }, Op::Free { slot: c }]
            if a == b && b == c => {}
        _ => panic!("not shrunk to alloc, realloc to 2000, free ({replays} replays): {listing:#?}"),
    }
    assert!(replay(setup, &shrunk, true).is_err(), "the shrunk sequence must fail on its own");
    assert!(replay(Setup { fault: None, ..setup }, &shrunk, true).is_ok(), "and only because of the fault");

    let run = Run { test: "t", fit: Fit::Best, base_seed: 7, seed: 7, count, max_size: 4096 };
    let text = report(&run, &original, &shrunk, &failure, replays);
    assert!(text.contains("shrunk to 3 operations"), "{text}");
    assert!(text.contains(&format!("   1: realloc #{} to 2000\n", shrunk[0].slot())), "{text}");
    assert!(text.ends_with(&format!("replay: BINMALLOC_TEST_SEED=7 BINMALLOC_TEST_OPS={} cargo test --release --lib t", ops_setting())), "{text}");
}

/// Operations whose block was removed by shrinking do nothing, so any subsequence replays.
#[test]
fn operations_on_blocks_never_allocated_are_skipped() {
    let setup = Setup { fit: Fit::First, fault: None, report: false };
    let ops = generate(11, if cfg!(miri) { 100 } else { 400 }, 4096);
    let without_allocs: Vec<Op> = ops.iter().copied().filter(|op| !matches!(op, Op::Alloc { .. })).collect();
    assert!(!without_allocs.is_empty());
    replay(setup, &without_allocs, true).unwrap();
    let every_other: Vec<Op> = ops.iter().copied().step_by(2).collect();
    replay(setup, &every_other, true).unwrap();
}

impl Op {
    fn slot(&self) -> usize {
        match *self {
            Op::Alloc { slot, .. } | Op::Free { slot } | Op::Realloc { slot, .. } => slot,
        }
    }
}
