//! Blocks handed back to their arena by other threads, without taking the arena's lock.
//!
//! A thread that frees blocks of another arena holds them in a small batch (`thread_cache`) and
//! hands the batch over in one of two ways. Usually it copies the block addresses into a free
//! batch slot: the thread that next refills its cache from the arena reads the addresses from
//! one array and fetches the blocks in parallel. When every slot is taken (or the batch holds
//! many bytes), it links the blocks through their first payload words and pushes them onto a
//! stack with one compare-and-swap; a taker must then follow the links one block at a time,
//! each a cache miss on memory another core wrote last. Either way the blocks go back to a
//! producer as they are, without being merged into the heap and split out of it again.
//!
//! The blocks stay marked in use (to the heap they are allocated, like cached blocks). Only
//! lock holders take, so a slot's contents or the stack's nodes never change under a lock holder
//! searching them; taking the whole stack at once means a pop never races a push for the same
//! node, so the stack has no ABA problem.

use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

/// Blocks a batch slot holds: a thread's whole batch of remote frees.
pub const BATCH_MAX: usize = 32;
/// Batch slots per arena.
pub const BATCH_SLOTS: usize = 32;
/// A batch of more bytes than this goes on the stack, whose waiting bytes are bounded (the
/// arena drains it): full slots then hold at most 1 MiB that no refill may come to take.
const BATCH_BYTES_MAX: usize = 32 << 10;

/// A slot's states: `EMPTY` → `BUSY` (claimed by a pusher, which copies) → `FULL` → `BUSY`
/// (claimed by a lock holder, which copies out) → `EMPTY`.
const EMPTY: u8 = 0;
const BUSY: u8 = 1;
const FULL: u8 = 2;

struct Batch {
    len: usize,
    blocks: [*mut u8; BATCH_MAX],
}

pub struct HandedBack {
    /// The first block of the stack (null when empty); the last block's link is null.
    head: AtomicPtr<u8>,
    /// Bytes of blocks on the stack, roughly (updated just after each push and take).
    bytes: AtomicUsize,
    /// Each slot's state, together so that a scan reads one cache line.
    slot_states: [AtomicU8; BATCH_SLOTS],
    /// Each slot's batch: written only by the thread that moved its state to `BUSY`.
    slots: [UnsafeCell<Batch>; BATCH_SLOTS],
}

// SAFETY: a slot's batch is only read or written by the one thread that moved its state to
// `BUSY`; the stack's words are atomics.
unsafe impl Sync for HandedBack {}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_STATE: AtomicU8 = AtomicU8::new(EMPTY);
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: UnsafeCell<Batch> = UnsafeCell::new(Batch { len: 0, blocks: [null_mut(); BATCH_MAX] });

impl HandedBack {
    pub const fn new() -> HandedBack {
        HandedBack {
            head: AtomicPtr::new(null_mut()),
            bytes: AtomicUsize::new(0),
            slot_states: [EMPTY_STATE; BATCH_SLOTS],
            slots: [EMPTY_SLOT; BATCH_SLOTS],
        }
    }

    /// Hands back `blocks` (`bytes` bytes in all, at most [`BATCH_MAX`] blocks): into a free
    /// batch slot if there is one and the batch is small enough, else onto the stack. Returns
    /// the bytes now waiting on the stack, roughly (0 when the batch took a slot).
    ///
    /// # Safety
    /// Every block is an in-use block the caller gives up, whose first word is the caller's to
    /// write; none is given twice.
    pub unsafe fn push(&self, blocks: &[*mut u8], bytes: usize) -> usize {
        debug_assert!(!blocks.is_empty() && blocks.len() <= BATCH_MAX);
        if bytes <= BATCH_BYTES_MAX && self.push_batch(blocks) {
            return 0;
        }
        for pair in blocks.windows(2) {
            // SAFETY: forwarded from the caller.
            unsafe { pair[0].cast::<*mut u8>().write(pair[1]) };
        }
        // SAFETY: as above; the blocks are now linked first to last.
        unsafe { self.push_run(blocks[0], blocks[blocks.len() - 1], bytes) }
    }

