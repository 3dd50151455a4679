//! Which region, if any, holds an address: a two-level table indexed by the address's
//! [`REGION_ALIGN`]-sized chunk. Lookups never touch the pointer itself, so `free` of a stack or
//! wild pointer is diagnosed without a fault, and the table reserves no address space up front:
//! a leaf is mapped the first time a region lands in its 16 GiB slice of the address space.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

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

type Leaf = [AtomicPtr<Region>; LEAF_ENTRIES];

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
    let Some((top, leaf_index)) = split(addr) else { return null_mut() };
    let leaf = TOP[top].load(Ordering::Acquire);
    if leaf.is_null() {
        return null_mut();
    }
    // SAFETY: leaves, once published, stay mapped for the life of the process.
    unsafe { (*leaf)[leaf_index].load(Ordering::Acquire) }
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

/// Records that `[region, region + size)` belongs to `region`. False if a leaf could not be
/// mapped (out of memory), in which case nothing is recorded.
pub fn register(region: *mut Region, size: usize) -> bool {
    let base = region as usize;
    let mut addr = base;
    while addr < base + size {
        let Some((top, _)) = split(addr) else { return false };
        if leaf_for(top).is_none() {
            return false;
        }
        addr += REGION_ALIGN;
    }
    set_range(base, size, region);
    true
}

/// Forgets a region before it is unmapped.
pub fn unregister(region: *mut Region, size: usize) {
    set_range(region as usize, size, null_mut());
}

fn set_range(base: usize, size: usize, value: *mut Region) {
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
