//! The heap dump: every region with its blocks in address order, the non-empty bins and the
//! big blocks, as one JSON object streamed through a fixed buffer (no allocation). Read by
//! `scripts/heapmap` to draw the heap.

use core::fmt::Write;

use crate::block::read_header;
use crate::fmt::StackBuf;
use crate::heap::Heap;
use crate::region::{Region, FIRST_BLOCK_OFFSET};
use crate::size_class::{bin_lower_bound, BIN_COUNT};

/// Output is flushed whenever less than this much room is left in the buffer.
const FLUSH_MARGIN: usize = 256;

struct Out {
    fd: i32,
    buf: StackBuf<8192>,
}

impl Out {
    fn text(&mut self, args: core::fmt::Arguments<'_>) {
        let _ = self.buf.write_fmt(args);
        if self.buf.as_bytes().len() > 8192 - FLUSH_MARGIN {
            self.buf.flush_to(self.fd);
        }
    }
}

/// Writes the dump of every arena and the big blocks to `fd`.
pub fn dump_json(fd: i32) {
    let mut out = Out { fd, buf: StackBuf::new() };
    let config = crate::config::get();
    let s = crate::stats::summary();
    out.text(format_args!(
        "{{\"version\":1,\"config\":{{\"fit\":\"{}\",\"mmap_threshold\":{},\"arenas\":{},\"thread_cache\":{}}},",
        config.fit.name(),
        crate::config::mmap_threshold(),
        config.arenas,
        config.thread_cache as u8
    ));
    out.text(format_args!("\"stats\":"));
    let _ = s.write_json(&mut out.buf);
    out.text(format_args!(","));
    out.text(format_args!("\"regions\":["));
    let mut first = true;
    let mut index = 0;
    crate::arena::for_each_arena(|heap| {
        dump_regions(&mut out, heap, index, &mut first);
        index += 1;
    });
    out.text(format_args!("],\"bins\":["));
    let mut first = true;
    let mut index = 0;
    crate::arena::for_each_arena(|heap| {
        dump_bins(&mut out, heap, index, &mut first);
        index += 1;
    });
    out.text(format_args!("],\"big\":["));
    let mut first = true;
    crate::large::for_each(|ptr, len| {
        out.text(format_args!("{}{{\"ptr\":\"{:#x}\",\"size\":{}}}", if first { "" } else { "," }, ptr, len));
        first = false;
    });
    out.text(format_args!("]}}\n"));
    out.buf.flush_to(fd);
}

fn dump_regions(out: &mut Out, heap: &Heap, arena: usize, first: &mut bool) {
    let mut region = heap.regions;
    while !region.is_null() {
        // SAFETY: regions on a locked heap's list are live.
        let size = unsafe { (*region).size };
        out.text(format_args!(
            "{}{{\"arena\":{},\"base\":\"{:#x}\",\"size\":{},\"first_block_offset\":{},\"blocks\":[",
            if *first { "" } else { "," },
            arena,
            region as usize,
            size,
            FIRST_BLOCK_OFFSET
        ));
        *first = false;
        let mut block = Region::first_block(region);
        // SAFETY: as above.
        let sentinel = unsafe { Region::sentinel(region) };
        let mut first_block = true;
        while block < sentinel {
            // SAFETY: walking valid block starts of a live, locked region.
            let h = unsafe { read_header(block) };
            if !h.is_valid_at(block) || h.size() == 0 {
                break; // a damaged heap is the checker's to report
            }
            out.text(format_args!(
                "{}[{},{},{}]",
                if first_block { "" } else { "," },
                block as usize - region as usize,
                h.size(),
                h.in_use() as u8
            ));
            first_block = false;
            block = block.wrapping_add(h.size());
        }
        out.text(format_args!("]}}"));
        // SAFETY: as above.
        region = unsafe { (*region).next };
    }
}

fn dump_bins(out: &mut Out, heap: &Heap, arena: usize, first: &mut bool) {
    for bin in 0..BIN_COUNT {
        let (count, bytes) = heap.bin_census(bin);
        if count == 0 {
            continue;
        }
        let upper = if bin + 1 < BIN_COUNT { bin_lower_bound(bin + 1) } else { usize::MAX };
        out.text(format_args!(
            "{}{{\"arena\":{},\"bin\":{},\"lower\":{},\"upper\":{},\"count\":{},\"bytes\":{}}}",
            if *first { "" } else { "," },
            arena,
            bin,
            bin_lower_bound(bin),
            upper,
            count,
            bytes
        ));
        *first = false;
    }
}

/// Writes the dump to the file named by `BINMALLOC_DUMP` (called at exit).
pub fn dump_to_configured_path() {
    let path = &crate::config::get().dump_path;
    if path[0] == 0 {
        return;
    }
    // SAFETY: `path` is NUL-terminated (config guarantees it); open does not allocate.
    let fd = unsafe {
        libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644)
    };
    if fd < 0 {
        let mut line = StackBuf::<128>::new();
        let _ = writeln!(line, "binmalloc: BINMALLOC_DUMP: cannot open the dump file");
        line.flush_to(2);
        return;
    }
    dump_json(fd);
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
}
