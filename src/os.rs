//! The only module that talks to the kernel. Out-of-memory becomes `None`; a failure that can
//! only mean a bug in binmalloc (munmap of a range we mapped) is fatal.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::tls::thread_static;

/// The granularity of every mapping. x86-64 and aarch64 Linux both use 4 KiB base pages for
/// anonymous private mappings; `page_size_is_base_page` in the tests guards the assumption.
pub const PAGE_SIZE: usize = 4096;

/// Rounds `n` up to a multiple of `align` (a power of two); `None` on overflow.
#[inline]
pub const fn align_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Fault injection for tests, per thread so that other threads' mappings neither trigger nor
/// consume it.
struct FaultInjection {
    /// When non-zero, this thread's mapping request with this number (1 = the next one) fails
    /// once, as if the kernel were out of memory.
    fail_mapping_at: u64,
    /// This thread's mapping requests since the failure was armed.
    mapping_calls: u64,
}

thread_static! {
    fn this_thread_faults() -> FaultInjection;
}

static INJECTED_FAULTS: AtomicU64 = AtomicU64::new(0);

/// Makes the calling thread's `n`-th mapping request from now fail once (0 disarms). Used by the
/// fault-injection tests through `binmalloc_inject_mmap_failure` and `BINMALLOC_FAULT_MMAP=N`.
pub fn fail_nth_mapping(n: u64) {
    // SAFETY: this thread's own `FaultInjection`, not shared with any other thread.
    let faults = unsafe { &mut *this_thread_faults() };
    faults.mapping_calls = 0;
    faults.fail_mapping_at = n;
}

/// How many mapping requests were failed on purpose so far, in all threads.
pub fn injected_faults() -> u64 {
    INJECTED_FAULTS.load(Ordering::Relaxed)
}

/// Whether this mapping request is the one chosen to fail.
#[inline(always)]
fn injected_failure() -> bool {
    // SAFETY: as in `fail_nth_mapping`.
    let faults = unsafe { &mut *this_thread_faults() };
    if faults.fail_mapping_at == 0 {
        return false;
    }
    faults.mapping_calls += 1;
    if faults.mapping_calls != faults.fail_mapping_at {
        return false;
    }
    faults.fail_mapping_at = 0;
    INJECTED_FAULTS.fetch_add(1, Ordering::Relaxed);
    true
}

/// Maps `len` bytes (a multiple of [`PAGE_SIZE`]) of zeroed, private, read-write memory.
pub fn map(len: usize) -> Option<NonNull<u8>> {
    debug_assert!(len % PAGE_SIZE == 0 && len > 0);
    if injected_failure() {
        return None;
    }
    sys::map(len)
}

/// Maps `len` bytes aligned to `align` (a power of two, a multiple of the page size).
pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && align % PAGE_SIZE == 0 && len % PAGE_SIZE == 0);
    if align <= PAGE_SIZE {
        return map(len);
    }
    if injected_failure() {
        return None;
    }
    sys::map_aligned(len, align)
}

/// Returns a mapping (or a page-aligned part of one) to the kernel.
///
/// # Safety
/// `[ptr, ptr + len)` must be page-aligned memory that binmalloc mapped and that nothing will
/// touch again.
pub unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller.
    if unsafe { sys::unmap(ptr, len) }.is_err() {
        crate::fatal::internal("munmap of a range binmalloc mapped failed");
    }
}

/// Grows or shrinks a mapping, moving it if needed; `None` if the kernel has no room.
///
/// # Safety
/// `[ptr, ptr + old_len)` must be a whole mapping that binmalloc made; on success the old range
/// must no longer be used.
pub unsafe fn remap(ptr: *mut u8, old_len: usize, new_len: usize) -> Option<NonNull<u8>> {
    if injected_failure() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    unsafe { sys::remap(ptr, old_len, new_len) }
}

/// Gives the physical pages behind `[ptr, ptr + len)` back to the kernel while keeping the
/// addresses mapped; the next touch reads zeroes. Failure only costs memory, so it is ignored.
///
/// # Safety
/// The range must be page-aligned, mapped by binmalloc, and hold nothing anyone still needs.
pub unsafe fn purge(ptr: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { sys::purge(ptr, len) }
}

/// Asks the kernel to back `[ptr, ptr + len)` with transparent huge pages where it can (a hint:
/// failure, or a kernel without them, changes nothing but speed).
///
/// # Safety
/// The range must be page-aligned and mapped by binmalloc.
pub unsafe fn advise_huge_pages(ptr: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { sys::advise_huge_pages(ptr, len) }
}

/// The system calls behind the functions above.
#[cfg(not(miri))]
mod sys {
    use core::ffi::c_void;
    use core::ptr::{null_mut, NonNull};
    use rustix::mm::{self, Advice, MapFlags, MremapFlags, ProtFlags};

    use super::{align_up, PAGE_SIZE};

