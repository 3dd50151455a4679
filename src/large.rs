//! Requests above the big-allocation cutoff: each is its own mapping, unmapped on free.
//!
//! Big blocks carry no header; a table keyed by the user pointer (open addressing, in mmap'd
//! memory, under its own lock) records each mapping's length. The table is also how `free`
//! recognises a big block without touching memory that may not be binmalloc's.

use core::ptr::null_mut;

use crate::lock::RawLock;
use crate::os::{self, PAGE_SIZE};

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;
const INITIAL_CAPACITY: usize = PAGE_SIZE / core::mem::size_of::<Entry>();

#[derive(Clone, Copy)]
#[repr(C)]
struct Entry {
    ptr: usize,
    len: usize,
}

struct Table {
    entries: *mut Entry,
    /// A power of two (or 0 before the first big allocation).
    capacity: usize,
    /// Slots that are not EMPTY: live entries plus tombstones. Kept at most half the capacity.
    occupied: usize,
    live: usize,
}

struct Locked {
    lock: RawLock,
    table: core::cell::UnsafeCell<Table>,
}
// SAFETY: `table` is only touched with `lock` held (see `with_table`).
unsafe impl Sync for Locked {}

static BIG: Locked = Locked {
    lock: RawLock::new(),
    table: core::cell::UnsafeCell::new(Table { entries: null_mut(), capacity: 0, occupied: 0, live: 0 }),
};

fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    BIG.lock.lock();
    // SAFETY: the lock is held, so this is the only reference.
    let r = f(unsafe { &mut *BIG.table.get() });
    BIG.lock.unlock();
    r
}

pub fn lock_for_fork() {
    BIG.lock.lock();
}
pub fn unlock_after_fork_in_parent() {
    BIG.lock.unlock();
}
pub fn reset_after_fork_in_child() {
    BIG.lock.reset_in_child();
}

impl Table {
    #[inline]
    fn slot_of(&self, ptr: usize) -> usize {
        (ptr / PAGE_SIZE).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (usize::BITS - self.capacity.trailing_zeros())
    }

    fn entries(&mut self) -> &mut [Entry] {
        if self.capacity == 0 {
            return &mut [];
        }
        // SAFETY: `entries` is a live mapping of `capacity` entries owned by the table.
        unsafe { core::slice::from_raw_parts_mut(self.entries, self.capacity) }
    }

