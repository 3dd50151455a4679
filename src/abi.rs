//! The C allocation ABI and binmalloc's own C functions: the only file with C names. Each
//! function checks its arguments, sets `errno` as glibc documents, and calls into `alloc`.

use core::ffi::{c_int, c_void};
use core::ptr::null_mut;

use crate::alloc::{allocate, allocate_aligned, deallocate, owns, reallocate, usable_size};
use crate::os::PAGE_SIZE;

#[inline(always)]
fn errno() -> *mut c_int {
    // SAFETY: glibc's errno location is valid for the calling thread.
    unsafe { libc::__errno_location() }
}

#[inline(always)]
fn set_errno(value: c_int) {
    // SAFETY: see `errno`.
    unsafe { *errno() = value };
}

/// Returns `p`, setting ENOMEM first if it is null.
#[inline(always)]
fn or_enomem(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Allocates `size` bytes aligned to 16; NULL with `errno = ENOMEM` when impossible.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    or_enomem(allocate(size))
}

/// Frees a block from any binmalloc allocation function; NULL is ignored. `errno` is preserved:
/// nothing on this path sets it (system calls go through rustix, which reports errors as values).
#[no_mangle]
pub extern "C" fn free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    deallocate(ptr.cast(), "free");
}

/// Same as `free` (an old SunOS name some programs still import).
#[no_mangle]
pub extern "C" fn cfree(ptr: *mut c_void) {
    free(ptr)
}

/// Allocates zeroed memory for `count` objects of `size` bytes; NULL with `errno = ENOMEM` on
/// overflow or exhaustion.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    let p = allocate(total);
    if !p.is_null() && !crate::alloc::is_fresh_mapping(p) {
        // SAFETY: `p` is a fresh block of at least `total` bytes.
        unsafe { core::ptr::write_bytes(p, 0, total) };
    }
    or_enomem(p)
}

/// Resizes a block keeping its contents; `realloc(NULL, n)` is `malloc(n)`, `realloc(p, 0)`
/// frees `p` and returns NULL (as glibc does). On failure `p` is untouched and `errno = ENOMEM`.
#[no_mangle]
pub extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(size);
    }
    if size == 0 {
        free(ptr);
        return null_mut();
    }
    or_enomem(reallocate(ptr.cast(), size))
}

/// `realloc(ptr, count * size)` with the multiplication checked.
#[no_mangle]
pub extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(total) => realloc(ptr, total),
        None => {
            set_errno(libc::ENOMEM);
            null_mut()
        }
    }
}

/// Stores in `*out` a block of `size` bytes aligned to `align`, which must be a power of two
/// and a multiple of `sizeof(void *)`. Returns 0, EINVAL or ENOMEM; `errno` is left alone.
///
/// # Safety
/// `out` must be valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = allocate_aligned(size, align);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: guaranteed by the caller.
    unsafe { out.write(p.cast()) };
    0
}

/// C11 `aligned_alloc`: `align` must be a power of two (EINVAL otherwise).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return null_mut();
    }
    or_enomem(allocate_aligned(size, align))
}

/// Obsolete `memalign`: like glibc, a non-power-of-two alignment is rounded up to one, and an
/// alignment too large to round is EINVAL.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    let Some(align) = align.max(1).checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return null_mut();
    };
    or_enomem(allocate_aligned(size, align))
}

/// Page-aligned allocation.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    or_enomem(allocate_aligned(size, PAGE_SIZE))
}

/// Page-aligned allocation of `size` rounded up to whole pages (at least one).
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = crate::os::align_up(size.max(1), PAGE_SIZE) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    or_enomem(allocate_aligned(rounded, PAGE_SIZE))
}

/// Bytes usable in a block (at least what was asked for); 0 for NULL.
#[no_mangle]
pub extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    if ptr.is_null() {
        return 0;
    }
    usable_size(ptr.cast())
}

