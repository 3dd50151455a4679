//! `BINMALLOC_*` options, read once at start-up by walking `environ` (no `getenv`, no
//! allocation). A bad value gets one warning line naming the option and the default used.

use core::cell::UnsafeCell;
use core::ffi::{c_char, CStr};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::bins::Fit;
use crate::fmt::StackBuf;

/// Default big-allocation cutoff: requests above it go straight to mmap. Chosen by measurement
/// (see README, "Choosing the defaults").
pub const DEFAULT_MMAP_THRESHOLD: usize = 1 << 20;
/// The cutoff can be set up to this; larger requests always go to mmap.
pub const MAX_MMAP_THRESHOLD: usize = 1 << 30;
/// The most arenas binmalloc will create.
pub const MAX_ARENAS: usize = 64;
/// Default fit policy inside a bin. Chosen by measurement (see README).
pub const DEFAULT_FIT: Fit = Fit::Best;
/// Default delay before free pages are returned to the OS, once the heap serves big blocks (see
/// `purge::delay_ms`, which uses a shorter one before).
pub const DEFAULT_PURGE_DELAY_MS: u64 = 200;
/// Longest path accepted for `BINMALLOC_DUMP`.
pub const MAX_PATH: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StatsMode {
    Off,
    Text,
    Json,
}

#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub fit: Fit,
    pub arenas: usize,
    pub stats: StatsMode,
    pub verbose: bool,
    /// Whether threads keep a cache of small free blocks (the lock-free fast path).
    pub thread_cache: bool,
    /// Whether large regions ask for transparent huge pages (see `region::HUGE_PAGE_REGION_MIN`).
    pub huge_pages: bool,
    /// Free pages inside large free blocks go back to the OS once the block has stayed free this
    /// many milliseconds (at the heap's next operation); see `purge::delay_ms`.
    pub purge_delay_ms: u64,
    /// Set when `BINMALLOC_PURGE_DELAY` chose the delay: it then applies from the start.
    pub purge_delay_chosen: bool,
    /// Verify the whole heap every this many allocation calls (0: never).
    pub check_every: u64,
    /// Where to write a JSON heap dump at exit (NUL-terminated; empty: nowhere).
    pub dump_path: [u8; MAX_PATH],
}

impl Config {
    const fn defaults() -> Config {
        Config {
            fit: DEFAULT_FIT,
            arenas: 0,
            stats: StatsMode::Off,
            verbose: false,
            thread_cache: true,
            huge_pages: false,
            purge_delay_ms: DEFAULT_PURGE_DELAY_MS,
            purge_delay_chosen: false,
            check_every: 0,
            dump_path: [0; MAX_PATH],
        }
    }
}

struct ConfigCell(UnsafeCell<Config>);
// SAFETY: written only by `load`, once, by the initialising thread before the init flag is
// published with Release ordering; every reader runs after observing that flag.
unsafe impl Sync for ConfigCell {}

static CONFIG: ConfigCell = ConfigCell(UnsafeCell::new(Config::defaults()));
/// The big-allocation cutoff; separate because `mallopt(M_MMAP_THRESHOLD)` and the dynamic
/// rule below change it at run time.
pub static MMAP_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_MMAP_THRESHOLD);
/// Set once the user chose the cutoff (environment or `mallopt`): it then stays where they put it.
static THRESHOLD_FIXED: AtomicBool = AtomicBool::new(false);
/// The dynamic cutoff never rises above this (glibc's `DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit).
pub const DYNAMIC_MMAP_THRESHOLD_MAX: usize = 32 << 20;

/// Sets the cutoff on the user's behalf and stops the dynamic rule.
pub fn fix_mmap_threshold(bytes: usize) {
    MMAP_THRESHOLD.store(bytes, Ordering::Relaxed);
    THRESHOLD_FIXED.store(true, Ordering::Relaxed);
}

/// The dynamic rule (as in glibc): when a big block of `bytes` is freed, later requests of up
/// to twice that size are served from regions instead, where freed memory is reused without new
/// page faults. A program that keeps allocating and freeing buffers of a few MiB otherwise pays
/// mmap, page faults and munmap on every one. Twice, not the size itself: with buffers spread
/// over a range, each new largest one would map once more (`bigbuf`: 9 big mappings and 62.7k
/// page faults in 0.23 s with the size itself; 4, 47.4k and 0.17 s with twice it).
pub fn note_big_block_freed(bytes: usize) {
    if bytes > mmap_threshold() && bytes <= DYNAMIC_MMAP_THRESHOLD_MAX && !THRESHOLD_FIXED.load(Ordering::Relaxed) {
        MMAP_THRESHOLD.fetch_max((2 * bytes).min(DYNAMIC_MMAP_THRESHOLD_MAX), Ordering::Relaxed);
    }
}

/// The configuration read at start-up.
#[inline(always)]
pub fn get() -> &'static Config {
    // SAFETY: see `ConfigCell`.
    unsafe { &*CONFIG.0.get() }
}

#[inline(always)]
pub fn mmap_threshold() -> usize {
    MMAP_THRESHOLD.load(Ordering::Relaxed)
}

extern "C" {
    static environ: *const *const c_char;
}

