//! The allocation entry points in Rust terms: small versus big dispatch, pointer validation, and
//! the out-of-memory fallbacks. `abi.rs` adds C names, argument checks and errno on top.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arena::{self, ensure_init, lock_local_arena};
use crate::block::{block_of, block_size_for, payload_capacity, read_header, Header, ALIGNMENT};
use crate::config;
use crate::fatal::{self, Misuse};
use crate::large;
use crate::region::Region;
use crate::region_map;
use crate::size_class::EXACT_LIMIT;
use crate::thread_cache::{self, class_of_block, class_of_request, CACHED_BLOCK_MAX, CACHED_REQUEST_MAX};

/// Allocates `size` bytes aligned to [`ALIGNMENT`]; null when out of memory.
///
/// The fast path: a small request pops a block from this thread's cache, with no lock and no
/// atomic operation. Everything else is in [`allocate_slow`]. Inlined into each caller, so that
/// `malloc`'s cache hit returns without a call.
#[inline(always)]
pub fn allocate(size: usize) -> *mut u8 {
    if size <= CACHED_REQUEST_MAX {
        let p = thread_cache::pop(class_of_request(size));
        if !p.is_null() {
            if config::get().check_every != 0 {
                return check_heap_then(p);
            }
            return p;
        }
    }
    allocate_slow(size)
}

/// [`maybe_check_heap`] for the fast path, shaped as a tail call so that the fast path keeps
/// nothing live across a call (no register saves).
#[cold]
#[inline(never)]
fn check_heap_then(p: *mut u8) -> *mut u8 {
    maybe_check_heap();
    p
}

#[inline(never)]
fn allocate_slow(size: usize) -> *mut u8 {
    ensure_init();
    maybe_check_heap();
    thread_cache::count_alloc();
    if size > config::mmap_threshold() {
        return large::alloc(size, ALIGNMENT);
    }
    // Cannot fail: the threshold is far below the largest block size.
    let need = block_size_for(size).unwrap_or(usize::MAX);
    let p = if size <= CACHED_REQUEST_MAX {
        thread_cache::refill(class_of_request(size))
    } else {
        lock_local_arena().alloc(need)
    };
    if p.is_null() {
        return arena::alloc_from_any_arena(need);
    }
    p
}

/// Allocates `size` bytes aligned to `align` (a power of two); null when out of memory.
pub fn allocate_aligned(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if align <= ALIGNMENT {
        return allocate(size);
    }
    ensure_init();
    maybe_check_heap();
    thread_cache::count_alloc();
    let Some(padded) = size.checked_add(align) else { return null_mut() };
    if padded > config::mmap_threshold() {
        return large::alloc(size, align);
    }
    let need = block_size_for(size).unwrap_or(usize::MAX);
    lock_local_arena().alloc_aligned(need, align)
}

/// Where a pointer handed to `free`, `realloc` or `malloc_usable_size` lives.
pub(crate) enum Located {
    /// A block in a region and its header, whose tag is valid.
    Small(*mut Region, *mut u8, Header),
    /// Not in any region: a big block, or not binmalloc's at all.
    Elsewhere,
}

/// Finds the block for payload `p` without touching memory that is not binmalloc's; any pointer
/// inside a region that is not a valid block start ends the process with a diagnosis.
#[inline(always)]
pub(crate) fn locate(p: *mut u8, call: &'static str) -> Located {
    match locate_in_map(p, call) {
        Some((entry, block, header)) => Located::Small(entry.region(), block, header),
        None => Located::Elsewhere,
    }
}

/// [`locate`], giving the region-map entry (region and arena number) of a block in a region.
#[inline(always)]
fn locate_in_map(p: *mut u8, call: &'static str) -> Option<(region_map::Entry, *mut u8, Header)> {
    let entry = region_map::lookup_entry(p as usize);
    let region = entry.region();
    if region.is_null() {
        return None;
    }
    let block = block_of(p);
    // The map placed `p` inside the region, below its end; a 16-aligned `p` then has its header
    // below the sentinel (the region's last word), so only the lower bound needs a check, and it
    // needs no read of the region header.
    if p as usize % ALIGNMENT != 0 || (block as usize) < Region::first_block(region) as usize {
        fatal::misuse(call, p, Misuse::NotBlockStart);
    }
    // SAFETY: the map entry keeps the region live; `block` is 8-aligned and inside its block area.
    debug_assert!(unsafe { Region::contains(region, block as usize) });
    // SAFETY: as above.
    let header = unsafe { read_header(block) };
    if !header.is_valid_at(block) {
        diagnose_bad_header(region, block, p, call);
    }
    Some((entry, block, header))
}

