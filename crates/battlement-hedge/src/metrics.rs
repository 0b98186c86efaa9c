//! The hedging layer's read-out ([`HedgeMetrics`]), its health snapshot and the metric
//! families it exports.
//!
//! # Exported metrics
//!
//! [`HealthSource::export`] reads the layer's counters at collection time. Every family is in
//! [`FAMILIES`]; the exporter adds the layer's `name` label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_hedge_calls` | counter | | Calls made through the layer's services. |
//! | `battlement_hedge_hedges` | counter | `outcome` | Hedges by what became of them: `sent` (attempts beyond a call's first), `won` (a call answered by a hedge rather than its first attempt; also counted as `sent`), `denied` (refused by the budget, not sent). All three are reported. |
//! | `battlement_hedge_delay_seconds` | gauge | | The hedge delay now (in percentile mode, the percentile's current value, clamped). |
//! | `battlement_hedge_budget_available` | gauge | | Whole hedges the budget would allow now; only with a budget. |

use crate::handle::Shared;
use crate::HedgeHandle;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Shared {
    fn metrics(&self) -> HedgeMetrics {
        let requests = self.requests.sum();
        HedgeMetrics {
            requests,
            hedges_sent: self.hedges_sent.load(Ordering::Relaxed),
            hedges_won: self.hedges_won.load(Ordering::Relaxed),
            hedges_denied: self.hedges_denied.load(Ordering::Relaxed),
            delay: self.delay(),
            latency_samples: match self.delay.window() {
                Some(window) if self.delay.is_percentile() => window.samples(),
                _ => 0,
            },
            budget_available: self.budget.is_on().then(|| self.budget.available(requests)),
            reloads: self.reloads.load(Ordering::Relaxed),
        }
    }
}

static CALLS: Family = Family::counter(
    "battlement_hedge_calls",
    "Calls made through the hedging layer.",
    "calls",
);
static HEDGES: Family = Family::counter(
    "battlement_hedge_hedges",
    "Hedges, by outcome: sent, won (answered the call; also sent), denied by the budget.",
    "",
);
static DELAY: Family = Family::gauge(
    "battlement_hedge_delay_seconds",
    "The hedge delay now.",
    "seconds",
);
static BUDGET_AVAILABLE: Family = Family::gauge(
    "battlement_hedge_budget_available",
    "Whole hedges the budget would allow now.",
    "",
);

/// Every family a [`HedgeHandle`] exports (the table in this module's docs).
///
/// ```
/// assert!(battlement_hedge::FAMILIES.iter().any(|f| f.name == "battlement_hedge_hedges"));
/// ```
pub static FAMILIES: &[&Family] = &[&CALLS, &HEDGES, &DELAY, &BUDGET_AVAILABLE];

/// The hedging layer's counters at a point in time; see [`HedgeHandle::metrics`].
///
/// ```
/// use battlement_hedge::HedgeLayer;
/// use std::time::Duration;
///
/// let layer = HedgeLayer::builder().delay(Duration::from_millis(20)).build().unwrap();
/// let m = layer.handle().metrics();
/// assert_eq!((m.requests, m.hedges_sent, m.hedges_won), (0, 0, 0));
/// assert_eq!(m.delay, Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeMetrics {
    /// Calls made through the layer's services.
    pub requests: u64,
    /// Hedges sent (attempts beyond each call's first).
    pub hedges_sent: u64,
    /// Calls answered by a hedge rather than by their first attempt.
    pub hedges_won: u64,
    /// Hedges the budget refused.
    pub hedges_denied: u64,
    /// The hedge delay now (the percentile's current value, clamped, in percentile mode).
    pub delay: Duration,
    /// Latencies in the percentile window (0 with a fixed delay).
    pub latency_samples: usize,
    /// Whole hedges the budget would allow now (`None` without a budget).
    pub budget_available: Option<u64>,
    /// Reloads applied ([`HedgeLayer::reload`](crate::HedgeLayer::reload)).
    pub reloads: u64,
}

impl HedgeHandle {
    /// The counters now.
    pub fn metrics(&self) -> HedgeMetrics {
        self.shared.metrics()
    }
}

impl HealthSource for HedgeHandle {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        HealthSnapshot::new(
            self.shared.name.to_string(),
            ComponentKind::Hedge,
            "hedging",
            HealthStatus::Pass,
        )
        .with_metric(Metric::new("requests", m.requests as f64, "calls"))
        .with_metric(Metric::new("hedges_sent", m.hedges_sent as f64, "calls"))
        .with_metric(Metric::new("hedges_won", m.hedges_won as f64, "calls"))
        .with_metric(Metric::new(
            "hedges_denied",
            m.hedges_denied as f64,
            "calls",
        ))
        .with_metric(Metric::new(
            "hedge_rate",
            ratio(m.hedges_sent, m.requests),
            "ratio",
        ))
        .with_metric(Metric::new(
            "win_rate",
            ratio(m.hedges_won, m.hedges_sent),
            "ratio",
        ))
        .with_metric(Metric::new("delay", m.delay.as_secs_f64() * 1e3, "ms"))
    }

    /// Reports the families of [`FAMILIES`] from [`metrics`](HedgeHandle::metrics).
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.counter(&CALLS, &[], m.requests);
        out.counter(&HEDGES, &[("outcome", "sent")], m.hedges_sent);
        out.counter(&HEDGES, &[("outcome", "won")], m.hedges_won);
        out.counter(&HEDGES, &[("outcome", "denied")], m.hedges_denied);
        out.gauge(&DELAY, &[], m.delay.as_secs_f64());
        if let Some(available) = m.budget_available {
            out.gauge(&BUDGET_AVAILABLE, &[], available as f64);
        }
    }
}
