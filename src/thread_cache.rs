//! The per-thread fast path: a bounded cache of free small blocks per exact size class, so the
//! common malloc/free pair takes no lock.
//!
//! A cached block stays marked in use in its header — to the heap it is simply allocated — and
//! carries a singly linked `next` pointer at payload+0 and [`CACHE_KEY`] at payload+8 (as glibc's
//! tcache does), so a second `free` of a cached block is recognised by the key and confirmed by
//! a scan of this thread's list. Lists are bounded; a full list returns half its blocks to their
//! arenas in one pass (one lock per run of blocks from the same arena), an empty one is refilled
//! with a batch under one lock (growing from one block to half a list as the class keeps being
//! refilled). A `pthread_key_create` destructor parks the cache when the thread exits, for the
//! next new thread to adopt (`orphans`), or empties it if no parking slot is free; frees that
//! arrive after that go straight to the arenas.

#[cfg(not(target_arch = "x86_64"))]
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::arena::{lock_local_arena, Arena, ArenaGuard};
use crate::block::{block_of, MIN_BLOCK_SIZE, SIZE_GRANULE, HEADER_SIZE};
use crate::fatal::{self, Misuse};
use crate::orphans;
use crate::region_map;
use crate::size_class::{EXACT_BINS, EXACT_LIMIT};
use crate::tls::thread_static;

#[cfg(test)]
pub(crate) const CLASS_COUNT: usize = CLASSES;

/// Blocks up to [`EXACT_LIMIT`] are cached by exact size (one class per 16 bytes); above it,
/// requests are rounded up to one of [`MEDIUM_CLASSES_PER_DOUBLING`] sizes per power of two (at
/// most 12.5% slack) up to this size.
pub const CACHED_BLOCK_MAX: usize = 128 << 10;
/// Largest request served from the cache.
pub const CACHED_REQUEST_MAX: usize = CACHED_BLOCK_MAX - HEADER_SIZE;
const MEDIUM_CLASSES_PER_DOUBLING: usize = 8;
const EXACT_LIMIT_LOG2: u32 = EXACT_LIMIT.trailing_zeros();
const MEDIUM_CLASSES: usize =
    (CACHED_BLOCK_MAX.trailing_zeros() - EXACT_LIMIT_LOG2) as usize * MEDIUM_CLASSES_PER_DOUBLING;
const CLASSES: usize = EXACT_BINS + MEDIUM_CLASSES;
/// A list is trimmed to half when it holds this many bytes (or [`LIST_COUNT_MAX`] blocks), but
/// it may always hold [`LIST_COUNT_MIN`] blocks of up to [`LIST_FEW_ABOVE`] bytes and one
/// larger block. Four rather than one for 4-32 KiB blocks takes the mixed-size benchmark from
/// 236.5M to 209.5M instructions (500k operations; glibc 270.0M); the same for larger blocks
/// pinned them between free neighbours and raised the big-buffer benchmark's peak RSS from
/// 96 to 116 MiB.
const LIST_BYTES_MAX: usize = 16 << 10;
const LIST_COUNT_MAX: usize = 64;
const LIST_COUNT_MIN: usize = 4;
const LIST_FEW_ABOVE: usize = 32 << 10;

const _: () = assert!(CACHED_BLOCK_MAX.is_power_of_two() && CACHED_BLOCK_MAX > EXACT_LIMIT);
const _: () = assert!(CACHED_BLOCK_MAX < crate::config::DEFAULT_MMAP_THRESHOLD);

/// Block size of each class.
static CLASS_SIZE: [u32; CLASSES] = {
    let mut sizes = [0u32; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        sizes[c] = if c < EXACT_BINS {
            (MIN_BLOCK_SIZE + c * SIZE_GRANULE) as u32
        } else {
            let m = c - EXACT_BINS;
            let base = EXACT_LIMIT << (m / MEDIUM_CLASSES_PER_DOUBLING);
            (base + (m % MEDIUM_CLASSES_PER_DOUBLING + 1) * (base / MEDIUM_CLASSES_PER_DOUBLING)) as u32
        };
        c += 1;
    }
    sizes
};

/// Medium class sizes are multiples of this (the smallest medium step), so which classes
/// bracket a medium size depends only on how many steps it spans: a table lookup instead of a
/// bit scan and a comparison on every medium `malloc` and `free`.
const MEDIUM_STEP: usize = EXACT_LIMIT / MEDIUM_CLASSES_PER_DOUBLING;
/// Entries in the medium tables: one per step count from 0 to [`CACHED_BLOCK_MAX`]'s.
const MEDIUM_TABLE_LEN: usize = CACHED_BLOCK_MAX / MEDIUM_STEP + 1;
const _: () = assert!(CLASSES <= u8::MAX as usize + 1);

/// `MEDIUM_FLOOR[n]`: the largest class whose size is at most `n` steps; `MEDIUM_CEIL[n]`: the
/// smallest class whose size is at least `n` steps. Meaningful above [`EXACT_LIMIT`].
static MEDIUM_FLOOR: [u8; MEDIUM_TABLE_LEN] = medium_class_table(false);
static MEDIUM_CEIL: [u8; MEDIUM_TABLE_LEN] = medium_class_table(true);

