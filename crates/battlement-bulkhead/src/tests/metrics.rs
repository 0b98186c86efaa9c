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

/// What the bulkhead exports through `HealthSource::export` is what `metrics()` reads, while
/// busy and after a burst with both kinds of rejection; every family is in `FAMILIES`, each
/// (family, labels) reported once; the queue-wait histogram holds the two waits.
#[tokio::test(start_paused = true)]
async fn export_matches_metrics() {
    use battlement_core::testing::RecordingVisitor;

    fn exported(b: &Bulkhead) -> RecordingVisitor {
        let mut out = RecordingVisitor::new();
        b.export(&mut out);
        out.assert_families_in(FAMILIES);
        out
    }
    fn assert_matches(b: &Bulkhead) -> RecordingVisitor {
        let m = b.metrics();
        let out = exported(b);
        let gauge = |name| out.gauge_value(name, &[]);
        let counter = |name| out.counter_value(name, &[]);
        assert_eq!(
            gauge("battlement_bulkhead_in_flight_calls"),
            m.in_flight as f64
        );
        assert_eq!(gauge("battlement_bulkhead_queued_calls"), m.queued as f64);
        assert_eq!(
            gauge("battlement_bulkhead_free_permits"),
            m.free_permits as f64
        );
        assert_eq!(
            gauge("battlement_bulkhead_max_concurrent"),
            m.max_concurrent as f64
        );
        assert_eq!(gauge("battlement_bulkhead_max_queued"), m.max_queued as f64);
        assert_eq!(counter("battlement_bulkhead_accepted_calls"), m.accepted);
        assert_eq!(counter("battlement_bulkhead_waited_calls"), m.waited);
        let rejected =
            |reason| out.counter_value("battlement_bulkhead_rejected_calls", &[("reason", reason)]);
        assert_eq!(rejected("full"), m.rejected_full);
        assert_eq!(rejected("timeout"), m.rejected_timeout);
        assert_eq!(rejected("shed"), m.rejected_shed);
        assert_eq!(
            gauge("battlement_bulkhead_queue_wait_max_seconds"),
            m.wait_max.as_secs_f64()
        );
        assert_eq!(
            out.histogram_value("battlement_bulkhead_queue_wait_seconds", &[])
                .count,
            m.waited
        );
        out
    }

    let b = Bulkhead::builder("pool")
        .max_concurrent(2)
        .max_queued(1)
        .max_wait(Duration::from_millis(50))
        .histogram(true)
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut handles = vec![spawn_call(&mut svc, 0).await, spawn_call(&mut svc, 1).await];
    let queued = spawn_call(&mut svc, 2).await;
    settle().await;
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    let out = assert_matches(&b);
    assert_eq!(
        out.gauge_value("battlement_bulkhead_in_flight_calls", &[]),
        2.0
    );
    assert_eq!(
        out.gauge_value("battlement_bulkhead_queued_calls", &[]),
        1.0
    );

    // The queued call waits 20 ms for a permit; the next one times out after 50 ms.
    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.finish(1);
    settle().await;
    handles.push(queued);
    let timed_out = spawn_call(&mut svc, 4).await;
    let err = timed_out.await.unwrap().unwrap_err();
    assert!(err.is::<BulkheadTimeout>());
    gate.finish(2);
    for h in handles {
        h.await.unwrap().unwrap();
    }

    let out = assert_matches(&b);
    let m = b.metrics();
    assert_eq!(
        (m.accepted, m.rejected_full, m.rejected_timeout, m.waited),
        (3, 1, 1, 2)
    );
    assert_eq!(out.count_of("battlement_bulkhead_rejected_calls"), 3);
    let h = out.histogram_value("battlement_bulkhead_queue_wait_seconds", &[]);
    assert!((h.sum - 0.070).abs() < 1e-9, "{}", h.sum);
    let le_50ms = h.bounds().iter().position(|&b| b >= 0.050).unwrap();
    assert_eq!(h.cumulative()[le_50ms], 2);
    let le_20ms = h.bounds().iter().position(|&b| b >= 0.020).unwrap();
    assert_eq!(h.cumulative()[le_20ms], 1);
}

/// Without `histogram(true)` (the default) no queue-wait histogram is reported.
#[test]
fn no_histogram_by_default() {
    let mut out = battlement_core::testing::RecordingVisitor::new();
    bulkhead(1, 1, None).export(&mut out);
    assert!(out
        .get("battlement_bulkhead_queue_wait_seconds", &[])
        .is_none());
    assert_eq!(
        out.counter_value("battlement_bulkhead_accepted_calls", &[]),
        0
    );
}