/// What a walk from a region's first block finds at an address.
enum Found {
    /// The address is the start of this block (header valid).
    BlockStart(Header),
    /// The address lies inside a block that is free (memory already freed).
    InsideFree,
    /// The address lies inside an in-use block, or in the region's header or sentinel.
    Inside,
    /// A damaged header stops the walk before the address.
    DamagedBefore,
}

/// Walks `region` block by block up to `block`, with the owning arena locked so that nobody
/// rewrites headers meanwhile. Slow (linear in the region): only for diagnoses and `owns`.
fn walk_to(region: *mut Region, block: *mut u8) -> Found {
    // SAFETY: `region` is live; the walk reads only headers inside it, each validated before
    // its size is trusted.
    let arena = unsafe { &*(*region).arena };
    let _guard = arena.lock();
    let mut at = Region::first_block(region);
    // SAFETY: as above.
    let end = unsafe { Region::sentinel(region) };
    while at < end {
        // SAFETY: `at` is a block start reached by walking valid headers.
        let h = unsafe { read_header(at) };
        if !h.is_valid_at(at) || h.size() == 0 {
            return Found::DamagedBefore;
        }
        if at == block {
            return Found::BlockStart(h);
        }
        let next = at.wrapping_add(h.size());
        if block < next {
            return if h.in_use() { Found::Inside } else { Found::InsideFree };
        }
        at = next;
    }
    Found::Inside
}

/// A header that fails its tag is either not a block start, freed memory (a block absorbed
/// into a free neighbour), or a damaged block: walk the region to tell which.
#[cold]
fn diagnose_bad_header(region: *mut Region, block: *mut u8, p: *mut u8, call: &'static str) -> ! {
    let misuse = match walk_to(region, block) {
        Found::BlockStart(_) | Found::DamagedBefore => Misuse::CorruptedHeader,
        Found::InsideFree => freed_misuse(call),
        Found::Inside => Misuse::NotBlockStart,
    };
    fatal::misuse(call, p, misuse)
}

/// A neighbour of `p`'s block failed its checks while freeing: either the neighbour was
/// overwritten, or `p` itself is stale (freed and absorbed into a neighbour).
#[cold]
pub fn diagnose_bad_neighbour(p: *mut u8, call: &'static str) -> ! {
    let region = region_map::lookup(p as usize);
    let misuse = match walk_to(region, block_of(p)) {
        Found::InsideFree => freed_misuse(call),
        Found::Inside => Misuse::NotBlockStart,
        Found::BlockStart(_) | Found::DamagedBefore => Misuse::CorruptedNeighbour,
    };
    fatal::misuse(call, p, misuse)
}

/// Frees `p` (not null). The fast path, top to bottom: find `p`'s region in the map, check that
/// `p` is the start of a block that is in use, and cache the block if it belongs to this
/// thread's arena. Everything else is in [`free_located`] and [`free_elsewhere`]. Inlined into
/// each caller, so that `call` is a constant there rather than two more live registers.
#[inline(always)]
pub fn deallocate(p: *mut u8, call: &'static str) {
    let Some((entry, block, header)) = locate_in_map(p, call) else {
        return free_elsewhere(p, call);
    };
    // Read without the lock: only misuse can make a block's own in-use bit change under a
    // caller that owns it; the arena re-checks under its lock.
    if !header.in_use() {
        fatal::misuse(call, p, freed_misuse(call));
    }
    let size = header.size();
    if size <= CACHED_BLOCK_MAX && thread_cache::push_home(p, size, entry.arena_number()) {
        return;
    }
    free_located(p, entry.region(), block, size, call)
}

/// Frees the in-use block `block` (payload `p`, `size` bytes, validated) of `region`, when the
/// fast path did not cache it: another arena's block, a full list, a cache not yet active, a
/// possible double free, or a block too big for the cache.
#[inline(never)]
fn free_located(p: *mut u8, region: *mut Region, block: *mut u8, size: usize, call: &'static str) {
    // SAFETY: regions point at their arena, which lives as long as its blocks.
    let arena = unsafe { (*region).arena };
    // The cache takes only blocks of process arenas (it checks unless the arena is the thread's
    // own); anything else is refused and diagnosed below.
    if size <= CACHED_BLOCK_MAX && thread_cache::push(p, class_of_block(size), arena, call) {
        return;
    }
    if !arena::is_process_arena(arena) {
        fatal::misuse(call, p, Misuse::WrongHeap);
    }
    thread_cache::count_free();
    // SAFETY: process arenas live for the whole process.
    let arena = unsafe { &*arena };
    // SAFETY: the caller validated that `block` is a block start with a valid header.
    unsafe { arena.lock().free_block(block, call) };
}

/// Frees `p`, which is in no region: a big block, or not binmalloc's.
#[inline(never)]
fn free_elsewhere(p: *mut u8, call: &'static str) {
    thread_cache::count_free();
    if !large::free(p) {
        fatal::misuse(call, p, not_ours(p));
    }
}