const fn medium_class_table(ceil: bool) -> [u8; MEDIUM_TABLE_LEN] {
    let mut table = [0u8; MEDIUM_TABLE_LEN];
    let mut n = 0;
    while n < MEDIUM_TABLE_LEN {
        let size = (n * MEDIUM_STEP) as u32;
        let mut c = 0;
        if ceil {
            while c + 1 < CLASSES && CLASS_SIZE[c] < size {
                c += 1;
            }
        } else {
            while c + 1 < CLASSES && CLASS_SIZE[c + 1] <= size {
                c += 1;
            }
        }
        table[n] = c as u8;
        n += 1;
    }
    table
}

// What makes the medium tables exact: no medium class size falls between two step multiples,
// and the largest class is the largest cached block (so every lookup finds a class).
const _: () = {
    assert!(CLASS_SIZE[CLASSES - 1] as usize == CACHED_BLOCK_MAX);
    let mut c = EXACT_BINS;
    while c < CLASSES {
        assert!(CLASS_SIZE[c] as usize % MEDIUM_STEP == 0);
        c += 1;
    }
};

/// How many blocks each class's list may hold.
static LIST_LIMIT: [u16; CLASSES] = {
    let mut limits = [0u16; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        let size = CLASS_SIZE[c] as usize;
        let at_least = if size > LIST_FEW_ABOVE { 1 } else { LIST_COUNT_MIN };
        let by_bytes = LIST_BYTES_MAX / size;
        limits[c] = if by_bytes > LIST_COUNT_MAX {
            LIST_COUNT_MAX as u16
        } else if by_bytes < at_least {
            at_least as u16
        } else {
            by_bytes as u16
        };
        c += 1;
    }
    limits
};

/// A request whose list is empty takes a cached block at most this fraction (an eighth) larger
/// before a refill cuts fresh memory: a thread whose sizes drift (the same objects, a few bytes
/// longer) reuses what it freed instead of holding both. Thread churn (15000 threads, two sets
/// of 5 interleaved runs): peak RSS 3.9 -> 3.5 and 3.8 -> 3.6 MiB, 0.95-0.98 of the time; the
/// other benchmarks within their noise.
const LARGER_FIT_DIVISOR: usize = 8;
/// How many larger classes a request may look at: two (16 and 32 bytes more) for small sizes
/// of 256 bytes and more, one for medium sizes, none below 128 bytes. Blocks above
/// [`LIST_FEW_ABOVE`] are not taken: one such block serving a smaller request stays in use
/// between free neighbours (big buffers: peak RSS 93.8 -> 100.8 MiB when they were).
const LARGER_FIT_CLASSES_MAX: usize = 2;

/// For each class, how many classes above it hold blocks an eighth larger at most.
static LARGER_FITS: [u8; CLASSES] = {
    let mut fits = [0u8; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        let mut n = 0;
        while n < LARGER_FIT_CLASSES_MAX
            && c + n + 1 < CLASSES
            && CLASS_SIZE[c + n + 1] - CLASS_SIZE[c] <= CLASS_SIZE[c] / LARGER_FIT_DIVISOR as u32
            && CLASS_SIZE[c + n + 1] as usize <= LIST_FEW_ABOVE
        {
            n += 1;
        }
        fits[c] = n as u8;
        c += 1;
    }
    fits
};

/// A thread's cache starts zero-filled, which reads as this state.
#[allow(dead_code)]
const NEW: u8 = 0;
const ACTIVE: u8 = 1;
const DEAD: u8 = 2;

/// The value of [`ThreadCache::home_number`] while `free`'s fast path is closed: no arena has
/// number 0, and zero-filled TLS (a new thread) reads as this.
const NO_FAST_FREE: usize = 0;

/// A number that identifies the calling thread among live threads (its cache's address).
#[inline(always)]
pub fn thread_id() -> usize {
    this_thread_cache() as usize
}

/// The calling thread's arena (a process arena), or null while it has none.
#[inline(always)]
pub fn home() -> *const Arena {
    with_cache(|c| c.home)
}

/// Makes `arena` (a process arena, or null) the calling thread's arena; returns the previous one.
pub fn set_home(arena: *const Arena) -> *const Arena {
    with_cache(|c| {
        let previous = core::mem::replace(&mut c.home, arena);
        open_fast_free(c);
        previous
    })
}

/// Sets [`ThreadCache::home_number`] from the state and the home: the fast path may cache a
/// freed block only in an active cache (one whose thread-exit destructor is registered).
fn open_fast_free(c: &mut ThreadCache) {
    c.home_number =
        if c.state == ACTIVE && !c.home.is_null() { crate::arena::number_of(c.home) } else { NO_FAST_FREE };
}

/// One list of cached blocks per class.
#[repr(C)]
pub struct Lists {
    heads: [*mut u8; CLASSES],
    counts: [u16; CLASSES],
}

impl Lists {
    pub const EMPTY: Lists = Lists { heads: [null_mut(); CLASSES], counts: [0; CLASSES] };

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&n| n == 0)
    }
}

