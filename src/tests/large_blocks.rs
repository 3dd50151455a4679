//! The big-allocation path and its table.

use crate::large::{self, Resized};
use crate::os::PAGE_SIZE;

#[test]
fn big_blocks_map_resize_and_unmap() {
    let mut blocks = Vec::new();
    for i in 0..1000usize {
        let size = (i % 7 + 1) * 300_000;
        let p = large::alloc(size, 16);
        assert!(!p.is_null());
        assert_eq!(p as usize % PAGE_SIZE, 0);
        // SAFETY: `p` maps at least `size` bytes.
        unsafe { p.write_bytes(i as u8, size) };
        assert!(large::usable_size(p).unwrap() >= size);
        blocks.push((p, size, i as u8));
    }
    assert!(large::census().0 >= 1000);
    for b in blocks.iter_mut().step_by(3) {
        let grown = b.1 * 2;
        match large::resize(b.0, grown) {
            Resized::Done(q) => {
                // SAFETY: `q` maps at least `grown` bytes and kept the first `b.1`.
                unsafe {
                    assert_eq!(*q.add(b.1 - 1), b.2);
                    q.add(b.1).write_bytes(b.2, grown - b.1);
                }
                *b = (q, grown, b.2);
            }
            _ => panic!("resize failed"),
        }
    }
    for (p, size, fill) in blocks {
        // SAFETY: live mapping of `size` bytes.
        unsafe { assert_eq!(*p.add(size - 1), fill) };
        assert!(large::free(p));
        assert!(large::usable_size(p).is_none());
    }
}

#[test]
fn big_blocks_honour_large_alignments() {
    for shift in 12..22 {
        let align = 1usize << shift;
        let p = large::alloc(5000, align);
        assert_eq!(p as usize % align, 0, "align {align}");
        assert!(large::free(p));
    }
}

#[test]
fn unknown_pointers_are_not_big_blocks() {
    let x = 5u64;
    assert!(!large::free(&x as *const u64 as *mut u8));
    assert!(matches!(large::resize(&x as *const u64 as *mut u8, 10), Resized::NotBig));
}
