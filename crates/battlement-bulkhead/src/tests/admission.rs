//! Admission, the wait queue and cancellation: free permits, the queue bound, the wait limit,
//! FIFO order, dropped futures and released permits.

use super::*;

#[tokio::test(start_paused = true)]
async fn free_permits_call_the_inner_service_at_once() {
    let b = bulkhead(2, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    gate.finish(2);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    let m = b.metrics();
    assert_eq!((m.accepted, m.in_flight, m.queued, m.waited), (2, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn queue_bound_rejects_the_excess_without_calling_the_inner_service() {
    let b = bulkhead(2, 2, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut handles = Vec::new();
    for id in 0..4 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!(gate.started(), [0, 1], "two run");
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued, m.rejected_full), (2, 2, 0));
    assert!(m.is_saturated());

    let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().expect("BulkheadFull");
    assert_eq!(full.name(), "test");
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    assert_eq!(
        gate.calls(),
        2,
        "neither queued nor rejected calls reach the inner service"
    );
    assert_eq!(b.metrics().rejected_full, 1);

    gate.finish(4);
    for (id, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap().unwrap(), id as u32);
    }
    let m = b.metrics();
    assert_eq!((m.accepted, m.in_flight, m.queued, m.waited), (4, 0, 0, 2));
    assert_eq!(gate.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn zero_queue_rejects_at_once() {
    let b = bulkhead(1, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    let fut = svc.ready().await.unwrap().call(1);
    assert!(fut.is_rejected());
    assert!(fut.await.unwrap_err().is::<BulkheadFull>());
    assert_eq!(b.metrics().queued, 0);
    gate.finish(1);
    running.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_limit_rejects_with_bulkhead_timeout() {
    let b = bulkhead(1, 1, Some(Duration::from_millis(50)));
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;

    let start = Instant::now();
    let fut = svc.ready().await.unwrap().call(1);
    assert!(fut.is_waiting());
    let err = fut.await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    let timeout = err
        .downcast_ref::<BulkheadTimeout>()
        .expect("BulkheadTimeout");
    assert_eq!(timeout.name(), "test");
    assert_eq!(timeout.waited(), Duration::from_millis(50));
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    assert_eq!(
        gate.calls(),
        1,
        "the timed-out call never reached the inner service"
    );

    let m = b.metrics();
    assert_eq!((m.rejected_timeout, m.queued, m.in_flight), (1, 0, 1));
    assert_eq!((m.waited, m.wait_max), (1, Duration::from_millis(50)));

    // A call admitted within the limit is not rejected.
    let waiting = spawn_call(&mut svc, 2).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    gate.finish(2);
    assert_eq!(running.await.unwrap().unwrap(), 0);
    assert_eq!(waiting.await.unwrap().unwrap(), 2);
    let m = b.metrics();
    assert_eq!((m.accepted, m.rejected_timeout, m.waited), (2, 1, 2));
    assert_eq!(m.wait_mean, Duration::from_millis(40));
    assert_eq!(m.wait_max, Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_call_order() {
    let b = bulkhead(1, 10, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let first = spawn_call(&mut svc, 0).await;
    settle().await;
    // Call in order 1..=5, but let the futures be polled first in the reverse order.
    let mut futures = Vec::new();
    for id in 1..=5 {
        futures.push(svc.ready().await.unwrap().call(id));
    }
    let mut handles: Vec<_> = futures.into_iter().rev().map(tokio::spawn).collect();
    handles.reverse();
    settle().await;
    assert_eq!(b.queued(), 5);
    for n in 1..=5 {
        gate.finish(1);
        settle().await;
        assert_eq!(gate.started().len(), n + 1);
    }
    assert_eq!(gate.started(), [0, 1, 2, 3, 4, 5]);
    gate.finish(1);
    first.await.unwrap().unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap().unwrap(), i as u32 + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_future_leaves_the_queue() {
    let b = bulkhead(1, 1, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;

    let waiting = spawn_call(&mut svc, 1).await;
    settle().await;
    assert_eq!(b.queued(), 1);
    // The queue is full now ...
    assert!(svc.ready().await.unwrap().call(2).is_rejected());
    // ... until the waiter is cancelled.
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    assert_eq!(b.queued(), 0);
    let next = spawn_call(&mut svc, 3).await;
    settle().await;
    assert_eq!(b.queued(), 1);

    gate.finish(2);
    running.await.unwrap().unwrap();
    assert_eq!(next.await.unwrap().unwrap(), 3);
    assert_eq!(gate.started(), [0, 3], "the cancelled call never ran");
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued, m.accepted), (0, 0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_permit_handed_to_a_cancelled_waiter_goes_to_the_next() {
    let b = bulkhead(1, 2, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    // Two waiters, never polled by a task: the first is handed the permit, then dropped
    // before it notices.
    let first = svc.ready().await.unwrap().call(1);
    let second = spawn_call(&mut svc, 2).await;
    gate.finish(1);
    running.await.unwrap().unwrap();
    drop(first);
    settle().await;
    assert_eq!(gate.started(), [0, 2]);
    gate.finish(1);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_permit_handed_to_the_only_waiter_that_is_then_cancelled_is_free_again() {
    let b = bulkhead(1, 1, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    // The only waiter, never polled by a task: the finishing call hands it the permit through
    // the queue, then it is dropped before it notices.
    let waiter = svc.ready().await.unwrap().call(1);
    assert!(waiter.is_waiting());
    gate.finish(1);
    running.await.unwrap().unwrap();
    drop(waiter);
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
    // The permit is back where the fast path takes it, not stranded in the queue.
    assert_eq!(b.permit_places(), (1, 0));
    assert_permits(&b, &gate, &mut svc, 1).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_an_admitted_future_releases_its_permit() {
    let b = bulkhead(1, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    assert_eq!(b.in_flight(), 1);
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    assert_eq!(b.in_flight(), 0);
    assert_eq!(
        gate.running.load(SeqCst),
        0,
        "the inner future was dropped too"
    );
    // A future that was never polled holds its permit until it is dropped.
    let unpolled = svc.ready().await.unwrap().call(1);
    assert_eq!(b.in_flight(), 1);
    drop(unpolled);
    assert_eq!(b.in_flight(), 0);
    gate.finish(1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_released_when_the_call_completes_not_when_dropped() {
    let b = bulkhead(1, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    gate.finish(1);
    let mut fut = pin!(svc.ready().await.unwrap().call(1));
    assert_eq!((&mut fut).await.unwrap(), 1);
    assert_eq!(b.in_flight(), 0, "released while the future is still alive");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_and_release_the_permit() {
    let b = bulkhead(1, 0, None);
    let svc = b.layer().layer(service_fn(|_: ()| async {
        Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }));
    for _ in 0..3 {
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<std::io::Error>().unwrap().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }
    let m = b.metrics();
    assert_eq!((m.accepted, m.in_flight, m.rejected()), (3, 0, 0));
}

/// Clones of a handle that is not leaked count a reference on the bulkhead's list of shards,
/// which every core's clones share, and a permit counts one on its thread's shard; clones of a
/// leaked handle, and its permits' handles on their shards, copy a pointer. Both handles are
/// the same bulkhead.
#[tokio::test(start_paused = true)]
async fn a_leaked_bulkhead_counts_no_reference_for_its_clones() {
    let counted = bulkhead(4, 0, None);
    let leaked = counted.clone().leak();
    for (b, service) in [(&counted, 1), (&leaked, 0)] {
        let before = b.references();
        let gate = Gate::default();
        let mut svc = guarded(b, &gate);
        assert_eq!(b.references(), before + service, "the service's handle");
        let call = spawn_call(&mut svc, 1).await;
        assert_eq!(
            b.references(),
            before + service + service,
            "and the call's permit"
        );
        assert_eq!((counted.in_flight(), leaked.in_flight()), (1, 1));
        gate.finish(1);
        assert_eq!(call.await.unwrap().unwrap(), 1);
        drop(svc);
        assert_eq!(b.references(), before);
    }
    assert_eq!(leaked.metrics().accepted, 2);
}