#[repr(C)]
struct ThreadCache {
    lists: Lists,
    /// Refills done per class so far (saturating): each refill takes twice as many blocks as
    /// the one before, up to half the list, so a thread that needs a few blocks of a class
    /// does not take (and at exit give back) a full batch.
    refills: [u8; CLASSES],
    state: u8,
    /// Which arena this thread uses, or null (kept here so that the fast path's one TLS access
    /// also finds the arena).
    home: *const Arena,
    /// The region-map arena number of `home` while the cache is active, else [`NO_FAST_FREE`]:
    /// `free` caches a block on its fast path only when the block's map entry carries this number.
    home_number: usize,
    /// Blocks of other arenas freed by this thread, waiting to be returned in one batch (they
    /// are of no use to this thread's allocations, so they are not kept in its lists).
    remote_head: *mut u8,
    remote_count: u32,
    /// Allocation and free calls made by this thread, not yet added to the process-wide counts.
    pending_allocs: u64,
    pending_frees: u64,
    /// The purge sweeps counted when this thread last looked, and when (monotonic ms) it last
    /// returned its cached blocks.
    sweeps_seen: u64,
    cache_returned_at_ms: u64,
}

thread_static! {
    /// The calling thread's cache (all zero bytes is a valid empty cache, in state `NEW`).
    fn this_thread_cache() -> ThreadCache;
}

/// Marks cached blocks; random per process so user data rarely matches it by accident. Always
/// odd: the hand-back key is the same word with its low bit clear.
static CACHE_KEY: AtomicUsize = AtomicUsize::new(0);

/// Marks blocks handed back to their arena (in a batch slot or on the stack): the cache key with
/// its low bit clear. Such a block is in use to the heap but already freed; a block being freed
/// or reallocated that carries this key is looked for where handed-back blocks wait
/// (`is_handed_back`).
#[inline(always)]
pub(crate) fn handed_back_key() -> usize {
    CACHE_KEY.load(Ordering::Relaxed) & !1
}
static THREAD_EXIT_KEY: AtomicUsize = AtomicUsize::new(usize::MAX);
static CALLS_ALLOC: AtomicU64 = AtomicU64::new(0);
static CALLS_FREE: AtomicU64 = AtomicU64::new(0);

/// Allocation and free calls counted so far (each thread publishes its own count whenever it
/// goes to an arena, and when it exits).
pub fn published_calls() -> (u64, u64) {
    (CALLS_ALLOC.load(Ordering::Relaxed), CALLS_FREE.load(Ordering::Relaxed))
}

/// The cache class a block of `size` bytes goes back to: the largest class not above its size,
/// so every block on a list is at least its class's size.
#[inline(always)]
pub fn class_of_block(size: usize) -> usize {
    if size <= EXACT_LIMIT {
        return (size - MIN_BLOCK_SIZE) / SIZE_GRANULE;
    }
    debug_assert!(size <= CACHED_BLOCK_MAX);
    MEDIUM_FLOOR[size / MEDIUM_STEP] as usize
}

/// Exact classes: the class of a request is (its block size - MIN_BLOCK_SIZE) / SIZE_GRANULE,
/// with the block size the request plus its header rounded up to the granule. Because
/// MIN_BLOCK_SIZE is a multiple of the granule (asserted in block.rs), that is
/// (request - this) / SIZE_GRANULE, and class 0 for the requests below it.
const EXACT_REQUEST_BIAS: usize = MIN_BLOCK_SIZE + 1 - HEADER_SIZE - SIZE_GRANULE;

/// The cache class that serves a request of `request` bytes (at most [`CACHED_REQUEST_MAX`]):
/// the smallest class whose blocks hold it.
#[inline(always)]
pub fn class_of_request(request: usize) -> usize {
    debug_assert!(request <= CACHED_REQUEST_MAX);
    if request <= EXACT_LIMIT - HEADER_SIZE {
        return request.saturating_sub(EXACT_REQUEST_BIAS) / SIZE_GRANULE;
    }
    let size = (request + HEADER_SIZE + SIZE_GRANULE - 1) & !(SIZE_GRANULE - 1);
    MEDIUM_CEIL[size.div_ceil(MEDIUM_STEP)] as usize
}

/// The block size of class `class`.
#[inline(always)]
pub fn block_size_of_class(class: usize) -> usize {
    CLASS_SIZE[class] as usize
}

#[inline(always)]
pub(crate) fn list_limit(class: usize) -> usize {
    LIST_LIMIT[class] as usize
}

#[inline(always)]
fn with_cache<R>(f: impl FnOnce(&mut ThreadCache) -> R) -> R {
    // SAFETY: the cache is this thread's own; nothing re-enters it while `f` runs (nothing in
    // this module calls back into malloc).
    f(unsafe { &mut *this_thread_cache() })
}

#[inline(always)]
fn next_cell(p: *mut u8) -> *mut *mut u8 {
    p.cast()
}

/// The cache key (for tests that plant it in a block).
#[cfg(test)]
pub(crate) fn cache_key() -> usize {
    CACHE_KEY.load(Ordering::Relaxed)
}

#[inline(always)]
pub(crate) fn key_cell(p: *mut u8) -> *mut usize {
    p.wrapping_add(8).cast()
}