    /// Copies `blocks` into a free slot; false if every slot is taken.
    fn push_batch(&self, blocks: &[*mut u8]) -> bool {
        self.tell_race_checkers();
        for (state, slot) in self.slot_states.iter().zip(&self.slots) {
            if state.load(Ordering::Relaxed) != EMPTY
                || state.compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed).is_err()
            {
                continue;
            }
            // SAFETY: this thread moved the slot to BUSY: its batch is ours until we set FULL.
            let batch = unsafe { &mut *slot.get() };
            batch.blocks[..blocks.len()].copy_from_slice(blocks);
            batch.len = blocks.len();
            crate::valgrind::happens_before(slot.get().cast());
            state.store(FULL, Ordering::Release);
            return true;
        }
        false
    }

    /// Takes every full batch slot's blocks, calling `f` on each batch. Reserved to holders of
    /// the arena's lock.
    pub fn take_batches(&self, mut f: impl FnMut(&[*mut u8])) {
        self.tell_race_checkers();
        let mut taken = [null_mut(); BATCH_MAX];
        for (state, slot) in self.slot_states.iter().zip(&self.slots) {
            if state.load(Ordering::Relaxed) != FULL
                || state.compare_exchange(FULL, BUSY, Ordering::Acquire, Ordering::Relaxed).is_err()
            {
                continue;
            }
            crate::valgrind::happens_after(slot.get().cast());
            // SAFETY: this thread moved the slot from FULL to BUSY: its batch is ours until we
            // set EMPTY, and its pusher's writes are visible (acquire).
            let batch = unsafe { &*slot.get() };
            let n = batch.len;
            taken[..n].copy_from_slice(&batch.blocks[..n]);
            state.store(EMPTY, Ordering::Release);
            f(&taken[..n]);
        }
    }

    /// Whether `p` waits in a batch slot. Reserved to holders of the arena's lock: no full slot
    /// changes under them (pushers only fill empty slots).
    pub fn batches_contain(&self, p: *mut u8) -> bool {
        self.tell_race_checkers();
        self.slot_states.iter().zip(&self.slots).any(|(state, slot)| {
            if state.load(Ordering::Acquire) != FULL {
                return false;
            }
            crate::valgrind::happens_after(slot.get().cast());
            // SAFETY: a FULL slot is only emptied by a lock holder, and the caller holds the lock.
            let batch = unsafe { &*slot.get() };
            batch.blocks[..batch.len].contains(&p)
        })
    }

    /// Pushes the run `first ..= last` of `bytes` bytes, linked through each block's first
    /// word (the link of `last` is overwritten). Returns the bytes now waiting, roughly.
    ///
    /// # Safety
    /// Every block of the run is an in-use block the caller gives up, whose first word is the
    /// caller's to write.
    unsafe fn push_run(&self, first: *mut u8, last: *mut u8, bytes: usize) -> usize {
        self.tell_race_checkers();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: forwarded from the caller.
            unsafe { last.cast::<*mut u8>().write(head) };
            // After the last write to the run: everything up to here is visible to the taker.
            crate::valgrind::happens_before(self.tag());
            match self.head.compare_exchange_weak(head, first, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    /// In a `fork` child: a slot another thread was filling when the parent forked will never
    /// be released by it (takers hold the arena's lock, which the fork handlers hold too, so no
    /// slot is being emptied). Such a slot is emptied: its blocks are lost to the child, not
    /// corrupted.
    pub fn reset_in_child(&self) {
        for (state, slot) in self.slot_states.iter().zip(&self.slots) {
            if state.load(Ordering::Relaxed) == BUSY {
                // SAFETY: the thread that claimed the slot does not exist in the child.
                unsafe { (*slot.get()).len = 0 };
                state.store(EMPTY, Ordering::Relaxed);
            }
        }
    }

    /// Claims an empty slot and leaves it so, as a pusher does while it copies.
    #[cfg(test)]
    pub(crate) fn claim_empty_slot(&self) -> bool {
        let claim = |state: &AtomicU8| state.compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed);
        self.slot_states.iter().any(|state| claim(state).is_ok())
    }

    /// Whether the stack looks empty (a racing push may just have made it not).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tell_race_checkers();
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Whether nothing seems to wait, on the stack or in a slot.
    pub fn is_all_empty(&self) -> bool {
        self.is_empty() && self.slot_states.iter().all(|state| state.load(Ordering::Relaxed) == EMPTY)
    }

    /// Takes every block on the stack: the first of a null-terminated chain, or null. The
    /// caller reports the bytes it took with [`HandedBack::note_taken`].
    #[inline]
    pub fn take_all(&self) -> *mut u8 {
        if self.is_empty() {
            return null_mut();
        }
        let first = self.head.swap(null_mut(), Ordering::Acquire);
        crate::valgrind::happens_after(self.tag());
        first
    }

    /// The first block of the stack, for a search by the lock holder (blocks leave the stack
    /// only through [`HandedBack::take_all`], which is reserved to lock holders).
    pub fn first(&self) -> *mut u8 {
        self.tell_race_checkers();
        let first = self.head.load(Ordering::Acquire);
        crate::valgrind::happens_after(self.tag());
        first
    }

    pub fn note_taken(&self, bytes: usize) {
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn tag(&self) -> *const u8 {
        (self as *const HandedBack).cast()
    }

    /// The stack's two words and the slot states are only ever accessed atomically; the
    /// blocks and batches they lead to are handed over with happens-before edges instead.
    fn tell_race_checkers(&self) {
        crate::valgrind::atomic_only_object(&self.head);
        crate::valgrind::atomic_only_object(&self.bytes);
        crate::valgrind::atomic_only_object(&self.slot_states);
    }
}
