//! Returning free memory to the OS without giving up address ranges still in use: wholly free
//! regions are unmapped, and the pages strictly inside large free blocks are released with
//! `madvise(MADV_DONTNEED)` (the block's header, links and footer stay resident).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::bins::Bins;
use crate::block::{
    read_free_since, read_header, write_free_since, FREE_SINCE_MIN_SIZE, MIN_BLOCK_SIZE, PAGES_RELEASED,
};
use crate::heap::Heap;
use crate::size_class::{bin_for_size, BIN_COUNT};
use crate::os::{self, PAGE_SIZE};
use crate::region::Region;

/// When the earliest purge some heap waits for comes due (monotonic ms; `NO_PURGE_DUE`: none).
/// Threads that only use their caches look at it now and then (see `thread_cache`), so memory
/// is returned even if no heap is touched. A time rather than a flag: heaps almost always have
/// some large free block whose clock runs, and a flag made every 64th free of every thread
/// visit every arena (`server`, a one-second run: 45-55k such rounds with the flag, 643 with
/// the time; 7 interleaved runs 1.03 -> 0.93 s).
static PURGE_DUE_AT_MS: AtomicU64 = AtomicU64::new(NO_PURGE_DUE);
const NO_PURGE_DUE: u64 = u64::MAX;

/// Records that a heap has a purge due at `at_ms`.
pub fn note_purge_due(at_ms: u64) {
    PURGE_DUE_AT_MS.fetch_min(at_ms, Ordering::Relaxed);
}

/// Whether some heap's purge has come due (reads the clock only if one is waiting).
#[inline(always)]
pub fn purge_due() -> bool {
    let due = PURGE_DUE_AT_MS.load(Ordering::Relaxed);
    due != NO_PURGE_DUE && os::monotonic_ms() >= due
}

/// Purge sweeps started so far; thread caches return their blocks once per sweep.
static SWEEPS: AtomicU64 = AtomicU64::new(0);

/// How many purge sweeps have started.
#[inline(always)]
pub fn sweeps() -> u64 {
    SWEEPS.load(Ordering::Relaxed)
}

/// Runs every process arena's due purge (skipping arenas that are busy: they purge themselves).
#[cold]
pub fn purge_due_arenas() {
    PURGE_DUE_AT_MS.store(NO_PURGE_DUE, Ordering::Relaxed);
    SWEEPS.fetch_add(1, Ordering::Relaxed);
    // Blocks waiting to be handed back are in use to the heaps; freed, they can be purged too.
    crate::arena::drain_all_handed_back(true);
    let visited_all = crate::arena::for_each_idle_arena(|heap| {
        heap.purge_if_due_now();
        if heap.purge_at_ms != 0 {
            note_purge_due(heap.purge_at_ms);
        }
    });
    if !visited_all {
        // A busy arena purges itself if its owner keeps using it; if not, the next look retries.
        note_purge_due(os::monotonic_ms());
    }
}

/// Free blocks at least this large have their inner pages released after the purge delay;
/// smaller ones hold at most a page or two. Lowered from 64 KiB: the holes that strings grown
/// by `realloc` leave behind are mostly 16-32 KiB (peak RSS of `realloc` 1.188 -> 1.172 of
/// glibc's, 5 interleaved rounds; 8 KiB measured the same as 16).
pub const PURGE_MIN_BLOCK: usize = 16 << 10;

/// The purge delay until the heap serves blocks above the default big-allocation cutoff (and
/// unless `BINMALLOC_PURGE_DELAY` sets one). Such a program seldom wants pages back that it
/// left free for 10 ms: peak RSS against glibc's, 10 ms against 200, `gcc` 1.043 -> 1.004,
/// `threads` 1.154 -> 1.117. The price is page faults where purged holes are reused:
/// `spread` 41k -> 51k faults, 0.44 -> 0.46 s of CPU (medians of 12 runs). A program that frees and
/// reallocates big buffers raises the cutoff (see `config::note_big_block_freed`), and for it
/// the long delay is what keeps recycled buffers from faulting their pages in again: `bigbuf`
/// took 0.33 of glibc's time with 10 ms, 0.10 with 200.
pub const QUICK_PURGE_DELAY_MS: u64 = 10;