/// Unlinks the first block of list `class` (clearing its key: it is an ordinary in-use block
/// again); null if the list is empty.
///
/// Lists are walked by their counts, never by trusting the last block's link: some programs
/// write to a block just after freeing it (the start-up code of `clang -fsanitize=fuzzer`
/// binaries does), which glibc's count-guarded tcache shrugs off and a null-terminated list
/// would turn into a wild pointer on a later allocation.
#[inline(always)]
fn take_head(lists: &mut Lists, class: usize) -> *mut u8 {
    if lists.counts[class] == 0 {
        return null_mut();
    }
    let p = lists.heads[class];
    lists.counts[class] -= 1;
    // SAFETY: `p` is a cached block: its first two words are ours (next, key).
    unsafe {
        // The last block's link is read too and means nothing: every walk of a list is bounded
        // by its count, and prefetching the value is only a hint.
        lists.heads[class] = next_cell(p).read();
        key_cell(p).write(0);
    }
    // The next pop of this class reads the new head's link: start fetching it now, while the
    // program works (churn benchmark: 2-3% faster, medians of 9 and 11 interleaved runs).
    prefetch_line(lists.heads[class]);
    p
}

/// Pops a cached block of class `class`; null if the list is empty.
#[inline(always)]
pub fn pop(class: usize) -> *mut u8 {
    with_cache(|c| {
        let p = take_head(&mut c.lists, class);
        if !p.is_null() {
            c.pending_allocs += 1;
        }
        p
    })
}

/// `free`'s fast path: caches `p`, an in-use block of `size` bytes (at most
/// [`CACHED_BLOCK_MAX`]) whose region the map gives arena number `arena_number`, when that is
/// this thread's home and its cache is active, the list has room, and `p` does not carry the
/// cache key (a possible double free, which [`push`] examines). False leaves `p` to the caller's
/// slow path, which then calls [`push`] or frees the block.
#[inline(always)]
pub fn push_home(p: *mut u8, size: usize, arena_number: usize) -> bool {
    with_cache(|c| {
        if arena_number != c.home_number {
            return false;
        }
        let class = class_of_block(size);
        // Read once for both uses: the compiler does not merge two atomic loads (churn
        // benchmark, 15 interleaved runs: 0.95 -> 0.89 of glibc's time).
        let key = CACHE_KEY.load(Ordering::Relaxed);
        // SAFETY: `p` is an in-use block of at least MIN_BLOCK_SIZE - HEADER_SIZE = 24 bytes, which
        // the caller is giving up: its first two words are now ours.
        let key_found = unsafe { key_cell(p).read() };
        // Either key (cached, or handed back) sends the block to `push` for a closer look.
        if key_found | 1 == key || c.lists.counts[class] as usize >= list_limit(class) {
            return false;
        }
        link_block(c, p, class, key);
        true
    })
}

/// Puts `p` at the head of list `class` (which has room), marked with `key` (the cache key), and
/// counts the free; every [`PURGE_CHECK_INTERVAL`] frees, runs the delayed purge if one is due.
#[inline(always)]
fn link_block(c: &mut ThreadCache, p: *mut u8, class: usize, key: usize) {
    // SAFETY: callers pass an in-use block of at least 24 bytes that they are giving up: its
    // first two words are now ours.
    unsafe {
        next_cell(p).write(c.lists.heads[class]);
        key_cell(p).write(key);
    }
    c.lists.heads[class] = p;
    c.lists.counts[class] += 1;
    note_free(c);
}

/// Counts one free of this thread; every [`PURGE_CHECK_INTERVAL`] frees, looks for a due purge.
#[inline(always)]
fn note_free(c: &mut ThreadCache) {
    c.pending_frees += 1;
    if c.pending_frees % PURGE_CHECK_INTERVAL == 0 {
        purge_if_due(c);
    }
}

/// Runs the delayed purge if one is due. Cached blocks are in use to their heaps, so no purge
/// can release them: after a purge sweep each thread returns its cache to the arenas (the
/// thread that starts a sweep, first), where the blocks merge with their free neighbours and
/// are purged like them once unused for the delay; at most once per delay, so that frequent
/// sweeps cannot keep a busy thread's cache empty. A thread that has gone quiet no longer holds
/// its cache's memory for good: 3 threads that freed 1 GiB, after the purge, 15.7-16.5 ->
/// 11.7-11.9 MiB resident above the start. The one block each class above [`LIST_FEW_ABOVE`]
/// holds stays: merged back into the heap mid-run, those moved where the big-buffer benchmark
/// settled its buffers (peak RSS 96.0 -> 98.6-113.3 MiB with sweeps every 30-50 ms).
#[cold]
fn purge_if_due(c: &mut ThreadCache) {
    let due = crate::purge::purge_due();
    if due || crate::purge::sweeps() != c.sweeps_seen {
        let now = crate::os::monotonic_ms();
        if now >= c.cache_returned_at_ms.saturating_add(crate::config::get().purge_delay_ms) {
            c.cache_returned_at_ms = now;
            for class in 0..CLASSES {
                if block_size_of_class(class) <= LIST_FEW_ABOVE {
                    trim_list(&mut c.lists, class, 0);
                }
            }
        }
        if due {
            crate::purge::purge_due_arenas();
        }
        c.sweeps_seen = crate::purge::sweeps();
    }
}

/// Caches the in-use block `p` of class `class` instead of freeing it. False if this thread's
/// cache is not taking blocks (not yet set up, or the thread is exiting).
#[inline(always)]
pub fn push(p: *mut u8, class: usize, arena: *const Arena, call: &'static str) -> bool {
    with_cache(|c| {
        if c.state != ACTIVE {
            return activate(c) && push_active(c, p, class, arena, call);
        }
        push_active(c, p, class, arena, call)
    })
}

