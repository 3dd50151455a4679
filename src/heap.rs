//! One heap: the regions it owns and the bins of their free blocks. A heap has no lock of its
//! own; [`crate::arena::Arena`] wraps it in one. Everything here runs with that lock held.
//!
//! Counting invariants (verified by `check::check_heap`): `in_use_bytes` is the sum of the sizes
//! of in-use blocks in the heap's regions; `region_bytes` the sum of their mapped sizes;
//! `empty_regions` the number of regions consisting of a single free block.

use core::ptr::null_mut;

use crate::arena::Arena;
use crate::bins::{Bins, Fit};
use crate::block::{
    block_of, erase_header, next_block, payload_of, read_free_since, read_header, read_prev_footer,
    set_prev_in_use, write_footer, write_free_since, write_header, FREE_SINCE_MIN_SIZE, MIN_BLOCK_SIZE,
    PAGES_RELEASED,
};
use crate::fatal::{self, Misuse};
use crate::os;
use crate::region::{Region, REGION_ALIGN, REGION_OVERHEAD};
use crate::region_map;

/// Wholly free regions a heap keeps mapped, so that a loop allocating and freeing large blocks
/// does not map, fault in and unmap a region every time (the pages of one left unused are still
/// released once it has been free for the purge delay). A fifth empty region makes the heap unmap
/// one (see `limit_empty_regions` for which).
/// Measured on the big-buffer benchmark (with the per-block purge clock): 2 kept → 0.55 s,
/// 261k page faults, 110 MB; 3 → 0.22 s, 83k, 115 MB; 4 → 0.15 s, 63k, 98 MB; 8 → 0.16 s, 55k,
/// 134 MB (glibc 1.1 s, 84 MB).
pub const EMPTY_REGIONS_KEPT: usize = 4;
/// The smallest region a heap maps.
pub const REGION_MIN_SIZE: usize = REGION_ALIGN;
/// Regions grow with the heap (a quarter of what it already maps) up to this size, so a large
/// heap makes few mmap calls while a small one stays small.
pub const REGION_MAX_GROWTH_SIZE: usize = 32 * REGION_ALIGN;
/// No free block smaller than this can span a whole region.
const MIN_REGION_SPAN: usize = REGION_MIN_SIZE - REGION_OVERHEAD;

/// Per-heap counters, kept under the arena lock.
#[derive(Clone, Copy, Default, Debug)]
pub struct HeapCounters {
    pub allocs: u64,
    pub frees: u64,
    pub in_use_bytes: usize,
    pub peak_in_use_bytes: usize,
    pub region_bytes: usize,
    pub regions_mapped: u64,
    pub regions_unmapped: u64,
    pub empty_regions: usize,
}

/// A heap with a purge pending reads the clock once per this many operations.
pub(crate) const PURGE_CLOCK_EVERY: u32 = 16;

pub struct Heap {
    pub(crate) bins: Bins,
    /// The regions this heap owns, most recent first.
    pub(crate) regions: *mut Region,
    /// The arena whose lock guards this heap; regions point back to it.
    pub(crate) owner: *const Arena,
    pub(crate) fit: Fit,
    /// Smallest region this heap maps (0: the growth policy alone decides).
    pub(crate) min_region_size: usize,
    /// The block size of the last request no free block could serve (so a region was mapped).
    last_grow_need: usize,
    /// When (monotonic ms) to release the pages of large free blocks; 0 when nothing waits.
    pub(crate) purge_at_ms: u64,
    /// Heap operations since the clock was last read for a pending purge.
    purge_clock_skips: u32,
    pub(crate) counters: HeapCounters,
    /// Bytes in use gained (or lost, if negative) since the process-wide count last heard.
    in_use_unpublished: isize,
}

impl Heap {
    pub const fn new(fit: Fit) -> Heap {
        Heap {
            bins: Bins::new(),
            regions: null_mut(),
            owner: core::ptr::null(),
            fit,
            min_region_size: 0,
            last_grow_need: 0,
            purge_at_ms: 0,
            purge_clock_skips: 0,
            in_use_unpublished: 0,
            counters: HeapCounters {
                allocs: 0,
                frees: 0,
                in_use_bytes: 0,
                peak_in_use_bytes: 0,
                region_bytes: 0,
                regions_mapped: 0,
                regions_unmapped: 0,
                empty_regions: 0,
            },
        }
    }

