//! Arenas: heaps behind locks. Each thread is handed an arena on its first allocation (round
//! robin) and moves to another when its own is contended, so threads rarely queue on one lock.
//! A block is always freed into the arena that owns its region, whichever thread frees it.
//!
//! Also here: lazy start-up on the first call, the `fork` handlers, and the exit report.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::bins::Fit;
use crate::config::{self, StatsMode, MAX_ARENAS};
use crate::handed_back::HandedBack;
use crate::heap::Heap;
use crate::lock::RawLock;
use crate::thread_cache;

pub struct Arena {
    lock: RawLock,
    heap: UnsafeCell<Heap>,
    /// Threads whose home this arena is (process arenas only).
    residents: AtomicU32,
    /// The thread (`thread_cache::thread_id`) that last allocated here through
    /// `lock_local_arena`.
    last_allocator: AtomicUsize,
    /// Blocks of this arena freed by other threads, waiting for the next refill from it.
    handed_back: HandedBack,
}

// SAFETY: the heap is only reached through `ArenaGuard`, which holds the lock.
unsafe impl Sync for Arena {}

impl Default for Arena {
    fn default() -> Self {
        Self::new(config::DEFAULT_FIT)
    }
}

impl Arena {
    pub const fn new(fit: Fit) -> Arena {
        Arena {
            lock: RawLock::new(),
            heap: UnsafeCell::new(Heap::new(fit)),
            residents: AtomicU32::new(0),
            last_allocator: AtomicUsize::new(0),
            handed_back: HandedBack::new(),
        }
    }

    /// Makes the heap's regions point back at this arena. The arena must not move afterwards.
    pub fn bind(&self) {
        let guard = self.lock();
        // SAFETY: the guard gives exclusive access; `self` is at its final address.
        unsafe { (*self.heap.get()).owner = self as *const Arena };
        drop(guard);
    }

    #[inline(always)]
    pub fn lock(&self) -> ArenaGuard<'_> {
        self.lock.lock();
        ArenaGuard { arena: self }
    }

    /// Releases the lock without a guard: only for a heap operation that ends in `abort()`.
    ///
    /// # Safety
    /// The caller holds the lock and will not touch the heap again.
    pub unsafe fn force_unlock(&self) {
        self.lock.unlock();
    }

    /// Hands `blocks` (`bytes` bytes, at most `handed_back::BATCH_MAX` of this arena's blocks)
    /// back to it without its lock. When much is waiting on the stack and the lock is free, the
    /// waiting blocks go into the heap at once, so that blocks freed into an arena nobody
    /// allocates from any more are not stranded.
    ///
    /// # Safety
    /// As for [`HandedBack::push`]; every block belongs to this arena.
    pub unsafe fn hand_back(&self, blocks: &[*mut u8], bytes: usize) {
        // SAFETY: forwarded from the caller.
        let waiting = unsafe { self.handed_back.push(blocks, bytes) };
        if waiting >= HANDED_BACK_DRAIN_BYTES {
            if let Some(mut guard) = self.try_lock() {
                thread_cache::drain_handed_back(&mut guard);
            }
        }
    }

    #[inline(always)]
    pub fn try_lock(&self) -> Option<ArenaGuard<'_>> {
        // Not `then_some`: that would build (and drop, unlocking) a guard when the lock is busy.
        if self.lock.try_lock() {
            Some(ArenaGuard { arena: self })
        } else {
            None
        }
    }
}

/// Bytes waiting on an arena's hand-back stack beyond which the thread that pushes more frees
/// them all into the heap (if the arena's lock is free).
const HANDED_BACK_DRAIN_BYTES: usize = 1 << 20;

/// Exclusive access to an arena's heap for as long as it lives.
pub struct ArenaGuard<'a> {
    arena: &'a Arena,
}

impl<'a> ArenaGuard<'a> {
    /// The arena's hand-back stack and batch slots (taking from them is reserved to lock
    /// holders). Borrowed from the arena, not the guard, so the heap stays usable meanwhile.
    #[inline(always)]
    pub fn handed_back(&self) -> &'a HandedBack {
        &self.arena.handed_back
    }

    /// The locked arena.
    #[inline(always)]
    pub fn arena(&self) -> *const Arena {
        self.arena
    }
}

impl Deref for ArenaGuard<'_> {
    type Target = Heap;
    #[inline(always)]
    fn deref(&self) -> &Heap {
        // SAFETY: the guard holds the arena's lock.
        unsafe { &*self.arena.heap.get() }
    }
}

impl DerefMut for ArenaGuard<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Heap {
        // SAFETY: the guard holds the arena's lock.
        unsafe { &mut *self.arena.heap.get() }
    }
}

impl Drop for ArenaGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.publish_in_use();
        self.arena.lock.unlock();
    }
}

static ARENAS: [Arena; MAX_ARENAS] = [const { Arena::new(config::DEFAULT_FIT) }; MAX_ARENAS];
static ARENA_COUNT: AtomicUsize = AtomicUsize::new(1);

