//! Fuzz target: the input is a program of allocation calls made through binmalloc's C ABI
//! (`binmalloc::abi`), checked against a shadow table.
//!
//! Each op is an opcode byte and argument bytes (missing bytes read as 0): malloc, calloc,
//! realloc (grow, shrink, to 0, from NULL), reallocarray, free, posix_memalign, aligned_alloc,
//! memalign, valloc, pvalloc, malloc_usable_size, rewriting a block, malloc_trim, the heap
//! checker, first-class heap calls, and arming an injected mapping failure
//! (`binmalloc_inject_mmap_failure`). Every block carries a pattern (whole, or its first and last
//! 16 KiB when larger) verified before it is freed or resized and at the end of the input. A call
//! may return NULL only with errno ENOMEM and only if an injected failure was consumed by it; a
//! failed realloc must leave its block intact. At the end of each input everything is freed and
//! `binmalloc_check_heap()` must report nothing. Any violation panics (a crash for libFuzzer).
//!
//! Run: `cargo fuzz run alloc_ops -s none` (no sanitizer: AddressSanitizer would replace malloc).
#![no_main]

use core::ffi::c_void;
use libfuzzer_sys::fuzz_target;

use binmalloc::abi as bm;

const SLOTS: usize = 64;
const HSLOTS: usize = 32;
const LIVE_CAP: usize = 256 << 20;
const EDGE: usize = 16 << 10;

#[derive(Clone, Copy)]
struct Slot {
    p: *mut u8,
    n: usize,
    key: u64,
}

const EMPTY: Slot = Slot { p: core::ptr::null_mut(), n: 0, key: 0 };

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[inline]
fn pat(key: u64, i: usize) -> u8 {
    ((key ^ ((i >> 3) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> ((i & 7) * 8)) as u8
}

/// The byte ranges of a block of `n` bytes that carry the pattern.
fn ranges(n: usize) -> [(usize, usize); 2] {
    if n <= 2 * EDGE {
        [(0, n), (0, 0)]
    } else {
        [(0, EDGE), (n - EDGE, n)]
    }
}

fn fill(s: &Slot) {
    for (a, b) in ranges(s.n) {
        for i in a..b {
            // SAFETY: `s.p` is a live block of at least `s.n` bytes.
            unsafe { *s.p.add(i) = pat(s.key, i) };
        }
    }
}

/// First offset below `limit` where `p` does not hold the pattern of a block of `n` bytes.
fn first_bad(p: *const u8, n: usize, key: u64, limit: usize) -> Option<usize> {
    for (a, b) in ranges(n) {
        for i in a..b.min(limit) {
            // SAFETY: `p` is a live block holding at least min(n, limit) bytes.
            if unsafe { *p.add(i) } != pat(key, i) {
                return Some(i);
            }
        }
    }
    None
}

fn verify(s: &Slot, when: &str) {
    if let Some(i) = first_bad(s.p, s.n, s.key, usize::MAX) {
        panic!("{when}: block {:p} ({} bytes) damaged at offset {i}", s.p, s.n);
    }
}

fn zeroed(p: *const u8, n: usize) -> bool {
    ranges(n).iter().all(|&(a, b)| (a..b).all(|i| unsafe { *p.add(i) } == 0))
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}
fn clear_errno() {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = 0 };
}

struct Reader<'a> {
    d: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.d.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        b
    }
    fn size(&mut self) -> usize {
        let (a, b) = (self.byte() as usize, self.byte() as usize);
        match a & 7 {
            0..=3 => b,
            4 | 5 => (b << 6) | (a >> 3),
            6 => ((b << 12) + ((a >> 3) << 4)).saturating_sub(64),
            _ if a >> 3 == 31 => (b << 18) + 4096,
            _ => (b << 14) + ((a >> 3) << 10),
        }
    }
    fn align(&mut self) -> usize {
        16 << (self.byte() % 18)
    }
}

