//! The layer's read-out ([`TimeoutMetrics`]), its health snapshot and what it exports
//! ([`FAMILIES`]).

use crate::layer::Shared;
use crate::TimeoutLayer;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::time::Duration;

/// A point-in-time view of a [`TimeoutLayer`]'s counts, from [`TimeoutLayer::metrics`]: the
/// counters are those of the layer's name (layers of the same name share them), the limit the
/// layer's own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_timeout::TimeoutLayer;
/// use std::time::Duration;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let layer = TimeoutLayer::builder("metrics-doc").limit(Duration::from_millis(50)).build().unwrap();
/// let svc = layer.layer(service_fn(|slow: bool| async move {
///     if slow {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///     }
///     Ok::<_, std::io::Error>(())
/// }));
/// svc.clone().oneshot(false).await.unwrap();
/// svc.oneshot(true).await.unwrap_err();
/// let m = layer.metrics();
/// assert_eq!((m.calls, m.elapsed, m.limit), (2, 1, Duration::from_millis(50)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutMetrics {
    /// Calls made through the layer's services.
    pub calls: u64,
    /// Calls that ran out of time (failed with [`Elapsed`](crate::Elapsed)).
    pub elapsed: u64,
    /// The default limit now.
    pub limit: Duration,
}

impl Shared {
    pub(crate) fn metrics(&self) -> TimeoutMetrics {
        TimeoutMetrics {
            calls: self.named.calls.sum(),
            elapsed: self.named.elapsed.sum(),
            limit: self.limit(),
        }
    }
}

impl<P> TimeoutLayer<P> {
    /// A snapshot of the layer's counts and its limit now.
    pub fn metrics(&self) -> TimeoutMetrics {
        self.shared.metrics()
    }
}

/// Calls made.
pub static CALLS: Family = Family::counter(
    "battlement_timeout_calls",
    "Calls made through the timeout.",
    "calls",
);
/// Calls that ran out of time.
pub static ELAPSED: Family = Family::counter(
    "battlement_timeout_elapsed",
    "Calls that ran out of time and failed with Elapsed.",
    "calls",
);
/// The default limit now, in seconds.
pub static LIMIT: Family = Family::gauge(
    "battlement_timeout_limit_seconds",
    "The default time limit of a call now.",
    "seconds",
);

/// Every family a timeout exports.
pub static FAMILIES: &[&Family] = &[&CALLS, &ELAPSED, &LIMIT];

impl HealthSource for Shared {
    fn name(&self) -> &str {
        self.named.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Timeout
    }

    /// Always `ready` (`pass`): a timeout is the breaker's failure to judge, not the layer's.
    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        HealthSnapshot::new(
            self.named.name,
            ComponentKind::Timeout,
            "ready",
            HealthStatus::Pass,
        )
        .with_metric(Metric::new("calls", m.calls as f64, "calls"))
        .with_metric(Metric::new("elapsed", m.elapsed as f64, "calls"))
        .with_metric(Metric::new("limit", m.limit.as_secs_f64() * 1e3, "ms"))
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.counter(&CALLS, &[], m.calls);
        out.counter(&ELAPSED, &[], m.elapsed);
        out.gauge(&LIMIT, &[], m.limit.as_secs_f64());
    }
}

/// A layer reports as the component it registers (see the snapshot there).
impl<P: Send + Sync + 'static> HealthSource for TimeoutLayer<P> {
    fn name(&self) -> &str {
        self.shared.name()
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Timeout
    }

    fn snapshot(&self) -> HealthSnapshot {
        self.shared.snapshot()
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        self.shared.export(out)
    }
}
