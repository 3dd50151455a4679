//! Blocks handed back to their arena by other threads, without taking the arena's lock.
//!
//! A thread that frees blocks of another arena holds them in a small batch (`thread_cache`) and
//! pushes the batch here as one linked run, with one compare-and-swap. The next thread that
//! refills its cache from the arena takes the whole stack with one swap and puts the blocks
//! straight into its lists: a block freed by a consumer thread goes back to a producer as it
//! is, without being merged into the heap and split out of it again.
//!
//! The blocks stay marked in use (to the heap they are allocated, like cached blocks) and are
//! linked through their first payload word. Taking everything at once means a pop never races
//! a push for the same node, so the stack has no ABA problem.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

pub struct HandedBack {
    /// The first block of the stack (null when empty); the last block's link is null.
    head: AtomicPtr<u8>,
    /// Bytes of blocks on the stack, roughly (updated just after each push and take).
    bytes: AtomicUsize,
}

impl HandedBack {
    pub const fn new() -> HandedBack {
        HandedBack { head: AtomicPtr::new(null_mut()), bytes: AtomicUsize::new(0) }
    }

    /// Pushes the run `first ..= last` of `bytes` bytes, linked through each block's first
    /// word (the link of `last` is overwritten). Returns the bytes now waiting, roughly.
    ///
    /// # Safety
    /// Every block of the run is an in-use block the caller gives up, whose first word is the
    /// caller's to write.
    pub unsafe fn push_run(&self, first: *mut u8, last: *mut u8, bytes: usize) -> usize {
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

    /// Whether the stack looks empty (a racing push may just have made it not).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tell_race_checkers();
        self.head.load(Ordering::Relaxed).is_null()
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

    /// The two words are only ever accessed atomically; the blocks they lead to are handed
    /// over with happens-before edges instead.
    fn tell_race_checkers(&self) {
        crate::valgrind::atomic_only_object(self);
    }
}
