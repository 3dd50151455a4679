//! binmalloc_course: the allocator APIs that coursework harnesses drive, as a separate library
//! that never replaces the process `malloc`.
//!
//! - [`hmalloc`]: `hmalloc.h`, the textbook free-list allocator and the statistics harnesses
//!   grade (`hgetstats`, `hprintstats`).
//! - [`xmalloc`]: `xmalloc.h`, binmalloc's full-speed allocator under course names.
//!
//! The headers are in `course/include/`.

pub mod hmalloc;
pub mod xmalloc;