/// A pointer in no region and at no big block's start: inside a big block, or not ours at all.
#[cold]
fn not_ours(p: *mut u8) -> Misuse {
    if large::contains(p) {
        Misuse::NotBlockStart
    } else {
        Misuse::NotOurs
    }
}

fn freed_misuse(call: &str) -> Misuse {
    if call == "free" {
        Misuse::DoubleFree
    } else {
        Misuse::AlreadyFreed
    }
}

/// Resizes `p` (not null) to `size` bytes (not zero); null when out of memory, leaving `p` as it
/// was.
pub fn reallocate(p: *mut u8, size: usize) -> *mut u8 {
    ensure_init();
    match locate(p, "realloc") {
        Located::Small(region, block, header) => {
            if !header.in_use() || thread_cache::is_cached_by_this_thread(p, header.size()) {
                fatal::misuse("realloc", p, Misuse::AlreadyFreed);
            }
            // SAFETY: `region` is live.
            if !arena::is_process_arena(unsafe { (*region).arena }) {
                fatal::misuse("realloc", p, Misuse::WrongHeap);
            }
            // A request the block still holds, without much to spare, keeps it as it is: no
            // lock, and a string grown again soon grows in place.
            if block_size_for(size).is_some_and(|need| still_holds(header.size(), need)) {
                return p;
            }
            let old_capacity;
            {
                // SAFETY: as in `deallocate`.
                let arena = unsafe { &*(*region).arena };
                let mut heap = arena.lock();
                // SAFETY: `locate` validated the header; the lock is held.
                let header = unsafe { read_header(block) };
                if !header.in_use() {
                    fatal::misuse("realloc", p, Misuse::AlreadyFreed);
                }
                if size <= config::mmap_threshold() {
                    let need = block_size_for(size).unwrap_or(usize::MAX);
                    // SAFETY: the block is in use and belongs to this locked heap.
                    if unsafe { heap.resize_in_place(block, need) } {
                        return p;
                    }
                }
                old_capacity = payload_capacity(header.size());
            }
            move_block(p, old_capacity, size)
        }
        Located::Elsewhere => {
            let Some(old_capacity) = large::usable_size(p) else {
                fatal::misuse("realloc", p, not_ours(p));
            };
            // As for heap blocks (no system call).
            if still_holds(old_capacity, size) {
                return p;
            }
            if size > config::mmap_threshold() {
                let ask = grown_request(old_capacity, size);
                let mut resized = large::resize(p, ask);
                if matches!(resized, large::Resized::OutOfMemory) && ask > size {
                    // Room for the request, but not for the eighth on top.
                    resized = large::resize(p, size);
                }
                match resized {
                    large::Resized::Done(moved) => return moved,
                    large::Resized::OutOfMemory => return null_mut(),
                    large::Resized::NotBig => fatal::misuse("realloc", p, not_ours(p)),
                }
            }
            move_block(p, old_capacity, size)
        }
    }
}

/// A block shrunk by `realloc` keeps its slack up to this fraction of its size (1/4).
const REALLOC_SLACK_KEPT_DIVISOR: usize = 4;

/// Whether a block of `have` bytes serves a `realloc` to `need` bytes as it is: it holds them,
/// without much to spare. Heap blocks compare block sizes, big blocks usable sizes.
fn still_holds(have: usize, need: usize) -> bool {
    need <= have && have - need <= have / REALLOC_SLACK_KEPT_DIVISOR
}

/// Moves the payload to a new block of at least `size` bytes. A block that grows is given an
/// eighth more than asked for, so that a string grown a few bytes at a time moves once per
/// eighth of growth rather than on every call: fewer copies, and fewer holes of every size
/// left behind. That eighth may take it past the big-block cutoff: it then becomes a mapping,
/// which later growth remaps instead of copying. A grown block above the exact size classes is cut
/// to that size from the heap unless the thread has one of its class cached: a refill would
/// round it up to its cache class (up to an eighth more again) and cache more of a size that a
/// growing string will not ask for twice (realloc benchmark: peak RSS 33.9 -> 32.6 MiB).
fn move_block(p: *mut u8, old_capacity: usize, size: usize) -> *mut u8 {
    let ask = grown_request(old_capacity, size);
    let mut fresh = if size > old_capacity && ask > EXACT_LIMIT && ask <= config::mmap_threshold() {
        allocate_grown(ask)
    } else {
        allocate(ask)
    };
    if fresh.is_null() && ask > size {
        // Room for the request, but not for the eighth on top.
        fresh = allocate(size);
    }
    if fresh.is_null() {
        return fresh;
    }
    // SAFETY: both blocks are live and distinct; each holds at least the bytes copied.
    unsafe { core::ptr::copy_nonoverlapping(p, fresh, old_capacity.min(size)) };
    free_outgrown(p);
    fresh
}

