//! `xmalloc.h`: the full-speed allocator under course names, for the parallel challenges.
//!
//! Each call goes straight to binmalloc (per-thread caches, several arenas, blocks freed by any
//! thread). The library is built without binmalloc's C ABI, so these names are the only way in:
//! the process `malloc` stays the system one.

use core::ffi::c_void;
use core::ptr::null_mut;

use binmalloc::entry::{allocate, deallocate, reallocate};

/// Returns `p`, setting `errno` to ENOMEM first if it is null (as `malloc` does).
fn or_enomem(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        // SAFETY: glibc's errno location is valid for the calling thread.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
    }
    p.cast()
}

/// Allocates `size` bytes aligned to 16; NULL (errno ENOMEM) when out of memory.
#[no_mangle]
pub extern "C" fn xmalloc(size: usize) -> *mut c_void {
    or_enomem(allocate(size))
}

/// Frees a block from `xmalloc`/`xrealloc`, whichever thread allocated it; NULL is ignored.
#[no_mangle]
pub extern "C" fn xfree(p: *mut c_void) {
    if !p.is_null() {
        deallocate(p.cast(), "xfree");
    }
}

/// Resizes like `realloc`: `xrealloc(NULL, n)` is `xmalloc(n)`, `xrealloc(p, 0)` frees `p` and
/// returns NULL; on failure NULL (errno ENOMEM) is returned and `p` is left as it was.
#[no_mangle]
pub extern "C" fn xrealloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return xmalloc(size);
    }
    if size == 0 {
        xfree(p);
        return null_mut();
    }
    or_enomem(reallocate(p.cast(), size))
}