    fn find(&mut self, ptr: usize) -> Option<usize> {
        if self.capacity == 0 {
            return None;
        }
        let mask = self.capacity - 1;
        let mut i = self.slot_of(ptr);
        loop {
            let e = self.entries()[i];
            if e.ptr == ptr {
                return Some(i);
            }
            if e.ptr == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, ptr: usize, len: usize) -> bool {
        if (self.occupied + 1) * 2 > self.capacity && !self.grow() {
            return false;
        }
        let mask = self.capacity - 1;
        let mut i = self.slot_of(ptr);
        loop {
            let was = self.entries()[i].ptr;
            if was == EMPTY || was == TOMBSTONE {
                if was == EMPTY {
                    self.occupied += 1;
                }
                self.entries()[i] = Entry { ptr, len };
                self.live += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    fn remove_at(&mut self, i: usize) -> usize {
        let len = self.entries()[i].len;
        self.entries()[i] = Entry { ptr: TOMBSTONE, len: 0 };
        self.live -= 1;
        len
    }

    /// Rehashes into a table twice as large as the live entries need (dropping tombstones).
    fn grow(&mut self) -> bool {
        let mut capacity = INITIAL_CAPACITY.max(self.capacity);
        while (self.live + 1) * 4 > capacity {
            capacity *= 2;
        }
        let bytes = capacity * core::mem::size_of::<Entry>();
        let Some(fresh) = os::map(bytes) else { return false };
        let mut old = Table { entries: fresh.as_ptr().cast(), capacity, occupied: 0, live: 0 };
        core::mem::swap(self, &mut old);
        for e in old.entries().iter().filter(|e| e.ptr > TOMBSTONE) {
            self.insert(e.ptr, e.len);
        }
        if old.capacity != 0 {
            // SAFETY: the old array is no longer referenced.
            unsafe { os::unmap(old.entries.cast(), old.capacity * core::mem::size_of::<Entry>()) };
        }
        true
    }
}

/// Maps a big block of at least `size` bytes aligned to `align`; null when out of memory.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    let Some(len) = os::align_up(size.max(1), PAGE_SIZE) else { return null_mut() };
    let Some(mapping) = os::map_aligned(len, align.max(PAGE_SIZE)) else { return null_mut() };
    let ptr = mapping.as_ptr();
    if !with_table(|t| t.insert(ptr as usize, len)) {
        // SAFETY: the mapping was never handed out.
        unsafe { os::unmap(ptr, len) };
        return null_mut();
    }
    crate::stats::note_big_mapped(len);
    ptr
}

/// If `ptr` is a live big block, unmaps it and returns true.
pub fn free(ptr: *mut u8) -> bool {
    let Some(len) = with_table(|t| t.find(ptr as usize).map(|i| t.remove_at(i))) else {
        return false;
    };
    // SAFETY: the table said `ptr` starts a live mapping of `len` bytes, now forgotten.
    unsafe { os::unmap(ptr, len) };
    crate::stats::note_big_unmapped(len);
    crate::config::note_big_block_freed(len);
    true
}

/// The usable size of a live big block, or `None` if `ptr` is not one.
pub fn usable_size(ptr: *const u8) -> Option<usize> {
    with_table(|t| t.find(ptr as usize).map(|i| t.entries()[i].len))
}

/// Result of asking the big-block table to resize.
pub enum Resized {
    NotBig,
    /// Moved or resized in place; the new pointer.
    Done(*mut u8),
    /// The kernel had no room; the block is unchanged.
    OutOfMemory,
}

/// Resizes the big block `ptr` to hold `size` bytes with `mremap`, moving it if needed.
pub fn resize(ptr: *mut u8, size: usize) -> Resized {
    let Some(new_len) = os::align_up(size.max(1), PAGE_SIZE) else { return Resized::OutOfMemory };
    with_table(|t| {
        let Some(i) = t.find(ptr as usize) else { return Resized::NotBig };
        let old_len = t.entries()[i].len;
        if new_len == old_len {
            return Resized::Done(ptr);
        }
        // Make room first so that re-inserting under the new address cannot fail afterwards.
        if (t.occupied + 1) * 2 > t.capacity && !t.grow() {
            return Resized::OutOfMemory;
        }
        let Some(i) = t.find(ptr as usize) else { return Resized::NotBig };
        // SAFETY: `ptr` starts a live mapping of `old_len` bytes that binmalloc made.
        let Some(moved) = (unsafe { os::remap(ptr, old_len, new_len) }) else {
            return Resized::OutOfMemory;
        };
        let moved = moved.as_ptr();
        t.remove_at(i);
        let inserted = t.insert(moved as usize, new_len);
        debug_assert!(inserted, "room was made before the remap");
        crate::stats::note_big_resized(old_len, new_len);
        Resized::Done(moved)
    })
}

/// Whether `p` lies inside (not at the start of) a live big block. Scans the table: for
/// diagnoses only.
pub fn contains(p: *mut u8) -> bool {
    let p = p as usize;
    with_table(|t| t.entries().iter().any(|e| e.ptr > TOMBSTONE && p > e.ptr && p < e.ptr + e.len))
}

/// Calls `f(pointer, length)` for every live big block, with the table locked.
pub fn for_each(mut f: impl FnMut(usize, usize)) {
    with_table(|t| {
        for e in t.entries().iter().filter(|e| e.ptr > TOMBSTONE) {
            f(e.ptr, e.len);
        }
    })
}

/// Live big blocks and their total bytes (for statistics and the checker).
pub fn census() -> (usize, usize) {
    with_table(|t| {
        let live = t.live;
        let bytes = t.entries().iter().filter(|e| e.ptr > TOMBSTONE).map(|e| e.len).sum();
        (live, bytes)
    })
}
