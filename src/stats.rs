//! Counters: process-wide atomics for what crosses the OS boundary and for bytes in use, plus a
//! summary gathered from every arena's own counters (kept under its lock).

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::fmt::{Bytes, StackBuf};

static MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);
static IN_USE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_IN_USE_BYTES: AtomicUsize = AtomicUsize::new(0);
static REGIONS_MAPPED: AtomicU64 = AtomicU64::new(0);
static REGIONS_RETURNED: AtomicU64 = AtomicU64::new(0);
static BIG_MAPPINGS: AtomicU64 = AtomicU64::new(0);
static BIG_UNMAPPINGS: AtomicU64 = AtomicU64::new(0);
static PURGED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts bytes of free pages given back to the OS while staying mapped.
pub fn note_purged(bytes: usize) {
    PURGED_BYTES.fetch_add(bytes as u64, Relaxed);
}

fn raise_peak(peak: &AtomicUsize, now: usize) {
    if now > peak.load(Relaxed) {
        peak.fetch_max(now, Relaxed);
    }
}

pub fn note_mapped(bytes: usize) {
    let now = MAPPED_BYTES.fetch_add(bytes, Relaxed) + bytes;
    raise_peak(&PEAK_MAPPED_BYTES, now);
    REGIONS_MAPPED.fetch_add(1, Relaxed);
}

pub fn note_unmapped(bytes: usize, whole_region: bool) {
    MAPPED_BYTES.fetch_sub(bytes, Relaxed);
    if whole_region {
        REGIONS_RETURNED.fetch_add(1, Relaxed);
    }
}

pub fn note_big_mapped(bytes: usize) {
    let now = MAPPED_BYTES.fetch_add(bytes, Relaxed) + bytes;
    raise_peak(&PEAK_MAPPED_BYTES, now);
    BIG_MAPPINGS.fetch_add(1, Relaxed);
    let in_use = IN_USE_BYTES.fetch_add(bytes, Relaxed) + bytes;
    raise_peak(&PEAK_IN_USE_BYTES, in_use);
}

pub fn note_big_resized(old: usize, new: usize) {
    if new >= old {
        let now = MAPPED_BYTES.fetch_add(new - old, Relaxed) + (new - old);
        raise_peak(&PEAK_MAPPED_BYTES, now);
        let in_use = IN_USE_BYTES.fetch_add(new - old, Relaxed) + (new - old);
        raise_peak(&PEAK_IN_USE_BYTES, in_use);
    } else {
        MAPPED_BYTES.fetch_sub(old - new, Relaxed);
        IN_USE_BYTES.fetch_sub(old - new, Relaxed);
    }
}

pub fn note_big_unmapped(bytes: usize) {
    MAPPED_BYTES.fetch_sub(bytes, Relaxed);
    IN_USE_BYTES.fetch_sub(bytes, Relaxed);
    BIG_UNMAPPINGS.fetch_add(1, Relaxed);
}

#[inline(always)]
pub fn note_in_use_grew(bytes: usize) {
    let now = IN_USE_BYTES.fetch_add(bytes, Relaxed) + bytes;
    raise_peak(&PEAK_IN_USE_BYTES, now);
}

#[inline(always)]
pub fn note_in_use_shrank(bytes: usize) {
    IN_USE_BYTES.fetch_sub(bytes, Relaxed);
}

/// A snapshot of every counter.
#[derive(Clone, Copy, Default, Debug)]
pub struct Summary {
    pub mapped_bytes: usize,
    pub peak_mapped_bytes: usize,
    pub in_use_bytes: usize,
    pub peak_in_use_bytes: usize,
    pub allocations: u64,
    pub frees: u64,
    pub regions_mapped: u64,
    pub regions_returned: u64,
    pub big_mappings: u64,
    pub big_unmappings: u64,
    pub purged_bytes: u64,
    pub arenas: usize,
    /// Blocks the arenas' heaps handed out and took back: the calls (and cache refills and
    /// returns) that went past the thread caches.
    pub heap_allocs: u64,
    pub heap_frees: u64,
}

