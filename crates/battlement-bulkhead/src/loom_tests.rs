//! Model checks of the permit accounting: releases racing with resizes never leak a permit nor
//! create one. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p battlement-bulkhead --release --lib loom`.
//!
//! tokio's semaphore is not instrumented when built as a dependency; under loom each of its
//! operations is made one step of the model (see `semaphore::Semaphore`), so the interleavings
//! explored are those of semaphore operations and the bulkhead's own atomics (the shrink debt,
//! the limit) with each other.

use crate::bulkhead::Admission;
use crate::permit::{Entry, Permit};
use crate::Bulkhead;
use loom::thread;

fn bulkhead(max: usize) -> Bulkhead {
    Bulkhead::builder("loom")
        .max_concurrent(max)
        .build()
        .unwrap()
}

fn queued_bulkhead(max: usize, max_queued: usize) -> Bulkhead {
    Bulkhead::builder("loom")
        .max_concurrent(max)
        .max_queued(max_queued)
        .build()
        .unwrap()
}

/// A queued call waiting for its permit (loom stands in for the async wait by polling).
fn wait_in_queue(b: &Bulkhead) -> Permit {
    loop {
        if let Some(permit) = b.loom_poll_queue() {
            return permit;
        }
        thread::yield_now();
    }
}

fn take(b: &Bulkhead) -> Permit {
    match b.admit(crate::Priority::default) {
        Admission::Now(permit) => permit,
        _ => panic!("no free permit"),
    }
}

/// Exactly `n` permits can be taken (the bulkhead has no queue: the next is rejected).
fn assert_capacity(b: &Bulkhead, n: usize) {
    assert_eq!(b.in_flight(), 0);
    let held: Vec<Permit> = (0..n).map(|_| take(b)).collect();
    assert!(
        matches!(b.admit(crate::Priority::default), Admission::Rejected(_)),
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
            matches!(b.admit(crate::Priority::default), Admission::Rejected(_)),
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
            matches!(b.admit(crate::Priority::default), Admission::Rejected(_)),
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

#[test]
fn loom_release_racing_a_call_that_queues() {
    loom::model(|| {
        let b = queued_bulkhead(1, 1);
        let held = take(&b);
        let release = thread::spawn(move || drop(held));
        // The fast path found nothing free; the slow path either finds the permit released
        // meanwhile or queues, and then the release must reach it (no lost wake-up).
        let permit = match b.loom_enter() {
            (Entry::Admitted, Some(permit)) => permit,
            (Entry::Queued, None) => wait_in_queue(&b),
            other => panic!("unexpected {:?}", other.0),
        };
        release.join().unwrap();
        assert_eq!(b.queued(), 0);
        assert_eq!(b.in_flight(), 1);
        drop(permit);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.permit_places(), (1, 0));
    });
}

#[test]
fn loom_waiter_giving_up_racing_a_release_strands_no_permit() {
    loom::model(|| {
        let b = queued_bulkhead(1, 1);
        let held = take(&b);
        assert!(matches!(b.loom_enter(), (Entry::Queued, None)));
        let release = thread::spawn(move || drop(held));
        // The wait times out while the release may be handing it the permit.
        b.loom_give_up();
        release.join().unwrap();
        // Whatever the order, the permit is free again, none is left in the queue's semaphore,
        // and the fast path can take it.
        assert_eq!(b.queued(), 0);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.permit_places(), (1, 0));
    });
}

#[test]
fn loom_grow_hands_permits_to_queued_calls_first() {
    loom::model(|| {
        let b = queued_bulkhead(1, 2);
        let held = take(&b);
        assert!(matches!(b.loom_enter(), (Entry::Queued, None)));
        let grow = {
            let b = b.clone();
            thread::spawn(move || b.set_max_concurrent(2).unwrap())
        };
        // The queued call gets the new permit; a call arriving meanwhile cannot pass it.
        let early = b.loom_enter();
        let first = wait_in_queue(&b);
        grow.join().unwrap();
        assert!(
            matches!(early, (Entry::Queued, None)),
            "passed a queued call"
        );
        assert_eq!(b.in_flight(), 2);
        drop(held);
        let second = wait_in_queue(&b);
        assert_eq!(b.queued(), 0);
        drop((first, second));
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.permit_places(), (2, 0));
    });
}

#[test]
fn loom_reload_shrink_then_grow_racing_releases() {
    loom::model(|| {
        let b = queued_bulkhead(2, 1);
        let (p1, p2) = (take(&b), take(&b));
        let release = thread::spawn(move || drop(p1));
        // A reload shrinks, another grows back past the start, while a call finishes.
        b.reload(&Bulkhead::builder("loom").max_concurrent(1).max_queued(1))
            .unwrap();
        b.reload(&Bulkhead::builder("loom").max_concurrent(3))
            .unwrap();
        release.join().unwrap();
        assert_eq!(b.in_flight(), 1);
        drop(p2);
        // No queue any more, and exactly the new limit's permits.
        assert_eq!(b.max_queued(), 0);
        assert_capacity(&b, 3);
    });
}

/// A critical waiter gives up while a release hands it the permit: the permit reaches the
/// normal waiter queued behind it, and none is stranded in the critical class's queue.
#[test]
fn loom_critical_waiter_giving_up_racing_a_release_passes_the_permit_on() {
    loom::model(|| {
        let b = queued_bulkhead(1, 2);
        let held = take(&b);
        assert!(matches!(b.loom_enter_class(0), (Entry::Queued, None)));
        assert!(matches!(b.loom_enter_class(1), (Entry::Queued, None)));
        let release = thread::spawn(move || drop(held));
        b.loom_give_up_class(0);
        release.join().unwrap();
        let permit = loop {
            if let Some(permit) = b.loom_poll_queue_class(1) {
                break permit;
            }
            thread::yield_now();
        };
        assert_eq!((b.queued(), b.in_flight()), (0, 1));
        drop(permit);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.permit_places(), (1, 0));
    });
}

