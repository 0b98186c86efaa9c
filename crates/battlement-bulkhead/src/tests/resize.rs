//! Run-time resize: growing admits waiters, shrinking takes effect as calls finish.

use super::*;

#[tokio::test(start_paused = true)]
async fn grow_admits_waiters_at_once() {
    let b = bulkhead(1, 3, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut handles = Vec::new();
    for id in 0..4 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (1, 3));
    b.set_max_concurrent(3).unwrap();
    settle().await;
    assert_eq!(gate.started(), [0, 1, 2]);
    assert_eq!((b.in_flight(), b.queued()), (3, 1));
    gate.finish(4);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(gate.max_running.load(SeqCst), 3);
    assert_eq!(b.metrics().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn shrink_takes_effect_as_calls_finish() {
    let b = bulkhead(3, 5, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut handles = Vec::new();
    for id in 0..5 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (3, 2));

    b.set_max_concurrent(1).unwrap();
    assert_eq!(b.max_concurrent(), 1);
    assert_eq!(b.in_flight(), 3, "running calls are not interrupted");
    // The first two calls to finish retire their permits instead of admitting waiters.
    gate.finish(1);
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (2, 2));
    gate.finish(1);
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (1, 2));
    assert_eq!(gate.started(), [0, 1, 2]);
    // From now on, one at a time.
    gate.finish(1);
    settle().await;
    assert_eq!(gate.started(), [0, 1, 2, 3]);
    assert_eq!((b.in_flight(), b.queued()), (1, 1));
    gate.finish(2);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
    assert_permits(&b, &gate, &mut svc, 1).await;
}

#[tokio::test(start_paused = true)]
async fn shrink_with_free_permits_applies_at_once_and_grow_cancels_debt() {
    let b = bulkhead(4, 8, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    b.set_max_concurrent(2).unwrap();
    assert_permits(&b, &gate, &mut svc, 2).await;

    // Shrink with every permit taken, then grow back before any call finishes: no permit is
    // retired, and none is added twice.
    let mut handles = Vec::new();
    for id in 0..2 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    b.set_max_concurrent(1).unwrap();
    b.set_max_concurrent(3).unwrap();
    let third = spawn_call(&mut svc, 2).await;
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (3, 0));
    gate.finish(3);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    third.await.unwrap().unwrap();
    assert_permits(&b, &gate, &mut svc, 3).await;
    // Setting the same limit changes nothing.
    b.set_max_concurrent(3).unwrap();
    assert_permits(&b, &gate, &mut svc, 3).await;
}

#[test]
fn resize_is_validated() {
    let b = bulkhead(2, 0, None);
    assert_eq!(
        b.set_max_concurrent(0).unwrap_err().setting(),
        "max_concurrent"
    );
    let err = b.set_max_concurrent(u32::MAX as usize + 1).unwrap_err();
    assert!(err.reason().contains("32 bits"), "{err}");
    assert_eq!(b.max_concurrent(), 2);
    // The largest limit is accepted, and every permit it adds is usable.
    b.set_max_concurrent(u32::MAX as usize).unwrap();
    assert_eq!(b.max_concurrent(), u32::MAX as usize);
    assert_eq!(b.in_flight(), 0);
}