/// How long a large free block stays free before the purge releases its pages.
pub fn delay_ms() -> u64 {
    let config = crate::config::get();
    delay_for(config.purge_delay_chosen, config.purge_delay_ms, crate::config::mmap_threshold())
}

/// The rule behind [`delay_ms`]: the chosen or configured delay, given whether the user chose
/// it and the big-allocation cutoff now in force.
pub fn delay_for(chosen: bool, configured_ms: u64, mmap_threshold: usize) -> u64 {
    if chosen || mmap_threshold > crate::config::DEFAULT_MMAP_THRESHOLD {
        configured_ms
    } else {
        QUICK_PURGE_DELAY_MS
    }
}

/// The delayed purge: releases the pages inside every free block of at least
/// [`PURGE_MIN_BLOCK`] bytes that has been free for the whole delay (blocks stay listed and
/// mapped, only their physical pages go). Returns when the next block comes due (0: none).
pub fn purge_large_free_blocks(heap: &mut Heap, now: u64) -> u64 {
    let delay = delay_ms();
    let mut released = 0;
    let mut next_due = u64::MAX;
    for bin in bin_for_size(PURGE_MIN_BLOCK)..BIN_COUNT {
        let mut block = heap.bins.head(bin);
        while !block.is_null() {
            // SAFETY: listed blocks are free blocks of this locked heap; those of this size
            // record when they became free.
            let (size, since) = unsafe { (read_header(block).size(), read_free_since(block)) };
            if since != PAGES_RELEASED {
                if now.saturating_sub(since) >= delay {
                    released += release_pages_inside(block, size);
                    // SAFETY: as above.
                    unsafe { write_free_since(block, PAGES_RELEASED) };
                } else {
                    next_due = next_due.min(since + delay);
                }
            }
            // SAFETY: as above.
            block = unsafe { Bins::next_on_list(block) };
        }
    }
    crate::stats::note_purged(released);
    if next_due == u64::MAX { 0 } else { next_due }
}

/// Releases what `heap` does not use; returns the bytes given back.
pub fn purge_heap(heap: &mut Heap) -> usize {
    let mut released = 0;
    let mut region = heap.regions;
    while !region.is_null() {
        // SAFETY: regions on the heap's list are live; the heap's lock is held by the caller.
        let next = unsafe { (*region).next };
        let first = Region::first_block(region);
        // SAFETY: as above.
        let (size, sentinel) = unsafe { ((*region).size, Region::sentinel(region)) };
        // SAFETY: as above; the first block's header is valid by the block invariants.
        if unsafe { Region::is_wholly_free(region) } {
            // SAFETY: the region is one of the heap's and wholly free.
            unsafe { heap.unmap_empty_region(region) };
            released += size;
        } else {
            let mut block = first;
            while block < sentinel {
                // SAFETY: walking block starts inside a live region.
                let h = unsafe { read_header(block) };
                if !h.in_use() {
                    released += release_pages_inside(block, h.size());
                    if h.size() >= FREE_SINCE_MIN_SIZE {
                        // SAFETY: a free block this large records its purge state.
                        unsafe { write_free_since(block, PAGES_RELEASED) };
                    }
                }
                block = block.wrapping_add(h.size());
            }
        }
        region = next;
    }
    crate::stats::note_purged(released);
    released
}

/// Releases the whole pages of a free block past its links and before its footer.
fn release_pages_inside(block: *mut u8, size: usize) -> usize {
    let start = (block as usize + MIN_BLOCK_SIZE).next_multiple_of(PAGE_SIZE);
    let end = (block as usize + size - 8) & !(PAGE_SIZE - 1);
    if end <= start {
        return 0;
    }
    // SAFETY: the pages lie strictly inside a free block, whose only live words (header, links,
    // footer) are outside them.
    unsafe { os::purge(start as *mut u8, end - start) };
    end - start
}

/// Purges every arena; returns the bytes given back.
pub fn purge_all() -> usize {
    let mut released = 0;
    crate::arena::for_each_arena(|heap| released += purge_heap(heap));
    released
}
