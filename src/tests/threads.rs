//! The global entry points from several threads at once, with cross-thread frees, checked
//! with the whole-heap checker afterwards.

use std::sync::Mutex;

use super::support::{pattern, process_arenas_lock, Rng};
use crate::alloc::{allocate, deallocate, reallocate};
use crate::thread_cache::{cache_key, handed_back_key, is_cached_by_this_thread, key_cell};

#[test]
fn threads_allocate_and_free_each_others_blocks() {
    let _alone = process_arenas_lock();
    const THREADS: usize = 4;
    let inboxes: Vec<Mutex<Vec<(usize, usize, u64)>>> = (0..THREADS).map(|_| Mutex::new(Vec::new())).collect();
    std::thread::scope(|s| {
        let mut threads = Vec::new();
        for t in 0..THREADS {
            let inboxes = &inboxes;
            threads.push(s.spawn(move || {
                let mut rng = Rng::new(t as u64 + 77);
                let mut live: Vec<(usize, usize, u64)> = Vec::new();
                for op in 0..150_000u64 {
                    let size = 16 + rng.below(1000) as usize;
                    let p = allocate(size);
                    assert!(!p.is_null());
                    let tag = (t as u64) << 40 | op;
                    for i in [0, size / 2, size - 1] {
                        // SAFETY: `p` has `size` bytes.
                        unsafe { p.add(i).write(pattern(tag, i)) };
                    }
                    live.push((p as usize, size, tag));
                    if live.len() > 2000 {
                        let (q, qsize, qtag) = live.swap_remove(rng.below(live.len() as u64) as usize);
                        if rng.below(8) == 0 {
                            inboxes[(t + 1) % THREADS].lock().unwrap().push((q, qsize, qtag));
                        } else {
                            check_and_free(q, qsize, qtag);
                        }
                    }
                    if op % 256 == 0 {
                        let drained: Vec<_> = std::mem::take(&mut *inboxes[t].lock().unwrap());
                        for (q, qsize, qtag) in drained {
                            check_and_free(q, qsize, qtag);
                        }
                    }
                }
                for (q, qsize, qtag) in live {
                    check_and_free(q, qsize, qtag);
                }
            }));
        }
        // The end of a scope waits for the threads' closures, not for their exit: a cache
        // destructor still running would hand blocks back and park a cache during the next test.
        for thread in threads {
            thread.join().unwrap();
        }
    });
    for inbox in &inboxes {
        for &(q, qsize, qtag) in inbox.lock().unwrap().iter() {
            check_and_free(q, qsize, qtag);
        }
    }
    assert_eq!(crate::check::check_all_arenas(true), 0);
}

fn check_and_free(p: usize, size: usize, tag: u64) {
    let p = p as *mut u8;
    for i in [0, size / 2, size - 1] {
        // SAFETY: `p` is a live block of `size` bytes.
        assert_eq!(unsafe { p.add(i).read() }, pattern(tag, i), "block {p:?} damaged");
    }
    deallocate(p, "free");
}

#[test]
fn a_write_into_the_last_cached_block_does_not_plant_a_wild_pointer() {
    let _alone = process_arenas_lock();
    std::thread::spawn(|| {
        // A fresh thread: its cache list for this size is empty.
        let p = allocate(24);
        deallocate(p, "free");
        // The program writes into the block it has just freed (as some start-up code does):
        // the list's only block now carries a bogus link.
        // SAFETY: deliberately a write after free, into memory binmalloc still owns.
        unsafe { p.cast::<usize>().write(0x0102_0000_0000) };
        let again = allocate(24);
        assert_eq!(again, p, "the cached block is handed out again");
        let other = allocate(24);
        assert!(!other.is_null() && other != p);
        // SAFETY: `other` is a live block of at least 24 bytes.
        unsafe { other.write_bytes(7, 24) };
        deallocate(other, "free");
        deallocate(again, "free");
    })
    .join()
    .unwrap();
}

#[test]
fn an_empty_list_takes_a_cached_block_an_eighth_larger_at_most() {
    let _alone = process_arenas_lock();
    in_a_fresh_thread_then_check(|| {
        // Every list starts empty. A request of 264 bytes takes a 272-byte block.
        let cached = allocate(264);
        deallocate(cached, "free");
        // 240-byte blocks: 272 is more than an eighth larger, so fresh memory is cut.
        let apart = allocate(232);
        assert!(!apart.is_null() && apart != cached, "a block 32 bytes larger than 240 was used");
        // 256-byte blocks: 272 is an eighth larger at most, so the cached block serves.
        let reused = allocate(248);
        assert_eq!(reused, cached, "the cached 272-byte block was not used for 256");
        assert!(crate::alloc::usable_size(reused) >= 248);
        // SAFETY: `reused` is a live block of at least 248 bytes.
        unsafe { reused.write_bytes(0x5a, 248) };
        deallocate(reused, "free");
        deallocate(apart, "free");
    });
}