/// Gathers the process-wide counters and the sums of every arena's counters.
pub fn summary() -> Summary {
    let mut s = Summary {
        mapped_bytes: MAPPED_BYTES.load(Relaxed),
        peak_mapped_bytes: PEAK_MAPPED_BYTES.load(Relaxed),
        in_use_bytes: IN_USE_BYTES.load(Relaxed),
        peak_in_use_bytes: PEAK_IN_USE_BYTES.load(Relaxed),
        regions_mapped: REGIONS_MAPPED.load(Relaxed),
        regions_returned: REGIONS_RETURNED.load(Relaxed),
        big_mappings: BIG_MAPPINGS.load(Relaxed),
        big_unmappings: BIG_UNMAPPINGS.load(Relaxed),
        purged_bytes: PURGED_BYTES.load(Relaxed),
        ..Summary::default()
    };
    crate::thread_cache::publish_this_thread();
    let (allocations, frees) = crate::thread_cache::published_calls();
    s.allocations = allocations;
    s.frees = frees;
    crate::arena::for_each_arena(|heap| {
        s.arenas += 1;
        s.heap_allocs += heap.counters.allocs;
        s.heap_frees += heap.counters.frees;
    });
    s
}

/// Writes the human-readable summary to `fd`.
pub fn print_text(fd: i32) {
    let s = summary();
    let mut out = StackBuf::<1024>::new();
    let _ = writeln!(
        out,
        "binmalloc: OS memory: {} mapped now, {} at peak; {} regions mapped, {} returned to the OS; {} of free pages released",
        Bytes(s.mapped_bytes),
        Bytes(s.peak_mapped_bytes),
        s.regions_mapped,
        s.regions_returned,
        Bytes(s.purged_bytes as usize)
    );
    let _ = writeln!(
        out,
        "binmalloc: in use: {} now, {} at peak",
        Bytes(s.in_use_bytes),
        Bytes(s.peak_in_use_bytes)
    );
    let _ = writeln!(
        out,
        "binmalloc: calls: {} allocations, {} frees; {} big mappings, {} unmapped; {} arenas",
        s.allocations, s.frees, s.big_mappings, s.big_unmappings, s.arenas
    );
    let _ = writeln!(
        out,
        "binmalloc: heap blocks (past the thread caches): {} allocated, {} freed",
        s.heap_allocs, s.heap_frees
    );
    out.flush_to(fd);
}

impl Summary {
    /// Writes the counters as one JSON object (no trailing newline).
    pub fn write_json(&self, out: &mut impl Write) -> core::fmt::Result {
        write!(
            out,
            "{{\"mapped_bytes\":{},\"peak_mapped_bytes\":{},\"in_use_bytes\":{},\"peak_in_use_bytes\":{},\
             \"allocations\":{},\"frees\":{},\"regions_mapped\":{},\"regions_returned\":{},\
             \"big_mappings\":{},\"big_unmappings\":{},\"purged_bytes\":{},\"arenas\":{}}}",
            self.mapped_bytes,
            self.peak_mapped_bytes,
            self.in_use_bytes,
            self.peak_in_use_bytes,
            self.allocations,
            self.frees,
            self.regions_mapped,
            self.regions_returned,
            self.big_mappings,
            self.big_unmappings,
            self.purged_bytes,
            self.arenas
        )
    }
}

/// Writes the summary as one JSON object to `fd`.
pub fn print_json(fd: i32) {
    let mut out = StackBuf::<1024>::new();
    let _ = summary().write_json(&mut out);
    let _ = writeln!(out);
    out.flush_to(fd);
}

/// What `mallinfo2` reports, gathered from every arena and the big-block table.
#[derive(Clone, Copy, Default, Debug)]
pub struct HeapInfo {
    pub region_bytes: usize,
    pub in_use_bytes: usize,
    pub free_blocks: usize,
    pub free_bytes: usize,
    pub big_blocks: usize,
    pub big_bytes: usize,
}

pub fn heap_info() -> HeapInfo {
    let mut info = HeapInfo::default();
    crate::arena::for_each_arena(|heap| {
        let c = heap.counters();
        let (blocks, bytes) = heap.free_census();
        info.region_bytes += c.region_bytes;
        info.in_use_bytes += c.in_use_bytes;
        info.free_blocks += blocks;
        info.free_bytes += bytes;
    });
    let (big_blocks, big_bytes) = crate::large::census();
    info.big_blocks = big_blocks;
    info.big_bytes = big_bytes;
    info
}
