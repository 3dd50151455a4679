//! A lock that never allocates.
//!
//! Why not `parking_lot`: when contended, `parking_lot_core` allocates its global hash table and
//! creates per-thread data through a `thread_local!` with a destructor, whose registration in glibc
//! calls `calloc` — that is, the exported allocator, from inside the allocator, while a lock is
//! held. `std::sync::Mutex` does not allocate, but it cannot be re-initialised in a `fork` child
//! while another thread's ownership is recorded in it. So binmalloc uses the classic three-state
//! futex mutex (Drepper, "Futexes Are Tricky"): 0 unlocked, 1 locked, 2 locked with waiters,
//! built on `rustix` futex calls that are plain system calls.
//!
//! The algorithm is written once, over a [`FutexWord`]: binmalloc's [`RawLock`] runs it on an
//! `AtomicU32` and the kernel's futex; the loom tests (`src/tests/loom_lock.rs`) run the same code
//! on loom's model-checked atomic and an emulated futex, under every interleaving of a few threads.

use core::sync::atomic::{AtomicU32, Ordering};
use rustix::thread::futex;

use crate::valgrind;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A 32-bit atomic word that threads can sleep on: what the lock algorithm needs.
pub trait FutexWord {
    /// How often `lock` looks at the word before it sleeps.
    const SPINS_BEFORE_SLEEP: u32;
    fn load(&self, order: Ordering) -> u32;
    fn store(&self, value: u32, order: Ordering);
    fn swap(&self, value: u32, order: Ordering) -> u32;
    fn compare_exchange(&self, current: u32, new: u32, success: Ordering, failure: Ordering)
        -> Result<u32, u32>;
    /// Sleeps if the word holds `expected`, until woken; may also return for no reason.
    fn wait(&self, expected: u32);
    /// Wakes one thread sleeping in [`FutexWord::wait`] on this word, if there is one.
    fn wake_one(&self);
    /// Called between looks at the word while spinning.
    fn spin_pause();
}

impl FutexWord for AtomicU32 {
    /// Critical sections are a few hundred instructions: spin briefly before sleeping.
    const SPINS_BEFORE_SLEEP: u32 = 100;

    #[inline(always)]
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    #[inline(always)]
    fn store(&self, value: u32, order: Ordering) {
        AtomicU32::store(self, value, order)
    }
    #[inline(always)]
    fn swap(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::swap(self, value, order)
    }
    #[inline(always)]
    fn compare_exchange(&self, current: u32, new: u32, success: Ordering, failure: Ordering) -> Result<u32, u32> {
        AtomicU32::compare_exchange(self, current, new, success, failure)
    }
    #[inline]
    fn wait(&self, expected: u32) {
        // EINTR and EAGAIN both just mean "look again", which the caller does.
        let _ = futex::wait(self, futex::Flags::PRIVATE, expected, None);
    }
    #[inline]
    fn wake_one(&self) {
        let _ = futex::wake(self, futex::Flags::PRIVATE, 1);
    }
    #[inline(always)]
    fn spin_pause() {
        core::hint::spin_loop();
    }
}

/// The three-state futex mutex over any [`FutexWord`].
pub struct FutexLock<W> {
    state: W,
}

/// binmalloc's lock: the kernel's futex on an `AtomicU32`.
pub type RawLock = FutexLock<AtomicU32>;

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawLock {
    pub const fn new() -> RawLock {
        FutexLock { state: AtomicU32::new(UNLOCKED) }
    }
}

impl<W: FutexWord> FutexLock<W> {
    /// A lock on `word`, which must hold 0 (unlocked).
    pub const fn on_word(word: W) -> FutexLock<W> {
        FutexLock { state: word }
    }

    #[inline(always)]
    pub fn try_lock(&self) -> bool {
        let taken = self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if taken {
            self.acquired();
        }
        taken
    }

    #[inline(always)]
    pub fn lock(&self) {
        if !self.try_lock() {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..W::SPINS_BEFORE_SLEEP {
            W::spin_pause();
            if self.state.load(Ordering::Relaxed) == UNLOCKED && self.try_lock() {
                return;
            }
        }
        // From here on the lock is marked CONTENDED whenever this thread may sleep on it, so the
        // holder's unlock knows to wake someone; a thread that takes it this way leaves it marked
        // CONTENDED (it cannot know whether others still wait), which costs at most one
        // unnecessary wake.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            self.state.wait(CONTENDED);
        }
        self.acquired();
    }

    #[inline(always)]
    pub fn unlock(&self) {
        valgrind::releasing_lock(self.word());
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.state.wake_one();
        }
    }

    /// In a `fork` child, where the parent's prepare handler held this lock on behalf of a
    /// thread that no longer exists: make it free again.
    pub fn reset_in_child(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }

    /// Under valgrind, tells helgrind and drd what the acquire ordering means: everything done
    /// before the last unlock is visible now (they do not model futex locks).
    #[inline(always)]
    fn acquired(&self) {
        valgrind::acquired_lock(self.word(), core::mem::size_of::<W>());
    }

    #[inline(always)]
    fn word(&self) -> *const u8 {
        (&self.state as *const W).cast()
    }
}
