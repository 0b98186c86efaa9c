//! The passive health probe handle: outcomes of calls over a sliding time window.

use crate::config::{HealthProbeBuilder, ProbeConfig};
use crate::window::{Stripe, Window};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric, Outcome};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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
/// The handle is cheap to clone; it implements [`HealthSource`] (state `idle` below the minimum
/// calls, `healthy`, `degraded` or `failing`; metrics `success_rate`, `calls`, `failures`,
/// `mean_latency`), so a registry serves it.
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
/// let stats = probe.stats();
/// assert_eq!(stats.success_rate, Some(0.25));
/// assert_eq!(stats.status, HealthStatus::Fail);
///
/// // Ten seconds later the failures have left the window.
/// tokio::time::advance(Duration::from_secs(10)).await;
/// assert_eq!(probe.stats().calls, 0);
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

/// What a [`HealthProbe`] saw over its window, and its verdict.
///
/// ```
/// use battlement_core::HealthStatus;
/// use battlement_health::HealthProbe;
///
/// let stats = HealthProbe::builder("idle").build().unwrap().stats();
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

    /// The counts over the window now, and the verdict.
    pub fn stats(&self) -> HealthProbeMetrics {
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

    /// The verdict now: `self.stats().status`.
    pub fn status(&self) -> HealthStatus {
        self.stats().status
    }
}

impl HealthSource for HealthProbe {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn snapshot(&self) -> HealthSnapshot {
        let s = self.stats();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use battlement_core::FailureKind;

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

    #[tokio::test(start_paused = true)]
    async fn threshold_and_minimum_calls() {
        let p = probe();
        let ms = Duration::from_millis(10);
        for _ in 0..4 {
            p.record(FAIL, ms);
        }
        // 4 failures, below the minimum of 5: not judged.
        let s = p.stats();
        assert_eq!(
            (s.calls, s.state, s.status),
            (4, "idle", HealthStatus::Pass)
        );
        p.record(Outcome::Ignored, ms);
        assert_eq!(p.stats().calls, 4, "ignored calls are not counted");
        p.record(Outcome::Success, ms);
        let s = p.stats();
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
        let s = p.stats();
        assert_eq!(s.success_rate, Some(0.5));
        assert_eq!((s.state, s.status), ("degraded", HealthStatus::Warn));

        for _ in 0..40 {
            p.record(Outcome::Success, ms);
        }
        assert_eq!(p.stats().state, "healthy");
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
        assert_eq!(p.stats().success_rate, Some(0.75));
        assert_eq!(p.status(), HealthStatus::Warn);
        // The failures (bucket 0) leave the window at 10 s.
        tokio::time::advance(Duration::from_secs(5)).await;
        let s = p.stats();
        assert_eq!((s.calls, s.failures), (30, 0));
        assert_eq!(p.status(), HealthStatus::Pass);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(p.stats().calls, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_mean_latency_warns() {
        let p = probe();
        for _ in 0..10 {
            p.record(Outcome::Success, Duration::from_millis(150));
        }
        let s = p.stats();
        assert_eq!(s.mean_latency, Some(Duration::from_millis(150)));
        assert_eq!(s.status, HealthStatus::Warn);
        assert!(p.snapshot().message.unwrap().contains("mean latency"));
    }
}
