//! First-class heaps: private heaps a program creates, allocates from, and destroys all at
//! once (the arena pattern). Each is an [`Arena`] of its own — its own lock, bins and regions —
//! plus a list of its big blocks, with a configuration of fit policy, region size and cutoff.
//! Its blocks never enter a thread cache, so destroying the heap cannot leave any behind.

use core::ptr::null_mut;

use crate::arena::Arena;
use crate::bins::Fit;
use crate::alloc::{locate, Located};
use crate::block::{block_of, block_size_for, payload_capacity, ALIGNMENT};
use crate::fatal::{self, Misuse};
use crate::lock::RawLock;
use crate::os::{self, PAGE_SIZE};
use crate::region::Region;
use crate::region_map;

/// A heap's configuration. Zero fields mean "the process default".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapConfig {
    /// 0 first fit, 1 best fit, 2 worst fit, anything else the process default.
    pub fit: i32,
    /// Minimum bytes per region (rounded up to whole MiB); 0 for the default growth policy.
    pub region_size: usize,
    /// Requests above this many bytes get a mapping of their own; 0 for the process default.
    pub mmap_threshold: usize,
}

/// Bytes in front of a big block's payload: the list links and the mapping length.
const BIG_HEADER_SIZE: usize = 4 * 8;
const _: () = assert!(BIG_HEADER_SIZE % ALIGNMENT == 0);

#[repr(C)]
struct BigHeader {
    next: *mut BigHeader,
    prev: *mut BigHeader,
    len: usize,
    _pad: usize,
}

/// A first-class heap. Lives in a mapping of its own so that creating one never calls malloc.
pub struct UserHeap {
    arena: Arena,
    mmap_threshold: usize,
    big_lock: RawLock,
    big: core::cell::UnsafeCell<*mut BigHeader>,
}

// SAFETY: the arena has its own lock; `big` is only touched with `big_lock` held.
unsafe impl Sync for UserHeap {}

