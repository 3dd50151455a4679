//! The whole-heap invariant checker: walks every region block by block and every bin list, and
//! verifies the invariants written in `block.rs`, `bins.rs` and `heap.rs`. Used by the tests,
//! by `binmalloc_check_heap()` and by `BINMALLOC_CHECK=N`.

use core::fmt::Write;

use crate::block::{read_free_since, read_header, FREE_SINCE_MIN_SIZE, MIN_BLOCK_SIZE, PAGES_RELEASED, SIZE_GRANULE};
use crate::bins::Bins;
use crate::fmt::StackBuf;
use crate::heap::Heap;
use crate::region::{Region, REGION_ALIGN, REGION_MAGIC};
use crate::region_map;
use crate::size_class::{bin_for_size, BIN_COUNT};

/// Where problems go: counted always, and described on stderr when `report` is set.
pub struct Findings {
    pub errors: usize,
    report: bool,
}

impl Findings {
    pub fn new(report: bool) -> Findings {
        Findings { errors: 0, report }
    }

    fn fail(&mut self, what: &str, at: usize) {
        self.errors += 1;
        if self.report && self.errors <= 20 {
            let mut line = StackBuf::<200>::new();
            let _ = writeln!(line, "binmalloc: heap check: {} at {:#x}", what, at);
            line.flush_to(2);
        }
    }
}

/// Verifies one heap (its lock must be held by the caller) and adds what is wrong to `findings`.
pub fn check_heap(heap: &Heap, findings: &mut Findings) {
    let mut free_blocks_walked = 0usize;
    let mut in_use_bytes = 0usize;
    let mut region_bytes = 0usize;
    let mut empty_regions = 0usize;
    let mut region = heap.regions;
    let mut prev_region: *mut Region = core::ptr::null_mut();
    while !region.is_null() {
        // SAFETY: regions on a heap's list are live mappings with initialised headers.
        let r = unsafe { &*region };
        if r.magic != REGION_MAGIC {
            findings.fail("region header magic is wrong", region as usize);
            return;
        }
        if r.arena != heap.owner {
            findings.fail("region does not point back to its arena", region as usize);
        }
        if r.prev != prev_region {
            findings.fail("region list back link is wrong", region as usize);
        }
        if r.size % REGION_ALIGN != 0 || region as usize % REGION_ALIGN != 0 {
            findings.fail("region is not aligned to whole chunks", region as usize);
        }
        let mut chunk = region as usize;
        while chunk < region as usize + r.size {
            if region_map::lookup(chunk) != region {
                findings.fail("region map does not lead to the region", chunk);
            }
            chunk += REGION_ALIGN;
        }
        region_bytes += r.size;
        let walked = walk_region(region, findings);
        free_blocks_walked += walked.free_blocks;
        in_use_bytes += walked.in_use_bytes;
        empty_regions += walked.is_empty as usize;
        prev_region = region;
        region = r.next;
    }
    let listed = check_bins(heap, free_blocks_walked, findings);
    if listed != free_blocks_walked {
        findings.fail("free blocks in regions and on bins differ in number", listed);
    }
    let c = heap.counters();
    if c.in_use_bytes != in_use_bytes {
        findings.fail("in-use byte counter disagrees with the blocks", c.in_use_bytes);
    }
    if c.region_bytes != region_bytes {
        findings.fail("region byte counter disagrees with the regions", c.region_bytes);
    }
    if c.empty_regions != empty_regions {
        findings.fail("empty region counter disagrees with the regions", c.empty_regions);
    }
}

struct RegionWalk {
    free_blocks: usize,
    in_use_bytes: usize,
    is_empty: bool,
}

