//! The process allocator's entry points for Rust code in other crates (the coursework
//! library's `xmalloc`): `malloc`, `free` and `realloc` without the C names.
//!
//! Out of line on purpose: see the note on module visibility in `lib.rs`.

/// Allocates `size` bytes aligned to 16; null when impossible.
#[inline(never)]
pub fn allocate(size: usize) -> *mut u8 {
    crate::alloc::allocate(size)
}

/// Frees `p` (not null), a block from [`allocate`] or [`reallocate`]; `call` names the
/// caller's function in a misuse diagnostic.
#[inline(never)]
pub fn deallocate(p: *mut u8, call: &'static str) {
    crate::alloc::deallocate(p, call)
}

/// Resizes `p` (not null) to `size` bytes (not 0), moving it if needed; null when impossible
/// (`p` is then left as it was).
#[inline(never)]
pub fn reallocate(p: *mut u8, size: usize) -> *mut u8 {
    crate::alloc::reallocate(p, size)
}
