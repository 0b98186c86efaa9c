//! Components written for the tests, and `promtool`.

#![allow(dead_code, unreachable_pub)]

use battlement_core::export::{Family, Histogram, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub static CALLS: Family = Family::counter("battlement_other_calls", "Calls, by outcome.", "calls");
pub static IN_FLIGHT: Family =
    Family::gauge("battlement_other_in_flight", "Calls running now.", "calls");
pub static LATENCY: Family = Family::histogram(
    "battlement_other_latency_seconds",
    "Call latency.",
    "seconds",
);

/// A component that reports two counters, a gauge and a histogram, with a status tests set.
#[derive(Clone)]
pub struct Fake {
    pub name: &'static str,
    pub kind: ComponentKind,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    pub in_flight: Arc<AtomicU64>,
    pub latency: Arc<Histogram>,
    pub status: Arc<Mutex<HealthStatus>>,
}

impl Fake {
    pub fn new(name: &'static str) -> Self {
        Fake {
            name,
            kind: ComponentKind::Other,
            ok: Arc::default(),
            failed: Arc::default(),
            in_flight: Arc::default(),
            latency: Arc::new(Histogram::new()),
            status: Arc::new(Mutex::new(HealthStatus::Pass)),
        }
    }

    pub fn call(&self, ok: bool, took: Duration) {
        if ok { &self.ok } else { &self.failed }.fetch_add(1, Ordering::Relaxed);
        self.latency.record(took);
    }
}

impl HealthSource for Fake {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> ComponentKind {
        self.kind
    }
    fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot::new(self.name, self.kind, "x", *self.status.lock().unwrap())
    }
    fn export(&self, out: &mut dyn MetricsVisitor) {
        out.counter(
            &CALLS,
            &[("outcome", "success")],
            self.ok.load(Ordering::Relaxed),
        );
        out.counter(
            &CALLS,
            &[("outcome", "failure")],
            self.failed.load(Ordering::Relaxed),
        );
        out.gauge(
            &IN_FLIGHT,
            &[],
            self.in_flight.load(Ordering::Relaxed) as f64,
        );
        out.histogram(&LATENCY, &[], &self.latency.snapshot());
    }
}

/// Runs `promtool check metrics` on `text`; panics (never skips) when promtool cannot run.
/// Returns its exit success and its output.
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool could not be run: install it (Debian package `prometheus`; `scripts/test` \
             installs it when missing)",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The metric (sample) names in a text exposition.
pub fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}
