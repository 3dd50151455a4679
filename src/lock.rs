//! A lock that never allocates.
//!
//! Why not `parking_lot`: when contended, `parking_lot_core` allocates its global hash table and
//! creates per-thread data through a `thread_local!` with a destructor, whose registration in glibc
//! calls `calloc` — that is, the exported allocator, from inside the allocator, while a lock is
//! held. `std::sync::Mutex` does not allocate, but it cannot be re-initialised in a `fork` child
//! while another thread's ownership is recorded in it. So binmalloc uses the classic three-state
//! futex mutex (Drepper, "Futexes Are Tricky"): 0 unlocked, 1 locked, 2 locked with waiters,
//! built on `rustix` futex calls that are plain system calls.

use core::sync::atomic::{AtomicU32, Ordering};
use rustix::thread::futex;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;
/// Critical sections are a few hundred instructions: spin briefly before sleeping.
const SPINS_BEFORE_SLEEP: u32 = 100;

pub struct RawLock {
    state: AtomicU32,
}

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawLock {
    pub const fn new() -> RawLock {
        RawLock { state: AtomicU32::new(UNLOCKED) }
    }

    #[inline(always)]
    pub fn try_lock(&self) -> bool {
        self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    #[inline(always)]
    pub fn lock(&self) {
        if !self.try_lock() {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..SPINS_BEFORE_SLEEP {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == UNLOCKED && self.try_lock() {
                return;
            }
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            // EINTR and EAGAIN both just mean "look again".
            let _ = futex::wait(&self.state, futex::Flags::PRIVATE, CONTENDED, None);
        }
    }

    #[inline(always)]
    pub fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            let _ = futex::wake(&self.state, futex::Flags::PRIVATE, 1);
        }
    }

    /// In a `fork` child, where the parent's prepare handler held this lock on behalf of a
    /// thread that no longer exists: make it free again.
    pub fn reset_in_child(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }
}
