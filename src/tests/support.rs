//! Helpers shared by the tests: a seeded generator and a private, checked heap.

use crate::arena::Arena;
use crate::bins::Fit;
use crate::check::{check_heap, Findings};

/// xorshift64*: small, fast, and reproducible from a printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A size spread over several orders of magnitude, biased small as real programs are.
    pub fn size(&mut self, max: usize) -> usize {
        let bits = self.below(max.ilog2() as u64 + 1);
        (self.next() as usize & ((1usize << bits) - 1)).min(max)
    }
}

/// A heap in its own arena, leaked so its address (which regions point at) never changes.
/// The process is initialised first: start-up draws the secret that header tags are keyed by,
/// and a test that started the process arenas while another test's heap held blocks would
/// leave that heap's headers failing their checks (with many tests at once, every run). Miri
/// cannot run start-up (it reads the auxiliary vector), and its tests use no process arena.
pub fn test_arena(fit: Fit) -> &'static Arena {
    #[cfg(not(miri))]
    crate::arena::ensure_init();
    let arena: &'static Arena = Box::leak(Box::new(Arena::new(fit)));
    arena.bind();
    arena
}

/// Runs the checker on `arena` and panics with the count if anything is wrong.
pub fn assert_sound(arena: &Arena, context: &str) {
    let heap = arena.lock();
    let mut findings = Findings::new(true);
    check_heap(&heap, &mut findings);
    assert_eq!(findings.errors, 0, "heap check failed: {context}");
}

/// The byte stored at offset `i` of a block tagged `tag`.
pub fn pattern(tag: u64, i: usize) -> u8 {
    (tag as usize).wrapping_mul(31).wrapping_add(i.wrapping_mul(7)) as u8
}

/// Held by tests whose threads use the process arenas (through `allocate`): their threads park
/// and adopt caches, hand blocks back and count as arena residents, which a test of that
/// machinery must see alone.
pub fn process_arenas_lock() -> ProcessArenasGuard {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    leave_process_arenas_idle();
    ProcessArenasGuard(guard)
}

/// The lock of [`process_arenas_lock`]. The test harness runs each test on a thread of its own
/// that exits after the test has returned, so outside the lock: whatever that thread still held
/// (a cache to park, blocks to hand back, a place among an arena's residents) would reach the
/// next test's threads, which would then adopt a cache they did not fill (a fresh thread's list
/// is not empty) or settle in another arena. Before it unlocks, the guard takes all of it back;
/// taking the lock does the same, for whatever code that runs without it left behind.
pub struct ProcessArenasGuard(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Drop for ProcessArenasGuard {
    fn drop(&mut self) {
        leave_process_arenas_idle(); // runs before the field, so with the lock still held
    }
}

/// Frees every held block into its heap (see `flush_all_held`) and takes the calling thread off
/// its arena's residents.
fn leave_process_arenas_idle() {
    crate::thread_cache::flush_all_held();
    crate::arena::leave_home();
}
