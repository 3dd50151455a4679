//! Block size to bin index, and back.
//!
//! Small blocks (up to [`EXACT_LIMIT`]) get one bin per 16-byte size, so a non-empty small bin
//! always fits and pops in O(1). Above that, each power of two is split into
//! [`SUB_BINS_PER_DOUBLING`] ranges, the classic segregated-fit layout: a bin holds sizes
//! `[bin_lower_bound(i), bin_lower_bound(i + 1))`.

use crate::block::{MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, SIZE_GRANULE};

/// The largest block size with a bin of its own.
pub const EXACT_LIMIT: usize = 1024;
/// Bins 0..EXACT_BINS hold exactly one size each: 32, 48, ..., 1024.
pub const EXACT_BINS: usize = (EXACT_LIMIT - MIN_BLOCK_SIZE) / SIZE_GRANULE + 1;
const SUB_BIN_BITS: u32 = 2;
/// Range bins per power of two above [`EXACT_LIMIT`].
pub const SUB_BINS_PER_DOUBLING: usize = 1 << SUB_BIN_BITS;
const FIRST_RANGE_LOG2: u32 = EXACT_LIMIT.trailing_zeros();
const LAST_RANGE_LOG2: u32 = usize::BITS - 1 - MAX_BLOCK_SIZE.leading_zeros();
/// Total number of bins.
pub const BIN_COUNT: usize =
    EXACT_BINS + (LAST_RANGE_LOG2 - FIRST_RANGE_LOG2 + 1) as usize * SUB_BINS_PER_DOUBLING;

const _: () = assert!(EXACT_LIMIT.is_power_of_two());
const _: () = assert!(BIN_COUNT <= 256, "the bin bitmap holds 256 bins");

/// The bin a free block of `size` bytes belongs on.
#[inline(always)]
pub fn bin_for_size(size: usize) -> usize {
    debug_assert!(size >= MIN_BLOCK_SIZE && size % SIZE_GRANULE == 0 && size <= MAX_BLOCK_SIZE);
    if size <= EXACT_LIMIT {
        return (size - MIN_BLOCK_SIZE) / SIZE_GRANULE;
    }
    let log2 = usize::BITS - 1 - size.leading_zeros();
    let sub = (size >> (log2 - SUB_BIN_BITS)) & (SUB_BINS_PER_DOUBLING - 1);
    EXACT_BINS + (log2 - FIRST_RANGE_LOG2) as usize * SUB_BINS_PER_DOUBLING + sub
}

/// The smallest block size that belongs on bin `bin`.
pub fn bin_lower_bound(bin: usize) -> usize {
    debug_assert!(bin < BIN_COUNT);
    if bin < EXACT_BINS {
        return MIN_BLOCK_SIZE + bin * SIZE_GRANULE;
    }
    let range = bin - EXACT_BINS;
    let log2 = FIRST_RANGE_LOG2 as usize + range / SUB_BINS_PER_DOUBLING;
    let sub = range % SUB_BINS_PER_DOUBLING;
    let lower = (1usize << log2) + (sub << (log2 - SUB_BIN_BITS as usize));
    // The first range bin starts just above the last exact size.
    lower.max(EXACT_LIMIT + SIZE_GRANULE)
}

/// Whether every block on `bin` has the same size (so any block there fits a request that maps
/// to it).
#[inline(always)]
pub fn is_exact_bin(bin: usize) -> bool {
    bin < EXACT_BINS
}