/// Returns free memory to the OS: wholly free regions are unmapped and the pages inside large
/// free blocks are released. Returns 1 if anything was released.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    crate::arena::ensure_init();
    crate::thread_cache::flush_all_held();
    (crate::purge::purge_all() > 0) as c_int
}

/// glibc's `mallopt`: `M_MMAP_THRESHOLD` sets the big-allocation cutoff, `M_TRIM_THRESHOLD`
/// is accepted (binmalloc returns memory by its own policy); anything else returns 0.
#[no_mangle]
pub extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    crate::arena::ensure_init();
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    match param {
        M_MMAP_THRESHOLD if value >= 0 && value as usize <= crate::config::MAX_MMAP_THRESHOLD => {
            crate::config::fix_mmap_threshold(value as usize);
            1
        }
        M_TRIM_THRESHOLD => 1,
        _ => 0,
    }
}

/// glibc's `struct mallinfo2`, filled from binmalloc's counters.
#[repr(C)]
pub struct Mallinfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

/// glibc's legacy `struct mallinfo` (int fields, which wrap for heaps over 2 GiB, as in glibc).
#[repr(C)]
pub struct Mallinfo {
    pub arena: c_int,
    pub ordblks: c_int,
    pub smblks: c_int,
    pub hblks: c_int,
    pub hblkhd: c_int,
    pub usmblks: c_int,
    pub fsmblks: c_int,
    pub uordblks: c_int,
    pub fordblks: c_int,
    pub keepcost: c_int,
}

#[no_mangle]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    crate::arena::ensure_init();
    let info = crate::stats::heap_info();
    Mallinfo2 {
        arena: info.region_bytes,
        ordblks: info.free_blocks,
        smblks: 0,
        hblks: info.big_blocks,
        hblkhd: info.big_bytes,
        usmblks: 0,
        fsmblks: 0,
        uordblks: info.in_use_bytes,
        fordblks: info.free_bytes,
        keepcost: 0,
    }
}

#[no_mangle]
pub extern "C" fn mallinfo() -> Mallinfo {
    let i = mallinfo2();
    Mallinfo {
        arena: i.arena as c_int,
        ordblks: i.ordblks as c_int,
        smblks: 0,
        hblks: i.hblks as c_int,
        hblkhd: i.hblkhd as c_int,
        usmblks: 0,
        fsmblks: 0,
        uordblks: i.uordblks as c_int,
        fordblks: i.fordblks as c_int,
        keepcost: 0,
    }
}

/// glibc's `malloc_stats`: binmalloc's summary on stderr.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    crate::arena::ensure_init();
    crate::stats::print_text(2);
}

/// Returns 1 if `ptr` is a live block that binmalloc handed out, else 0. Never aborts.
#[no_mangle]
pub extern "C" fn binmalloc_owns(ptr: *const c_void) -> c_int {
    if ptr.is_null() {
        return 0;
    }
    crate::arena::ensure_init();
    owns(ptr.cast()) as c_int
}

/// Verifies every invariant of the whole heap; returns the number of problems found (each is
/// described on stderr). 0 means the heap is sound.
#[no_mangle]
pub extern "C" fn binmalloc_check_heap() -> usize {
    crate::arena::ensure_init();
    crate::check::check_all_arenas(true)
}

/// Writes the statistics summary (as printed at exit by `BINMALLOC_STATS=1`) to `fd`.
#[no_mangle]
pub extern "C" fn binmalloc_print_stats(fd: c_int) {
    crate::arena::ensure_init();
    crate::stats::print_text(fd);
}

/// Writes the statistics summary as one JSON object to `fd`.
#[no_mangle]
pub extern "C" fn binmalloc_print_stats_json(fd: c_int) {
    crate::arena::ensure_init();
    crate::stats::print_json(fd);
}

