//! binmalloc: a malloc replacement built from size-headered blocks on segregated bins.
//!
//! Module map (one concern per file):
//! - [`abi`]: the only place with C names; argument checks, errno, dispatch.
//! - [`os`]: the only place that talks to the kernel (mmap, munmap, mremap, madvise).
//! - [`block`]: the block layout, its header word and the boundary-tag invariants.
//! - [`size_class`]: block size to bin index and back.
//! - [`bins`]: segregated free lists, the bitmap of non-empty bins, fit policies.
//! - [`region`]: mmap'd regions carved into blocks; [`region_map`] finds a pointer's region.
//! - [`heap`]: one lock-free-of-its-own heap: allocation, free, coalescing, in-place resize.
//! - [`arena`]: heaps behind locks, the per-thread choice of arena, start-up and fork.
//! - [`thread_cache`]: the per-thread fast path of small blocks, taking no lock;
//!   [`handed_back`]: blocks other threads freed, back to their arena without its lock.
//! - [`user_heap`]: first-class heaps a program creates and destroys as a whole.
//! - [`large`]: requests above the big-allocation cutoff, straight to mmap.
//! - [`lock`]: a futex lock that never allocates; [`valgrind`]: telling helgrind and drd about it.
//! - [`tls`]: per-thread statics without std and without a call per access.
//! - [`config`], [`stats`], [`fatal`], [`check`], [`fmt`], [`dump`]: options, counters, dying,
//!   the heap checker, allocation-free formatting and the JSON heap dump.

// The C library on x86-64 needs nothing from Rust's std, whose panic and backtrace code would
// be most of the library's size (and pull in libgcc_s). Builds that unwind (`cargo test`),
// programs that link the Rust library with std (feature `std`) and other architectures (whose
// per-thread statics use `thread_local!`) keep std. `fatal::without_std` repeats this condition.
#![cfg_attr(
    all(feature = "c-abi", not(feature = "std"), not(test), target_arch = "x86_64", panic = "abort"),
    no_std
)]

#[cfg(all(feature = "c-abi", not(test)))]
pub mod abi;
pub mod alloc;
pub mod arena;
pub mod bins;
pub mod block;
pub mod check;
pub mod config;
pub mod dump;
pub mod fatal;
pub mod fmt;
pub mod handed_back;
pub mod heap;
pub mod large;
pub mod lock;
pub mod orphans;
pub mod os;
pub mod purge;
pub mod region;
pub mod region_map;
pub mod size_class;
pub mod stats;
pub mod thread_cache;
mod tls;
pub mod user_heap;
pub mod valgrind;

#[cfg(test)]
mod tests;