    pub fn counters(&self) -> HeapCounters {
        self.counters
    }

    pub fn set_fit(&mut self, fit: Fit) {
        self.fit = fit;
    }

    pub fn set_min_region_size(&mut self, bytes: usize) {
        self.min_region_size = bytes;
    }

    /// Allocates a block of `need` bytes (a value of `block_size_for`) and returns its payload,
    /// mapping a new region if no free block fits; null when the OS has no memory.
    #[inline]
    pub fn alloc(&mut self, need: usize) -> *mut u8 {
        self.purge_if_due(need);
        // SAFETY: the bins invariant holds between calls, under the arena lock.
        let block = match unsafe { self.bins.take(need, self.fit) } {
            Some(block) => block,
            None => match self.grow(need) {
                Some(block) => block,
                None => return null_mut(),
            },
        };
        // SAFETY: `block` is a free block of this heap, off every list, of at least `need` bytes.
        unsafe { self.use_block(block, need) }
    }

    /// Like [`Heap::alloc`] but never maps: for trying other arenas when the OS is out of memory.
    pub fn alloc_without_growing(&mut self, need: usize) -> *mut u8 {
        // SAFETY: as in `alloc`.
        match unsafe { self.bins.take(need, self.fit) } {
            // SAFETY: as in `alloc`.
            Some(block) => unsafe { self.use_block(block, need) },
            None => null_mut(),
        }
    }

    /// Allocates up to `count` blocks of `need` bytes for a thread cache's refill, cutting as
    /// many as fit side by side from each free block chosen (one bin search and one split per
    /// free block rather than per block). Free blocks are chosen as for a single block, so
    /// holes are reused before the heap's large free blocks; a region is mapped only when no
    /// free block fits even one. Returns the first payload, or null when the OS has no memory,
    /// and hands each further payload to `more`.
    pub fn alloc_run(&mut self, need: usize, count: usize, mut more: impl FnMut(*mut u8)) -> *mut u8 {
        debug_assert!(count >= 1);
        self.purge_if_due(need * count);
        let mut first: *mut u8 = null_mut();
        let mut got = 0;
        while got < count {
            // SAFETY: the bins invariant holds between calls, under the arena lock.
            let block = match unsafe { self.bins.take(need, self.fit) } {
                Some(block) => block,
                None if got > 0 => break,
                None => match self.grow(need * count) {
                    Some(block) => block,
                    None => return null_mut(),
                },
            };
            // SAFETY: `block` is a free block of this heap, off every list, of at least `need`.
            got += unsafe {
                self.cut_run(block, need, count - got, |p| {
                    if first.is_null() {
                        first = p;
                    } else {
                        more(p);
                    }
                })
            };
        }
        first
    }

    /// Cuts up to `count` in-use blocks of `need` bytes from the start of the unlisted free
    /// block `block`, hands their payloads to `each` in address order, lists what is left over
    /// and returns how many were cut.
    unsafe fn cut_run(&mut self, block: *mut u8, need: usize, count: usize, mut each: impl FnMut(*mut u8)) -> usize {
        // SAFETY: throughout, `block` is a free block of this heap, off every list, of at least
        // `need` bytes; the blocks cut from it stay inside it.
        unsafe {
            let header = read_header(block);
            let size = header.size();
            if size >= MIN_REGION_SPAN && self.region_if_whole(block, size).is_some() {
                self.counters.empty_regions -= 1;
            }
            let count = count.min(size / need);
            let mut rest = size - need * count;
            // A leftover too small to be a block goes to the last block cut.
            let last_size = if rest < MIN_BLOCK_SIZE { need + core::mem::take(&mut rest) } else { need };
            let mut at = block;
            for i in 0..count {
                let this_size = if i + 1 == count { last_size } else { need };
                write_header(at, this_size, true, i > 0 || header.prev_in_use());
                each(payload_of(at));
                at = next_block(at, this_size);
            }
            if rest > 0 {
                let since = if rest >= FREE_SINCE_MIN_SIZE { read_free_since(block) } else { 0 };
                write_header(at, rest, false, true);
                write_footer(at, rest);
                if rest >= FREE_SINCE_MIN_SIZE {
                    write_free_since(at, since);
                }
                self.bins.insert(at, rest);
            } else {
                set_prev_in_use(at, true);
            }
            self.counters.allocs += count as u64;
            self.note_in_use_grew(size - rest);
            count
        }
    }