// The per-thread stripes: loom's threads share one thread index, so these models put calls in
// stripes 0 and 1 explicitly (`loom_call_on`, `loom_enter_on`, `permit_on`).

/// A call through stripe `i`'s fast path (then, its stripe empty, the slow path without a queue).
fn call_on(b: &Bulkhead, i: usize) -> Option<Permit> {
    match b.loom_call_on(i) {
        (Entry::Admitted, permit) => permit,
        (Entry::Full, None) => None,
        other => panic!("unexpected {:?}", other.0),
    }
}

/// Two threads, each on its own stripe, take and release permits twice over a limit of one:
/// the first takes the permit from the shared pool, the other steals it from that stripe. Never
/// two calls hold permits at once, and the one permit is still there at the end.
#[test]
fn loom_two_stripes_never_exceed_the_limit() {
    loom::model(|| {
        let b = bulkhead(1);
        let holding = std::sync::Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let run =
            |b: Bulkhead, i: usize, holding: std::sync::Arc<loom::sync::atomic::AtomicUsize>| {
                for _ in 0..2 {
                    if let Some(permit) = call_on(&b, i) {
                        let now = holding.fetch_add(1, loom::sync::atomic::Ordering::SeqCst) + 1;
                        assert!(now <= 1, "two calls hold permits under a limit of one");
                        holding.fetch_sub(1, loom::sync::atomic::Ordering::SeqCst);
                        drop(permit);
                    }
                }
            };
        let other = {
            let (b, holding) = (b.clone(), holding.clone());
            thread::spawn(move || run(b, 1, holding))
        };
        run(b.clone(), 0, holding);
        other.join().unwrap();
        assert_eq!(b.permit_places(), (1, 0));
        assert_capacity(&b, 1);
    });
}

/// A permit released into one stripe while a call on the other stripe finds its own empty: the
/// call steals the permit, or queues and the release (or the call's sweep of the stripes)
/// hands it over. No lost wake-up.
#[test]
fn loom_release_into_a_stripe_reaches_a_call_queueing_on_another() {
    loom::model(|| {
        let b = queued_bulkhead(1, 1);
        let held = call_on(&b, 0).expect("the only permit");
        let release = thread::spawn(move || drop(held));
        let permit = match b.loom_enter_on(1, 1) {
            (Entry::Admitted, Some(permit)) => permit,
            (Entry::Queued, None) => wait_in_queue(&b),
            other => panic!("unexpected {:?}", other.0),
        };
        release.join().unwrap();
        assert_eq!((b.queued(), b.in_flight()), (0, 1));
        drop(permit);
        assert_eq!(b.permit_places(), (1, 0));
    });
}

/// A call queued on stripe 1; the permit comes back to stripe 0 while a new call on stripe 0
/// tries its fast path there. The new call never keeps the permit (it arrived after the queued
/// one), and the queued call gets it.
#[test]
fn loom_a_new_call_on_the_releasing_stripe_does_not_pass_a_queued_one() {
    loom::model(|| {
        let b = queued_bulkhead(1, 2);
        let held = call_on(&b, 0).expect("the only permit");
        assert!(matches!(b.loom_enter_on(1, 1), (Entry::Queued, None)));
        let release = thread::spawn(move || drop(held));
        let passed = b.shared().try_take(&b.shared().stripes[0]);
        release.join().unwrap();
        assert!(!passed, "a new call took the permit ahead of a queued one");
        let first = wait_in_queue(&b);
        assert_eq!((b.queued(), b.in_flight()), (0, 1));
        drop(first);
        assert_eq!(b.permit_places(), (1, 0));
    });
}

/// A shrink racing a release into a stripe: the shrink takes the free permit from the stripe,
/// or records a debt that the release pays. Then the limit holds, across both stripes.
#[test]
fn loom_shrink_racing_a_release_into_a_stripe() {
    loom::model(|| {
        let b = bulkhead(2);
        let p0 = call_on(&b, 0).expect("a permit");
        let p1 = call_on(&b, 1).expect("a permit");
        let shrink = {
            let b = b.clone();
            thread::spawn(move || b.set_max_concurrent(1).unwrap())
        };
        drop(p0);
        shrink.join().unwrap();
        assert!(call_on(&b, 0).is_none(), "over the new limit");
        assert!(call_on(&b, 1).is_none(), "over the new limit");
        assert_eq!(b.in_flight(), 1);
        drop(p1);
        assert_eq!(b.permit_places(), (1, 0));
        assert_capacity(&b, 1);
    });
}

/// A grow racing a steal: a call on stripe 1 steals from stripe 0 while the limit grows. Every
/// permit is accounted for: the new limit's worth in the end.
#[test]
fn loom_grow_racing_a_steal_across_stripes() {
    loom::model(|| {
        let b = bulkhead(1);
        drop(call_on(&b, 0).expect("the permit")); // now cached in stripe 0
        let grow = {
            let b = b.clone();
            thread::spawn(move || b.set_max_concurrent(2).unwrap())
        };
        let stolen = call_on(&b, 1).expect("stolen from stripe 0, or a new one");
        grow.join().unwrap();
        assert_eq!(b.in_flight(), 1);
        drop(stolen);
        assert_eq!(b.permit_places(), (2, 0));
        assert_capacity(&b, 2);
    });
}