/// Writes a JSON picture of the heap (every region's blocks, the non-empty bins, the big
/// blocks and the statistics) to `fd`; `scripts/heapmap` draws it.
#[no_mangle]
pub extern "C" fn binmalloc_dump_json(fd: c_int) {
    crate::arena::ensure_init();
    crate::dump::dump_json(fd);
}

/// Number of entries in `binmalloc_stats.bins` (also defined in the header by cbindgen.toml).
const BINMALLOC_BIN_COUNT: usize = 240;
const _: () = assert!(BINMALLOC_BIN_COUNT == crate::size_class::BIN_COUNT);

/// Free blocks on one bin, summed over the process arenas.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct binmalloc_bin_stats {
    /// Smallest block size on this bin (bytes, header included).
    pub lower: usize,
    /// One past the largest block size on this bin.
    pub upper: usize,
    pub free_blocks: usize,
    pub free_bytes: usize,
}

/// Everything binmalloc counts, as `binmalloc_stats()` fills it.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct binmalloc_stats {
    /// Bytes mapped from the OS now (regions and big blocks) and at most ever.
    pub mapped_bytes: usize,
    pub peak_mapped_bytes: usize,
    /// Bytes in blocks handed out (including blocks held in per-thread caches), now and at peak.
    pub in_use_bytes: usize,
    pub peak_in_use_bytes: usize,
    /// Allocation and free calls (each thread's counts are added when it next visits an arena,
    /// and when it exits).
    pub allocations: u64,
    pub frees: u64,
    pub regions_mapped: u64,
    pub regions_returned: u64,
    pub big_mappings: u64,
    pub big_unmappings: u64,
    pub big_live_blocks: usize,
    pub big_live_bytes: usize,
    pub arenas: usize,
    /// Free blocks on all bins and their bytes.
    pub free_blocks: usize,
    pub free_bytes: usize,
    /// Per-bin counts of free blocks, smallest sizes first.
    pub bins: [binmalloc_bin_stats; BINMALLOC_BIN_COUNT],
}

/// Fills `*out` with the current statistics. Returns 0, or -1 if `out` is NULL.
///
/// # Safety
/// `out` must be NULL or valid for writing a `struct binmalloc_stats`.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_stats(out: *mut binmalloc_stats) -> c_int {
    if out.is_null() {
        return -1;
    }
    crate::arena::ensure_init();
    let s = crate::stats::summary();
    let (big_live_blocks, big_live_bytes) = crate::large::census();
    // SAFETY: guaranteed by the caller; every field is written before it is read.
    let out = unsafe { &mut *out };
    out.mapped_bytes = s.mapped_bytes;
    out.peak_mapped_bytes = s.peak_mapped_bytes;
    out.in_use_bytes = s.in_use_bytes;
    out.peak_in_use_bytes = s.peak_in_use_bytes;
    out.allocations = s.allocations;
    out.frees = s.frees;
    out.regions_mapped = s.regions_mapped;
    out.regions_returned = s.regions_returned;
    out.big_mappings = s.big_mappings;
    out.big_unmappings = s.big_unmappings;
    out.big_live_blocks = big_live_blocks;
    out.big_live_bytes = big_live_bytes;
    out.arenas = s.arenas;
    out.free_blocks = 0;
    out.free_bytes = 0;
    for (bin, entry) in out.bins.iter_mut().enumerate() {
        entry.lower = crate::size_class::bin_lower_bound(bin);
        entry.upper = if bin + 1 < BINMALLOC_BIN_COUNT { crate::size_class::bin_lower_bound(bin + 1) } else { usize::MAX };
        entry.free_blocks = 0;
        entry.free_bytes = 0;
    }
    crate::arena::for_each_arena(|heap| {
        for (bin, entry) in out.bins.iter_mut().enumerate() {
            let (count, bytes) = heap.bin_census(bin);
            entry.free_blocks += count;
            entry.free_bytes += bytes;
            out.free_blocks += count;
            out.free_bytes += bytes;
        }
    });
    0
}