/// A block that grows past its capacity is given this fraction (an eighth) of it on top.
const REALLOC_GROWTH_DIVISOR: usize = 8;

/// What `realloc` asks for when a block of `old_capacity` bytes moves to hold `size`: an
/// eighth more than it had if it grows, else `size` (which the caller falls back to when the
/// system has no room for the eighth). Not capped at the big-block cutoff: a
/// block that grows past it becomes a mapping with room to spare, rather than an exact one
/// remapped on every later call (perl growing a 2 MiB buffer 4 KiB at a time: 330 -> 8
/// `mremap` calls).
fn grown_request(old_capacity: usize, size: usize) -> usize {
    if size > old_capacity {
        size.max(old_capacity + old_capacity / REALLOC_GROWTH_DIVISOR)
    } else {
        size
    }
}

/// Allocates `size` bytes (above the exact classes, below the big-block cutoff) for a block
/// that grows: a cached block of its class if the thread has one, else exactly that size from
/// the thread's arena, without refilling the cache.
fn allocate_grown(size: usize) -> *mut u8 {
    maybe_check_heap();
    if size <= CACHED_REQUEST_MAX {
        let p = thread_cache::pop(class_of_request(size));
        if !p.is_null() {
            return p;
        }
    }
    thread_cache::count_alloc();
    let need = block_size_for(size).unwrap_or(usize::MAX);
    let p = lock_local_arena().alloc(need);
    if p.is_null() {
        return arena::alloc_from_any_arena(need);
    }
    p
}

/// Blocks up to this size that `realloc` moved out of go to the thread's cache like any other
/// free: short strings grow through the same few sizes, so one is soon wanted again (perl
/// benchmark, 21 interleaved runs: 1.038 -> 1.024 of glibc's time; realloc benchmark's peak
/// RSS unchanged, where caching them up to 1 KiB raised it 3%).
const OUTGROWN_CACHED_MAX: usize = 256;

/// Frees a block that `realloc` moved out of. A larger block left behind by growth is rarely
/// wanted again at its size soon, so it goes straight back to its heap, where it can merge
/// with its neighbours, rather than into this thread's cache.
fn free_outgrown(p: *mut u8) {
    if let Located::Small(region, block, header) = locate(p, "realloc") {
        if header.size() <= OUTGROWN_CACHED_MAX {
            return free_located(p, region, block, header.size(), "realloc");
        }
        // SAFETY: regions point at their arena, which lives as long as its blocks.
        let arena = unsafe { (*region).arena };
        if arena::is_process_arena(arena) {
            thread_cache::count_free();
            // SAFETY: `locate` validated the block; process arenas live for the whole process.
            unsafe { (*arena).lock().free_block(block, "realloc") };
            return;
        }
    }
    deallocate(p, "realloc");
}

/// Bytes usable at `p` (not null).
pub fn usable_size(p: *mut u8) -> usize {
    match locate(p, "malloc_usable_size") {
        Located::Small(_, _, header) => payload_capacity(header.size()),
        Located::Elsewhere => match large::usable_size(p) {
            Some(n) => n,
            None => fatal::misuse("malloc_usable_size", p, not_ours(p)),
        },
    }
}

/// Whether `p` is a live block binmalloc handed out (not freed, not sitting in this thread's
/// cache). Never aborts. Linear in the size of `p`'s region: a diagnostic, not a fast path.
pub fn owns(p: *const u8) -> bool {
    let p = p as *mut u8;
    let region = region_map::lookup(p as usize);
    if region.is_null() {
        return large::usable_size(p).is_some();
    }
    if p as usize % ALIGNMENT != 0 {
        return false;
    }
    match walk_to(region, block_of(p)) {
        Found::BlockStart(h) => h.in_use() && !thread_cache::is_cached_by_this_thread(p, h.size()),
        _ => false,
    }
}

static CALLS_SINCE_CHECK: AtomicU64 = AtomicU64::new(0);

/// `BINMALLOC_CHECK=N`: verify the whole heap every N allocation calls; abort if it is damaged.
#[inline(always)]
fn maybe_check_heap() {
    let every = config::get().check_every;
    if every != 0 {
        check_heap_now(every);
    }
}

#[cold]
fn check_heap_now(every: u64) {
    if CALLS_SINCE_CHECK.fetch_add(1, Ordering::Relaxed) + 1 >= every {
        CALLS_SINCE_CHECK.store(0, Ordering::Relaxed);
        if crate::check::check_all_arenas(true) != 0 {
            fatal::internal("BINMALLOC_CHECK found the heap damaged (details above)");
        }
    }
}

/// Whether `p`, just returned by [`allocate`], is a big block straight from mmap, whose pages the
/// kernel has zeroed (so `calloc` need not).
pub fn is_fresh_mapping(p: *mut u8) -> bool {
    region_map::lookup(p as usize).is_null()
}