    /// Marks the unlisted free block `block` in use, splitting off what `need` leaves over.
    unsafe fn use_block(&mut self, block: *mut u8, need: usize) -> *mut u8 {
        // SAFETY: throughout this function, `block` is a free block of this heap, off every list; the
        // block after it is a valid block of the same region (at worst the sentinel).
        unsafe {
            let header = read_header(block);
            let size = header.size();
            debug_assert!(!header.in_use() && size >= need);
            if size >= MIN_REGION_SPAN && self.region_if_whole(block, size).is_some() {
                self.counters.empty_regions -= 1;
            }
            let used = if size - need >= MIN_BLOCK_SIZE {
                let since = if size - need >= FREE_SINCE_MIN_SIZE { read_free_since(block) } else { 0 };
                write_header(block, need, true, header.prev_in_use());
                let rest = next_block(block, need);
                write_header(rest, size - need, false, true);
                write_footer(rest, size - need);
                if size - need >= FREE_SINCE_MIN_SIZE {
                    write_free_since(rest, since);
                }
                self.bins.insert(rest, size - need);
                need
            } else {
                write_header(block, size, true, header.prev_in_use());
                set_prev_in_use(next_block(block, size), true);
                size
            };
            self.counters.allocs += 1;
            self.note_in_use_grew(used);
            payload_of(block)
        }
    }

    #[inline(always)]
    fn note_in_use_grew(&mut self, bytes: usize) {
        self.counters.in_use_bytes += bytes;
        if self.counters.in_use_bytes > self.counters.peak_in_use_bytes {
            self.counters.peak_in_use_bytes = self.counters.in_use_bytes;
        }
        self.in_use_unpublished += bytes as isize;
    }

    #[inline(always)]
    fn note_in_use_shrank(&mut self, bytes: usize) {
        self.counters.in_use_bytes -= bytes;
        self.in_use_unpublished -= bytes as isize;
    }

    /// Adds the bytes this heap handed out or took back since the last call to the process-wide
    /// count. Called once per lock hold (when the arena's guard is dropped) rather than once per
    /// block: the process-wide count is an atomic on one cache line shared by every arena, which
    /// threads working in different arenas would otherwise pass back and forth for every block
    /// (server benchmark, 4 threads: 0.711 -> 0.670 s, medians of 7 interleaved runs).
    #[inline(always)]
    pub fn publish_in_use(&mut self) {
        let delta = core::mem::take(&mut self.in_use_unpublished);
        if delta > 0 {
            crate::stats::note_in_use_grew(delta as usize);
        } else if delta < 0 {
            crate::stats::note_in_use_shrank(delta.unsigned_abs());
        }
    }

    /// Frees the in-use block `block`; `call` and the payload name the culprit if it is not.
    ///
    /// # Safety
    /// `block` must be a block start in one of this heap's regions with a valid header (the
    /// caller has checked both without the lock; its in-use bit is checked here, under it).
    #[inline(always)]
    pub unsafe fn free_block(&mut self, block: *mut u8, call: &'static str) {
        // SAFETY: forwarded from the caller.
        let header = unsafe { read_header(block) };
        if !header.in_use() {
            let misuse = if call == "free" { Misuse::DoubleFree } else { Misuse::AlreadyFreed };
            fatal::misuse(call, payload_of(block), misuse);
        }
        self.counters.frees += 1;
        self.note_in_use_shrank(header.size());
        self.purge_if_due(header.size());
        // SAFETY: the block is in use and ours.
        unsafe { self.release(block, header.size(), header.prev_in_use(), call) };
    }

