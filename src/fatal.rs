//! The one way to die: a fixed one-line message through `write(2)`, then `abort()`. Nothing here
//! allocates or takes a lock, so it is safe from any state the heap can be in.

use core::fmt::Write;

use crate::fmt::StackBuf;

/// A detectable misuse of the allocation API, each with its own message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misuse {
    DoubleFree,
    AlreadyFreed,
    NotOurs,
    NotBlockStart,
    CorruptedHeader,
    CorruptedNeighbour,
    WrongHeap,
    WrittenAfterFree,
}

impl Misuse {
    pub fn message(self) -> &'static str {
        match self {
            Misuse::DoubleFree => "double free",
            Misuse::AlreadyFreed => "block already freed",
            Misuse::NotOurs => "invalid pointer (not allocated by binmalloc)",
            Misuse::NotBlockStart => "invalid pointer (not the start of a block)",
            Misuse::CorruptedHeader => "corrupted block header (buffer overflow?)",
            Misuse::CorruptedNeighbour => "corrupted block header of a neighbouring block (buffer overflow?)",
            Misuse::WrongHeap => "pointer does not belong to this heap",
            Misuse::WrittenAfterFree => "freed block written to after it was freed (use after free?)",
        }
    }
}

/// Reports `misuse` of `call` on `ptr` and aborts: `binmalloc: free(0x1234): double free`.
#[cold]
#[inline(never)]
pub fn misuse(call: &str, ptr: *const u8, misuse: Misuse) -> ! {
    let mut line = StackBuf::<160>::new();
    let _ = writeln!(line, "binmalloc: {}({:p}): {}", call, ptr, misuse.message());
    die(line.as_bytes())
}

/// Reports a broken internal invariant and aborts.
#[cold]
#[inline(never)]
pub fn internal(what: &str) -> ! {
    let mut line = StackBuf::<160>::new();
    let _ = writeln!(line, "binmalloc: internal error: {}", what);
    die(line.as_bytes())
}

fn die(line: &[u8]) -> ! {
    crate::fmt::write_all(2, line);
    // SAFETY: abort is always safe to call and does not return.
    unsafe { libc::abort() }
}
