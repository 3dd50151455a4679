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

/// What a library without Rust's std (see `lib.rs`, whose `no_std` condition this repeats) must
/// provide itself.
#[cfg(all(feature = "c-abi", not(feature = "std"), not(test), target_arch = "x86_64", panic = "abort"))]
mod without_std {
    use core::fmt::Write;

    use crate::fmt::StackBuf;

    /// A panic, which can only mean a bug in binmalloc, dies like every other broken invariant:
    /// one line, then `abort()`, without allocating.
    #[panic_handler]
    fn panicked(info: &core::panic::PanicInfo) -> ! {
        let mut line = StackBuf::<240>::new();
        let _ = match info.location() {
            Some(at) => writeln!(line, "binmalloc: internal error: {} at {}:{}", info.message(), at.file(), at.line()),
            None => writeln!(line, "binmalloc: internal error: {}", info.message()),
        };
        super::die(line.as_bytes())
    }

    // core's prebuilt code names an unwinding personality routine even though nothing in
    // binmalloc unwinds. This one says "nothing to do in this frame". Hidden, so that it is never
    // exported and cannot stand in for the personality of a Rust program binmalloc is loaded
    // into; weak, so that a program linking the static library with its own std keeps its own.
    core::arch::global_asm!(
        ".weak rust_eh_personality",
        ".hidden rust_eh_personality",
        ".type rust_eh_personality,@function",
        "rust_eh_personality:",
        "mov eax, 8", // _URC_CONTINUE_UNWIND
        "ret",
        ".size rust_eh_personality, . - rust_eh_personality",
    );
}

fn die(line: &[u8]) -> ! {
    crate::fmt::write_all(2, line);
    // SAFETY: abort is always safe to call and does not return.
    unsafe { libc::abort() }
}