    /// Turns the in-use block `block` of `size` bytes into a free one, merging it with free
    /// neighbours by address and listing the result (or unmapping its region if that is now
    /// wholly free and the heap already keeps enough empty regions).
    unsafe fn release(&mut self, block: *mut u8, size: usize, prev_in_use: bool, call: &'static str) {
        let mut start = block;
        let mut merged = size;
        // The largest of the merged pieces and when it became free (None: now); the merged
        // block takes that age, so merging a small block into an old free one does not reset
        // the old one's purge clock.
        let mut dominant: (usize, Option<u64>) = (size, None);
        let since_of = |block: *mut u8, size: usize| {
            // SAFETY: called on free blocks of this heap; those this large record their age.
            (size >= FREE_SINCE_MIN_SIZE).then(|| unsafe { read_free_since(block) })
        };
        // SAFETY: throughout this function, `block` is an in-use block of this heap; a clear PREV_IN_USE
        // bit means the word before it is a free block's footer; the block after it is valid
        // or reported as corrupted before anything is written.
        unsafe {
            if !prev_in_use {
                let prev_size = read_prev_footer(block);
                let prev = block.wrapping_sub(prev_size);
                let prev_header = read_header(prev);
                if prev_size < MIN_BLOCK_SIZE
                    || !prev_header.is_valid_at(prev)
                    || prev_header.in_use()
                    || prev_header.size() != prev_size
                {
                    self.report_bad_neighbour(block, call);
                }
                self.bins.remove(prev, prev_size);
                if prev_size > dominant.0 {
                    dominant = (prev_size, since_of(prev, prev_size));
                }
                start = prev;
                merged += prev_size;
            }
            let next = next_block(block, size);
            let next_header = read_header(next);
            if !next_header.is_valid_at(next) {
                self.report_bad_neighbour(block, call);
            }
            if next_header.in_use() {
                write_header(next, next_header.size(), true, false);
            } else {
                self.bins.remove(next, next_header.size());
                if next_header.size() > dominant.0 {
                    dominant = (next_header.size(), since_of(next, next_header.size()));
                }
                merged += next_header.size();
                // An absorbed header must not look like a block any more: a later free of
                // that address is then diagnosed instead of trusted.
                erase_header(next);
            }
            if start != block {
                erase_header(block);
            }
            write_header(start, merged, false, true);
            write_footer(start, merged);
            if merged >= FREE_SINCE_MIN_SIZE {
                let since = match dominant.1 {
                    // Released pages merged with fresh ones: the fresh ones start the clock.
                    Some(since) if since != PAGES_RELEASED => since,
                    _ => os::monotonic_ms(),
                };
                write_free_since(start, since);
                let due = since + crate::purge::delay_ms();
                if self.purge_at_ms == 0 || due < self.purge_at_ms {
                    self.purge_at_ms = due;
                    crate::purge::note_purge_due(due);
                }
            }
            self.bins.insert(start, merged);
            if merged >= MIN_REGION_SPAN {
                if let Some(region) = self.region_if_whole(start, merged) {
                    self.counters.empty_regions += 1;
                    self.limit_empty_regions(region);
                }
            }
        }
    }

    /// Keeps at most [`EMPTY_REGIONS_KEPT`] wholly free regions after `emptied` became one:
    /// the one to unmap is the smallest kept region if it is too small for the last request that
    /// made the heap map a region (it would not have served it), else `emptied` itself. A heap
    /// serving large blocks so keeps the regions that fit them (big-buffer benchmark, 9
    /// interleaved runs: 0.216 -> 0.177 s, peak RSS 93.8 -> 92.0 MiB, 47.4k -> 34.0k page
    /// faults), while one serving small blocks keeps the regions it emptied first and does not
    /// accumulate ever larger ones.
    fn limit_empty_regions(&mut self, emptied: *mut Region) {
        if self.counters.empty_regions <= EMPTY_REGIONS_KEPT {
            return;
        }
        let mut smallest: Option<(*mut Region, usize)> = None;
        let mut region = self.regions;
        while !region.is_null() {
            // SAFETY: regions on the heap's list are live and their first block's header is
            // valid; the caller holds the heap's lock.
            let (span, empty, next) =
                unsafe { (Region::span(region), Region::is_wholly_free(region), (*region).next) };
            if empty && smallest.is_none_or(|(_, s)| span < s) {
                smallest = Some((region, span));
            }
            region = next;
        }
        let victim = match smallest {
            Some((region, span)) if span < self.last_grow_need => region,
            _ => emptied,
        };
        // SAFETY: the victim is one of this heap's wholly free regions.
        unsafe { self.unmap_empty_region(victim) };
    }

    /// Unlists the one free block of `region`, a wholly free region of this heap counted in
    /// `empty_regions`, and unmaps the region.
    ///
    /// # Safety
    /// `region` must be a live region of this heap, wholly free (its block listed on its bin).
    pub(crate) unsafe fn unmap_empty_region(&mut self, region: *mut Region) {
        // SAFETY: forwarded from the caller: the region's one block is listed on the bin for its
        // span.
        unsafe {
            self.bins.remove(Region::first_block(region), Region::span(region));
            self.unmap_region(region);
        }
        self.counters.empty_regions -= 1;
    }