/// Locks the calling thread's arena (its home). A thread that finds its home busy waits for it
/// if it was the last to allocate there — the holder is then a thread returning blocks, which a
/// move would not escape (blocks go back to their region's arena) — and otherwise moves to the
/// arena with the fewest resident threads.
#[inline(always)]
pub fn lock_local_arena() -> ArenaGuard<'static> {
    let home = thread_cache::home();
    if !home.is_null() {
        // SAFETY: a home is always one of the static process arenas.
        let home = unsafe { &*home };
        if let Some(guard) = home.try_lock() {
            note_allocator(home);
            return guard;
        }
    }
    lock_local_arena_slow(home)
}

#[inline(always)]
fn note_allocator(arena: &Arena) {
    let me = thread_cache::thread_id();
    if arena.last_allocator.load(Ordering::Relaxed) != me {
        arena.last_allocator.store(me, Ordering::Relaxed);
    }
}

#[cold]
fn lock_local_arena_slow(home: *const Arena) -> ArenaGuard<'static> {
    // SAFETY: as in `lock_local_arena`.
    if let Some(home) = unsafe { home.as_ref() } {
        if home.last_allocator.load(Ordering::Relaxed) == thread_cache::thread_id() {
            return home.lock();
        }
    }
    let count = ARENA_COUNT.load(Ordering::Relaxed);
    let crowding = |arena: &Arena| {
        let residents = arena.residents.load(Ordering::Relaxed);
        // Leaving home makes it one resident emptier.
        if core::ptr::eq(arena, home) { residents.saturating_sub(1) } else { residents }
    };
    let best: &'static Arena = ARENAS[..count].iter().min_by_key(|a| crowding(a)).unwrap_or(&ARENAS[0]);
    if !core::ptr::eq(best, home) {
        // SAFETY: as in `lock_local_arena`.
        if let Some(home) = unsafe { home.as_ref() } {
            home.residents.fetch_sub(1, Ordering::Relaxed);
        }
        // A thread past its exit destructor allocates without settling anywhere.
        if !thread_cache::is_exiting() {
            best.residents.fetch_add(1, Ordering::Relaxed);
            thread_cache::set_home(best);
        }
    }
    let guard = best.lock();
    note_allocator(best);
    guard
}

/// Counts the calling thread, which has no arena yet, as a resident of `arena` if no process
/// arena has fewer residents; false (nothing counted) otherwise or if `arena` is null.
pub fn settle_if_uncrowded(arena: *const Arena) -> bool {
    // SAFETY: a non-null parked arena is one of the static process arenas.
    let Some(arena) = (unsafe { arena.as_ref() }) else {
        return false;
    };
    let residents = arena.residents.load(Ordering::Relaxed);
    let count = ARENA_COUNT.load(Ordering::Relaxed);
    if ARENAS[..count].iter().any(|a| a.residents.load(Ordering::Relaxed) < residents) {
        return false;
    }
    arena.residents.fetch_add(1, Ordering::Relaxed);
    true
}

