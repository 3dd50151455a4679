//! Formatting without allocation: `core::fmt` into a fixed buffer, written with `write(2)`.

use core::fmt;

/// A fixed-size text buffer; output past its end is dropped, never reallocated.
pub struct StackBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> StackBuf<N> {
    pub const fn new() -> Self {
        StackBuf { bytes: [0; N], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Writes the buffer to `fd` and empties it.
    pub fn flush_to(&mut self, fd: i32) {
        write_all(fd, self.as_bytes());
        self.len = 0;
    }
}

impl<const N: usize> fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes; errors are dropped (there is nowhere
/// to report them).
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice; write(2) does not allocate.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            // SAFETY: reading errno through libc's thread-local location.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Bytes as a human-readable quantity (B, KiB, MiB, GiB) with one decimal.
pub struct Bytes(pub usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
        let mut unit = 0;
        let mut scaled = self.0 as u64 * 10;
        while scaled >= 10 * 1024 && unit + 1 < UNITS.len() {
            scaled /= 1024;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{}.{} {}", scaled / 10, scaled % 10, UNITS[unit])
        }
    }
}
