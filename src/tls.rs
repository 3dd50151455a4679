//! Per-thread statics of the allocator itself.
//!
//! Rust's `thread_local!` needs std, and in a shared library it calls `__tls_get_addr` on every
//! access: a measurable share of a malloc/free pair. On x86-64 each static declared here is a
//! `.tbss` symbol of the library's one initial-exec TLS block instead, read as `fs:0` plus an
//! offset from the GOT (two instructions); the C library zero-fills it for every new thread.
//! Elsewhere (and under Miri, which runs no assembly) it is a const `thread_local!` of the
//! same zero bytes.

/// `thread_static!(fn name() -> Type);` declares `name()`, which returns a pointer to the
/// calling thread's own `Type`, valid for the life of the thread. Every thread's value starts
/// as all zero bytes, so all-zero must be a valid `Type` (null pointers, zero counts).
macro_rules! thread_static {
    ($(#[$meta:meta])* $vis:vis fn $name:ident() -> $ty:ty;) => {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        core::arch::global_asm!(
            ".section .tbss,\"awT\",@nobits",
            ".p2align 6",
            concat!(".globl binmalloc_tls_", stringify!($name)),
            concat!(".hidden binmalloc_tls_", stringify!($name)),
            concat!(".type binmalloc_tls_", stringify!($name), ",@object"),
            concat!("binmalloc_tls_", stringify!($name), ":"),
            ".zero {size}",
            concat!(".size binmalloc_tls_", stringify!($name), ", {size}"),
            ".text",
            size = const core::mem::size_of::<$ty>(),
        );

        $(#[$meta])*
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        #[inline(always)]
        $vis fn $name() -> *mut $ty {
            let this_thread: *mut $ty;
            // SAFETY: reads the thread pointer and the GOT entry the dynamic linker fills with
            // the symbol's offset from it; both are valid for the life of the thread.
            unsafe {
                core::arch::asm!(
                    "mov {p}, qword ptr fs:[0]",
                    concat!("add {p}, qword ptr [rip + binmalloc_tls_", stringify!($name), "@GOTTPOFF]"),
                    p = out(reg) this_thread,
                    options(pure, readonly, nostack),
                );
            }
            this_thread
        }

        $(#[$meta])*
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        #[inline(always)]
        $vis fn $name() -> *mut $ty {
            thread_local! {
                // SAFETY: the caller of `thread_static!` promises all-zero is a valid value.
                static SLOT: core::cell::UnsafeCell<$ty> =
                    const { core::cell::UnsafeCell::new(unsafe { core::mem::zeroed() }) };
            }
            SLOT.with(|slot| slot.get())
        }
    };
}

pub(crate) use thread_static;
