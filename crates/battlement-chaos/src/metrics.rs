//! The chaos handle's read-out ([`ChaosMetrics`]), its health snapshot and the metric families
//! it exports.
//!
//! # Exported metrics
//!
//! [`HealthSource::export`] reads the handle's counters at collection time. Every family is in
//! [`FAMILIES`]; the exporter adds the handle's `name` label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_chaos_enabled` | gauge | | 1 while fault injection is on, else 0. |
//! | `battlement_chaos_calls` | counter | | Calls seen while enabled (each took one random draw). |
//! | `battlement_chaos_injected_faults` | counter | `fault` | Faults injected, by fault: `latency` (a call delayed), `error` (answered with an injected error), `response` (answered with an injected response); all three reported. A delayed call may also get an error or a response. |
//! | `battlement_chaos_injected_latency_seconds` | gauge | | The sum of the injected delays (it only grows; a gauge because counters are whole numbers). |

use crate::Chaos;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

static ENABLED: Family = Family::gauge(
    "battlement_chaos_enabled",
    "1 while fault injection is on, else 0.",
    "",
);
static CALLS: Family = Family::counter(
    "battlement_chaos_calls",
    "Calls seen while fault injection was on.",
    "calls",
);
static INJECTED: Family = Family::counter(
    "battlement_chaos_injected_faults",
    "Faults injected, by fault (latency, error, response).",
    "",
);
static INJECTED_LATENCY: Family = Family::gauge(
    "battlement_chaos_injected_latency_seconds",
    "The sum of the injected delays.",
    "seconds",
);

/// Every family a [`Chaos`] handle exports (the table in this module's docs).
///
/// ```
/// assert!(battlement_chaos::FAMILIES
///     .iter()
///     .any(|f| f.name == "battlement_chaos_injected_faults"));
/// ```
pub static FAMILIES: &[&Family] = &[&ENABLED, &CALLS, &INJECTED, &INJECTED_LATENCY];

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

    /// Reports the families of [`FAMILIES`] from [`metrics`](Chaos::metrics).
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.gauge(&ENABLED, &[], if self.is_enabled() { 1.0 } else { 0.0 });
        out.counter(&CALLS, &[], m.calls);
        out.counter(&INJECTED, &[("fault", "latency")], m.latencies);
        out.counter(&INJECTED, &[("fault", "error")], m.errors);
        out.counter(&INJECTED, &[("fault", "response")], m.responses);
        out.gauge(&INJECTED_LATENCY, &[], m.latency_total.as_secs_f64());
    }
}