/// The calling thread is exiting: it no longer counts as a resident of its arena.
pub fn leave_home() {
    let home = thread_cache::set_home(core::ptr::null());
    // SAFETY: as in `lock_local_arena`.
    if let Some(home) = unsafe { home.as_ref() } {
        home.residents.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether `arena` is one of the process arenas (rather than a first-class heap's).
#[inline(always)]
pub fn is_process_arena(arena: *const Arena) -> bool {
    let first = ARENAS.as_ptr();
    arena >= first && arena < first.wrapping_add(MAX_ARENAS)
}

/// The number of every arena that is not a process arena (a first-class heap's).
pub const OTHER_ARENA_NUMBER: usize = MAX_ARENAS + 1;

/// An arena's number, which the region map records next to each region: a process arena's
/// index plus one (1..=MAX_ARENAS), [`OTHER_ARENA_NUMBER`] for any other arena. Never 0.
pub fn number_of(arena: *const Arena) -> usize {
    if !is_process_arena(arena) {
        return OTHER_ARENA_NUMBER;
    }
    (arena as usize - ARENAS.as_ptr() as usize) / core::mem::size_of::<Arena>() + 1
}

/// Frees every block handed back (on the stacks and in the batch slots) into the heaps: of every
/// arena, or only of those whose lock is free right now. Arenas with nothing waiting are not
/// locked (this runs at every purge check).
pub fn drain_all_handed_back(idle_only: bool) {
    for arena in &ARENAS[..ARENA_COUNT.load(Ordering::Relaxed)] {
        if arena.handed_back.is_all_empty() {
            continue;
        }
        let guard = if idle_only { arena.try_lock() } else { Some(arena.lock()) };
        if let Some(mut guard) = guard {
            thread_cache::drain_handed_back(&mut guard);
        }
    }
}

/// Calls `f` on every arena's heap in turn, each under its lock.
pub fn for_each_arena(mut f: impl FnMut(&mut Heap)) {
    for arena in &ARENAS[..ARENA_COUNT.load(Ordering::Relaxed)] {
        f(&mut arena.lock());
    }
}

/// Calls `f` on every arena whose lock is free right now; false if some arena was busy.
pub fn for_each_idle_arena(mut f: impl FnMut(&mut Heap)) -> bool {
    let mut all = true;
    for arena in &ARENAS[..ARENA_COUNT.load(Ordering::Relaxed)] {
        match arena.try_lock() {
            Some(mut heap) => f(&mut heap),
            None => all = false,
        }
    }
    all
}

/// Tries every arena's free blocks without mapping more memory (for when the OS refuses).
pub fn alloc_from_any_arena(need: usize) -> *mut u8 {
    for arena in &ARENAS[..ARENA_COUNT.load(Ordering::Relaxed)] {
        let p = arena.lock().alloc_without_growing(need);
        if !p.is_null() {
            return p;
        }
    }
    core::ptr::null_mut()
}

const UNINITIALISED: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINITIALISED);
/// Where the exit report goes: a duplicate of stderr taken at start-up.
static REPORT_FD: AtomicI32 = AtomicI32::new(2);

/// Makes sure start-up has run; cheap once it has.
#[inline(always)]
pub fn ensure_init() {
    if STATE.load(Ordering::Acquire) != READY {
        init_slow();
    }
}

#[cold]
fn init_slow() {
    if STATE.compare_exchange(UNINITIALISED, INITIALISING, Ordering::Acquire, Ordering::Acquire).is_err() {
        while STATE.load(Ordering::Acquire) != READY {
            core::hint::spin_loop();
        }
        return;
    }
    // SAFETY: only this thread runs start-up, and nothing reads the configuration before READY.
    unsafe { config::load() };
    let random = random_word();
    crate::block::set_tag_secret(random);
    crate::thread_cache::set_keys(random.rotate_left(29) ^ 0x6a09_e667_f3bc_c908);
    let config = config::get();
    // Only the arenas in use are touched: the rest stay untouched zero pages.
    for arena in &ARENAS[..config.arenas] {
        arena.lock().set_fit(config.fit);
        arena.bind();
    }
    ARENA_COUNT.store(config.arenas, Ordering::Relaxed);
    if config.stats != StatsMode::Off {
        // Programs such as coreutils close stderr in an exit handler, before the report runs.
        // SAFETY: fcntl on fd 2 allocates nothing; a failure leaves the report on fd 2.
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
        if fd >= 0 {
            REPORT_FD.store(fd, Ordering::Relaxed);
        }
    }
    STATE.store(READY, Ordering::Release);
    // After READY: registering may itself allocate, which is now fine.
    crate::thread_cache::init();
    // SAFETY: the handlers are plain functions that only touch binmalloc's locks.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child)) };
    if config.verbose {
        config::print(2);
    }
}

/// Sixteen random bytes the kernel gives every process (AT_RANDOM), folded to a word.
fn random_word() -> usize {
    // SAFETY: getauxval does not allocate; AT_RANDOM, when present, points at 16 readable bytes.
    unsafe {
        let p = libc::getauxval(libc::AT_RANDOM) as *const usize;
        if p.is_null() {
            return &STATE as *const _ as usize;
        }
        p.read_unaligned() ^ p.add(1).read_unaligned().rotate_left(17)
    }
}

extern "C" fn before_fork() {
    for arena in &ARENAS[..ARENA_COUNT.load(Ordering::Relaxed)] {
        arena.lock.lock();
    }
    crate::large::lock_for_fork();
}

extern "C" fn after_fork_in_parent() {
    crate::large::unlock_after_fork_in_parent();
    for arena in &ARENAS[..ARENA_COUNT.load(Ordering::Relaxed)] {
        arena.lock.unlock();
    }
}

extern "C" fn after_fork_in_child() {
    crate::large::reset_after_fork_in_child();
    crate::orphans::reset_in_child();
    for arena in &ARENAS[..ARENA_COUNT.load(Ordering::Relaxed)] {
        arena.lock.reset_in_child();
        arena.handed_back.reset_in_child();
        arena.residents.store(0, Ordering::Relaxed);
    }
    // The only thread left is this one.
    let home = thread_cache::home();
    // SAFETY: as in `lock_local_arena`.
    if let Some(home) = unsafe { home.as_ref() } {
        home.residents.store(1, Ordering::Relaxed);
    }
}

/// Runs when the process exits (or the library is unloaded): the `BINMALLOC_STATS` report.
#[cfg_attr(any(test, not(feature = "c-abi")), allow(dead_code))]
extern "C" fn at_exit() {
    if STATE.load(Ordering::Acquire) != READY {
        return;
    }
    let fd = REPORT_FD.load(Ordering::Relaxed);
    match config::get().stats {
        StatsMode::Off => {}
        StatsMode::Text => crate::stats::print_text(fd),
        StatsMode::Json => crate::stats::print_json(fd),
    }
    crate::dump::dump_to_configured_path();
}

#[cfg(all(feature = "c-abi", not(test)))]
#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;
