//! The passive health probe: a middleware that records the outcomes of any service's calls over
//! a sliding time window, and reports them as a component's health.
//!
//! The handle ([`HealthProbe`]) is here; its layer, service and response future, and its read-out
//! and health snapshot, are in the files beside this one.

use crate::config::{HealthProbeBuilder, ProbeConfig};
use crate::window::{Stripe, Window};
use battlement_core::stripe::CachePadded;
use battlement_core::Outcome;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

mod future;
mod layer;
mod metrics;
mod service;

pub use future::{ProbeRecord, ResponseFuture};
pub use layer::HealthProbeLayer;
pub use metrics::{HealthProbeMetrics, FAMILIES};
pub use service::HealthProbeService;

/// The passive health of a dependency that has no breaker: the outcomes of the calls made to
/// it, recorded by a [`HealthProbeLayer`](crate::HealthProbeLayer) (or by hand with
/// [`record`](Self::record)), over a sliding time window.
///
/// The probe fails when the success rate over the window drops below
/// [`fail_below`](HealthProbeBuilder::fail_below), once at least
/// [`minimum_calls`](HealthProbeBuilder::minimum_calls) were counted; it warns below
/// [`warn_below`](HealthProbeBuilder::warn_below) or when the mean latency exceeds
/// [`slow_mean_latency`](HealthProbeBuilder::slow_mean_latency). Calls the classifier
/// [ignores](Outcome::Ignored), and calls whose future was dropped, are not counted.
///
/// The window is time-based: `window` split into `buckets`; the oldest bucket drops out as time
/// moves on, so outcomes age out even when no call is made. Recording a call is lock-free and
/// allocates nothing: a few CAS operations on the calling core's stripe of the window.
///
/// The handle is cheap to clone; it implements [`HealthSource`](battlement_core::HealthSource) (state `idle` below the minimum
/// calls, `healthy`, `degraded` or `failing`; metrics `success_rate`, `calls`, `failures`,
/// `mean_latency`), so a registry serves it, and exports the gauges of
/// [`FAMILIES`](crate::FAMILIES) to metrics exporters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::{FailureKind, HealthStatus, Outcome};
/// use battlement_health::HealthProbe;
/// use std::time::Duration;
///
/// let probe = HealthProbe::builder("geo-api")
///     .window(Duration::from_secs(10))
///     .minimum_calls(4)
///     .fail_below(0.5)
///     .build()
///     .unwrap();
/// for ok in [true, false, false, false] {
///     let outcome = if ok { Outcome::Success } else { Outcome::Failure(FailureKind::Timeout) };
///     probe.record(outcome, Duration::from_millis(20));
/// }
/// let stats = probe.metrics();
/// assert_eq!(stats.success_rate, Some(0.25));
/// assert_eq!(stats.status, HealthStatus::Fail);
///
/// // Ten seconds later the failures have left the window.
/// tokio::time::advance(Duration::from_secs(10)).await;
/// assert_eq!(probe.metrics().calls, 0);
/// assert_eq!(probe.status(), HealthStatus::Pass);
/// # }
/// ```
#[derive(Clone)]
pub struct HealthProbe {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    config: ProbeConfig,
    window: Window,
}

