//! Runs the demo's logic for a few seconds and checks the story it tells: the breaker opens,
//! probes in half-open and closes again; rejections are counted; `/health` is served as JSON,
//! and the live dashboard beside it shows the components and lists the transitions.
//!
//! This drives real servers on 127.0.0.1 with a real load generator, so it runs on the real
//! clock (a paused clock would auto-advance past per-try timeouts while bytes are on the wire);
//! it is bounded to a few seconds.

#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;

use battlement::breaker::State;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_open_half_open_closed_and_serves_health() {
    let report = app::run(app::Options {
        duration: Duration::from_secs(6),
        rate: 150,
        concurrency: 8,
        live: false,
    })
    .await
    .expect("demo runs");
    let t = &report.transitions;
    assert!(t.contains(&(State::Closed, State::Open)), "{t:?}");
    assert!(t.contains(&(State::Open, State::HalfOpen)), "{t:?}");
    assert!(t.contains(&(State::HalfOpen, State::Closed)), "{t:?}");
    assert_eq!(
        t.last(),
        Some(&(State::HalfOpen, State::Closed)),
        "ends closed: {t:?}"
    );
    assert!(report.counts.breaker > 0, "{:?}", report.counts);
    assert!(report.counts.ok > 0);
    let health: serde_json::Value =
        serde_json::from_str(&report.health_json).expect("/health is JSON");
    assert!(
        matches!(health["status"].as_str(), Some("pass" | "warn")),
        "recovered by the end: {health}"
    );
    assert_eq!(report.health_status, 200);
    assert_eq!(
        health["checks"]["upstream:state"][0]["observedValue"],
        "closed"
    );
    // The live dashboard was served beside the gateway and saw the story too.
    assert!(
        report.dashboard_url.ends_with("/battlement/"),
        "{}",
        report.dashboard_url
    );
    let dash: serde_json::Value =
        serde_json::from_str(&report.dashboard_json).expect("/battlement/snapshot is JSON");
    let card = |kind: &str, name: &str| {
        dash["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind && c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name} on the dashboard: {dash}"))
    };
    assert_eq!(card("circuit_breaker", "upstream")["state"], "closed");
    assert!(card("circuit_breaker", "upstream")["metrics"]["calls_rejected"].as_f64() > Some(0.0));
    assert!(card("bulkhead", "upstream-pool")["metrics"]["max_concurrent"] == 8.0);
    assert!(card("retry", "upstream")["spark"].as_array().unwrap().len() > 1);
    let events = &report.dashboard_events;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("transition: closed → open")),
        "{events:?}"
    );
    assert!(
        report.upstream_hits < report.counts.sent,
        "rejections never reached the upstream: {} hits for {} sent",
        report.upstream_hits,
        report.counts.sent
    );
}