use crate::user_heap::{HeapConfig, UserHeap};

/// Creates a first-class heap: a private heap whose blocks are freed one by one with
/// `binmalloc_heap_free` or all at once with `binmalloc_heap_reset`/`binmalloc_heap_destroy`.
/// `config` may be NULL for the defaults. Returns NULL (errno ENOMEM) when out of memory.
///
/// # Safety
/// `config` must be NULL or point at a valid configuration.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_new(config: *const HeapConfig) -> *mut UserHeap {
    // SAFETY: guaranteed by the caller.
    let config = if config.is_null() { HeapConfig { fit: -1, ..HeapConfig::default() } } else { unsafe { *config } };
    let heap = crate::user_heap::create(config);
    if heap.is_null() {
        set_errno(libc::ENOMEM);
    }
    heap
}

/// Allocates `size` bytes from `heap`; NULL (errno ENOMEM) when out of memory.
///
/// # Safety
/// `heap` must be a live heap from `binmalloc_heap_new`.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_alloc(heap: *mut UserHeap, size: usize) -> *mut c_void {
    // SAFETY: guaranteed by the caller.
    or_enomem(unsafe { &*heap }.alloc(size))
}

/// Allocates zeroed memory for `count` objects of `size` bytes from `heap`.
///
/// # Safety
/// `heap` must be a live heap from `binmalloc_heap_new`.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_calloc(heap: *mut UserHeap, count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    // SAFETY: guaranteed by the caller.
    let p = unsafe { &*heap }.alloc(total);
    if !p.is_null() {
        // SAFETY: `p` holds at least `total` bytes.
        unsafe { core::ptr::write_bytes(p, 0, total) };
    }
    or_enomem(p)
}

/// Resizes a block of `heap` like `realloc` (NULL allocates, size 0 frees and returns NULL).
///
/// # Safety
/// `heap` must be a live heap; `ptr` NULL or a live block of it.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_realloc(heap: *mut UserHeap, ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: guaranteed by the caller.
    let heap = unsafe { &*heap };
    if !ptr.is_null() && size == 0 {
        heap.free(ptr.cast());
        return null_mut();
    }
    or_enomem(heap.realloc(ptr.cast(), size))
}

/// Frees one block of `heap` (NULL is ignored). A pointer from elsewhere aborts with a message.
///
/// # Safety
/// `heap` must be a live heap.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_free(heap: *mut UserHeap, ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: guaranteed by the caller.
        unsafe { &*heap }.free(ptr.cast());
    }
}

/// Frees every block of `heap` at once; the heap stays usable.
///
/// # Safety
/// `heap` must be a live heap; its blocks must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_reset(heap: *mut UserHeap) {
    // SAFETY: guaranteed by the caller.
    unsafe { &*heap }.reset();
}

/// Frees every block of `heap` and the heap itself.
///
/// # Safety
/// `heap` must be a live heap; neither it nor its blocks may be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_destroy(heap: *mut UserHeap) {
    if !heap.is_null() {
        // SAFETY: guaranteed by the caller.
        unsafe { crate::user_heap::destroy(heap) };
    }
}

/// Runs the invariant checker on one heap; returns the number of problems (0: sound).
///
/// # Safety
/// `heap` must be a live heap.
#[no_mangle]
pub unsafe extern "C" fn binmalloc_heap_check(heap: *mut UserHeap) -> usize {
    // SAFETY: guaranteed by the caller.
    unsafe { &*heap }.check()
}

/// Test hook: makes the `n`-th request for memory from the OS from now on fail once, as if the
/// system were out of memory (0 disarms). Returns how many requests were failed so far.
#[no_mangle]
pub extern "C" fn binmalloc_inject_mmap_failure(n: u64) -> u64 {
    crate::arena::ensure_init();
    crate::os::fail_nth_mapping(n);
    crate::os::injected_faults()
}