struct State {
    slots: [Slot; SLOTS],
    hslots: [Slot; HSLOTS],
    live: usize,
    counter: u64,
    heap: *mut binmalloc::user_heap::UserHeap,
}

impl State {
    fn release(&mut self, idx: usize) {
        let s = self.slots[idx];
        if s.p.is_null() {
            return;
        }
        verify(&s, "free");
        bm::free(s.p.cast());
        self.live -= s.n;
        self.slots[idx] = EMPTY;
    }

    fn release_h(&mut self, idx: usize) {
        let s = self.hslots[idx];
        if s.p.is_null() {
            return;
        }
        verify(&s, "binmalloc_heap_free");
        // SAFETY: the block belongs to this live heap.
        unsafe { bm::binmalloc_heap_free(self.heap, s.p.cast()) };
        self.live -= s.n;
        self.hslots[idx] = EMPTY;
    }

    /// Records a fresh block, or checks that a NULL was allowed.
    fn place(&mut self, heap: bool, idx: usize, p: *mut c_void, n: usize, align: usize, call: &str, faults: u64) {
        if p.is_null() {
            let consumed = bm::binmalloc_inject_mmap_failure(0) > faults;
            if !consumed {
                panic!("{call}({n}) returned NULL without an injected failure (errno {})", errno());
            }
            if errno() != libc::ENOMEM && call != "posix_memalign" {
                panic!("{call}({n}) failed with errno {}, not ENOMEM", errno());
            }
            return;
        }
        let p = p.cast::<u8>();
        assert!(p as usize % align == 0, "{call}({n}): {p:p} not aligned to {align}");
        if !heap {
            assert!(bm::binmalloc_owns(p.cast()) == 1, "{call}({n}): binmalloc_owns({p:p}) != 1");
            let us = bm::malloc_usable_size(p.cast());
            assert!(us >= n, "{call}({n}): usable size {us}");
        }
        self.counter += 1;
        let s = Slot { p, n, key: mix(self.counter) };
        fill(&s);
        self.live += n;
        if heap {
            self.hslots[idx] = s;
        } else {
            self.slots[idx] = s;
        }
    }

