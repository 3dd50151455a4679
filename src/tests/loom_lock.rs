//! The futex lock's algorithm (src/lock.rs) under loom, which runs each test once per possible
//! interleaving of its threads (up to a preemption bound) and fails on a data race in a loom
//! cell, a deadlock, or a panic in any of them. Built only with `--cfg loom`:
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib loom` (scripts/test_loom.sh).
//!
//! The code under test is `FutexLock` itself, run on [`ModelWord`]: loom's atomic for the lock
//! word and an emulated futex. The emulation is exact where it matters: `wait` checks the word
//! and goes to sleep atomically with respect to `wake_one` (both hold `sleepers`), so a wake-up
//! the algorithm fails to send leaves a thread asleep for ever, which loom reports as a deadlock.
//! It wakes no one spuriously, and spinning is cut to one look so the state space stays small.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use crate::lock::{FutexLock, FutexWord};

struct ModelWord {
    word: AtomicU32,
    sleepers: Mutex<()>,
    wakeup: Condvar,
}

impl ModelWord {
    fn new() -> ModelWord {
        ModelWord { word: AtomicU32::new(0), sleepers: Mutex::new(()), wakeup: Condvar::new() }
    }
}

impl FutexWord for ModelWord {
    const SPINS_BEFORE_SLEEP: u32 = 1;

    fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }
    fn store(&self, value: u32, order: Ordering) {
        self.word.store(value, order)
    }
    fn swap(&self, value: u32, order: Ordering) -> u32 {
        self.word.swap(value, order)
    }
    fn compare_exchange(&self, current: u32, new: u32, success: Ordering, failure: Ordering) -> Result<u32, u32> {
        self.word.compare_exchange(current, new, success, failure)
    }
    fn wait(&self, expected: u32) {
        let guard = self.sleepers.lock().unwrap();
        // The kernel reads the word under its own lock; a relaxed load keeps the model from
        // adding orderings the real futex does not promise.
        if self.word.load(Ordering::Relaxed) == expected {
            drop(self.wakeup.wait(guard).unwrap());
        }
    }
    fn wake_one(&self) {
        let _guard = self.sleepers.lock().unwrap();
        self.wakeup.notify_one();
    }
    fn spin_pause() {
        thread::yield_now();
    }
}

/// A lock and the data it protects, in a cell loom watches for unsynchronised access.
struct Guarded {
    lock: FutexLock<ModelWord>,
    count: UnsafeCell<usize>,
}

// SAFETY: `count` is only touched with `lock` held (which is what these tests check).
unsafe impl Sync for Guarded {}
// SAFETY: as above.
unsafe impl Send for Guarded {}

impl Guarded {
    fn new() -> Guarded {
        Guarded { lock: FutexLock::on_word(ModelWord::new()), count: UnsafeCell::new(0) }
    }

    /// A read-modify-write that loses an update, or trips loom, unless the lock excludes.
    fn increment(&self) {
        self.lock.lock();
        // SAFETY: the lock is held.
        let now = self.count.with(|p| unsafe { *p });
        thread::yield_now();
        // SAFETY: the lock is held.
        self.count.with_mut(|p| unsafe { *p = now + 1 });
        self.lock.unlock();
    }

    fn total(&self) -> usize {
        // SAFETY: every other thread has been joined.
        self.count.with(|p| unsafe { *p })
    }
}

/// Runs `f` under loom with at most `bound` preemptions (or `LOOM_MAX_PREEMPTIONS`); returns the
/// number of interleavings explored.
fn explore(bound: usize, f: impl Fn() + Sync + Send + 'static) -> usize {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut model = loom::model::Builder::new();
    if model.preemption_bound.is_none() {
        model.preemption_bound = Some(bound);
    }
    let bound = model.preemption_bound.unwrap_or(bound);
    model.check(move || {
        counter.fetch_add(1, Relaxed);
        f();
    });
    let n = runs.load(Relaxed);
    println!("loom: {n} interleavings explored (preemption bound {bound})");
    n
}

/// `threads` threads each take the lock `rounds` times; every increment must survive.
fn contend(threads: usize, rounds: usize) {
    let shared = Arc::new(Guarded::new());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let shared = shared.clone();
            thread::spawn(move || {
                for _ in 0..rounds {
                    shared.increment();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(shared.total(), threads * rounds, "an increment was lost");
}

#[test]
fn loom_two_threads_exclude_each_other() {
    assert!(explore(3, || contend(2, 2)) > 100);
}

#[test]
fn loom_three_threads_exclude_each_other_and_all_wake() {
    // Three threads are needed for the waking paths that matter: a thread that takes the lock
    // after sleeping must leave it marked contended, or the third sleeper is never woken.
    assert!(explore(2, || contend(3, 1)) > 100);
}

#[test]
fn loom_try_lock_never_enters_a_held_lock() {
    explore(3, || {
        let shared = Arc::new(Guarded::new());
        let other = shared.clone();
        let t = thread::spawn(move || {
            if other.lock.try_lock() {
                // SAFETY: the lock is held.
                other.count.with_mut(|p| unsafe { *p += 1 });
                other.lock.unlock();
            }
        });
        shared.increment();
        t.join().unwrap();
        assert!((1..=2).contains(&shared.total()));
    });
}
