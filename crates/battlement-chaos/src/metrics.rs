//! The chaos handle's read-out ([`ChaosMetrics`]) and its health snapshot.

use crate::Chaos;
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Counters of a [`Chaos`] handle since it was built.
///
/// ```
/// use battlement_chaos::Chaos;
///
/// let chaos = Chaos::builder("c").build().unwrap();
/// let stats = chaos.metrics();
/// assert_eq!((stats.calls, stats.latencies, stats.errors, stats.responses), (0, 0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ChaosMetrics {
    /// Calls seen while enabled (each took one random draw).
    pub calls: u64,
    /// Calls delayed.
    pub latencies: u64,
    /// The sum of the injected delays.
    pub latency_total: Duration,
    /// Calls answered with an injected error.
    pub errors: u64,
    /// Calls answered with an injected response.
    pub responses: u64,
}

impl<R> Chaos<R> {
    /// Counters since the handle was built.
    pub fn metrics(&self) -> ChaosMetrics {
        let s = &self.shared;
        ChaosMetrics {
            calls: s.calls.load(Relaxed),
            latencies: s.latencies.load(Relaxed),
            latency_total: Duration::from_nanos(s.latency_nanos.load(Relaxed)),
            errors: s.errors.load(Relaxed),
            responses: s.responses.load(Relaxed),
        }
    }
}

impl<R: Send + Sync + 'static> HealthSource for Chaos<R> {
    fn name(&self) -> &str {
        self.name()
    }

    /// State `enabled` or `disabled`; status always `pass` (injected faults show up in the
    /// components they exercise, not here).
    fn snapshot(&self) -> HealthSnapshot {
        let stats = self.metrics();
        let on = self.is_enabled();
        let mut snap = HealthSnapshot::new(
            self.name(),
            ComponentKind::Chaos,
            if on { "enabled" } else { "disabled" },
            HealthStatus::Pass,
        )
        .with_metric(Metric::new("calls", stats.calls as f64, "calls"))
        .with_metric(Metric::new(
            "injected_latencies",
            stats.latencies as f64,
            "calls",
        ))
        .with_metric(Metric::new(
            "injected_latency_total",
            stats.latency_total.as_secs_f64() * 1e3,
            "ms",
        ))
        .with_metric(Metric::new("injected_errors", stats.errors as f64, "calls"))
        .with_metric(Metric::new(
            "injected_responses",
            stats.responses as f64,
            "calls",
        ));
        if on {
            snap = snap.with_message("fault injection enabled");
        }
        snap
    }
}
