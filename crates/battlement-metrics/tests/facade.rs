//! The `metrics` facade on a tick, with `metrics-util`'s debugging recorder installed (the only
//! test in this binary: the recorder is process-wide) and tokio's clock paused.
#![cfg(feature = "metrics")]

mod support;

use battlement_health::HealthRegistry;
use battlement_metrics::facade::FacadeExporter;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::time::Duration;
use support::Fake;

type Values = Vec<(String, Vec<(String, String)>, f64)>;

/// A snapshot (the debugging recorder sets every value back to 0 when it takes one).
fn snapshot(s: &Snapshotter) -> Values {
    s.snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| {
            let labels = k
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let v = match v {
                DebugValue::Counter(c) => c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => panic!("no histogram is recorded"),
            };
            (k.key().name().to_owned(), labels, v)
        })
        .collect()
}

fn value(values: &Values, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    values
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(lk, lv)| l.iter().any(|(k, v)| k == lk && v == lv))
        })
        .map(|v| v.2)
}

#[tokio::test(start_paused = true)]
async fn the_facade_is_set_on_each_tick() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let health = HealthRegistry::new();
    let db = Fake::new("db");
    health.register(&db, true).unwrap();
    db.call(true, Duration::from_millis(3));
    db.call(true, Duration::from_millis(5));
    db.in_flight.store(3, std::sync::atomic::Ordering::Relaxed);

    assert!(FacadeExporter::new(&health)
        .interval(Duration::ZERO)
        .spawn()
        .is_err());
    let handle = FacadeExporter::new(&health).spawn().unwrap(); // default: every 10 s
    tokio::task::yield_now().await; // the first update runs at once
    let calls = |v: &Values| {
        value(
            v,
            "battlement_other_calls",
            &[("name", "db"), ("outcome", "success")],
        )
    };
    let v = snapshot(&snapshotter);
    assert_eq!(calls(&v), Some(2.0));
    assert_eq!(
        value(&v, "battlement_other_in_flight", &[("name", "db")]),
        Some(3.0)
    );
    assert_eq!(
        value(
            &v,
            "battlement_other_latency_seconds_count",
            &[("name", "db")]
        ),
        Some(2.0)
    );
    let sum = value(
        &v,
        "battlement_other_latency_seconds_sum",
        &[("name", "db")],
    )
    .unwrap();
    assert!((sum - 0.008).abs() < 1e-9);
    assert_eq!(
        value(
            &v,
            "battlement_health_status",
            &[("name", "db"), ("status", "pass")]
        ),
        Some(1.0)
    );

    // No update before the next tick (the snapshot set the recorder's values back to 0).
    db.call(true, Duration::from_millis(1));
    tokio::time::advance(Duration::from_secs(9)).await;
    tokio::task::yield_now().await;
    assert_eq!(calls(&snapshot(&snapshotter)), Some(0.0));

    // Two ticks (at 10 s and 20 s): counters are set to the component's total, not added to.
    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    db.call(true, Duration::from_millis(1));
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        calls(&snapshot(&snapshotter)),
        Some(4.0),
        "3 then 4, not 3 + 4"
    );

    // Dropping the handle stops the task.
    drop(handle);
    db.call(true, Duration::from_millis(1));
    tokio::time::advance(Duration::from_secs(30)).await;
    tokio::task::yield_now().await;
    assert_eq!(calls(&snapshot(&snapshotter)), Some(0.0));
}
