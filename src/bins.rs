//! The segregated free lists of one heap and the bitmap of non-empty bins.
//!
//! Invariant (owned here): bit `i` of `nonempty` is set exactly when `heads[i]` is non-null, and
//! every block on list `i` is free with `bin_for_size(size) == i`.

use core::ptr::null_mut;

use crate::block::{link_cells, read_header};
use crate::size_class::{bin_for_size, is_exact_bin, BIN_COUNT};

/// How a block is chosen among those large enough.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Fit {
    /// The smallest block that is large enough (searched among [`BEST_FIT_SCAN_LIMIT`] candidates
    /// per bin, so a pathological bin cannot make one call linear in the heap).
    Best = 0,
    /// The first block found that is large enough, scanning bins upward from the request's.
    First = 1,
    /// The largest free block in the heap.
    Worst = 2,
}

impl Fit {
    pub fn name(self) -> &'static str {
        match self {
            Fit::First => "first",
            Fit::Best => "best",
            Fit::Worst => "worst",
        }
    }
}

/// Candidates examined per bin by best and worst fit.
pub const BEST_FIT_SCAN_LIMIT: usize = 256;
/// Candidates examined by best fit on a bin above the request's, where every block fits.
const HIGHER_BIN_SCAN_LIMIT: usize = 8;

const BITMAP_WORDS: usize = 4;

pub struct Bins {
    heads: [*mut u8; BIN_COUNT],
    nonempty: [u64; BITMAP_WORDS],
}

impl Default for Bins {
    fn default() -> Self {
        Self::new()
    }
}

impl Bins {
    pub const fn new() -> Bins {
        Bins { heads: [null_mut(); BIN_COUNT], nonempty: [0; BITMAP_WORDS] }
    }

    /// The first block on `bin`, or null.
    #[inline(always)]
    pub fn head(&self, bin: usize) -> *mut u8 {
        self.heads[bin]
    }

    /// Whether bit `bin` of the bitmap is set (used by the checker).
    pub fn bit_is_set(&self, bin: usize) -> bool {
        self.nonempty[bin / 64] & (1 << (bin % 64)) != 0
    }

    /// Pushes the free block `block` of `size` bytes onto the front of its bin.
    ///
    /// # Safety
    /// `block` must be a free block with a valid header, owned by this heap and on no list.
    #[inline(always)]
    pub unsafe fn insert(&mut self, block: *mut u8, size: usize) {
        let bin = bin_for_size(size);
        let head = self.heads[bin];
        // SAFETY: `block` is free and ours, so its link cells are ours to write; `head`, if any,
        // is a free block on this list.
        unsafe {
            let (next, prev) = link_cells(block);
            next.write(head);
            prev.write(null_mut());
            if !head.is_null() {
                link_cells(head).1.write(block);
            }
        }
        self.heads[bin] = block;
        self.nonempty[bin / 64] |= 1 << (bin % 64);
    }

    /// Takes the free block `block` of `size` bytes off its bin.
    ///
    /// # Safety
    /// `block` must be on the bin for `size` in this `Bins`.
    #[inline(always)]
    pub unsafe fn remove(&mut self, block: *mut u8, size: usize) {
        let bin = bin_for_size(size);
        // SAFETY: `block` and its neighbours on the list are free blocks of this heap.
        unsafe {
            let (next_cell, prev_cell) = link_cells(block);
            let next = next_cell.read();
            let prev = prev_cell.read();
            if prev.is_null() {
                debug_assert!(self.heads[bin] == block, "block is not on its bin");
                self.heads[bin] = next;
                if next.is_null() {
                    self.nonempty[bin / 64] &= !(1 << (bin % 64));
                }
            } else {
                link_cells(prev).0.write(next);
            }
            if !next.is_null() {
                link_cells(next).1.write(prev);
            }
        }
    }