    /// A neighbour failed its checks: find out whether it was overwritten or `block` is stale.
    /// The walk takes the arena lock, which the caller holds, so it is released first.
    #[cold]
    fn report_bad_neighbour(&mut self, block: *mut u8, call: &'static str) -> ! {
        // SAFETY: we are inside a locked heap operation that will never resume: the process is
        // about to abort, and the walk needs the lock to read headers consistently.
        unsafe { (*self.owner).force_unlock() };
        crate::alloc::diagnose_bad_neighbour(payload_of(block), call)
    }

    /// Releases the pages inside large free blocks once the purge delay has passed. Reading the
    /// clock costs as much as a small heap operation, so operations on blocks under
    /// [`crate::purge::PURGE_MIN_BLOCK`] read it every [`PURGE_CLOCK_EVERY`] operations only;
    /// one on a larger block (`bytes`) reads it every time (such operations are few, and each
    /// may be what keeps many pages resident).
    #[inline(always)]
    pub(crate) fn purge_if_due(&mut self, bytes: usize) {
        if self.purge_at_ms != 0 {
            self.purge_clock_skips += 1;
            if self.purge_clock_skips >= PURGE_CLOCK_EVERY || bytes >= crate::purge::PURGE_MIN_BLOCK {
                self.purge_if_due_now();
            }
        }
    }

    /// Like [`Heap::purge_if_due`], reading the clock now.
    #[cold]
    pub(crate) fn purge_if_due_now(&mut self) {
        self.purge_clock_skips = 0;
        if self.purge_at_ms != 0 {
            let now = os::monotonic_ms();
            if now >= self.purge_at_ms {
                self.purge_at_ms = crate::purge::purge_large_free_blocks(self, now);
                if self.purge_at_ms != 0 {
                    crate::purge::note_purge_due(self.purge_at_ms);
                }
            }
        }
    }

    /// The region, if the free block `block` of `size` bytes is the whole of it.
    unsafe fn region_if_whole(&self, block: *mut u8, size: usize) -> Option<*mut Region> {
        let region = region_map::lookup(block as usize);
        // SAFETY: `block` lies in one of this heap's live regions.
        (Region::first_block(region) == block && size == unsafe { Region::span(region) })
            .then_some(region)
    }

    /// Maps a new region with room for a block of `need` bytes and returns its one free block,
    /// unlisted.
    #[cold]
    fn grow(&mut self, need: usize) -> Option<*mut u8> {
        self.last_grow_need = need;
        let wanted = os::align_up(self.counters.region_bytes / 4, REGION_ALIGN)?
            .clamp(REGION_MIN_SIZE, REGION_MAX_GROWTH_SIZE)
            .max(os::align_up(self.min_region_size, REGION_ALIGN)?);
        let region = Region::create(self.owner, need, wanted)?;
        // SAFETY: the region is fresh and ours; linking it is a list splice under the lock.
        unsafe {
            (*region).next = self.regions;
            if !self.regions.is_null() {
                (*self.regions).prev = region;
            }
            self.regions = region;
            self.counters.region_bytes += (*region).size;
        }
        self.counters.regions_mapped += 1;
        self.counters.empty_regions += 1;
        Some(Region::first_block(region))
    }

