//! The block layout: every invariant of how blocks sit in a region lives here, and no other file
//! computes a header or footer offset.
//!
//! ```text
//!  block address b (b % 16 == 8)
//!  |
//!  v
//!  +--------+---------------------------------------------+
//!  | header | payload (in use)                            |   in-use block
//!  +--------+---------------------------------------------+
//!           ^ payload = b + 8, 16-byte aligned
//!
//!  +--------+--------+--------+------------------+--------+
//!  | header |  next  |  prev  |   (stale data)   | footer |   free block
//!  +--------+--------+--------+------------------+--------+
//!                                                 = block size, read by the next block
//! ```
//!
//! The header word: bits 0..4 are flags, bits 4..48 the block size (a multiple of 16, header
//! included), bits 48..64 a tag derived from the block's address, its size and flags, and a secret
//! chosen at start-up. A header overwritten by a buffer overflow or a pointer that is not a block
//! start almost never carries a valid tag (1 in 65536), which is how misuse is caught cheaply.
//!
//! Invariants (verified by `check::check_heap`):
//! 1. Blocks tile a region exactly from its first block to its end sentinel (size 0, in use).
//! 2. `PREV_IN_USE` of a block equals `IN_USE` of the block before it; a region's first block
//!    has `PREV_IN_USE` set.
//! 3. A free block's footer equals its size; no two free blocks are adjacent.
//! 4. Every free block is on exactly the bin that `size_class::bin_for_size` names.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of bookkeeping in front of every payload.
pub const HEADER_SIZE: usize = 8;
/// Alignment of every payload, as the C standard requires for `max_align_t` on x86-64.
pub const ALIGNMENT: usize = 16;
/// A free block holds header, two links and a footer.
pub const MIN_BLOCK_SIZE: usize = 4 * 8;
/// Block sizes are multiples of this.
pub const SIZE_GRANULE: usize = ALIGNMENT;
/// Largest request the block layout can describe (sizes occupy bits 4..48).
pub const MAX_BLOCK_SIZE: usize = (1 << 48) - SIZE_GRANULE;

const IN_USE: usize = 1 << 0;
const PREV_IN_USE: usize = 1 << 1;
const FLAG_MASK: usize = 0xf;
const SIZE_MASK: usize = ((1 << 48) - 1) & !FLAG_MASK;
const TAG_SHIFT: u32 = 48;

const _: () = assert!(MIN_BLOCK_SIZE % SIZE_GRANULE == 0);
const _: () = assert!(HEADER_SIZE < ALIGNMENT && (ALIGNMENT - HEADER_SIZE) % 8 == 0);

/// Mixed into every tag so that an attacker or a stray write cannot forge headers by accident.
static TAG_SECRET: AtomicUsize = AtomicUsize::new(0x5bd1_e995_9e37_79b9);

/// Sets the tag secret; must run before the first block is written.
pub fn set_tag_secret(secret: usize) {
    TAG_SECRET.store(secret | 1, Ordering::Relaxed);
}

