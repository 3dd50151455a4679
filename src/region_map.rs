//! Which region, if any, holds an address: a two-level table indexed by the address's
//! [`REGION_ALIGN`]-sized chunk. Lookups never touch the pointer itself, so `free` of a stack or
//! wild pointer is diagnosed without a fault, and the table reserves no address space up front:
//! a leaf is mapped the first time a region lands in its 16 GiB slice of the address space.
//!
//! Each entry also carries the number of the region's arena (in the low bits, which a
//! [`REGION_ALIGN`]-aligned address leaves zero), so that `free` can tell whether a block is its
//! thread's own without reading the region header, a cache line a busy program has usually evicted.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::os;
use crate::region::{Region, REGION_ALIGN};

/// User-space addresses on x86-64 and aarch64 with 4-level page tables fit in 48 bits; mappings
/// above that only happen on request, which binmalloc never makes.
const ADDRESS_BITS: u32 = 48;
const CHUNK_SHIFT: u32 = REGION_ALIGN.trailing_zeros();
const LEAF_BITS: u32 = 14;
const TOP_BITS: u32 = ADDRESS_BITS - CHUNK_SHIFT - LEAF_BITS;
const LEAF_ENTRIES: usize = 1 << LEAF_BITS;
const LEAF_BYTES: usize = LEAF_ENTRIES * core::mem::size_of::<usize>();

type Leaf = [AtomicUsize; LEAF_ENTRIES];

/// Low bits of an entry that hold the arena number (the rest is the region's address).
const ARENA_NUMBER_MASK: usize = REGION_ALIGN - 1;

/// What the map holds for a chunk: nothing, or a region and its arena's number.
#[derive(Clone, Copy)]
pub struct Entry(usize);

impl Entry {
    /// The region (null for an empty entry).
    #[inline(always)]
    pub fn region(self) -> *mut Region {
        (self.0 & !ARENA_NUMBER_MASK) as *mut Region
    }

    /// The arena number given at registration (see [`crate::arena::number_of`]).
    #[inline(always)]
    pub fn arena_number(self) -> usize {
        self.0 & ARENA_NUMBER_MASK
    }
}

static TOP: [AtomicPtr<Leaf>; 1 << TOP_BITS] = [const { AtomicPtr::new(null_mut()) }; 1 << TOP_BITS];

#[inline(always)]
fn split(addr: usize) -> Option<(usize, usize)> {
    if addr >> ADDRESS_BITS != 0 {
        return None;
    }
    let chunk = addr >> CHUNK_SHIFT;
    Some((chunk >> LEAF_BITS, chunk & (LEAF_ENTRIES - 1)))
}

/// The region containing `addr`, or null if binmalloc has no region there.
#[inline(always)]
pub fn lookup(addr: usize) -> *mut Region {
    lookup_entry(addr).region()
}

/// The map entry for `addr`'s chunk: its region (null if none) and the region's arena number.
#[inline(always)]
pub fn lookup_entry(addr: usize) -> Entry {
    let Some((top, leaf_index)) = split(addr) else { return Entry(0) };
    let leaf = TOP[top].load(Ordering::Acquire);
    if leaf.is_null() {
        return Entry(0);
    }
    // SAFETY: leaves, once published, stay mapped for the life of the process.
    Entry(unsafe { (*leaf)[leaf_index].load(Ordering::Acquire) })
}

fn leaf_for(top: usize) -> Option<&'static Leaf> {
    let mut leaf = TOP[top].load(Ordering::Acquire);
    if leaf.is_null() {
        let fresh = os::map(LEAF_BYTES)?.as_ptr().cast::<Leaf>();
        // Every word of the table is only ever accessed atomically.
        crate::valgrind::atomic_only(fresh.cast(), LEAF_BYTES);
        crate::valgrind::atomic_only_object(&TOP);
        match TOP[top].compare_exchange(null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => leaf = fresh,
            Err(winner) => {
                // SAFETY: `fresh` was never published.
                unsafe { os::unmap(fresh.cast(), LEAF_BYTES) };
                leaf = winner;
            }
        }
    }
    // SAFETY: published leaves are zero-initialised arrays of atomics that are never unmapped.
    Some(unsafe { &*leaf })
}

/// Records that `[region, region + size)` belongs to `region`, whose arena has number
/// `arena_number` (below [`REGION_ALIGN`]). False if a leaf could not be mapped (out of memory),
/// in which case nothing is recorded.
pub fn register(region: *mut Region, size: usize, arena_number: usize) -> bool {
    debug_assert!(region as usize & ARENA_NUMBER_MASK == 0 && arena_number <= ARENA_NUMBER_MASK);
    let base = region as usize;
    let mut addr = base;
    while addr < base + size {
        let Some((top, _)) = split(addr) else { return false };
        if leaf_for(top).is_none() {
            return false;
        }
        addr += REGION_ALIGN;
    }
    set_range(base, size, base | arena_number);
    true
}

/// Forgets a region before it is unmapped.
pub fn unregister(region: *mut Region, size: usize) {
    set_range(region as usize, size, 0);
}

fn set_range(base: usize, size: usize, value: usize) {
    let mut addr = base;
    while addr < base + size {
        if let Some((top, index)) = split(addr) {
            if let Some(leaf) = leaf_for(top) {
                leaf[index].store(value, Ordering::Release);
            }
        }
        addr += REGION_ALIGN;
    }
}
