//! The probe's read-out ([`HealthProbeMetrics`]: counts over the window and the verdict), its
//! health snapshot and the metric families it exports.
//!
//! # Exported metrics
//!
//! [`HealthSource::export`] reads the probe's window at collection time. The probe keeps no
//! cumulative counts, only its window, so its families are gauges over the window. Every family
//! is in [`FAMILIES`](crate::FAMILIES); the exporter adds the probe's `name` label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_probe_window_calls` | gauge | `outcome` | Calls counted in the window, by outcome (`success`, `failure`; both reported). |
//! | `battlement_probe_success_rate` | gauge | | Success rate over the window, 0 to 1; reported only while the window holds calls. |
//! | `battlement_probe_mean_latency_seconds` | gauge | | Mean latency of the counted calls; reported only while the window holds calls. |
//! | `battlement_probe_state` | gauge | `state` | 1 for the probe's state (`idle`, `healthy`, `degraded`, `failing`), 0 for the others; every state reported. |

use super::HealthProbe;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::time::Duration;
use tokio::time::Instant;

static WINDOW_CALLS: Family = Family::gauge(
    "battlement_probe_window_calls",
    "Calls counted in the probe's window, by outcome.",
    "calls",
);
static SUCCESS_RATE: Family = Family::gauge(
    "battlement_probe_success_rate",
    "Success rate over the probe's window (0 to 1).",
    "",
);
static MEAN_LATENCY: Family = Family::gauge(
    "battlement_probe_mean_latency_seconds",
    "Mean latency of the calls in the probe's window.",
    "seconds",
);
static STATE: Family = Family::gauge(
    "battlement_probe_state",
    "1 for the probe's state (idle, healthy, degraded, failing), 0 for the others.",
    "",
);

/// The probe's states, as [`HealthProbeMetrics::state`] names them.
const STATES: [&str; 4] = ["idle", "healthy", "degraded", "failing"];

/// Every family a [`HealthProbe`] exports (the table in the probe's metrics docs): window calls
/// by outcome, success rate, mean latency and state, all gauges.
///
/// ```
/// assert!(battlement_health::FAMILIES
///     .iter()
///     .any(|f| f.name == "battlement_probe_state"));
/// ```
pub static FAMILIES: &[&Family] = &[&WINDOW_CALLS, &SUCCESS_RATE, &MEAN_LATENCY, &STATE];

/// What a [`HealthProbe`] saw over its window, and its verdict.
///
/// ```
/// use battlement_core::HealthStatus;
/// use battlement_health::HealthProbe;
///
/// let stats = HealthProbe::builder("idle").build().unwrap().metrics();
/// assert_eq!(stats.calls, 0);
/// assert_eq!(stats.success_rate, None);
/// assert_eq!(stats.state, "idle");
/// assert_eq!(stats.status, HealthStatus::Pass);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct HealthProbeMetrics {
    /// Counted calls in the window.
    pub calls: u64,
    /// Successful calls in the window.
    pub successes: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// `successes / calls`; `None` without calls.
    pub success_rate: Option<f64>,
    /// The mean latency of the counted calls; `None` without calls.
    pub mean_latency: Option<Duration>,
    /// `idle`, `healthy`, `degraded` or `failing`.
    pub state: &'static str,
    /// The verdict.
    pub status: HealthStatus,
}

impl HealthProbe {
    /// The counts over the window now, and the verdict.
    pub fn metrics(&self) -> HealthProbeMetrics {
        let c = &self.inner.config;
        let t = self.inner.window.totals(Instant::now());
        let calls = t.successes + t.failures;
        let success_rate = (calls > 0).then(|| t.successes as f64 / calls as f64);
        let mean_latency = (calls > 0).then(|| Duration::from_micros(t.latency_us / calls));
        let (state, status) = match success_rate {
            _ if calls < c.minimum_calls => ("idle", HealthStatus::Pass),
            Some(rate) if rate < c.fail_below => ("failing", HealthStatus::Fail),
            Some(rate) if c.warn_below.is_some_and(|w| rate < w) => {
                ("degraded", HealthStatus::Warn)
            }
            _ if c
                .slow_mean_latency
                .is_some_and(|slow| mean_latency.is_some_and(|m| m > slow)) =>
            {
                ("degraded", HealthStatus::Warn)
            }
            _ => ("healthy", HealthStatus::Pass),
        };
        HealthProbeMetrics {
            calls,
            successes: t.successes,
            failures: t.failures,
            success_rate,
            mean_latency,
            state,
            status,
        }
    }

    /// The verdict now: `self.metrics().status`.
    pub fn status(&self) -> HealthStatus {
        self.metrics().status
    }
}

impl HealthSource for HealthProbe {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn snapshot(&self) -> HealthSnapshot {
        let s = self.metrics();
        let c = &self.inner.config;
        let mut snap =
            HealthSnapshot::new(&*self.inner.name, ComponentKind::Probe, s.state, s.status)
                .with_metric(Metric::new("calls", s.calls as f64, "calls"))
                .with_metric(Metric::new("failures", s.failures as f64, "calls"));
        if let Some(rate) = s.success_rate {
            snap = snap.with_metric(Metric::new("success_rate", rate, "ratio"));
        }
        if let Some(lat) = s.mean_latency {
            snap = snap.with_metric(Metric::new("mean_latency", lat.as_secs_f64() * 1e3, "ms"));
        }
        let window = c.window;
        match (s.state, s.success_rate) {
            ("failing", Some(rate)) => {
                snap.message = Some(format!(
                    "success rate {:.1}% over the last {window:?} is below {:.1}% ({} calls)",
                    rate * 100.0,
                    c.fail_below * 100.0,
                    s.calls
                ))
            }
            ("degraded", Some(rate)) => {
                snap.message = Some(match (c.warn_below, s.mean_latency) {
                    (Some(w), _) if rate < w => format!(
                        "success rate {:.1}% over the last {window:?} is below {:.1}%",
                        rate * 100.0,
                        w * 100.0
                    ),
                    (_, Some(m)) => format!(
                        "mean latency {m:?} over the last {window:?} exceeds {:?}",
                        c.slow_mean_latency.unwrap_or_default()
                    ),
                    _ => "degraded".to_owned(),
                })
            }
            _ => {}
        }
        snap
    }

    /// Reports the families of [`FAMILIES`] from [`metrics`](HealthProbe::metrics).
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.gauge(&WINDOW_CALLS, &[("outcome", "success")], m.successes as f64);
        out.gauge(&WINDOW_CALLS, &[("outcome", "failure")], m.failures as f64);
        if let Some(rate) = m.success_rate {
            out.gauge(&SUCCESS_RATE, &[], rate);
        }
        if let Some(lat) = m.mean_latency {
            out.gauge(&MEAN_LATENCY, &[], lat.as_secs_f64());
        }
        for state in STATES {
            let on = if state == m.state { 1.0 } else { 0.0 };
            out.gauge(&STATE, &[("state", state)], on);
        }
    }
}