#[inline(always)]
fn push_active(c: &mut ThreadCache, p: *mut u8, class: usize, arena: *const Arena, call: &'static str) -> bool {
    // SAFETY: `p` is an in-use block of at least MIN_BLOCK_SIZE - HEADER_SIZE = 24 bytes, which
    // the caller is giving up: its first two words are now ours.
    unsafe {
        let key = key_cell(p).read();
        if key == CACHE_KEY.load(Ordering::Relaxed) && is_cached_here(c, p, class)
            || key == handed_back_key() && is_handed_back(p, arena)
        {
            let misuse = if call == "free" { Misuse::DoubleFree } else { Misuse::AlreadyFreed };
            fatal::misuse(call, p, misuse);
        }
        if !is_home(c, arena) {
            if !crate::arena::is_process_arena(arena) {
                return false;
            }
            push_remote(c, p);
            return true;
        }
        if c.lists.counts[class] as usize >= list_limit(class) {
            // The newer half goes back to the heap now, where it merges. Parking spilled blocks
            // unmerged in the arena for the next refill of their class (a depot, as magazine
            // allocators have) stranded blocks of one class while the heap cut fresh memory for
            // others (python benchmark, 9 interleaved runs: peak RSS 1.02 -> 1.25 of glibc's,
            // time 0.96 -> 1.35; server peak RSS 0.89 -> 0.99; perl and churn unchanged).
            trim_list(&mut c.lists, class, list_limit(class) / 2);
            publish_counts(c);
        }
    }
    link_block(c, p, class, CACHE_KEY.load(Ordering::Relaxed));
    true
}

/// A thread that only uses its cache looks for due purges every this many frees.
const PURGE_CHECK_INTERVAL: u64 = 64;

/// Whether `p` sits in this thread's cache or waits handed back to its arena (so freeing or
/// reallocating it again is misuse). Blocks cached by other threads are not found.
pub fn is_cached_by_this_thread(p: *mut u8, size: usize) -> bool {
    if size > CACHED_BLOCK_MAX {
        return false;
    }
    // SAFETY: `p` is a valid payload of at least 24 bytes (caller checked its header).
    let key = unsafe { key_cell(p).read() };
    if key == handed_back_key() {
        let region = region_map::lookup(p as usize);
        // SAFETY: the caller found `p` in a live region, which points at its arena.
        return !region.is_null() && is_handed_back(p, unsafe { (*region).arena });
    }
    if key != CACHE_KEY.load(Ordering::Relaxed) {
        return false;
    }
    lists_hold(p, size)
}

/// Whether this thread's cache lists `p` (a block of `size` bytes), found by address alone:
/// `p` itself is not read, so it may have been freed since.
pub(crate) fn lists_hold(p: *mut u8, size: usize) -> bool {
    with_cache(|c| is_cached_here(c, p, class_of_block(size)))
}

#[cold]
fn is_cached_here(c: &ThreadCache, p: *mut u8, class: usize) -> bool {
    let lists = [(c.lists.heads[class], c.lists.counts[class] as usize), (c.remote_head, c.remote_count as usize)];
    lists.into_iter().any(|(head, count)| {
        let mut at = head;
        for seen in 0..count {
            if at == p {
                return true;
            }
            if seen + 1 < count {
                // SAFETY: `at` is a cached block that is not the last on its list.
                at = unsafe { next_cell(at).read() };
            }
        }
        false
    })
}

/// Whether `arena` is the calling thread's home arena.
#[inline(always)]
fn is_home(c: &ThreadCache, arena: *const Arena) -> bool {
    arena == c.home
}

/// Remote blocks a thread holds before handing them back (one batch slot per arena per batch).
const REMOTE_BATCH: u32 = crate::handed_back::BATCH_MAX as u32;

/// Holds the block `p` of another arena for the next batch back to its arena.
#[inline(always)]
fn push_remote(c: &mut ThreadCache, p: *mut u8) {
    // SAFETY: `p` is a block the caller gives up (see `push_active`).
    unsafe {
        next_cell(p).write(c.remote_head);
        key_cell(p).write(CACHE_KEY.load(Ordering::Relaxed));
    }
    c.remote_head = p;
    c.remote_count += 1;
    c.pending_frees += 1;
    if c.remote_count >= REMOTE_BATCH {
        return_remote(c);
    }
}

