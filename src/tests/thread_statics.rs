//! `thread_static!` (src/tls.rs): every thread has its own value, starting as zero bytes.

use std::sync::{Arc, Barrier};

use crate::tls::thread_static;

#[derive(Clone, Copy)]
struct Sample {
    counter: u64,
    owner: *const u8,
    bytes: [u8; 40],
}

thread_static! {
    fn this_thread_sample() -> Sample;
}

/// Writes a value unique to thread `id` into its sample, waits until every thread has written,
/// then checks that the sample started as zeros and still holds its own value. (Every thread
/// reaches the barrier, so a failing check fails the test rather than stalling it.)
fn write_wait_check(id: u64, everyone_wrote: &Barrier) {
    let sample = this_thread_sample();
    // SAFETY: the calling thread's own sample; nothing else in it touches the sample meanwhile.
    let started_zero = unsafe { (*sample).counter == 0 && (*sample).owner.is_null() && (*sample).bytes == [0; 40] };
    // SAFETY: as above.
    unsafe { *sample = Sample { counter: id, owner: sample.cast(), bytes: [id as u8; 40] } };
    everyone_wrote.wait();
    assert!(started_zero, "thread {id}: a fresh thread's value is not all zeros");
    assert_eq!(this_thread_sample(), sample, "thread {id}: the address moved");
    // SAFETY: as above.
    let now = unsafe { *sample };
    assert_eq!(now.counter, id, "thread {id}: another thread's write is visible");
    assert_eq!((now.owner, now.bytes), (sample.cast_const().cast(), [id as u8; 40]));
}

#[test]
fn each_thread_has_its_own_zeroed_static() {
    const THREADS: u64 = 6;
    let everyone_wrote = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (1..=THREADS)
        .map(|id| {
            let barrier = Arc::clone(&everyone_wrote);
            std::thread::spawn(move || write_wait_check(id, &barrier))
        })
        .collect();
    let mut addresses = Vec::new();
    for t in threads {
        t.join().expect("a thread's checks failed");
    }
    // Threads that come after the first ones start from zero again, at addresses of their own.
    for id in 100..103 {
        let address = std::thread::spawn(move || {
            write_wait_check(id, &Barrier::new(1));
            this_thread_sample() as usize
        })
        .join()
        .expect("a later thread's checks failed");
        addresses.push(address);
    }
    // SAFETY: the test thread's own sample.
    assert_eq!(unsafe { (*this_thread_sample()).counter }, 0, "the test thread saw another thread's write");
    assert!(addresses.iter().all(|&a| a != this_thread_sample() as usize));
}