const HEAP_MAPPING: usize = (core::mem::size_of::<UserHeap>() + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE;

/// Creates a heap; null when out of memory.
pub fn create(config: HeapConfig) -> *mut UserHeap {
    crate::arena::ensure_init();
    let fit = match config.fit {
        0 => Fit::First,
        1 => Fit::Best,
        2 => Fit::Worst,
        _ => crate::config::get().fit,
    };
    let threshold = if config.mmap_threshold == 0 { crate::config::mmap_threshold() } else { config.mmap_threshold };
    let Some(mapping) = os::map(HEAP_MAPPING) else { return null_mut() };
    let heap = mapping.as_ptr().cast::<UserHeap>();
    // SAFETY: the mapping is fresh, page-aligned and large enough for a UserHeap.
    unsafe {
        heap.write(UserHeap {
            arena: Arena::new(fit),
            mmap_threshold: threshold.min(crate::config::MAX_MMAP_THRESHOLD),
            big_lock: RawLock::new(),
            big: core::cell::UnsafeCell::new(null_mut()),
        });
        (*heap).arena.bind();
        (*heap).arena.lock().set_min_region_size(config.region_size);
    }
    heap
}

impl UserHeap {
    fn owns_region(&self, region: *mut Region) -> bool {
        // SAFETY: `region` came from the region map, so it is live.
        let own: *const Arena = &self.arena;
        // SAFETY: as above.
        !region.is_null() && unsafe { (*region).arena } == own
    }

    pub fn alloc(&self, size: usize) -> *mut u8 {
        if size > self.mmap_threshold {
            return self.alloc_big(size);
        }
        let need = block_size_for(size).unwrap_or(usize::MAX);
        self.arena.lock().alloc(need)
    }

    fn alloc_big(&self, size: usize) -> *mut u8 {
        let Some(len) = size.checked_add(BIG_HEADER_SIZE).and_then(|n| os::align_up(n, PAGE_SIZE)) else {
            return null_mut();
        };
        let Some(mapping) = os::map(len) else { return null_mut() };
        let header = mapping.as_ptr().cast::<BigHeader>();
        self.big_lock.lock();
        // SAFETY: the lock is held; `header` is a fresh mapping we own; the list head and its
        // members are live big blocks of this heap.
        unsafe {
            let head = *self.big.get();
            header.write(BigHeader { next: head, prev: null_mut(), len, _pad: 0 });
            if !head.is_null() {
                (*head).prev = header;
            }
            *self.big.get() = header;
        }
        self.big_lock.unlock();
        crate::stats::note_big_mapped(len);
        mapping.as_ptr().wrapping_add(BIG_HEADER_SIZE)
    }

    /// The big block whose payload is `p`, unlinked from the list if `unlink`.
    fn find_big(&self, p: *mut u8, unlink: bool) -> Option<*mut BigHeader> {
        self.big_lock.lock();
        // SAFETY: the lock is held; every listed header is a live big block of this heap.
        let found = unsafe {
            let mut at = *self.big.get();
            while !at.is_null() && at.cast::<u8>().wrapping_add(BIG_HEADER_SIZE) != p {
                at = (*at).next;
            }
            if !at.is_null() && unlink {
                let (prev, next) = ((*at).prev, (*at).next);
                if prev.is_null() {
                    *self.big.get() = next;
                } else {
                    (*prev).next = next;
                }
                if !next.is_null() {
                    (*next).prev = prev;
                }
            }
            at
        };
        self.big_lock.unlock();
        (!found.is_null()).then_some(found)
    }

    pub fn free(&self, p: *mut u8) {
        const CALL: &str = "binmalloc_heap_free";
        match locate(p, CALL) {
            Located::Small(region, block, _) => {
                if !self.owns_region(region) {
                    fatal::misuse(CALL, p, Misuse::WrongHeap);
                }
                // SAFETY: `locate` checked the block start; in-use is checked under the lock.
                unsafe { self.arena.lock().free_block(block, CALL) };
            }
            Located::Elsewhere => match self.find_big(p, true) {
                Some(header) => {
                    // SAFETY: the header was unlinked; its mapping is ours to return.
                    let len = unsafe { (*header).len };
                    // SAFETY: as above.
                    unsafe { os::unmap(header.cast(), len) };
                    crate::stats::note_big_unmapped(len);
                }
                None => fatal::misuse(CALL, p, Misuse::WrongHeap),
            },
        }
    }

    fn usable_size(&self, p: *mut u8) -> usize {
        const CALL: &str = "binmalloc_heap_realloc";
        match locate(p, CALL) {
            Located::Small(region, _, header) => {
                if !self.owns_region(region) {
                    fatal::misuse(CALL, p, Misuse::WrongHeap);
                }
                if !header.in_use() {
                    fatal::misuse(CALL, p, Misuse::AlreadyFreed);
                }
                payload_capacity(header.size())
            }
            Located::Elsewhere => match self.find_big(p, false) {
                Some(header) => {
                    // SAFETY: a live listed header.
                    let len = unsafe { (*header).len };
                    len - BIG_HEADER_SIZE
                }
                None => fatal::misuse(CALL, p, Misuse::WrongHeap),
            },
        }
    }

    pub fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        if p.is_null() {
            return self.alloc(size);
        }
        let old = self.usable_size(p);
        let region = region_map::lookup(p as usize);
        if size <= self.mmap_threshold && self.owns_region(region) {
            let need = block_size_for(size).unwrap_or(usize::MAX);
            // SAFETY: `usable_size` checked that `p` is an in-use block of this heap.
            if unsafe { self.arena.lock().resize_in_place(block_of(p), need) } {
                return p;
            }
        }
        let fresh = self.alloc(size);
        if !fresh.is_null() {
            // SAFETY: both blocks are live and distinct.
            unsafe { core::ptr::copy_nonoverlapping(p, fresh, old.min(size)) };
            self.free(p);
        }
        fresh
    }

    /// Frees every block at once; the heap stays usable.
    pub fn reset(&self) {
        self.arena.lock().release_everything();
        self.big_lock.lock();
        // SAFETY: the lock is held; each listed block is unmapped exactly once, after the walk
        // has read its link.
        unsafe {
            self.walk_big(|at, len| {
                os::unmap(at.cast(), len);
                crate::stats::note_big_unmapped(len);
            });
            *self.big.get() = null_mut();
        }
        self.big_lock.unlock();
    }

    /// Calls `f` on each listed big block with its mapping's length, reading the block's link
    /// first (so `f` may unmap it).
    ///
    /// # Safety
    /// The caller holds `big_lock`.
    unsafe fn walk_big(&self, mut f: impl FnMut(*mut BigHeader, usize)) {
        // SAFETY: forwarded from the caller: listed blocks are live mappings.
        unsafe {
            let mut at = *self.big.get();
            while !at.is_null() {
                let (next, len) = ((*at).next, (*at).len);
                f(at, len);
                at = next;
            }
        }
    }

    /// Bytes this heap has mapped: its regions and its big blocks' mappings. Tests read this
    /// rather than the process-wide figure, which other threads move at the same time.
    #[cfg(test)]
    pub(crate) fn mapped_bytes(&self) -> usize {
        let regions = self.arena.lock().counters().region_bytes;
        let mut big = 0;
        self.big_lock.lock();
        // SAFETY: the lock is held.
        unsafe { self.walk_big(|_, len| big += len) };
        self.big_lock.unlock();
        regions + big
    }

    /// Runs the invariant checker on this heap; returns the number of problems.
    pub fn check(&self) -> usize {
        let mut findings = crate::check::Findings::new(true);
        crate::check::check_heap(&self.arena.lock(), &mut findings);
        findings.errors
    }
}

/// Frees everything the heap holds and the heap itself.
///
/// # Safety
/// `heap` must come from [`create`] and not be used again.
pub unsafe fn destroy(heap: *mut UserHeap) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*heap).reset();
        os::unmap(heap.cast(), HEAP_MAPPING);
    }
}
