//! Regions: mmap'd spans, aligned to [`REGION_ALIGN`], carved into blocks.
//!
//! ```text
//!  region base (REGION_ALIGN-aligned)                                   base + size
//!  |                                                                             |
//!  +---------------+------+---------+------+---------+-- ... --+------+----------+
//!  | Region header | pad  | block   | block | block  |          | block | sentinel |
//!  +---------------+------+---------+------+---------+-- ... --+------+----------+
//!                         ^ first_block (≡ 8 mod 16)                  ^ size 0, in use
//! ```

use core::ptr::null_mut;

use crate::arena::Arena;
use crate::block::{read_header, write_header, ALIGNMENT, HEADER_SIZE};
use crate::os;

/// Regions start on this boundary so that [`crate::region_map`] can find a pointer's region from
/// its high bits; regions are whole multiples of it.
pub const REGION_ALIGN: usize = 1 << 20;
/// With `BINMALLOC_HUGEPAGES=1`, regions this large ask for transparent huge pages. A 2 MiB page
/// needs one TLB entry and one page fault where 512 small pages need 512 of each; but a huge
/// page touched anywhere is resident whole, so only regions of a large heap (a region is at
/// least a quarter of the heap's regions, or one large request) ask, where the partly carved
/// huge page at the frontier is a small share. Measured on 5-7 interleaved runs, against no
/// advice: regions of 16 MiB and more: mixed sizes 0.85 of the time (peak RSS +0.9 MiB of
/// 163), big buffers 0.77 (+1.1 MiB of 94), python, perl, gcc and `realloc` unchanged; of 8 MiB
/// and more: 0.78 and 0.65, but `realloc`'s peak RSS +2.1 MiB of 33 and perl's +1.5 of 66; of
/// 2 MiB and more: `gcc` +2.1 MiB of 69. Off by default: after a purge the memory-return test
/// (1 GiB freed by 3 threads) kept 15.3-16.2 MiB resident instead of 13.4-13.6, and
/// khugepaged, which by default collapses any 2 MiB range with one page present, would fill
/// purged ranges again.
pub const HUGE_PAGE_REGION_MIN: usize = 16 << 20;
/// Written into every region header; the checker verifies it.
pub const REGION_MAGIC: usize = 0x6269_6e6d_616c_6c63; // "binmallc"

#[repr(C)]
pub struct Region {
    pub magic: usize,
    /// The arena (lock and heap) that owns every block in this region.
    pub arena: *const Arena,
    /// Bytes mapped, a multiple of [`REGION_ALIGN`].
    pub size: usize,
    /// The owning heap's list of regions.
    pub next: *mut Region,
    pub prev: *mut Region,
}

/// Offset of the first block: past the header, at an address ≡ 8 (mod 16) so payloads align.
pub const FIRST_BLOCK_OFFSET: usize =
    (core::mem::size_of::<Region>() + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT + HEADER_SIZE;
/// Bytes of a region that no block can use: the header and the end sentinel.
pub const REGION_OVERHEAD: usize = FIRST_BLOCK_OFFSET + HEADER_SIZE;

const _: () = assert!(FIRST_BLOCK_OFFSET % ALIGNMENT == HEADER_SIZE);
const _: () = assert!(REGION_ALIGN.is_power_of_two() && REGION_ALIGN % os::PAGE_SIZE == 0);

impl Region {
    #[inline(always)]
    pub fn first_block(this: *const Region) -> *mut u8 {
        (this as usize + FIRST_BLOCK_OFFSET) as *mut u8
    }
    /// The end sentinel: a header of size 0 marked in use, so coalescing stops there.
    ///
    /// # Safety
    /// `this` must be a live region.
    #[inline(always)]
    pub unsafe fn sentinel(this: *const Region) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        (this as usize + unsafe { (*this).size } - HEADER_SIZE) as *mut u8
    }
    /// Bytes between the first block and the sentinel: the size of the one free block an empty
    /// region holds.
    ///
    /// # Safety
    /// `this` must be a live region.
    #[inline(always)]
    pub unsafe fn span(this: *const Region) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { (*this).size - REGION_OVERHEAD }
    }
    /// Whether the region is one free block (its first block spans it).
    ///
    /// # Safety
    /// `this` must be a live region whose first block's header is valid (the caller holds its
    /// heap's lock).
    #[inline]
    pub unsafe fn is_wholly_free(this: *const Region) -> bool {
        // SAFETY: forwarded from the caller.
        let first = unsafe { read_header(Self::first_block(this)) };
        // SAFETY: as above.
        !first.in_use() && first.size() == unsafe { Self::span(this) }
    }
    /// Whether `p` lies in the block area of the region.
    ///
    /// # Safety
    /// `this` must be a live region.
    #[inline(always)]
    pub unsafe fn contains(this: *const Region, p: usize) -> bool {
        // SAFETY: forwarded from the caller.
        p >= Self::first_block(this) as usize && p < unsafe { Self::sentinel(this) } as usize
    }

    /// Maps a region of at least `span_needed` usable bytes and at least `min_size` bytes,
    /// formats it as one free block (left unlisted for the caller) and registers it.
    /// Returns the region; its single free block is `first_block`.
    pub fn create(arena: *const Arena, span_needed: usize, min_size: usize) -> Option<*mut Region> {
        let size = os::align_up(span_needed.checked_add(REGION_OVERHEAD)?, REGION_ALIGN)?.max(min_size);
        let base = os::map_aligned(size, REGION_ALIGN)?.as_ptr();
        if size >= HUGE_PAGE_REGION_MIN && crate::config::get().huge_pages {
            // SAFETY: the mapping is fresh, page-aligned and ours.
            unsafe { os::advise_huge_pages(base, size) };
        }
        let region = base.cast::<Region>();
        // SAFETY: the mapping is fresh, writable, aligned and large enough for the header, and
        // the first block and sentinel offsets lie inside it.
        unsafe {
            region.write(Region { magic: REGION_MAGIC, arena, size, next: null_mut(), prev: null_mut() });
            let first = Self::first_block(region);
            let span = Self::span(region);
            write_header(first, span, false, true);
            crate::block::write_footer(first, span);
            if span >= crate::block::FREE_SINCE_MIN_SIZE {
                // Fresh pages were never touched: nothing to release.
                crate::block::write_free_since(first, crate::block::PAGES_RELEASED);
            }
            write_header(Self::sentinel(region), 0, true, false);
        }
        if !crate::region_map::register(region, size, crate::arena::number_of(arena)) {
            // SAFETY: nothing else knows about the mapping yet.
            unsafe { os::unmap(base, size) };
            return None;
        }
        crate::stats::note_mapped(size);
        Some(region)
    }

    /// Unregisters and unmaps a region.
    ///
    /// # Safety
    /// No block in the region may be in use or on a list, and the region must be off its heap's
    /// region list.
    pub unsafe fn destroy(this: *mut Region) {
        // SAFETY: forwarded from the caller.
        let size = unsafe { (*this).size };
        crate::region_map::unregister(this, size);
        // SAFETY: forwarded from the caller; the map no longer leads anyone here.
        unsafe { os::unmap(this.cast(), size) };
        crate::stats::note_unmapped(size, true);
    }
}