fn walk_region(region: *mut Region, findings: &mut Findings) -> RegionWalk {
    let mut walk = RegionWalk { free_blocks: 0, in_use_bytes: 0, is_empty: false };
    let first = Region::first_block(region);
    // SAFETY: `region` is live (checked magic above).
    let sentinel = unsafe { Region::sentinel(region) };
    let mut block = first;
    let mut prev_in_use = true;
    while block < sentinel {
        // SAFETY: `block` is inside the region, 8-aligned (sizes are multiples of 16).
        let h = unsafe { read_header(block) };
        if !h.is_valid_at(block) {
            findings.fail("block header tag is invalid", block as usize);
            return walk;
        }
        let size = h.size();
        if size < MIN_BLOCK_SIZE || size % SIZE_GRANULE != 0 || size > sentinel as usize - block as usize {
            findings.fail("block size is impossible", block as usize);
            return walk;
        }
        if h.prev_in_use() != prev_in_use {
            findings.fail("PREV_IN_USE bit disagrees with the previous block", block as usize);
        }
        if h.in_use() {
            walk.in_use_bytes += size;
        } else {
            if !prev_in_use {
                findings.fail("two adjacent free blocks", block as usize);
            }
            // SAFETY: the footer is the last word of this free block, inside the region.
            let footer = unsafe { block.add(size - 8).cast::<usize>().read() };
            if footer != size {
                findings.fail("free block footer disagrees with its header", block as usize);
            }
            if size >= FREE_SINCE_MIN_SIZE {
                // SAFETY: a free block this large records when it became free.
                let since = unsafe { read_free_since(block) };
                if since != PAGES_RELEASED && since > crate::os::monotonic_ms() {
                    findings.fail("large free block became free in the future", block as usize);
                }
            }
            walk.free_blocks += 1;
            // SAFETY: `region` is live.
            if block == first && size == unsafe { Region::span(region) } {
                walk.is_empty = true;
            }
        }
        prev_in_use = h.in_use();
        block = block.wrapping_add(size);
    }
    if block != sentinel {
        findings.fail("blocks do not end exactly at the sentinel", block as usize);
        return walk;
    }
    // SAFETY: the sentinel is the last word of the region.
    let h = unsafe { read_header(sentinel) };
    if !h.is_valid_at(sentinel) || h.size() != 0 || !h.in_use() || h.prev_in_use() != prev_in_use {
        findings.fail("region end sentinel is damaged", sentinel as usize);
    }
    walk
}

/// Checks every bin list and the bitmap; returns the number of blocks listed.
fn check_bins(heap: &Heap, free_blocks: usize, findings: &mut Findings) -> usize {
    let mut listed = 0;
    for bin in 0..BIN_COUNT {
        let head = heap.bins.head(bin);
        if heap.bins.bit_is_set(bin) != !head.is_null() {
            findings.fail("bin bitmap disagrees with the bin list", bin);
        }
        let mut block = head;
        let mut prev = core::ptr::null_mut();
        while !block.is_null() {
            if listed > free_blocks {
                findings.fail("bin lists hold more blocks than the regions (a cycle?)", bin);
                return listed;
            }
            let region = region_map::lookup(block as usize);
            // SAFETY: non-null lookups are live regions.
            if region.is_null() || unsafe { (*region).arena } != heap.owner {
                findings.fail("listed block is not in this heap's regions", block as usize);
                return listed;
            }
            // SAFETY: `block` lies in a live region of this heap.
            let h = unsafe { read_header(block) };
            if !h.is_valid_at(block) || h.in_use() {
                findings.fail("listed block is not a valid free block", block as usize);
                return listed;
            }
            if bin_for_size(h.size()) != bin {
                findings.fail("free block is on the wrong bin", block as usize);
            }
            // SAFETY: listed free blocks carry their links.
            if unsafe { Bins::prev_on_list(block) } != prev {
                findings.fail("bin list back link is wrong", block as usize);
            }
            listed += 1;
            prev = block;
            // SAFETY: as above.
            block = unsafe { Bins::next_on_list(block) };
        }
    }
    listed
}

/// Checks every arena; returns the number of problems found.
pub fn check_all_arenas(report: bool) -> usize {
    let mut findings = Findings::new(report);
    crate::arena::for_each_arena(|heap| check_heap(heap, &mut findings));
    findings.errors
}