    /// Unlinks and unmaps a wholly free region whose free block is on no list.
    pub(crate) unsafe fn unmap_region(&mut self, region: *mut Region) {
        // SAFETY: `region` is on this heap's list and holds no in-use or listed block.
        unsafe {
            let (prev, next) = ((*region).prev, (*region).next);
            if prev.is_null() {
                self.regions = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            self.counters.region_bytes -= (*region).size;
            Region::destroy(region);
        }
        self.counters.regions_unmapped += 1;
    }

    /// Resizes the in-use block `block` to `need` bytes without moving it: shrinking always
    /// works; growing works when the next block is free and large enough.
    ///
    /// # Safety
    /// `block` must be an in-use block of this heap with a valid header.
    pub unsafe fn resize_in_place(&mut self, block: *mut u8, need: usize) -> bool {
        // SAFETY: throughout this function, `block` is in use and ours; its successor is a valid block.
        unsafe {
            let header = read_header(block);
            let size = header.size();
            if need <= size {
                let spare = size - need;
                if spare >= MIN_BLOCK_SIZE {
                    write_header(block, need, true, header.prev_in_use());
                    let rest = next_block(block, need);
                    write_header(rest, spare, true, true);
                    self.note_in_use_shrank(spare);
                    self.release(rest, spare, true, "realloc");
                }
                return true;
            }
            let next = next_block(block, size);
            let next_header = read_header(next);
            if !next_header.is_valid_at(next) {
                self.report_bad_neighbour(block, "realloc");
            }
            if next_header.in_use() || size + next_header.size() < need {
                return false;
            }
            self.bins.remove(next, next_header.size());
            let total = size + next_header.size();
            let used = if total - need >= MIN_BLOCK_SIZE {
                let since = if total - need >= FREE_SINCE_MIN_SIZE { read_free_since(next) } else { 0 };
                write_header(block, need, true, header.prev_in_use());
                let rest = next_block(block, need);
                write_header(rest, total - need, false, true);
                write_footer(rest, total - need);
                if total - need >= FREE_SINCE_MIN_SIZE {
                    write_free_since(rest, since);
                }
                self.bins.insert(rest, total - need);
                need
            } else {
                write_header(block, total, true, header.prev_in_use());
                set_prev_in_use(next_block(block, total), true);
                total
            };
            self.note_in_use_grew(used - size);
            true
        }
    }

    /// Allocates a block of `need` bytes whose payload is aligned to `align` (a power of two
    /// above the natural alignment), by over-allocating and freeing the misaligned front.
    pub fn alloc_aligned(&mut self, need: usize, align: usize) -> *mut u8 {
        let Some(padded) = need.checked_add(align).and_then(|n| n.checked_add(MIN_BLOCK_SIZE)) else {
            return null_mut();
        };
        let payload = self.alloc(padded);
        if payload.is_null() {
            return payload;
        }
        let mut aligned = (payload as usize + align - 1) & !(align - 1);
        if aligned != payload as usize && aligned - (payload as usize) < MIN_BLOCK_SIZE {
            aligned += align;
        }
        let gap = aligned - payload as usize;
        let mut block = block_of(payload);
        // SAFETY: `block` was just allocated from this heap; splitting `gap` bytes (a multiple
        // of 16, at least a minimum block, less than its size minus `need`) off its front leaves
        // two well-formed blocks.
        unsafe {
            if gap != 0 {
                let header = read_header(block);
                let aligned_block = next_block(block, gap);
                write_header(aligned_block, header.size() - gap, true, false);
                write_header(block, gap, true, header.prev_in_use());
                self.note_in_use_shrank(gap);
                self.release(block, gap, header.prev_in_use(), "memalign");
                block = aligned_block;
            }
            self.resize_in_place(block, need);
        }
        payload_of(block)
    }

    /// The number of free blocks on the bins and their total size.
    pub fn free_census(&self) -> (usize, usize) {
        (0..crate::size_class::BIN_COUNT).map(|bin| self.bin_census(bin)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// The number of free blocks on one bin and their total size.
    pub fn bin_census(&self, bin: usize) -> (usize, usize) {
        let (mut count, mut bytes) = (0, 0);
        let mut block = self.bins.head(bin);
        while !block.is_null() {
            // SAFETY: listed blocks are free blocks of this heap.
            bytes += unsafe { read_header(block) }.size();
            count += 1;
            // SAFETY: as above.
            block = unsafe { Bins::next_on_list(block) };
        }
        (count, bytes)
    }

    /// Unmaps every region, forgetting all blocks (for destroying a whole heap at once).
    pub fn release_everything(&mut self) {
        let mut region = self.regions;
        while !region.is_null() {
            // SAFETY: the heap owns these regions; after this loop nothing refers to them.
            unsafe {
                let next = (*region).next;
                self.counters.region_bytes -= (*region).size;
                Region::destroy(region);
                region = next;
            }
            self.counters.regions_unmapped += 1;
        }
        self.publish_in_use();
        crate::stats::note_in_use_shrank(self.counters.in_use_bytes);
        let kept = self.counters;
        let (owner, min_region_size) = (self.owner, self.min_region_size);
        *self = Heap::new(self.fit);
        self.owner = owner;
        self.min_region_size = min_region_size;
        self.counters.allocs = kept.allocs;
        self.counters.frees = kept.frees;
        self.counters.regions_mapped = kept.regions_mapped;
        self.counters.regions_unmapped = kept.regions_unmapped;
    }
}