/// Hands every held remote block back to its arena (see `handed_back`): one hand-back per run
/// of consecutive blocks of the same arena, no lock.
#[cold]
fn return_remote(c: &mut ThreadCache) {
    let mut p = core::mem::replace(&mut c.remote_head, null_mut());
    let mut left = core::mem::take(&mut c.remote_count);
    // The run being gathered: its arena, blocks and bytes.
    let mut run = [null_mut::<u8>(); REMOTE_BATCH as usize];
    let mut run_len = 0;
    let mut run_arena: *const Arena = core::ptr::null();
    let mut run_bytes = 0;
    while left > 0 {
        left -= 1;
        // SAFETY: `p` is a held block; its next cell is ours (read before anything rewrites it).
        let next = if left > 0 { unsafe { next_cell(p).read() } } else { null_mut() };
        let region = region_map::lookup(p as usize);
        // SAFETY: held blocks are in-use blocks of process arenas' regions, which stay live; the
        // key cell is the caller's.
        let (arena, size) = unsafe {
            key_cell(p).write(handed_back_key());
            ((*region).arena, crate::block::read_header(block_of(p)).size())
        };
        if run_len > 0 && arena != run_arena {
            // SAFETY: the run's blocks are held blocks of `run_arena`, given up once each.
            unsafe { (*run_arena).hand_back(&run[..run_len], run_bytes) };
            run_len = 0;
            run_bytes = 0;
        }
        run_arena = arena;
        run[run_len] = p;
        run_len += 1;
        run_bytes += size;
        p = next;
    }
    if run_len > 0 {
        // SAFETY: as above.
        unsafe { (*run_arena).hand_back(&run[..run_len], run_bytes) };
    }
    publish_counts(c);
}

/// Turns the cache on for this thread: registers the thread-exit destructor, and takes over the
/// cache of an exited thread if one is parked.
#[cold]
fn activate(c: &mut ThreadCache) -> bool {
    if c.state == DEAD || !crate::config::get().thread_cache {
        return false;
    }
    let key = THREAD_EXIT_KEY.load(Ordering::Acquire);
    if key == usize::MAX {
        return false;
    }
    // SAFETY: `key` was created by `init`; the value only needs to be non-null for the destructor
    // to run. Keys below PTHREAD_KEY_2NDLEVEL_SIZE store values without allocating.
    if unsafe { libc::pthread_setspecific(key as libc::pthread_key_t, 1 as *const libc::c_void) } != 0 {
        return false;
    }
    c.state = ACTIVE;
    // Returning the cache after sweeps counts from here: a short-lived thread keeps its cache.
    c.sweeps_seen = crate::purge::sweeps();
    c.cache_returned_at_ms = crate::os::monotonic_ms();
    if c.lists.is_empty() {
        if let Some(arena) = orphans::adopt(&mut c.lists) {
            if c.home.is_null() && crate::arena::settle_if_uncrowded(arena) {
                c.home = arena;
            }
        }
    }
    open_fast_free(c);
    true
}

/// Sets the cache key (and so the hand-back key); called once from start-up, before any block
/// is handed out, so that no block can meet a key of zero.
pub fn set_keys(random: usize) {
    CACHE_KEY.store(random | 1, Ordering::Relaxed);
}

/// Creates the thread-exit key; called once from start-up.
pub fn init() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is a plain function.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
        THREAD_EXIT_KEY.store(key as usize, Ordering::Release);
    }
}

extern "C" fn on_thread_exit(_: *mut libc::c_void) {
    with_cache(|c| {
        return_remote(c);
        for class in 0..CLASSES {
            trim_list(&mut c.lists, class, list_limit(class) / PARKED_LIST_DIVISOR);
        }
        if !orphans::park(&mut c.lists, c.home) {
            trim_all(&mut c.lists);
        }
        c.state = DEAD;
        open_fast_free(c);
        publish_counts(c);
    });
    crate::arena::leave_home();
}

/// A parked cache keeps at most this fraction of each list's limit: enough for the adopter to
/// start warm, little enough that parked caches hold few blocks nobody may ask for again
/// (thread-churn benchmark: peak RSS 5.0-5.4 MiB parking whole lists, 4.2-4.8 MiB with a quarter).
const PARKED_LIST_DIVISOR: usize = 4;

/// Whether the calling thread has run its exit destructor.
pub fn is_exiting() -> bool {
    with_cache(|c| c.state == DEAD)
}

/// Counts one allocation call served outside the cache.
#[inline(always)]
pub fn count_alloc() {
    with_cache(|c| c.pending_allocs += 1);
}

/// Counts one free call served outside the cache.
#[inline(always)]
pub fn count_free() {
    with_cache(note_free);
}

/// Adds the calling thread's pending counts to the process-wide ones (before a report).
pub fn publish_this_thread() {
    with_cache(publish_counts);
}

/// Frees every block that is freed but still held into its heap: the calling thread's cache,
/// every parked cache, and every arena's handed-back blocks (for `malloc_trim`).
pub fn flush_all_held() {
    with_cache(|c| {
        trim_all(&mut c.lists);
        return_remote(c);
    });
    let mut parked = Lists::EMPTY;
    while orphans::adopt(&mut parked).is_some() {
        trim_all(&mut parked);
    }
    crate::arena::drain_all_handed_back(false);
}

fn trim_all(lists: &mut Lists) {
    for class in 0..CLASSES {
        trim_list(lists, class, 0);
    }
}

fn publish_counts(c: &mut ThreadCache) {
    CALLS_ALLOC.fetch_add(c.pending_allocs, Ordering::Relaxed);
    CALLS_FREE.fetch_add(c.pending_frees, Ordering::Relaxed);
    c.pending_allocs = 0;
    c.pending_frees = 0;
}

/// Frees blocks from the front of list `class` into their arenas until `keep` remain.
#[cold]
fn trim_list(lists: &mut Lists, class: usize, keep: usize) {
    return_blocks(|| if lists.counts[class] as usize <= keep { null_mut() } else { take_head(lists, class) });
}

