//! The read-out and the health snapshot.

use super::*;

#[tokio::test(start_paused = true)]
async fn snapshot_reports_saturation_as_warn() {
    let b = bulkhead(2, 1, Some(Duration::from_millis(100)));
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status),
        ("available", HealthStatus::Pass)
    );
    assert_eq!(snap.message, None);

    let mut handles = Vec::new();
    for id in 0..3 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status),
        ("saturated", HealthStatus::Warn)
    );
    assert_eq!(snap.metric("in_flight"), Some(2.0));
    assert_eq!(snap.metric("queued"), Some(1.0));
    assert_eq!(snap.metric("max_concurrent"), Some(2.0));
    assert_eq!(snap.metric("max_queued"), Some(1.0));
    assert_eq!(
        snap.message.as_deref(),
        Some("bulkhead `test` is saturated: 2/2 calls in flight, 1/1 queued")
    );
    let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());

    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.finish(3);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let snap = b.snapshot();
    // Drained, but it rejected a call 20 ms ago: still warn (see the next test).
    assert_eq!(snap.status, HealthStatus::Warn);
    assert_eq!(snap.metric("accepted"), Some(3.0));
    assert_eq!(snap.metric("rejected_full"), Some(1.0));
    assert_eq!(snap.metric("rejected_timeout"), Some(0.0));
    assert_eq!(snap.metric("wait_max"), Some(20.0));
    assert_eq!(snap.metric("wait_mean"), Some(20.0));
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["kind"], "bulkhead");
    assert_eq!(json["name"], "test");
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_that_rejected_recently_warns_after_it_drains() {
    let b = Bulkhead::builder("pool")
        .max_concurrent(1)
        .max_queued(1)
        .max_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    assert_eq!(b.rejection_window(), DEFAULT_REJECTION_WINDOW);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    assert_eq!(b.metrics().since_last_rejection, None);

    // A burst: one call runs, one waits and times out, one finds the queue full.
    let running = spawn_call(&mut svc, 0).await;
    let waiting = spawn_call(&mut svc, 1).await;
    settle().await;
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    let err = waiting.await.unwrap().unwrap_err();
    assert!(err.is::<BulkheadTimeout>());
    gate.finish(1);
    running.await.unwrap().unwrap();

    // Drained: nothing in flight or queued. Before, this read `available` / pass.
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued, m.free_permits), (0, 0, 1));
    assert_eq!(m.since_last_rejection, Some(Duration::ZERO));
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status),
        ("rejecting", HealthStatus::Warn)
    );
    assert_eq!(
        snap.message.as_deref(),
        Some("bulkhead `pool` rejected a call 0ns ago (within its 10s rejection window); 2 rejected in all")
    );

    // Within the window: still warn.
    tokio::time::advance(DEFAULT_REJECTION_WINDOW).await;
    assert_eq!(b.since_last_rejection(), Some(DEFAULT_REJECTION_WINDOW));
    assert_eq!(b.snapshot().status, HealthStatus::Warn);
    // Past it: pass.
    tokio::time::advance(Duration::from_millis(1)).await;
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status, snap.message.as_deref()),
        ("available", HealthStatus::Pass, None)
    );

    // A zero window warns only while saturated.
    let quiet = Bulkhead::builder("quiet")
        .max_concurrent(1)
        .rejection_window(Duration::ZERO)
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = guarded(&quiet, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    assert!(svc.ready().await.unwrap().call(1).await.is_err());
    gate.finish(1);
    running.await.unwrap().unwrap();
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(quiet.snapshot().status, HealthStatus::Pass);
}

#[tokio::test(start_paused = true)]
async fn free_permits_are_read_out() {
    let b = bulkhead(3, 1, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    assert_eq!(b.metrics().free_permits, 3);
    let calls = [spawn_call(&mut svc, 0).await, spawn_call(&mut svc, 1).await];
    settle().await;
    assert_eq!(b.free_permits(), 1);
    assert_eq!(b.snapshot().metric("free_permits"), Some(1.0));
    let third = spawn_call(&mut svc, 2).await;
    let queued = spawn_call(&mut svc, 3).await;
    settle().await;
    let m = b.metrics();
    assert_eq!((m.free_permits, m.in_flight, m.queued), (0, 3, 1));
    b.set_max_concurrent(5).unwrap();
    settle().await;
    // One new permit went to the queued call, the other is free.
    assert_eq!((b.free_permits(), b.in_flight(), b.queued()), (1, 4, 0));
    gate.finish(4);
    for call in calls.into_iter().chain([third, queued]) {
        call.await.unwrap().unwrap();
    }
    assert_eq!(b.metrics().free_permits, 5);
}