    pub fn map(len: usize) -> Option<NonNull<u8>> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing aliases nothing.
        let p = unsafe {
            mm::mmap_anonymous(null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE)
        };
        p.ok().and_then(|p| NonNull::new(p.cast()))
    }

    /// Maps `len + align - PAGE_SIZE` bytes and returns the slack at both ends, so no more
    /// address space than that is ever held, and only for the duration of this call.
    pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
        let padded = len.checked_add(align - PAGE_SIZE)?;
        let base = map(padded)?.as_ptr() as usize;
        let start = align_up(base, align)?;
        let head = start - base;
        let tail = padded - head - len;
        // SAFETY: both ranges lie inside the mapping just made and nothing refers to them.
        unsafe {
            if head > 0 {
                super::unmap(base as *mut u8, head);
            }
            if tail > 0 {
                super::unmap((start + len) as *mut u8, tail);
            }
        }
        NonNull::new(start as *mut u8)
    }

    /// # Safety
    /// As for [`super::unmap`].
    pub unsafe fn unmap(ptr: *mut u8, len: usize) -> Result<(), ()> {
        // SAFETY: guaranteed by the caller.
        unsafe { mm::munmap(ptr.cast::<c_void>(), len) }.map_err(|_| ())
    }

    /// # Safety
    /// As for [`super::remap`].
    pub unsafe fn remap(ptr: *mut u8, old_len: usize, new_len: usize) -> Option<NonNull<u8>> {
        // SAFETY: guaranteed by the caller.
        let p = unsafe { mm::mremap(ptr.cast(), old_len, new_len, MremapFlags::MAYMOVE) };
        p.ok().and_then(|p| NonNull::new(p.cast()))
    }

    /// # Safety
    /// As for [`super::purge`].
    pub unsafe fn purge(ptr: *mut u8, len: usize) {
        // SAFETY: guaranteed by the caller.
        let _ = unsafe { mm::madvise(ptr.cast(), len, Advice::LinuxDontNeed) };
    }

    /// # Safety
    /// As for [`super::advise_huge_pages`].
    pub unsafe fn advise_huge_pages(ptr: *mut u8, len: usize) {
        // SAFETY: guaranteed by the caller; the advice changes no contents.
        let _ = unsafe { mm::madvise(ptr.cast(), len, Advice::LinuxHugepage) };
    }
}

/// Under Miri, which cannot make these system calls, a mapping is a zeroed allocation from the
/// Rust allocator (Miri's own), so the heap code above runs unchanged and Miri checks every
/// access it makes. All mappings share one alignment, so that an unmap, which is told only the
/// length, frees with the layout it allocated: Miri then also checks that each unmap names a
/// whole mapping with its exact length. Larger alignments are refused as out of memory.
#[cfg(miri)]
mod sys {
    extern crate std;
    use core::ptr::NonNull;
    use std::alloc::{alloc_zeroed, dealloc, Layout};

    const ALIGN: usize = crate::region::REGION_ALIGN;

    pub fn map(len: usize) -> Option<NonNull<u8>> {
        map_aligned(len, ALIGN)
    }

    pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
        if align > ALIGN {
            return None;
        }
        let layout = Layout::from_size_align(len, ALIGN).ok()?;
        // SAFETY: `len` is not zero.
        NonNull::new(unsafe { alloc_zeroed(layout) })
    }

    /// # Safety
    /// As for [`super::unmap`]; in addition the range is a whole mapping.
    pub unsafe fn unmap(ptr: *mut u8, len: usize) -> Result<(), ()> {
        // SAFETY: `ptr` came from `map_aligned` with this length (Miri reports it if not).
        unsafe { dealloc(ptr, Layout::from_size_align_unchecked(len, ALIGN)) };
        Ok(())
    }

    /// # Safety
    /// As for [`super::remap`].
    pub unsafe fn remap(ptr: *mut u8, old_len: usize, new_len: usize) -> Option<NonNull<u8>> {
        let fresh = map(new_len)?;
        // SAFETY: both are live allocations at least as long as the copy; the old one is whole.
        unsafe {
            ptr.copy_to_nonoverlapping(fresh.as_ptr(), old_len.min(new_len));
            unmap(ptr, old_len).ok()?;
        }
        Some(fresh)
    }

    /// # Safety
    /// As for [`super::purge`]: the pages read as zeroes afterwards.
    pub unsafe fn purge(ptr: *mut u8, len: usize) {
        // SAFETY: guaranteed by the caller.
        unsafe { ptr.write_bytes(0, len) };
    }

    /// # Safety
    /// As for [`super::advise_huge_pages`]; nothing to do under Miri.
    pub unsafe fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}
}

/// Milliseconds on a monotonic clock (the coarse clock: read from the vDSO without a system
/// call, precise to a few milliseconds, which is all the purge delay needs).
pub fn monotonic_ms() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec on our stack; clock_gettime does not allocate.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
    t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000
}