#[test]
fn a_thread_returns_its_cache_after_a_purge_sweep() {
    let _alone = process_arenas_lock();
    crate::arena::ensure_init();
    in_a_fresh_thread_then_check(|| {
        let p = allocate(100);
        deallocate(p, "free");
        let size = crate::alloc::usable_size(p) + crate::block::HEADER_SIZE;
        assert!(is_cached_by_this_thread(p, size), "a fresh thread caches what it frees");
        // A thread returns its cache at most once per purge delay, counted from its start.
        let delay = crate::config::get().purge_delay_ms;
        std::thread::sleep(std::time::Duration::from_millis(delay + 20));
        // Another thread runs a purge sweep; this one looks every 64 frees.
        std::thread::spawn(crate::purge::purge_due_arenas).join().unwrap();
        for _ in 0..100 {
            deallocate(allocate(5000), "free");
        }
        // `p` went back to its heap, whose region may be gone: only the lists are searched.
        assert!(!crate::thread_cache::lists_hold(p, size), "the cache kept its block after a sweep");
    });
}

/// Runs `f` in a new thread, whose cache starts empty, then checks the whole heap.
fn in_a_fresh_thread_then_check(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().unwrap();
    assert_eq!(crate::check::check_all_arenas(true), 0);
}

#[test]
fn a_block_whose_data_holds_a_cache_key_is_freed_normally() {
    let _alone = process_arenas_lock();
    // The keys are only hints: a program's data may hold the same word where a freed block
    // keeps its key (a fuzzer watching comparisons learns it), and such a block is live.
    crate::arena::ensure_init(); // the keys are drawn at start-up
    let keys = [cache_key(), handed_back_key()];
    assert!(keys[0] != 0 && keys[1] != 0);
    let plant = |p: *mut u8, key: usize| {
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of at least 40 bytes; its second word is data.
        unsafe { key_cell(p).write(key) };
        p
    };
    // Blocks of this thread's arena, freed by another thread (unless both share an arena).
    let elsewhere: Vec<usize> = keys.iter().map(|&k| plant(allocate(40), k) as usize).collect();
    std::thread::spawn(move || {
        for (key, other) in keys.into_iter().zip(elsewhere) {
            let p = plant(allocate(40), key);
            deallocate(p, "free");
            let again = allocate(40);
            assert_eq!(again, p, "the block was cached, not diagnosed");
            let p = plant(again, key);
            assert_eq!(reallocate(p, 40), p, "a block that still holds the request stays");
            deallocate(p, "free");
            deallocate(other as *mut u8, "free");
        }
    })
    .join()
    .unwrap();
}

#[test]
fn a_thread_that_adopts_a_parked_cache_moves_into_its_arena() {
    let _alone = process_arenas_lock();
    crate::arena::ensure_init();
    let home = || crate::thread_cache::home() as usize;
    // A first thread stays in the least crowded arena while a second one starts, so the second
    // settles elsewhere; it frees its blocks (its cache then holds them) and exits, parking them.
    let (entered, leave) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    let (first_home, second_home, kept) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            let p = allocate(64); // kept: this thread parks nothing
            entered.wait();
            leave.wait();
            (home(), p as usize)
        });
        entered.wait();
        let second = s
            .spawn(|| {
                let blocks: Vec<_> = (0..8).map(|_| allocate(64)).collect();
                for p in blocks {
                    deallocate(p, "free");
                }
                home()
            })
            .join()
            .unwrap();
        leave.wait();
        let (first_home, kept) = first.join().unwrap();
        (first_home, second, kept)
    });
    assert_ne!(first_home, second_home);
    // Every arena is empty again. A new thread adopts the parked cache, and with it the arena
    // those blocks belong to (not the first, least crowded one it would pick when it next
    // needed an arena, nor none until then).
    let adopter_home = std::thread::spawn(move || {
        let p = allocate(64);
        let adopter_home = home();
        deallocate(p, "free");
        adopter_home
    })
    .join()
    .unwrap();
    assert_eq!(adopter_home, second_home);
    deallocate(kept as *mut u8, "free");
}