    /// Creates the first-class heap if there is none; false if an injected failure stopped it.
    fn ensure_heap(&mut self, faults: u64) -> bool {
        if self.heap.is_null() {
            // SAFETY: NULL asks for the defaults.
            self.heap = unsafe { bm::binmalloc_heap_new(core::ptr::null()) };
            if self.heap.is_null() {
                let consumed = bm::binmalloc_inject_mmap_failure(0) > faults;
                assert!(consumed, "binmalloc_heap_new failed without an injected failure");
                assert!(errno() == libc::ENOMEM, "binmalloc_heap_new failed with errno {}", errno());
                return false;
            }
        }
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let mut st = State { slots: [EMPTY; SLOTS], hslots: [EMPTY; HSLOTS], live: 0, counter: 0, heap: core::ptr::null_mut() };
    let mut r = Reader { d: data, i: 0 };
    // Faults injected before this op; an armed failure ("the next mapping request fails") stays
    // armed across ops until one consumes it.
    let mut faults = bm::binmalloc_inject_mmap_failure(0);
    let mut armed = false;
    while r.i < data.len() {
        let op = r.byte();
        let idx = r.byte() as usize % SLOTS;
        clear_errno();
        match op % 22 {
            0 | 1 => {
                let n = r.size();
                st.release(idx);
                if st.live + n <= LIVE_CAP {
                    let p = bm::malloc(n);
                    st.place(false, idx, p, n, 16, "malloc", faults);
                }
            }
            2 => {
                let (n, m) = (r.size(), 1 + r.byte() as usize % 4);
                st.release(idx);
                if st.live + n * m <= LIVE_CAP {
                    let p = bm::calloc(n, m);
                    if !p.is_null() {
                        assert!(zeroed(p.cast(), n * m), "calloc({n}, {m}) not zeroed");
                    }
                    st.place(false, idx, p, n * m, 16, "calloc", faults);
                }
            }
            3 | 4 => {
                let n = r.size();
                let s = st.slots[idx];
                if st.live - s.n + n > LIVE_CAP {
                    continue;
                }
                if !s.p.is_null() {
                    verify(&s, "realloc");
                }
                let q = bm::realloc(s.p.cast(), n);
                if n == 0 && !s.p.is_null() {
                    assert!(q.is_null(), "realloc(p, 0) returned {q:p}");
                    st.live -= s.n;
                    st.slots[idx] = EMPTY;
                } else if q.is_null() {
                    // the old block must be intact and still ours
                    if !s.p.is_null() {
                        verify(&s, "failed realloc");
                        assert!(bm::binmalloc_owns(s.p.cast()) == 1, "failed realloc freed {:p}", s.p);
                    }
                    st.place(false, idx, q, n, 16, "realloc", faults);
                } else {
                    if !s.p.is_null() {
                        if let Some(i) = first_bad(q.cast(), s.n, s.key, n) {
                            panic!("realloc {:p} -> {q:p} ({} -> {n}) lost contents at {i}", s.p, s.n);
                        }
                        st.live -= s.n;
                        st.slots[idx] = EMPTY;
                    }
                    st.place(false, idx, q, n, 16, "realloc", faults);
                }
            }
            5 => {
                let n = r.size() / 8;
                st.release(idx);
                if st.live + n * 8 <= LIVE_CAP {
                    let p = bm::reallocarray(core::ptr::null_mut(), n, 8);
                    st.place(false, idx, p, n * 8, 16, "reallocarray", faults);
                }
            }
            6 | 7 => st.release(idx),
            8 => {
                let (a, n) = (r.align(), r.size());
                st.release(idx);
                if st.live + n <= LIVE_CAP {
                    let mut out: *mut c_void = core::ptr::null_mut();
                    // SAFETY: `out` is a valid place for the result.
                    let rc = unsafe { bm::posix_memalign(&mut out, a, n) };
                    if rc != 0 {
                        assert!(rc == libc::ENOMEM, "posix_memalign({a}, {n}) = {rc}");
                        assert!(out.is_null(), "failed posix_memalign wrote *memptr");
                    }
                    st.place(false, idx, out, n, a, "posix_memalign", faults);
                }
            }
            9 => {
                let a = r.align();
                let n = (r.size() + a - 1) & !(a - 1);
                st.release(idx);
                if st.live + n <= LIVE_CAP {
                    let p = bm::aligned_alloc(a, n);
                    st.place(false, idx, p, n, a, "aligned_alloc", faults);
                }
            }
            10 => {
                let (a, n) = (r.align(), r.size());
                st.release(idx);
                if st.live + n <= LIVE_CAP {
                    let p = bm::memalign(a, n);
                    st.place(false, idx, p, n, a, "memalign", faults);
                }
            }
            11 => {
                let (n, pv) = (r.size(), r.byte() & 1 == 1);
                st.release(idx);
                if st.live + n + 4096 <= LIVE_CAP {
                    let p = if pv { bm::pvalloc(n) } else { bm::valloc(n) };
                    let n = if pv { n.max(1).next_multiple_of(4096) } else { n };
                    st.place(false, idx, p, n, 4096, if pv { "pvalloc" } else { "valloc" }, faults);
                }
            }
            12 => {
                let s = st.slots[idx];
                if !s.p.is_null() {
                    assert!(bm::malloc_usable_size(s.p.cast()) >= s.n, "malloc_usable_size too small");
                    assert!(bm::binmalloc_owns(s.p.cast()) == 1, "binmalloc_owns(live block) != 1");
                }
            }
            13 => {
                let s = st.slots[idx];
                if !s.p.is_null() {
                    verify(&s, "rewrite");
                    st.counter += 1;
                    st.slots[idx].key = mix(st.counter);
                    fill(&st.slots[idx]);
                }
            }
            14 => {
                if r.byte() < 16 {
                    bm::malloc_trim(0);
                }
            }
            15 => {
                if r.byte() < 32 {
                    let e = bm::binmalloc_check_heap();
                    assert!(e == 0, "binmalloc_check_heap() found {e} problems mid-input");
                }
            }
            16 | 17 => {
                let h = idx % HSLOTS;
                let n = r.size() & ((4 << 20) - 1);
                if !st.ensure_heap(faults) {
                    faults = bm::binmalloc_inject_mmap_failure(0);
                    armed = false;
                    continue;
                }
                st.release_h(h);
                // SAFETY: the heap is live.
                let p = unsafe {
                    if op % 22 == 16 {
                        bm::binmalloc_heap_alloc(st.heap, n)
                    } else {
                        bm::binmalloc_heap_calloc(st.heap, n, 1)
                    }
                };
                if op % 22 == 17 && !p.is_null() {
                    assert!(zeroed(p.cast(), n), "binmalloc_heap_calloc({n}) not zeroed");
                }
                st.place(true, h, p, n, 16, "binmalloc_heap_alloc", faults);
            }
            18 => {
                let h = idx % HSLOTS;
                let n = 1 + (r.size() & ((4 << 20) - 1));
                let s = st.hslots[h];
                if st.heap.is_null() || s.p.is_null() {
                    continue;
                }
                verify(&s, "binmalloc_heap_realloc");
                // SAFETY: the block belongs to this live heap.
                let q = unsafe { bm::binmalloc_heap_realloc(st.heap, s.p.cast(), n) };
                if q.is_null() {
                    verify(&s, "failed binmalloc_heap_realloc");
                    st.place(true, h, q, n, 16, "binmalloc_heap_realloc", faults);
                } else {
                    if let Some(i) = first_bad(q.cast(), s.n, s.key, n) {
                        panic!("binmalloc_heap_realloc lost contents at {i}");
                    }
                    st.live -= s.n;
                    st.hslots[h] = EMPTY;
                    st.place(true, h, q, n, 16, "binmalloc_heap_realloc", faults);
                }
            }
            19 => {
                if !st.heap.is_null() && r.byte() < 64 {
                    // SAFETY: the heap is live; its blocks are forgotten below.
                    assert!(unsafe { bm::binmalloc_heap_check(st.heap) } == 0, "heap check before reset");
                    for h in 0..HSLOTS {
                        let s = st.hslots[h];
                        if !s.p.is_null() {
                            verify(&s, "binmalloc_heap_reset");
                            st.live -= s.n;
                            st.hslots[h] = EMPTY;
                        }
                    }
                    // SAFETY: as above.
                    unsafe { bm::binmalloc_heap_reset(st.heap) };
                }
            }
            _ => {
                // arm an injected failure of this thread's next mapping request
                bm::binmalloc_inject_mmap_failure(1);
                armed = true;
            }
        }
        // reading the count disarms; re-arm if the failure is still pending
        let now = bm::binmalloc_inject_mmap_failure(0);
        if now > faults {
            faults = now;
            armed = false;
        } else if armed {
            bm::binmalloc_inject_mmap_failure(1);
        }
    }
    bm::binmalloc_inject_mmap_failure(0);
    for i in 0..SLOTS {
        st.release(i);
    }
    if !st.heap.is_null() {
        // SAFETY: the heap is live.
        assert!(unsafe { bm::binmalloc_heap_check(st.heap) } == 0, "heap check at the end");
        for h in 0..HSLOTS {
            let s = st.hslots[h];
            if !s.p.is_null() {
                verify(&s, "end");
                st.live -= s.n;
                st.hslots[h] = EMPTY;
            }
        }
        // SAFETY: the heap is live and not used again.
        unsafe { bm::binmalloc_heap_destroy(st.heap) };
    }
    assert!(st.live == 0, "shadow bookkeeping: {} bytes left", st.live);
    let e = bm::binmalloc_check_heap();
    assert!(e == 0, "binmalloc_check_heap() found {e} problems at the end of the input");
});
