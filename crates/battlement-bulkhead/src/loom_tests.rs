//! Model checks of the permit accounting: releases racing with resizes never leak a permit nor
//! create one. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p battlement-bulkhead --release --lib loom`.
//!
//! tokio's semaphore is not instrumented when built as a dependency; under loom each of its
//! operations is made one step of the model (see `sync::Semaphore`), so the interleavings
//! explored are those of semaphore operations and the bulkhead's own atomics (the shrink debt,
//! the limit) with each other.

use crate::bulkhead::{Admission, Permit};
use crate::Bulkhead;
use loom::thread;

fn bulkhead(max: usize) -> Bulkhead {
    Bulkhead::builder("loom")
        .max_concurrent(max)
        .build()
        .unwrap()
}

fn take(b: &Bulkhead) -> Permit {
    match b.admit() {
        Admission::Now(permit) => permit,
        _ => panic!("no free permit"),
    }
}

/// Exactly `n` permits can be taken (the bulkhead has no queue: the next is rejected).
fn assert_capacity(b: &Bulkhead, n: usize) {
    assert_eq!(b.in_flight(), 0);
    let held: Vec<Permit> = (0..n).map(|_| take(b)).collect();
    assert!(
        matches!(b.admit(), Admission::Rejected(_)),
        "more than {n} permits"
    );
    assert_eq!(b.in_flight(), n);
    drop(held);
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn loom_release_racing_shrink() {
    loom::model(|| {
        let b = bulkhead(2);
        let (p1, p2) = (take(&b), take(&b));
        let shrink = {
            let b = b.clone();
            thread::spawn(move || b.set_max_concurrent(1).unwrap())
        };
        drop(p1);
        shrink.join().unwrap();
        // Not only eventually: with the shrink done and one call still running, the limit holds.
        assert!(
            matches!(b.admit(), Admission::Rejected(_)),
            "over the new limit"
        );
        assert_eq!(b.in_flight(), 1);
        drop(p2);
        assert_capacity(&b, 1);
    });
}

#[test]
fn loom_release_racing_shrink_then_grow() {
    loom::model(|| {
        let b = bulkhead(3);
        let (p1, p2, p3) = (take(&b), take(&b), take(&b));
        let release = thread::spawn(move || drop(p1));
        b.set_max_concurrent(1).unwrap();
        b.set_max_concurrent(2).unwrap();
        release.join().unwrap();
        // Two calls still run, and the limit is two.
        assert!(
            matches!(b.admit(), Admission::Rejected(_)),
            "over the limit"
        );
        drop((p2, p3));
        assert_capacity(&b, 2);
    });
}

#[test]
fn loom_grow_racing_a_release_that_pays_debt() {
    loom::model(|| {
        let b = bulkhead(2);
        let (p1, p2) = (take(&b), take(&b));
        b.set_max_concurrent(1).unwrap(); // one permit owed
        let grow = {
            let b = b.clone();
            thread::spawn(move || b.set_max_concurrent(3).unwrap())
        };
        drop(p1);
        grow.join().unwrap();
        drop(p2);
        assert_capacity(&b, 3);
    });
}