    /// The next block on the same list as `block`.
    ///
    /// # Safety
    /// `block` must be on one of these lists.
    #[inline(always)]
    pub unsafe fn next_on_list(block: *mut u8) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { link_cells(block).0.read() }
    }

    /// The previous block on the same list as `block` (null for the head).
    ///
    /// # Safety
    /// `block` must be on one of these lists.
    pub unsafe fn prev_on_list(block: *mut u8) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { link_cells(block).1.read() }
    }

    /// The first non-empty bin at or after `bin`.
    #[inline(always)]
    fn nonempty_from(&self, bin: usize) -> Option<usize> {
        let mut word = bin / 64;
        if word >= BITMAP_WORDS {
            return None;
        }
        let mut bits = self.nonempty[word] & (u64::MAX << (bin % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            if word == BITMAP_WORDS {
                return None;
            }
            bits = self.nonempty[word];
        }
    }

    /// The highest non-empty bin.
    fn highest_nonempty(&self) -> Option<usize> {
        (0..BITMAP_WORDS)
            .rev()
            .find(|&w| self.nonempty[w] != 0)
            .map(|w| w * 64 + 63 - self.nonempty[w].leading_zeros() as usize)
    }

    /// Finds, unlinks and returns a free block of at least `need` bytes chosen by `fit`.
    ///
    /// # Safety
    /// The bins must satisfy their invariant (all listed blocks free, valid and this heap's).
    #[inline(always)]
    pub unsafe fn take(&mut self, need: usize, fit: Fit) -> Option<*mut u8> {
        let bin = bin_for_size(need);
        if is_exact_bin(bin) && fit != Fit::Worst {
            let head = self.heads[bin];
            if !head.is_null() {
                // SAFETY: `head` is on `bin`, whose blocks all have size `need`.
                unsafe { self.remove(head, need) };
                return Some(head);
            }
        }
        // SAFETY: forwarded invariant.
        let (block, size) = unsafe { self.search(bin, need, fit) }?;
        // SAFETY: `search` returns a block listed on its size's bin.
        unsafe { self.remove(block, size) };
        Some(block)
    }

    #[cold]
    unsafe fn search(&self, bin: usize, need: usize, fit: Fit) -> Option<(*mut u8, usize)> {
        // SAFETY: throughout this function, every block reached through the lists is a free block of this
        // heap with a valid header, by the bins invariant.
        unsafe {
            match fit {
                Fit::First => {
                    let mut at = self.nonempty_from(bin)?;
                    loop {
                        let mut b = self.heads[at];
                        while !b.is_null() {
                            let size = read_header(b).size();
                            if size >= need {
                                return Some((b, size));
                            }
                            b = Self::next_on_list(b);
                        }
                        at = self.nonempty_from(at + 1)?;
                    }
                }
                Fit::Best => {
                    let mut at = self.nonempty_from(bin)?;
                    if at == bin {
                        let own = self.scan(at, need, true, BEST_FIT_SCAN_LIMIT, |cand, best| cand < best);
                        if own.is_some() {
                            return own;
                        }
                        at = self.nonempty_from(at + 1)?;
                    }
                    // Every block on a higher bin fits, and a bin spans an eighth of its lower
                    // bound: the best of a few candidates is as good as the best of all.
                    if is_exact_bin(at) {
                        let head = self.heads[at];
                        return Some((head, read_header(head).size()));
                    }
                    self.scan(at, need, true, HIGHER_BIN_SCAN_LIMIT, |cand, best| cand < best)
                }
                Fit::Worst => {
                    let top = self.highest_nonempty()?;
                    if top < bin {
                        return None;
                    }
                    self.scan(top, need, false, BEST_FIT_SCAN_LIMIT, |cand, best| cand > best)
                }
            }
        }
    }

    /// The block on `bin` of at least `need` bytes that `better` prefers, among the first
    /// `limit` on the list.
    unsafe fn scan(
        &self,
        bin: usize,
        need: usize,
        stop_on_exact: bool,
        limit: usize,
        better: impl Fn(usize, usize) -> bool,
    ) -> Option<(*mut u8, usize)> {
        let mut found: Option<(*mut u8, usize)> = None;
        let mut b = self.heads[bin];
        let mut seen = 0;
        while !b.is_null() && seen < limit {
            // SAFETY: `b` is on a list, so it is a free block of this heap.
            let size = unsafe { read_header(b) }.size();
            if size == need && stop_on_exact {
                return Some((b, size));
            }
            if size >= need && found.is_none_or(|(_, s)| better(size, s)) {
                found = Some((b, size));
            }
            // SAFETY: as above.
            b = unsafe { Self::next_on_list(b) };
            seen += 1;
        }
        found
    }
}
