//! Rust-side tests of the block and bin logic. They drive heaps directly (not the exported C
//! symbols, which are compiled out of the test build so the harness itself runs on glibc).

mod checker;
mod faults;
mod heap_model;
mod handed_back;
mod heap_cases;
mod large_blocks;
#[cfg(loom)]
mod loom_lock;
mod size_classes;
mod support;
mod thread_statics;
mod threads;
mod user_heaps;