/// Frees the blocks `next` yields (until null) into their arenas, locking each arena once per
/// run of consecutive blocks that belong to it.
fn return_blocks(mut next: impl FnMut() -> *mut u8) {
    let mut held: Option<(*const Arena, ArenaGuard<'static>)> = None;
    loop {
        let p = next();
        if p.is_null() {
            break;
        }
        // SAFETY: `p` was cached or held: clearing its key makes it an ordinary in-use block.
        unsafe { key_cell(p).write(0) };
        let region = region_map::lookup(p as usize);
        // SAFETY: cached blocks are region blocks, and regions point at arenas that live as long
        // as their blocks.
        let arena = unsafe { (*region).arena };
        if held.as_ref().is_none_or(|(a, _)| *a != arena) {
            drop(held.take()); // never hold two arena locks at once
            // SAFETY: as above.
            held = Some((arena, unsafe { &*arena }.lock()));
        }
        let (_, heap) = held.as_mut().unwrap_or_else(|| unreachable!());
        // SAFETY: `p`'s block is in use and belongs to the locked arena.
        unsafe { heap.free_block(block_of(p), "free") };
    }
}

/// Frees every block handed back to the locked arena (on its stack and in its batch slots)
/// into its heap.
pub fn drain_handed_back(heap: &mut ArenaGuard) {
    take_handed_back(heap, "free", |heap, p, _| {
        // SAFETY: `p` is a checked handed-back block of the locked arena, in use.
        unsafe {
            key_cell(p).write(0);
            heap.free_block(block_of(p), "free");
        }
    });
}

/// Takes everything handed back to the locked arena, every full batch slot and then the whole
/// stack, and calls `f` on each block (checked, see [`walk_batch`] and [`walk_handed_back`])
/// with its size.
fn take_handed_back(
    heap: &mut ArenaGuard,
    call: &'static str,
    mut f: impl FnMut(&mut ArenaGuard, *mut u8, usize),
) {
    let arena = heap.arena();
    let handed_back = heap.handed_back();
    handed_back.take_batches(|blocks| walk_batch(blocks, arena, call, |p, size| f(heap, p, size)));
    let stack = handed_back.take_all();
    if !stack.is_null() {
        let bytes = walk_handed_back(stack, arena, call, |p, size| f(heap, p, size));
        handed_back.note_taken(bytes);
    }
}

/// Whether `p`, a block of `arena` that carries the hand-back key, waits in the arena's batch
/// slots or on its hand-back stack. The key alone is no proof: the program's data may hold the
/// same word (a fuzzer that watches comparisons learns it), so both are searched, under the
/// arena's lock, which keeps every block in them in place. A block on the stack that fails its
/// check ends the search: the next take of the stack diagnoses it.
#[cold]
fn is_handed_back(p: *mut u8, arena: *const Arena) -> bool {
    if !crate::arena::is_process_arena(arena) {
        return false;
    }
    // SAFETY: process arenas live for the life of the process.
    let heap = unsafe { &*arena }.lock();
    if heap.handed_back().batches_contain(p) {
        return true;
    }
    let number = crate::arena::number_of(arena);
    let key = handed_back_key();
    let mut at = heap.handed_back().first();
    while !at.is_null() && checked_handed_back(at, number, key).is_some() {
        if at == p {
            return true;
        }
        // SAFETY: `at` is a checked block on the stack, which only a lock holder may take from:
        // its first word is the stack's link.
        at = unsafe { next_cell(at).read() };
    }
    false
}

/// Walks the chain `first` taken from `arena`'s hand-back stack, calling `f` on each block
/// with its size (after reading its link, so `f` may relink it); returns the bytes walked.
/// Every block is checked before it is used — its region is `arena`'s, its header is valid and
/// in use, it carries the hand-back key — so a link the program overwrote after freeing the block
/// ends in a diagnosis rather than a walk into the wild.
fn walk_handed_back(first: *mut u8, arena: *const Arena, call: &'static str, mut f: impl FnMut(*mut u8, usize)) -> usize {
    let number = crate::arena::number_of(arena);
    let key = handed_back_key();
    let mut bytes = 0;
    let mut came_from = null_mut::<u8>();
    let mut p = first;
    while !p.is_null() {
        let Some(size) = checked_handed_back(p, number, key) else {
            // The block whose link led here was written to after its free (or `p` itself was).
            fatal::misuse(call, if came_from.is_null() { p } else { came_from }, Misuse::WrittenAfterFree);
        };
        // SAFETY: `p` is a checked handed-back block: its first word is the stack's link.
        let next = unsafe { next_cell(p).read() };
        f(p, size);
        bytes += size;
        came_from = p;
        p = next;
    }
    bytes
}

/// Calls `f` on each block of `blocks`, a batch taken from `arena`'s slots, with its size. The
/// blocks are fetched in parallel first (other threads wrote them last), then each is checked
/// as in [`walk_handed_back`]: a block that fails was written to after its free.
fn walk_batch(blocks: &[*mut u8], arena: *const Arena, call: &'static str, mut f: impl FnMut(*mut u8, usize)) {
    for &p in blocks {
        prefetch_line(block_of(p));
    }
    let number = crate::arena::number_of(arena);
    let key = handed_back_key();
    for &p in blocks {
        let Some(size) = checked_handed_back(p, number, key) else {
            fatal::misuse(call, p, Misuse::WrittenAfterFree);
        };
        f(p, size);
    }
}

/// Asks the CPU to start fetching the cache line at `p`; a hint only, which never faults
/// whatever the address (null included).
#[inline(always)]
fn prefetch_line(p: *mut u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `prefetcht0` reads nothing architecturally and cannot fault on any address.
    unsafe {
        core::arch::asm!("prefetcht0 [{}]", in(reg) p, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}

/// The size of `p`, a block reached on a hand-back chain of the arena numbered `number`, if it
/// is what such a block must be; None otherwise. Reads nothing outside that arena's regions.
fn checked_handed_back(p: *mut u8, number: usize, key: usize) -> Option<usize> {
    let entry = region_map::lookup_entry(p as usize);
    let region = entry.region();
    if region.is_null()
        || entry.arena_number() != number
        || p as usize % crate::block::ALIGNMENT != 0
        || (block_of(p) as usize) < crate::region::Region::first_block(region) as usize
    {
        return None;
    }
    // SAFETY: as in `alloc::locate`: the map puts `p` inside the region, and a 16-aligned `p`
    // past the first block has its header inside the block area.
    let header = unsafe { crate::block::read_header(block_of(p)) };
    if !header.is_valid_at(block_of(p)) || !header.in_use() || header.size() > CACHED_BLOCK_MAX {
        return None;
    }
    // SAFETY: a valid in-use block has at least 24 payload bytes; the key is the second word.
    (unsafe { key_cell(p).read() } == key).then_some(header.size())
}

/// Puts `p`, a checked block handed back to the locked arena, into its class's list (it is in
/// use already), or into the heap if that list is full.
#[inline(always)]
fn adopt_handed_back(lists: &mut Lists, heap: &mut ArenaGuard, p: *mut u8, size: usize) {
    let class = class_of_block(size);
    if (lists.counts[class] as usize) < list_limit(class) {
        // SAFETY: `p` is a checked handed-back block: its first two words are ours.
        unsafe {
            next_cell(p).write(lists.heads[class]);
            key_cell(p).write(CACHE_KEY.load(Ordering::Relaxed));
        }
        lists.heads[class] = p;
        lists.counts[class] += 1;
    } else {
        // SAFETY: as above; the block is in use and belongs to the locked arena.
        unsafe {
            key_cell(p).write(0);
            heap.free_block(block_of(p), "free");
        }
    }
}

/// Blocks taken by a class's refill number `refills` (from 0): 1, 2, 4, … up to half the list.
#[inline]
fn refill_batch(limit: usize, refills: u8) -> usize {
    let half = (limit / 2).max(1);
    if refills as u32 >= usize::BITS - 1 {
        return half;
    }
    (1usize << refills).min(half)
}

/// Allocates a block of class `class` for a thread whose list is empty: takes a cached block
/// a little larger if there is one, else a batch from the thread's arena under one lock,
/// returns one block and caches the rest.
#[cold]
pub fn refill(class: usize) -> *mut u8 {
    // Decided with the cache borrowed, then the borrow ends: locking the arena reads this
    // thread's arena choice, which lives in the same TLS block.
    let batch = with_cache(|c| {
        if c.state != ACTIVE {
            if !activate(c) {
                return None;
            }
            let adopted = take_head(&mut c.lists, class);
            if !adopted.is_null() {
                return Some(Err(adopted));
            }
        }
        for larger in class + 1..=class + LARGER_FITS[class] as usize {
            let p = take_head(&mut c.lists, larger);
            if !p.is_null() {
                return Some(Err(p));
            }
        }
        let batch = refill_batch(list_limit(class), c.refills[class]);
        c.refills[class] = c.refills[class].saturating_add(1);
        Some(Ok(batch))
    });
    let need = block_size_of_class(class);
    let batch = match batch {
        None => return lock_local_arena().alloc(need),
        Some(Err(cached)) => return cached,
        Some(Ok(batch)) => batch,
    };
    let mut heap = lock_local_arena();
    let cache_key = CACHE_KEY.load(Ordering::Relaxed);
    with_cache(|c| {
        let lists = &mut c.lists;
        // Blocks other threads freed go straight into the lists.
        take_handed_back(&mut heap, "malloc", |heap, p, size| adopt_handed_back(lists, heap, p, size));
        if lists.counts[class] != 0 {
            drop(heap);
            let p = take_head(lists, class);
            publish_counts(c);
            return p;
        }
        // The batch is linked in address order, ahead of what the list held: a run of
        // allocations then walks memory upwards, as the hardware prefetcher expects.
        let rest = lists.heads[class];
        let mut last: *mut u8 = null_mut();
        let first = heap.alloc_run(need, batch, |p| {
            // SAFETY: `p` is a fresh in-use block of at least 24 bytes; `last`, when set, is
            // the block listed just before it, still ours.
            unsafe {
                key_cell(p).write(cache_key);
                if last.is_null() {
                    lists.heads[class] = p;
                } else {
                    next_cell(last).write(p);
                }
            }
            last = p;
            lists.counts[class] += 1;
        });
        if !last.is_null() {
            // SAFETY: `last` is the batch's last listed block, ours; what the list held follows it.
            unsafe { next_cell(last).write(rest) };
        }
        drop(heap);
        publish_counts(c);
        first
    })
}
