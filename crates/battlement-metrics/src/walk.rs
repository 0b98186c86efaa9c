//! The walk every exporter shares: each registered component's health status, then its own
//! values, each under the component's `name` label.

use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
use battlement_core::HealthStatus;
use battlement_health::HealthRegistry;

/// `battlement_health_status{kind, name, status}`: reported by the exporter itself for every
/// registered component, 1 for the status it is in (`pass`, `warn`, `fail`) and 0 for the
/// other two. `kind` is the component's kind ([`ComponentKind::as_str`]).
///
/// [`ComponentKind::as_str`]: battlement_core::ComponentKind::as_str
///
/// ```
/// use battlement_core::export::MetricType;
///
/// assert_eq!(battlement_metrics::HEALTH_STATUS.name, "battlement_health_status");
/// assert_eq!(battlement_metrics::HEALTH_STATUS.kind, MetricType::Gauge);
/// ```
pub static HEALTH_STATUS: Family = Family::gauge(
    "battlement_health_status",
    "1 for the component's own health status now (pass, warn or fail), 0 for the other two.",
    "",
);

const STATUSES: [HealthStatus; 3] = [HealthStatus::Pass, HealthStatus::Warn, HealthStatus::Fail];

/// What an exporter does with each value of a walk: a [`MetricsVisitor`] that is also told the
/// component's name.
pub(crate) trait Sink {
    fn counter(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: u64);
    fn gauge(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: f64);
    fn histogram(
        &mut self,
        family: &'static Family,
        name: &str,
        labels: Labels<'_>,
        histogram: &HistogramSnapshot,
    );
    /// Whether the walk needs the components' values of `family` (an exporter that reads one
    /// family at a time skips the others' work).
    fn wants(&self, family: &'static Family) -> bool {
        let _ = family;
        true
    }
}

/// Forwards a component's values to a [`Sink`] with the component's name.
struct Named<'a, S: ?Sized> {
    sink: &'a mut S,
    name: &'a str,
}

impl<S: Sink + ?Sized> MetricsVisitor for Named<'_, S> {
    fn counter(&mut self, family: &'static Family, labels: Labels<'_>, value: u64) {
        self.sink.counter(family, self.name, labels, value);
    }
    fn gauge(&mut self, family: &'static Family, labels: Labels<'_>, value: f64) {
        self.sink.gauge(family, self.name, labels, value);
    }
    fn histogram(&mut self, family: &'static Family, labels: Labels<'_>, h: &HistogramSnapshot) {
        self.sink.histogram(family, self.name, labels, h);
    }
}

/// Walks `registry`: per component, its health status (when the sink wants it) and its export.
pub(crate) fn walk<S: Sink + ?Sized>(registry: &HealthRegistry, sink: &mut S) {
    let health = sink.wants(&HEALTH_STATUS);
    registry.for_each_component(|c| {
        if health {
            let status = c.status();
            for s in STATUSES {
                let labels = [("kind", c.kind().as_str()), ("status", s.as_str())];
                let value = if s == status { 1.0 } else { 0.0 };
                sink.gauge(&HEALTH_STATUS, c.name(), &labels, value);
            }
        }
        c.export(&mut Named {
            sink: &mut *sink,
            name: c.name(),
        });
    });
}