/// A block's address and the low bits of its header word, hashed with the secret: its top
/// bits are the tag.
#[inline(always)]
fn mix(block: usize, low: usize) -> usize {
    (block ^ low ^ TAG_SECRET.load(Ordering::Relaxed)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[inline(always)]
fn tag_for(block: usize, low: usize) -> usize {
    (mix(block, low) >> TAG_SHIFT) << TAG_SHIFT
}

/// The decoded header word of one block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header(usize);

impl Header {
    #[inline(always)]
    pub fn size(self) -> usize {
        self.0 & SIZE_MASK
    }
    #[inline(always)]
    pub fn in_use(self) -> bool {
        self.0 & IN_USE != 0
    }
    #[inline(always)]
    pub fn prev_in_use(self) -> bool {
        self.0 & PREV_IN_USE != 0
    }
    /// Whether the tag matches the block address this header was read from.
    #[inline(always)]
    pub fn is_valid_at(self, block: *mut u8) -> bool {
        let low = self.0 & !(usize::MAX << TAG_SHIFT);
        // The same test as `self.0 == low | tag_for(..)`, without masking the tag out first.
        (self.0 ^ mix(block as usize, low)) >> TAG_SHIFT == 0
    }
}

#[inline(always)]
fn header_cell<'a>(block: *mut u8) -> &'a AtomicUsize {
    // SAFETY: for every caller, every block address is 8-aligned and inside a live region; header words
    // are read and written through atomics because `free` reads a block's header before taking the
    // arena lock while the owner of the previous block may be rewriting its PREV_IN_USE bit.
    unsafe { AtomicUsize::from_ptr(block.cast()) }
}

/// Reads the header of the block at `block`.
///
/// # Safety
/// `block` must be an 8-aligned address inside a region binmalloc mapped.
#[inline(always)]
pub unsafe fn read_header(block: *mut u8) -> Header {
    Header(header_cell(block).load(Ordering::Relaxed))
}

/// Writes a fresh header for a block of `size` bytes.
///
/// # Safety
/// `block` must be a block start inside a region binmalloc mapped, owned by the caller.
#[inline(always)]
pub unsafe fn write_header(block: *mut u8, size: usize, in_use: bool, prev_in_use: bool) {
    debug_assert!(size % SIZE_GRANULE == 0 && size <= MAX_BLOCK_SIZE, "bad block size {size}");
    let low = size | if in_use { IN_USE } else { 0 } | if prev_in_use { PREV_IN_USE } else { 0 };
    header_cell(block).store(low | tag_for(block as usize, low), Ordering::Relaxed);
}

/// Overwrites the header of a block that was just merged into its neighbour, so the address
/// no longer carries a valid tag.
///
/// # Safety
/// `block` must lie inside a free block owned by the caller's locked heap.
#[inline(always)]
pub unsafe fn erase_header(block: *mut u8) {
    header_cell(block).store(0, Ordering::Relaxed);
}

/// Rewrites only the `PREV_IN_USE` bit of the block at `block`, keeping its size and state.
///
/// # Safety
/// As for [`write_header`]; the header at `block` must be valid.
#[inline(always)]
pub unsafe fn set_prev_in_use(block: *mut u8, prev_in_use: bool) {
    // SAFETY: forwarded from the caller.
    let h = unsafe { read_header(block) };
    // SAFETY: forwarded from the caller.
    unsafe { write_header(block, h.size(), h.in_use(), prev_in_use) }
}

/// The payload handed to the user for the block at `block`.
#[inline(always)]
pub fn payload_of(block: *mut u8) -> *mut u8 {
    block.wrapping_add(HEADER_SIZE)
}

/// The block whose payload is `payload`.
#[inline(always)]
pub fn block_of(payload: *mut u8) -> *mut u8 {
    payload.wrapping_sub(HEADER_SIZE)
}

/// The block that follows a block of `size` bytes at `block`.
#[inline(always)]
pub fn next_block(block: *mut u8, size: usize) -> *mut u8 {
    block.wrapping_add(size)
}

/// Usable payload bytes of a block of `size` bytes.
#[inline(always)]
pub const fn payload_capacity(size: usize) -> usize {
    size - HEADER_SIZE
}

/// The block size that serves a request of `request` bytes, or `None` if no block can.
#[inline(always)]
pub const fn block_size_for(request: usize) -> Option<usize> {
    if request > MAX_BLOCK_SIZE - HEADER_SIZE - SIZE_GRANULE {
        return None;
    }
    let size = (request + HEADER_SIZE + SIZE_GRANULE - 1) & !(SIZE_GRANULE - 1);
    Some(if size < MIN_BLOCK_SIZE { MIN_BLOCK_SIZE } else { size })
}

/// Writes the footer of a free block of `size` bytes.
///
/// # Safety
/// The block must be free and owned by the caller's locked heap.
#[inline(always)]
pub unsafe fn write_footer(block: *mut u8, size: usize) {
    // SAFETY: the last word of a free block is its own, 8-aligned, inside the region.
    unsafe { block.add(size - 8).cast::<usize>().write(size) }
}

/// Reads the footer of the free block that ends just before `block`.
///
/// # Safety
/// `block` must be a block start whose `PREV_IN_USE` bit is clear.
#[inline(always)]
pub unsafe fn read_prev_footer(block: *mut u8) -> usize {
    // SAFETY: the previous block is free, so the word before `block` is its footer.
    unsafe { block.sub(8).cast::<usize>().read() }
}

/// A free block of at least [`FREE_SINCE_MIN_SIZE`] bytes records, in the word after its list
/// links, when it became free (monotonic milliseconds), or [`PAGES_RELEASED`] once the pages
/// inside it have been given back (or were never touched): the delayed purge releases only
/// memory that has stayed free for the whole delay.
pub const FREE_SINCE_MIN_SIZE: usize = crate::purge::PURGE_MIN_BLOCK;
pub const PAGES_RELEASED: u64 = u64::MAX;
const FREE_SINCE_OFFSET: usize = 24;

/// Records when the free block `block` (at least [`FREE_SINCE_MIN_SIZE`] bytes) became free.
///
/// # Safety
/// The block must be free, at least `FREE_SINCE_MIN_SIZE` bytes, and owned by the caller's
/// locked heap.
#[inline(always)]
pub unsafe fn write_free_since(block: *mut u8, ms: u64) {
    debug_assert!(FREE_SINCE_OFFSET + 8 <= FREE_SINCE_MIN_SIZE - 8);
    // SAFETY: the word lies between the links and the footer of a block this large.
    unsafe { block.add(FREE_SINCE_OFFSET).cast::<u64>().write(ms) }
}

/// When the free block `block` became free (see [`write_free_since`]).
///
/// # Safety
/// As for [`write_free_since`].
#[inline(always)]
pub unsafe fn read_free_since(block: *mut u8) -> u64 {
    // SAFETY: as above.
    unsafe { block.add(FREE_SINCE_OFFSET).cast::<u64>().read() }
}

/// The doubly linked free-list cells stored in a free block's payload.
///
/// # Safety
/// `block` must be a free block owned by the caller's locked heap.
#[inline(always)]
pub unsafe fn link_cells(block: *mut u8) -> (*mut *mut u8, *mut *mut u8) {
    (block.add(8).cast(), block.add(16).cast())
}
