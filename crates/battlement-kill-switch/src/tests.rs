use crate::{Halted, KillSwitch, KillSwitchEvent, KillSwitchLayer};
use battlement_core::error::failure_kind;
use battlement_core::testing::RecordingSink;
use battlement_core::{
    BoxError, Classify, ComponentKind, FailureKind, HealthSource, HealthStatus, Outcome,
    ResultClassifier,
};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A service that counts the calls that reach it.
fn counting(
    calls: &Arc<AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone {
    let calls = calls.clone();
    service_fn(move |x: u32| {
        calls.fetch_add(1, Relaxed);
        async move { Ok(x + 1) }
    })
}

fn halted(err: &BoxError) -> &Halted {
    err.downcast_ref::<Halted>()
        .unwrap_or_else(|| panic!("not a Halted error: {err}"))
}

#[tokio::test(start_paused = true)]
async fn manual_halt_and_resume_on_two_services_sharing_a_switch() {
    let switch = KillSwitch::builder("trading").build().unwrap();
    let (a_calls, b_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = switch.layer().layer(counting(&a_calls));
    let b = KillSwitchLayer::new(&switch).layer(counting(&b_calls));

    assert_eq!(a.clone().oneshot(1).await.unwrap(), 2);
    assert_eq!(b.clone().oneshot(2).await.unwrap(), 3);
    assert!(!switch.is_halted());

    assert!(switch.halt("exchange outage"));
    assert!(switch.is_halted());
    for _ in 0..5 {
        let err = a.clone().oneshot(1).await.unwrap_err();
        let h = halted(&err);
        assert_eq!(h.name(), "trading");
        assert_eq!(h.reason(), "exchange outage");
        let err = b.clone().oneshot(1).await.unwrap_err();
        assert_eq!(halted(&err).reason(), "exchange outage");
    }
    // Rejections never reached the inner services.
    assert_eq!(a_calls.load(Relaxed), 1);
    assert_eq!(b_calls.load(Relaxed), 1);
    assert_eq!(switch.rejected_calls(), 10);

    assert!(switch.resume());
    assert!(!switch.is_halted());
    assert_eq!(a.clone().oneshot(5).await.unwrap(), 6);
    assert_eq!(b.oneshot(6).await.unwrap(), 7);
    assert_eq!(a_calls.load(Relaxed), 2);
    assert_eq!(b_calls.load(Relaxed), 2);
    assert_eq!(switch.rejected_calls(), 10);
    assert_eq!(switch.halts(), 1);
}

#[tokio::test]
async fn metrics_read_out_state_rejections_halts_and_limits() {
    let switch = KillSwitch::builder("s").build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = switch.layer().layer(counting(&calls));
    let m = switch.metrics();
    assert_eq!(
        (m.halted, m.rejected_calls, m.halts, m.limits),
        (false, 0, 0, 0)
    );

    switch.add_limit("loss", || false).unwrap();
    switch.halt("stop");
    for _ in 0..3 {
        assert!(svc.clone().oneshot(1).await.is_err());
    }
    let m = switch.metrics();
    assert_eq!(
        (m.halted, m.rejected_calls, m.halts, m.limits),
        (true, 3, 1, 1)
    );

    switch.resume();
    switch.halt("again");
    switch.resume();
    let m = switch.metrics();
    assert_eq!(
        (m.halted, m.rejected_calls, m.halts, m.limits),
        (false, 3, 2, 1)
    );
    assert_eq!(calls.load(Relaxed), 0);
}

/// The exported families carry `metrics()`'s figures, halted and running, each (family, labels)
/// once, every family in `FAMILIES`.
#[tokio::test]
async fn export_matches_metrics() {
    use battlement_core::testing::RecordingVisitor;
    use battlement_core::HealthSource;

    fn check(switch: &KillSwitch) -> RecordingVisitor {
        let m = switch.metrics();
        let mut out = RecordingVisitor::new();
        switch.export(&mut out);
        out.assert_families_in(crate::FAMILIES);
        let halted = if m.halted { 1.0 } else { 0.0 };
        assert_eq!(
            out.gauge_value("battlement_kill_switch_halted", &[]),
            halted
        );
        assert_eq!(
            out.counter_value("battlement_kill_switch_rejected_calls", &[]),
            m.rejected_calls
        );
        assert_eq!(
            out.counter_value("battlement_kill_switch_halts", &[]),
            m.halts
        );
        assert_eq!(
            out.gauge_value("battlement_kill_switch_limits", &[]),
            m.limits as f64
        );
        assert_eq!(out.values().len(), 4);
        out
    }

    let switch = KillSwitch::builder("s").build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = switch.layer().layer(counting(&calls));
    switch.add_limit("loss", || false).unwrap();
    switch.halt("stop");
    for _ in 0..3 {
        assert!(svc.clone().oneshot(1).await.is_err());
    }
    let out = check(&switch);
    assert_eq!(out.gauge_value("battlement_kill_switch_halted", &[]), 1.0);
    assert_eq!(
        out.counter_value("battlement_kill_switch_rejected_calls", &[]),
        3
    );
    switch.resume();
    let out = check(&switch);
    assert_eq!(out.gauge_value("battlement_kill_switch_halted", &[]), 0.0);
    assert_eq!(out.counter_value("battlement_kill_switch_halts", &[]), 1);
}

#[tokio::test]
async fn rejection_is_ready_at_once_and_classified_rejected() {
    let switch = KillSwitch::builder("s").build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = switch.layer().layer(counting(&calls));
    switch.halt("stop");
    svc.ready().await.unwrap();
    let fut = svc.call(1);
    assert!(fut.is_rejected());
    // Completes on the first poll.
    let err = futures::FutureExt::now_or_never(fut)
        .expect("a rejection is ready at once")
        .unwrap_err();
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    assert_eq!(
        ResultClassifier.classify(Err::<&u32, _>(&err)),
        Outcome::Failure(FailureKind::Rejected)
    );
    assert_eq!(calls.load(Relaxed), 0);
}

#[test]
fn halt_and_resume_are_idempotent_and_keep_the_first_reason() {
    let switch = KillSwitch::builder("s").build().unwrap();
    assert!(!switch.resume());
    assert!(switch.halt("first"));
    let since = switch.halt_info().unwrap().since();
    assert!(!switch.halt("second"));
    let info = switch.halt_info().unwrap();
    assert_eq!(info.reason(), "first");
    assert_eq!(info.since(), since);
    assert_eq!(switch.halted_error().unwrap().reason(), "first");
    assert!(switch.resume());
    assert!(!switch.resume());
    assert!(switch.halted_error().is_none());
    assert_eq!(switch.halts(), 1);
    // A clone is the same switch.
    let clone = switch.clone();
    clone.halt("via clone");
    assert!(switch.is_halted());
}

#[tokio::test]
async fn automatic_halt_by_a_limit_names_the_limit() {
    let loss = Arc::new(AtomicI64::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let (l, e) = (loss.clone(), errors.clone());
    let switch = KillSwitch::builder("desk")
        .limit("daily_loss", move || l.load(Relaxed) > 1_000)
        .build()
        .unwrap();
    switch
        .add_limit("error_budget", move || {
            let n = e.load(Relaxed);
            (n >= 50).then(|| format!("{n} errors"))
        })
        .unwrap();
    assert_eq!(switch.limit_names(), ["daily_loss", "error_budget"]);

    let calls = Arc::new(AtomicUsize::new(0));
    let svc = switch.layer().layer(counting(&calls));

    // Within limits: nothing happens.
    loss.store(999, Relaxed);
    assert!(switch.check_limits().is_none());
    assert!(!switch.is_halted());

    loss.store(1_001, Relaxed);
    let info = switch.check_limits().expect("the loss limit trips");
    assert_eq!(info.reason(), "daily_loss");
    assert_eq!(info.limit(), Some("daily_loss"));
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(halted(&err).reason(), "daily_loss");
    assert_eq!(calls.load(Relaxed), 0);
    // Already halted: no new halt.
    assert!(switch.check_limits().is_none());

    // Resumed while still breached: the next check halts again.
    switch.resume();
    assert!(switch.check_limits().is_some());
    switch.resume();

    // A limit with a detail; the first breached limit in order wins.
    loss.store(0, Relaxed);
    errors.store(73, Relaxed);
    let info = switch.check_limits().unwrap();
    assert_eq!(info.reason(), "error_budget: 73 errors");
    assert_eq!(info.limit(), Some("error_budget"));
    switch.resume();

    assert!(switch.remove_limit("error_budget"));
    assert!(!switch.remove_limit("error_budget"));
    assert!(switch.check_limits().is_none());
    assert!(svc.oneshot(1).await.is_ok());
}

#[test]
fn a_limit_may_use_the_switch() {
    let switch = KillSwitch::builder("s").build().unwrap();
    let s = switch.clone();
    switch
        .add_limit("reentrant", move || {
            // Locks the switch's limit list and state while checks run: no deadlock.
            s.limit_names().len() == 1 && s.halt_info().is_none()
        })
        .unwrap();
    assert_eq!(switch.check_limits().unwrap().reason(), "reentrant");
}

#[tokio::test(start_paused = true)]
async fn limit_monitor_halts_on_its_period_and_stops_on_drop() {
    let loss = Arc::new(AtomicI64::new(0));
    let checks = Arc::new(AtomicUsize::new(0));
    let (l, c) = (loss.clone(), checks.clone());
    let switch = KillSwitch::builder("desk").build().unwrap();
    switch
        .add_limit("daily_loss", move || {
            c.fetch_add(1, Relaxed);
            l.load(Relaxed) > 100
        })
        .unwrap();
    let monitor = switch.spawn_limit_monitor(Duration::from_secs(10)).unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(checks.load(Relaxed), 1, "first check at once");

    loss.store(500, Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!switch.is_halted(), "not before the period");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(switch.halt_info().unwrap().reason(), "daily_loss");
    assert_eq!(checks.load(Relaxed), 2);

    // Drop the monitor: no more checks, so resuming sticks even though the limit is breached.
    drop(monitor);
    switch.resume();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!switch.is_halted());
    assert_eq!(checks.load(Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn limit_monitor_ends_when_the_switch_is_gone() {
    let switch = KillSwitch::builder("s").build().unwrap();
    let monitor = switch.spawn_limit_monitor(Duration::from_secs(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!monitor.is_finished());
    drop(switch);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(monitor.is_finished());
}

#[tokio::test(start_paused = true)]
async fn snapshot_fails_while_halted() {
    let switch = KillSwitch::builder("trading").build().unwrap();
    let snap = switch.snapshot();
    assert_eq!(HealthSource::name(&switch), "trading");
    assert_eq!(snap.kind, ComponentKind::KillSwitch);
    assert_eq!(snap.state, "running");
    assert_eq!(snap.status, HealthStatus::Pass);
    assert_eq!(snap.message, None);
    assert_eq!(snap.metric("halted_for"), None);

    let calls = Arc::new(AtomicUsize::new(0));
    let svc = switch.layer().layer(counting(&calls));
    switch.halt("manual stop");
    let _ = svc.clone().oneshot(1).await;
    let _ = svc.oneshot(1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let snap = switch.snapshot();
    assert_eq!(snap.state, "halted");
    assert_eq!(snap.status, HealthStatus::Fail);
    assert_eq!(snap.message.as_deref(), Some("halted: manual stop"));
    assert_eq!(snap.metric("rejected_calls"), Some(2.0));
    assert_eq!(snap.metric("halts"), Some(1.0));
    assert_eq!(snap.metric("halted_for"), Some(3000.0));
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["kind"], "kill_switch");
    assert_eq!(json["status"], "fail");

    switch.resume();
    assert_eq!(switch.snapshot().status, HealthStatus::Pass);

    switch.add_limit("loss", || true).unwrap();
    switch.check_limits();
    let snap = switch.snapshot();
    assert_eq!(
        snap.message.as_deref(),
        Some("halted by limit `loss`: loss")
    );
    assert_eq!(snap.metric("limits"), Some(1.0));
}

/// The aggregate of what registered with `sink`, as the health crate computes it: a critical
/// failure fails.
fn aggregate(sink: &RecordingSink) -> HealthStatus {
    sink.registered()
        .iter()
        .map(|(c, critical)| match (c.snapshot().status, critical) {
            (HealthStatus::Fail, false) => HealthStatus::Warn,
            (status, _) => status,
        })
        .max()
        .unwrap_or_default()
}

#[test]
fn registers_as_critical_and_fails_the_aggregate_while_halted() {
    let registry = RecordingSink::new();
    let switch = KillSwitch::builder("trading")
        .registry(&registry)
        .build()
        .unwrap();
    let _other = KillSwitch::builder("reports")
        .registry(&registry)
        .critical(false)
        .build()
        .unwrap();
    {
        let entries = registry.registered();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.name(), "trading");
        assert!(entries[0].1, "critical by default");
        assert!(!entries[1].1);
    }
    assert_eq!(aggregate(&registry), HealthStatus::Pass);
    switch.halt("incident");
    assert_eq!(aggregate(&registry), HealthStatus::Fail);
    switch.resume();
    assert_eq!(aggregate(&registry), HealthStatus::Pass);
}

#[tokio::test(start_paused = true)]
async fn subscribers_receive_halt_and_resume_events() {
    let switch = KillSwitch::builder("trading").build().unwrap();
    let mut events = switch.subscribe();
    let mut late = switch.subscribe();

    switch.halt("by hand");
    assert!(!switch.halt("again"), "no event for a no-op");
    tokio::time::sleep(Duration::from_secs(2)).await;
    switch.resume();
    assert!(!switch.resume());
    switch.add_limit("drawdown", || Some("12%")).unwrap();
    switch.check_limits();

    match events.recv().await.unwrap() {
        KillSwitchEvent::Halted {
            name,
            reason,
            since,
            limit,
        } => {
            assert_eq!(&*name, "trading");
            assert_eq!(&*reason, "by hand");
            assert_eq!(limit, None);
            assert!(since <= std::time::SystemTime::now());
        }
        other => panic!("unexpected {other:?}"),
    }
    match events.recv().await.unwrap() {
        KillSwitchEvent::Resumed {
            reason, halted_for, ..
        } => {
            assert_eq!(&*reason, "by hand");
            assert_eq!(halted_for, Duration::from_secs(2));
        }
        other => panic!("unexpected {other:?}"),
    }
    match events.recv().await.unwrap() {
        KillSwitchEvent::Halted { reason, limit, .. } => {
            assert_eq!(&*reason, "drawdown: 12%");
            assert_eq!(limit.as_deref(), Some("drawdown"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(events.try_recv().is_err(), "exactly three events");
    // Every subscriber gets every event.
    assert_eq!(std::iter::from_fn(|| late.try_recv().ok()).count(), 3);
}

/// tokio's broadcast channel panics for these (or fails to allocate); the builder refuses them.
#[test]
fn event_capacities_tokio_cannot_take_are_config_errors_not_panics() {
    for capacity in [
        0,
        usize::MAX / 2,
        usize::MAX,
        battlement_core::event::MAX_EVENT_CAPACITY + 1,
    ] {
        let err = KillSwitch::builder("s")
            .event_capacity(capacity)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "event_capacity");
        assert_eq!(err.component(), "kill switch `s`");
    }
}

#[test]
fn config_errors() {
    let err = KillSwitch::builder("").build().unwrap_err();
    assert_eq!(err.setting(), "name");
    let err = KillSwitch::builder("s")
        .event_capacity(0)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "event_capacity");
    let err = KillSwitch::builder("s")
        .limit("loss", || false)
        .limit("loss", || true)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "limit.name");
    assert_eq!(err.value(), "\"loss\"");
    let err = KillSwitch::builder("s")
        .limit("", || false)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "limit.name");

    let switch = KillSwitch::builder("s")
        .limit("loss", || false)
        .build()
        .unwrap();
    assert_eq!(
        switch.add_limit("loss", || true).unwrap_err().setting(),
        "limit.name"
    );
    assert!(switch.add_limit("", || true).is_err());
    assert_eq!(switch.limit_names(), ["loss"]);
    let err = switch.spawn_limit_monitor(Duration::ZERO).unwrap_err();
    assert_eq!(err.setting(), "limit_monitor.period");
    assert_eq!(err.component(), "kill switch `s`");
}

#[tokio::test]
async fn inner_errors_pass_through() {
    let switch = KillSwitch::builder("s").build().unwrap();
    let svc = switch.layer().layer(service_fn(|_: ()| async {
        Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(failure_kind(&*err), FailureKind::Connection);
    assert_eq!(switch.rejected_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_reaches_the_inner_service_after_halt_returns() {
    let switch = KillSwitch::builder("s").build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = switch.layer().layer(counting(&calls));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (svc, stop) = (svc.clone(), stop.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while !stop.load(Relaxed) {
                    if svc.clone().oneshot(1).await.is_ok() {
                        ok += 1;
                    }
                    tokio::task::yield_now().await;
                }
                ok
            })
        })
        .collect();
    tokio::task::yield_now().await;
    while calls.load(Relaxed) < 100 {
        tokio::task::yield_now().await;
    }
    switch.halt("now");
    let at_halt = calls.load(Relaxed);
    // Calls already past the check when halt() returned may still land (at most one per task).
    while switch.rejected_calls() < 100 {
        tokio::task::yield_now().await;
    }
    stop.store(true, Relaxed);
    let ok: u64 = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    let total = calls.load(Relaxed);
    assert!(total <= at_halt + 2, "{total} calls, {at_halt} at halt");
    assert_eq!(ok, total as u64);
}