impl fmt::Debug for HealthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthProbe")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl HealthProbe {
    /// Starts building a probe named `name`.
    pub fn builder(name: impl Into<String>) -> HealthProbeBuilder {
        HealthProbeBuilder::new(name.into())
    }

    pub(crate) fn new(name: Arc<str>, config: ProbeConfig) -> Self {
        let window = Window::new(config.window, config.buckets);
        HealthProbe {
            inner: Arc::new(Inner {
                name,
                config,
                window,
            }),
        }
    }

    /// The probe's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Records one call's outcome and latency by hand (the layer does this for every call).
    /// [`Outcome::Ignored`] is not counted.
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        let success = match outcome {
            Outcome::Success => true,
            Outcome::Failure(_) => false,
            Outcome::Ignored => return,
        };
        self.inner
            .window
            .stripe()
            .record(success, latency, Instant::now());
    }

    /// The calling thread's stripe, for a response future to record into.
    #[inline]
    pub(crate) fn stripe(&self) -> Arc<CachePadded<Stripe>> {
        self.inner.window.stripe().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use battlement_core::FailureKind;
    use battlement_core::{HealthSource, HealthStatus};

    const FAIL: Outcome = Outcome::Failure(FailureKind::ServerError);

    fn probe() -> HealthProbe {
        HealthProbe::builder("p")
            .window(Duration::from_secs(10))
            .buckets(10)
            .minimum_calls(5)
            .fail_below(0.5)
            .warn_below(0.9)
            .slow_mean_latency(Duration::from_millis(100))
            .build()
            .unwrap()
    }

    /// The exported gauges carry `metrics()`'s figures for an idle, then a degraded probe,
    /// each (family, labels) once, every family in `FAMILIES`.
    #[tokio::test(start_paused = true)]
    async fn export_matches_metrics() {
        use battlement_core::testing::RecordingVisitor;

        fn check(p: &HealthProbe) -> RecordingVisitor {
            let m = p.metrics();
            let mut out = RecordingVisitor::new();
            p.export(&mut out);
            out.assert_families_in(FAMILIES);
            let calls = |o| out.gauge_value("battlement_probe_window_calls", &[("outcome", o)]);
            assert_eq!(
                (calls("success"), calls("failure")),
                (m.successes as f64, m.failures as f64)
            );
            assert_eq!(
                out.get("battlement_probe_success_rate", &[]).cloned(),
                m.success_rate
                    .map(battlement_core::testing::Recorded::Gauge)
            );
            assert_eq!(
                out.get("battlement_probe_mean_latency_seconds", &[])
                    .cloned(),
                m.mean_latency
                    .map(|d| battlement_core::testing::Recorded::Gauge(d.as_secs_f64()))
            );
            for state in ["idle", "healthy", "degraded", "failing"] {
                let want = if state == m.state { 1.0 } else { 0.0 };
                let got = out.gauge_value("battlement_probe_state", &[("state", state)]);
                assert_eq!(got, want, "{state}");
            }
            out
        }

        let p = probe();
        let out = check(&p);
        assert!(out.get("battlement_probe_success_rate", &[]).is_none());
        assert_eq!(
            out.gauge_value("battlement_probe_state", &[("state", "idle")]),
            1.0
        );
        for _ in 0..8 {
            p.record(Outcome::Success, Duration::from_millis(20));
        }
        for _ in 0..2 {
            p.record(FAIL, Duration::from_millis(20));
        }
        let out = check(&p);
        assert_eq!(out.gauge_value("battlement_probe_success_rate", &[]), 0.8);
        assert_eq!(
            out.gauge_value("battlement_probe_state", &[("state", "degraded")]),
            1.0
        );
        assert_eq!(out.values().len(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_and_minimum_calls() {
        let p = probe();
        let ms = Duration::from_millis(10);
        for _ in 0..4 {
            p.record(FAIL, ms);
        }
        // 4 failures, below the minimum of 5: not judged.
        let s = p.metrics();
        assert_eq!(
            (s.calls, s.state, s.status),
            (4, "idle", HealthStatus::Pass)
        );
        p.record(Outcome::Ignored, ms);
        assert_eq!(p.metrics().calls, 4, "ignored calls are not counted");
        p.record(Outcome::Success, ms);
        let s = p.metrics();
        assert_eq!(s.success_rate, Some(0.2));
        assert_eq!((s.state, s.status), ("failing", HealthStatus::Fail));
        let snap = p.snapshot();
        assert_eq!(snap.status, HealthStatus::Fail);
        assert_eq!(snap.metric("success_rate"), Some(0.2));
        assert_eq!(snap.metric("calls"), Some(5.0));
        assert_eq!(snap.metric("mean_latency"), Some(10.0));
        assert!(snap.message.unwrap().contains("below 50.0%"));

        // Exactly at the threshold is not below it: 5 of 10 pass, still < warn 0.9.
        p.record(FAIL, ms);
        for _ in 0..4 {
            p.record(Outcome::Success, ms);
        }
        let s = p.metrics();
        assert_eq!(s.success_rate, Some(0.5));
        assert_eq!((s.state, s.status), ("degraded", HealthStatus::Warn));

        for _ in 0..40 {
            p.record(Outcome::Success, ms);
        }
        assert_eq!(p.metrics().state, "healthy");
    }

    #[tokio::test(start_paused = true)]
    async fn window_slides_with_time() {
        let p = probe();
        let ms = Duration::from_millis(1);
        for _ in 0..10 {
            p.record(FAIL, ms);
        }
        assert_eq!(p.status(), HealthStatus::Fail);
        tokio::time::advance(Duration::from_secs(5)).await;
        for _ in 0..30 {
            p.record(Outcome::Success, ms);
        }
        // 30 of 40 succeed: 0.75, degraded.
        assert_eq!(p.metrics().success_rate, Some(0.75));
        assert_eq!(p.status(), HealthStatus::Warn);
        // The failures (bucket 0) leave the window at 10 s.
        tokio::time::advance(Duration::from_secs(5)).await;
        let s = p.metrics();
        assert_eq!((s.calls, s.failures), (30, 0));
        assert_eq!(p.status(), HealthStatus::Pass);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(p.metrics().calls, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_mean_latency_warns() {
        let p = probe();
        for _ in 0..10 {
            p.record(Outcome::Success, Duration::from_millis(150));
        }
        let s = p.metrics();
        assert_eq!(s.mean_latency, Some(Duration::from_millis(150)));
        assert_eq!(s.status, HealthStatus::Warn);
        assert!(p.snapshot().message.unwrap().contains("mean latency"));
    }
}
