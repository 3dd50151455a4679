//! Caches left by exited threads, kept for the next threads to adopt.
//!
//! A program that creates short-lived threads would otherwise pay twice per thread: filling a
//! fresh cache from the arenas under their locks, and at exit freeing every cached block back.
//! Instead an exiting thread parks its lists in a free slot here (a copy of a few hundred
//! words, no lock), and a thread that starts using its cache takes a parked set whole. Only
//! [`SLOTS`] sets are parked, so the memory held is bounded; when all slots are full the exiting
//! thread frees its blocks as before. `malloc_trim` empties the slots.
//!
//! Each slot has a state word: `EMPTY` → `BUSY` (claimed by one thread, which copies) → `FULL`
//! → `BUSY` (claimed by an adopter) → `EMPTY`. The claim is a compare-and-swap, so at most one
//! thread touches a slot's lists at a time.

use core::cell::UnsafeCell;
use core::ptr::null;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::arena::Arena;
use crate::thread_cache::Lists;

/// Parked caches: enough for threads that come and go a few at a time, few enough that the
/// blocks they hold stay a small share of a small program's memory. Thread-churn benchmark
/// (4 threads at a time, 11 interleaved runs): 4 slots 0.82 s, peak RSS 4.1 MiB; 2 slots
/// 0.83 s, 3.8 MiB (1 slot, 9 runs: 1.27 times the time of 4, 3.6 MiB).
const SLOTS: usize = 2;

const EMPTY: u8 = 0;
const BUSY: u8 = 1;
const FULL: u8 = 2;

struct Slot {
    state: AtomicU8,
    lists: UnsafeCell<Lists>,
    /// The arena the parking thread lived in, where (almost all) the parked blocks belong.
    arena: UnsafeCell<*const Arena>,
}

// SAFETY: `lists` and `arena` are only read or written by the one thread that moved `state` to
// BUSY.
unsafe impl Sync for Slot {}

#[allow(clippy::declare_interior_mutable_const)]
const UNUSED_SLOT: Slot =
    Slot { state: AtomicU8::new(EMPTY), lists: UnsafeCell::new(Lists::EMPTY), arena: UnsafeCell::new(null()) };

static PARKED: [Slot; SLOTS] = [UNUSED_SLOT; SLOTS];

/// Claims `slot` in state `from`; whatever the previous claimant did is visible afterwards
/// (told to valgrind's race detectors too, which do not model the atomics).
fn claim(slot: &Slot, from: u8) -> bool {
    let claimed = slot.state.compare_exchange(from, BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok();
    if claimed {
        crate::valgrind::happens_after(slot_tag(slot));
    }
    claimed
}

/// Releases a claimed `slot` in state `to`.
fn release(slot: &Slot, to: u8) {
    crate::valgrind::happens_before(slot_tag(slot));
    slot.state.store(to, Ordering::Release);
}

fn slot_tag(slot: &Slot) -> *const u8 {
    (slot as *const Slot).cast()
}

/// The slots' state words are only ever accessed atomically: valgrind's race detectors, which
/// do not model atomics, are told to leave them alone (the lists they guard stay checked).
fn untrack_states() {
    for slot in &PARKED {
        crate::valgrind::atomic_only_object(&slot.state);
    }
}

/// Parks `lists` (moving its blocks out of it), left by a thread that lived in `arena`; false if
/// every slot is taken. Empty lists are not parked (true: nothing is left to free).
pub fn park(lists: &mut Lists, arena: *const Arena) -> bool {
    if lists.is_empty() {
        return true;
    }
    untrack_states();
    for slot in &PARKED {
        if slot.state.load(Ordering::Relaxed) == EMPTY && claim(slot, EMPTY) {
            // SAFETY: this thread claimed the slot (state BUSY), so nobody else touches it.
            unsafe {
                core::mem::swap(&mut *slot.lists.get(), lists);
                *slot.arena.get() = arena;
            }
            release(slot, FULL);
            return true;
        }
    }
    false
}

/// Moves a parked set of lists into `lists`, which must be empty, and returns the arena its
/// parker lived in; `None` if nothing is parked.
pub fn adopt(lists: &mut Lists) -> Option<*const Arena> {
    debug_assert!(lists.is_empty());
    untrack_states();
    for slot in &PARKED {
        if slot.state.load(Ordering::Relaxed) == FULL && claim(slot, FULL) {
            // SAFETY: claimed as in `park`.
            let arena = unsafe {
                core::mem::swap(&mut *slot.lists.get(), lists);
                *slot.arena.get()
            };
            release(slot, EMPTY);
            return Some(arena);
        }
    }
    None
}

/// In a `fork` child: a slot some other thread was copying when the parent forked will never
/// be released by it. Such a slot is emptied (its blocks are lost to the child, not corrupted).
pub fn reset_in_child() {
    for slot in &PARKED {
        if slot.state.load(Ordering::Relaxed) == BUSY {
            // SAFETY: the thread that claimed the slot does not exist in the child.
            unsafe { *slot.lists.get() = Lists::EMPTY };
            slot.state.store(EMPTY, Ordering::Relaxed);
        }
    }
}