/// Reads every `BINMALLOC_*` variable. Called once, during initialisation.
///
/// # Safety
/// Must run before any other thread can read the configuration.
pub unsafe fn load() {
    // SAFETY: guaranteed by the caller.
    let config = unsafe { &mut *CONFIG.0.get() };
    config.arenas = default_arenas();
    // SAFETY: `environ` is the process's NULL-terminated array of C strings (or null very early).
    let mut entry = unsafe { environ };
    if entry.is_null() {
        return;
    }
    loop {
        // SAFETY: `entry` points into the environ array, which ends with a null pointer.
        let var = unsafe { *entry };
        if var.is_null() {
            break;
        }
        // SAFETY: each environ entry is a NUL-terminated string.
        let bytes = unsafe { CStr::from_ptr(var) }.to_bytes();
        if let Some(rest) = bytes.strip_prefix(b"BINMALLOC_") {
            if let Some(eq) = rest.iter().position(|&c| c == b'=') {
                apply(config, &rest[..eq], &rest[eq + 1..]);
            }
        }
        // SAFETY: not past the terminating null, checked above.
        entry = unsafe { entry.add(1) };
    }
}

fn apply(config: &mut Config, name: &[u8], value: &[u8]) {
    match name {
        b"FIT" => match value {
            b"first" => config.fit = Fit::First,
            b"best" => config.fit = Fit::Best,
            b"worst" => config.fit = Fit::Worst,
            _ => warn(name, value, DEFAULT_FIT.name()),
        },
        b"MMAP_THRESHOLD" => match parse_size(value) {
            Some(n) if n <= MAX_MMAP_THRESHOLD => fix_mmap_threshold(n),
            _ => warn(name, value, "1M"),
        },
        b"ARENAS" => match parse_size(value) {
            Some(n) if (1..=MAX_ARENAS).contains(&n) => config.arenas = n,
            _ => warn(name, value, "twice the CPUs"),
        },
        b"STATS" => match value {
            b"1" | b"text" => config.stats = StatsMode::Text,
            b"json" => config.stats = StatsMode::Json,
            b"0" | b"" => config.stats = StatsMode::Off,
            _ => warn(name, value, "0"),
        },
        b"VERBOSE" => match value {
            b"1" => config.verbose = true,
            b"0" | b"" => config.verbose = false,
            _ => warn(name, value, "0"),
        },
        b"TCACHE" => match value {
            b"1" => config.thread_cache = true,
            b"0" => config.thread_cache = false,
            _ => warn(name, value, "1"),
        },
        b"HUGEPAGES" => match value {
            b"1" => config.huge_pages = true,
            b"0" => config.huge_pages = false,
            _ => warn(name, value, "0"),
        },
        b"PURGE_DELAY" => match parse_size(value) {
            Some(n) => {
                config.purge_delay_ms = n as u64;
                config.purge_delay_chosen = true;
            }
            None => warn(name, value, "10, then 200"),
        },
        b"CHECK" => match parse_size(value) {
            Some(n) => config.check_every = n as u64,
            None => warn(name, value, "0"),
        },
        b"FAULT_MMAP" => match parse_size(value) {
            Some(n) => crate::os::fail_nth_mapping(n as u64),
            None => warn(name, value, "0"),
        },
        b"DUMP" => {
            if value.len() < MAX_PATH {
                config.dump_path[..value.len()].copy_from_slice(value);
                config.dump_path[value.len()] = 0;
            } else {
                warn(name, b"(path too long)", "no dump");
            }
        }
        _ => warn_unknown(name),
    }
}

/// Parses a decimal number with an optional k, m or g suffix (powers of 1024).
pub fn parse_size(text: &[u8]) -> Option<usize> {
    let (digits, shift) = match text.last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((d - b'0') as usize)?;
    }
    n.checked_mul(1 << shift)
}

fn default_arenas() -> usize {
    // rustix makes the system call itself: libc's wrapper sits in a page of libc that programs
    // otherwise rarely touch, and every such page adds to a small program's resident set.
    let cpus = rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count() as usize);
    (2 * cpus).clamp(1, MAX_ARENAS)
}

fn warn(name: &[u8], value: &[u8], default: &str) {
    let mut line = StackBuf::<256>::new();
    let _ = writeln!(
        line,
        "binmalloc: ignoring BINMALLOC_{}={}: not a valid value; using the default ({})",
        text(name),
        text(value),
        default
    );
    line.flush_to(2);
}

fn warn_unknown(name: &[u8]) {
    let mut line = StackBuf::<256>::new();
    let _ = writeln!(line, "binmalloc: ignoring BINMALLOC_{}: no such option", text(name));
    line.flush_to(2);
}

fn text(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or("(not UTF-8)")
}

/// Echoes the active configuration (for `BINMALLOC_VERBOSE=1`).
pub fn print(fd: i32) {
    let c = get();
    let mut out = StackBuf::<512>::new();
    let dump_len = c.dump_path.iter().position(|&b| b == 0).unwrap_or(0);
    let _ = writeln!(
        out,
        "binmalloc: config: fit={} mmap_threshold={}{} arenas={} tcache={} hugepages={} purge_delay_ms={}{} stats={} check_every={} dump={}",
        c.fit.name(),
        mmap_threshold(),
        if THRESHOLD_FIXED.load(Ordering::Relaxed) { "" } else { " (dynamic)" },
        c.arenas,
        c.thread_cache as u8,
        c.huge_pages as u8,
        crate::purge::delay_ms(),
        if c.purge_delay_chosen { "" } else { " (dynamic)" },
        match c.stats {
            StatsMode::Off => "0",
            StatsMode::Text => "1",
            StatsMode::Json => "json",
        },
        c.check_every,
        if dump_len == 0 { "(none)" } else { text(&c.dump_path[..dump_len]) }
    );
    out.flush_to(fd);
}
