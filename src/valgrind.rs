//! Valgrind client requests, so that helgrind and drd understand binmalloc's own synchronisation.
//!
//! Both tools model pthread mutexes but not a futex lock built from atomics, so without these
//! requests they report every access a [`crate::lock::RawLock`] protects as a race. The lock
//! therefore says "happens before" on unlock and "happens after" on lock, and memory that is only
//! ever accessed atomically (lock words, the region map) is excluded from race checking. Other
//! atomics are excused by `c_tests/stress/threads.supp`, which says why.
//!
//! A client request is a magic instruction sequence that valgrind recognises and that does nothing
//! on a real CPU (`valgrind.h`, amd64). Whether the process runs under valgrind is asked once, on
//! first use, so that outside valgrind each annotation costs a load and a predicted branch.
//! Request codes are from `helgrind.h` and `drd.h`; drd accepts helgrind's happens-before codes
//! (`VG_USERREQ__DRD_ANNOTATE_HAPPENS_*` have the same values), but each tool has its own code for
//! excluding a range. A tool ignores the other tool's requests.

use core::sync::atomic::{AtomicU8, Ordering};

const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `_VG_USERREQ__HG_USERSO_SEND_PRE` = `VG_USERREQ__DRD_ANNOTATE_HAPPENS_BEFORE`.
const HAPPENS_BEFORE: usize = 0x4847_0121;
/// `_VG_USERREQ__HG_USERSO_RECV_POST` = `VG_USERREQ__DRD_ANNOTATE_HAPPENS_AFTER`.
const HAPPENS_AFTER: usize = 0x4847_0122;
/// helgrind's `_VG_USERREQ__HG_ARANGE_MAKE_UNTRACKED` (`VALGRIND_HG_DISABLE_CHECKING`).
const HG_DISABLE_CHECKING: usize = 0x4847_0127;
/// drd's `VG_USERREQ__DRD_START_SUPPRESSION` (`ANNOTATE_BENIGN_RACE_SIZED`).
const DRD_START_SUPPRESSION: usize = 0x4452_0002;

const UNKNOWN: u8 = 0;
const NATIVE: u8 = 1;
const UNDER_VALGRIND: u8 = 2;
/// Set on the first lock operation, which happens on the first allocation, before the program
/// can have created a second thread.
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Sends a client request; returns `default` when not running under valgrind.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn client_request(default: usize, request: usize, arg1: usize, arg2: usize) -> usize {
    let args: [usize; 6] = [request, arg1, arg2, 0, 0, 0];
    let result: usize;
    // SAFETY: the four rotations of rdi add up to 128 bits, so on a real CPU the sequence changes
    // nothing but the flags (rdi is declared clobbered all the same); under valgrind it is the
    // client-request preamble and `xchg rbx, rbx` reads the six words at rax and answers in rdx.
    // `args` lives until after the asm, which may read it (no `nomem`).
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") default => result,
            out("rdi") _,
            options(nostack),
        );
    }
    result
}

/// Elsewhere (and under Miri, which runs no assembly) there is no valgrind to talk to.
#[cfg(not(all(target_arch = "x86_64", not(miri))))]
#[inline(always)]
fn client_request(default: usize, _request: usize, _arg1: usize, _arg2: usize) -> usize {
    default
}

/// Whether the process runs under valgrind.
#[inline(always)]
pub fn active() -> bool {
    match MODE.load(Ordering::Relaxed) {
        NATIVE => false,
        UNDER_VALGRIND => true,
        _ => detect(),
    }
}

#[cold]
#[inline(never)]
fn detect() -> bool {
    let under = client_request(0, RUNNING_ON_VALGRIND, 0, 0) != 0;
    MODE.store(if under { UNDER_VALGRIND } else { NATIVE }, Ordering::Relaxed);
    under
}

/// A lock on the word at `word` is about to be released: everything this thread did before
/// happens before whatever the next holder does (ANNOTATE_HAPPENS_BEFORE).
#[inline(always)]
pub fn releasing_lock(word: *const u8) {
    if active() {
        request(HAPPENS_BEFORE, word as usize, 0);
    }
}

/// The lock on the word at `word` (`len` bytes) was just taken (ANNOTATE_HAPPENS_AFTER). The
/// word itself is excluded from race checking: it is only ever accessed atomically.
#[inline(always)]
pub fn acquired_lock(word: *const u8, len: usize) {
    if active() {
        lock_acquired_now(word, len);
    }
}

#[cold]
#[inline(never)]
fn lock_acquired_now(word: *const u8, len: usize) {
    atomic_only_now(word, len);
    request(HAPPENS_AFTER, word as usize, 0);
}

/// Everything this thread did before is visible to a thread that later calls [`happens_after`]
/// with the same `tag`: for hand-offs through atomics other than [`crate::lock::RawLock`].
#[inline(always)]
pub fn happens_before(tag: *const u8) {
    if active() {
        request(HAPPENS_BEFORE, tag as usize, 0);
    }
}

/// See [`happens_before`].
#[inline(always)]
pub fn happens_after(tag: *const u8) {
    if active() {
        request(HAPPENS_AFTER, tag as usize, 0);
    }
}

/// Excludes `[start, start + len)` from race checking: for memory that is only ever accessed
/// through atomic instructions, whose ordering the tools do not model.
#[inline(always)]
pub fn atomic_only(start: *const u8, len: usize) {
    if active() {
        atomic_only_now(start, len);
    }
}

/// [`atomic_only`] for one object.
#[inline(always)]
pub fn atomic_only_object<T>(object: &T) {
    atomic_only((object as *const T).cast(), core::mem::size_of::<T>());
}

#[cold]
#[inline(never)]
fn atomic_only_now(start: *const u8, len: usize) {
    request(HG_DISABLE_CHECKING, start as usize, len);
    request(DRD_START_SUPPRESSION, start as usize, len);
}

/// A request whose answer does not matter, kept out of line so that the annotated paths stay
/// small.
#[cold]
#[inline(never)]
fn request(code: usize, arg1: usize, arg2: usize) {
    client_request(0, code, arg1, arg2);
}
