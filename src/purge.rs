//! Returning free memory to the OS without giving up address ranges still in use: wholly free
//! regions are unmapped, and the pages strictly inside large free blocks are released with
//! `madvise(MADV_DONTNEED)` (the block's header, links and footer stay resident).

use crate::block::{read_header, MIN_BLOCK_SIZE};
use crate::heap::Heap;
use crate::os::{self, PAGE_SIZE};
use crate::region::Region;

/// Releases what `heap` does not use; returns the bytes given back.
pub fn purge_heap(heap: &mut Heap) -> usize {
    let mut released = 0;
    let mut region = heap.regions;
    while !region.is_null() {
        // SAFETY: regions on the heap's list are live; the heap's lock is held by the caller.
        let next = unsafe { (*region).next };
        let first = Region::first_block(region);
        // SAFETY: as above.
        let (span, size, sentinel) = unsafe { (Region::span(region), (*region).size, Region::sentinel(region)) };
        // SAFETY: the first block's header is valid by the block invariants.
        let first_header = unsafe { read_header(first) };
        if !first_header.in_use() && first_header.size() == span {
            // SAFETY: the region is wholly free: its one block is listed on the bin for `span`.
            unsafe {
                heap.bins.remove(first, span);
                heap.counters.empty_regions -= 1;
                heap.unmap_region(region);
            }
            released += size;
        } else {
            let mut block = first;
            while block < sentinel {
                // SAFETY: walking block starts inside a live region.
                let h = unsafe { read_header(block) };
                if !h.in_use() {
                    released += release_pages_inside(block, h.size());
                }
                block = block.wrapping_add(h.size());
            }
        }
        region = next;
    }
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
