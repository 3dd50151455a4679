//! The hand-back structure on its own: batches go into slots while there is room and they are
//! small, everything else onto the linked stack, and takers get back exactly what was pushed.

use crate::handed_back::{HandedBack, BATCH_MAX, BATCH_SLOTS};

/// Stand-ins for blocks: the stack writes a link into each block's first word, nothing else.
fn blocks(n: usize) -> Vec<[usize; 4]> {
    vec![[0; 4]; n]
}

fn addresses(cells: &mut [[usize; 4]]) -> Vec<*mut u8> {
    cells.iter_mut().map(|c| c.as_mut_ptr().cast::<u8>()).collect()
}

/// Follows a stack chain from `first` to its null end.
fn chain(first: *mut u8) -> Vec<*mut u8> {
    let mut out = Vec::new();
    let mut at = first;
    while !at.is_null() {
        out.push(at);
        // SAFETY: every node is one of the test's cells, whose first word holds the link.
        at = unsafe { at.cast::<*mut u8>().read() };
    }
    out
}

#[test]
fn small_batches_fill_the_slots_and_the_rest_go_on_the_stack() {
    let handed = HandedBack::new();
    let mut cells = blocks(40 * BATCH_MAX);
    let all = addresses(&mut cells);
    let batches: Vec<&[*mut u8]> = all.chunks(BATCH_MAX).collect();
    let mut slotted = 0;
    for batch in &batches {
        // SAFETY: the cells are the test's own and each is pushed once.
        let waiting = unsafe { handed.push(batch, 1024) };
        if waiting == 0 {
            slotted += 1;
        } else {
            assert!(waiting >= 1024, "the stack reports the bytes waiting on it");
        }
    }
    assert!(slotted > 0 && slotted < batches.len(), "slots are bounded: {slotted} of {} batches", batches.len());
    assert!(!handed.is_all_empty());
    // A slotted block is found in the slots, a stacked one is not (first and last of each
    // batch: the whole search is slow under Miri).
    for (i, batch) in batches.iter().enumerate() {
        for p in [batch[0], batch[BATCH_MAX - 1]] {
            assert_eq!(handed.batches_contain(p), i < slotted);
        }
    }
    let mut from_slots = Vec::new();
    handed.take_batches(|batch| {
        assert_eq!(batch.len(), BATCH_MAX);
        from_slots.extend_from_slice(batch);
    });
    let mut expected: Vec<*mut u8> = batches[..slotted].concat();
    from_slots.sort();
    expected.sort();
    assert_eq!(from_slots, expected, "the slots give back exactly the slotted blocks");
    let mut from_stack = chain(handed.take_all());
    let mut expected: Vec<*mut u8> = batches[slotted..].concat();
    from_stack.sort();
    expected.sort();
    assert_eq!(from_stack, expected, "the stack gives back exactly the other blocks");
    assert!(handed.is_all_empty());
    // Taken slots are free again.
    // SAFETY: as above.
    assert_eq!(unsafe { handed.push(batches[0], 1024) }, 0);
    let mut again = 0;
    handed.take_batches(|batch| again += batch.len());
    assert_eq!(again, BATCH_MAX);
}

#[test]
fn a_batch_of_many_bytes_goes_on_the_stack() {
    let handed = HandedBack::new();
    let mut cells = blocks(3);
    let all = addresses(&mut cells);
    // SAFETY: the cells are the test's own and are pushed once.
    let waiting = unsafe { handed.push(&all, 1 << 20) };
    assert_eq!(waiting, 1 << 20);
    assert!(all.iter().all(|&p| !handed.batches_contain(p)));
    let mut none = true;
    handed.take_batches(|_| none = false);
    assert!(none, "no slot was used");
    assert_eq!(chain(handed.take_all()), all, "the run keeps its order on the stack");
}

#[test]
fn blocks_pushed_by_several_threads_are_taken_exactly_once() {
    const PUSHERS: usize = 3;
    const BATCHES: usize = if cfg!(miri) { 20 } else { 2000 };
    const PER_BATCH: usize = 4;
    let handed = HandedBack::new();
    let mut cells = blocks(PUSHERS * BATCHES * PER_BATCH);
    let all = addresses(&mut cells);
    let addresses: Vec<usize> = all.iter().map(|&p| p as usize).collect();
    let taker_lock = std::sync::Mutex::new(()); // stands for the arena's lock
    let mut seen = vec![0u8; all.len()];
    let index_of = |p: *mut u8| addresses.binary_search(&(p as usize)).expect("a pushed block");
    assert!(addresses.windows(2).all(|w| w[0] < w[1]));
    std::thread::scope(|s| {
        for mine in addresses.chunks(BATCHES * PER_BATCH) {
            let handed = &handed;
            s.spawn(move || {
                for batch in mine.chunks(PER_BATCH) {
                    let batch: Vec<*mut u8> = batch.iter().map(|&a| a as *mut u8).collect();
                    // SAFETY: each cell is pushed once, by this thread only.
                    unsafe { handed.push(&batch, 64) };
                }
            });
        }
        let mut taken = 0;
        while taken < all.len() {
            let _lock = taker_lock.lock().unwrap();
            handed.take_batches(|batch| {
                for &p in batch {
                    seen[index_of(p)] += 1;
                    taken += 1;
                }
            });
            for p in chain(handed.take_all()) {
                seen[index_of(p)] += 1;
                taken += 1;
            }
            std::thread::yield_now();
        }
    });
    assert!(seen.iter().all(|&n| n == 1), "every block comes out exactly once");
    assert!(handed.is_all_empty());
}

#[test]
fn a_slot_left_busy_by_a_fork_is_emptied_in_the_child() {
    let handed = HandedBack::new();
    let mut cells = blocks(BATCH_MAX + BATCH_SLOTS);
    let all = addresses(&mut cells);
    // SAFETY: the cells are the test's own and each is pushed once.
    assert_eq!(unsafe { handed.push(&all[..BATCH_MAX], 64) }, 0);
    // As if another thread had claimed a slot to fill it when the process forked.
    assert!(handed.claim_empty_slot());
    handed.reset_in_child();
    let mut taken = Vec::new();
    handed.take_batches(|batch| taken.extend_from_slice(batch));
    assert_eq!(taken, &all[..BATCH_MAX], "the full slot is kept");
    // Every slot takes a batch again, the one left busy included.
    for p in &all[BATCH_MAX..] {
        // SAFETY: as above.
        assert_eq!(unsafe { handed.push(core::slice::from_ref(p), 64) }, 0, "a slot is still taken");
    }
}
