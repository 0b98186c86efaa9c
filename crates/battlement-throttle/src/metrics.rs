//! The throttle's read-out ([`ThrottleMetrics`]), its health snapshot and its metric families.

use crate::Throttle;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};

/// Calls made through the throttle (those it rejected included).
static REQUESTS: Family = Family::counter(
    "battlement_throttle_requests",
    "Calls made through the adaptive throttle, those it rejected locally included.",
    "calls",
);
/// Calls the dependency accepted.
static ACCEPTS: Family = Family::counter(
    "battlement_throttle_accepts",
    "Calls the dependency accepted (classified a success).",
    "calls",
);
/// Calls rejected locally.
static THROTTLED: Family = Family::counter(
    "battlement_throttle_throttled",
    "Calls the adaptive throttle rejected locally, never sent.",
    "calls",
);
/// The rejection probability now.
static REJECTION_PROBABILITY: Family = Family::gauge(
    "battlement_throttle_rejection_probability",
    "The probability a call is rejected locally now (0 to 1).",
    "",
);
/// Requests in the window.
static WINDOW_REQUESTS: Family = Family::gauge(
    "battlement_throttle_window_requests",
    "Calls made in the sliding window the rejection probability was computed from.",
    "calls",
);
/// Accepts in the window.
static WINDOW_ACCEPTS: Family = Family::gauge(
    "battlement_throttle_window_accepts",
    "Calls accepted in the sliding window the rejection probability was computed from.",
    "calls",
);

/// Every family a throttle reports.
pub static FAMILIES: &[&Family] = &[
    &REQUESTS,
    &ACCEPTS,
    &THROTTLED,
    &REJECTION_PROBABILITY,
    &WINDOW_REQUESTS,
    &WINDOW_ACCEPTS,
];

/// A point-in-time view of a [`Throttle`], from [`Throttle::metrics`]. Counters count since the
/// throttle was built; the window's counts and the probability are those of the last bucket's
/// roll-over (a read-out rolls the window over first when a bucket has ended).
///
/// ```
/// use battlement_throttle::Throttle;
///
/// let throttle = Throttle::builder("search").build().unwrap();
/// let m = throttle.metrics();
/// assert_eq!((m.requests, m.accepts, m.throttled, m.discarded), (0, 0, 0, 0));
/// assert_eq!(m.rejection_probability, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ThrottleMetrics {
    /// Calls made through the throttle, those it rejected included (the SRE book's
    /// `requests`).
    pub requests: u64,
    /// Calls the dependency accepted (the SRE book's `accepts`).
    pub accepts: u64,
    /// Calls rejected locally ([`Throttled`](crate::Throttled)).
    pub throttled: u64,
    /// Calls that left the count: cancelled, classified `Ignored`, or rejected by a layer
    /// inside the throttle (see [`Recorder`](crate::Recorder)).
    pub discarded: u64,
    /// Requests (less those discarded) in the window the probability was computed from.
    pub window_requests: u64,
    /// Accepts in that window.
    pub window_accepts: u64,
    /// The probability a call is rejected locally now.
    pub rejection_probability: f64,
}

impl Throttle {
    /// A snapshot of the throttle's counts.
    pub fn metrics(&self) -> ThrottleMetrics {
        self.roll_to_now();
        let (totals, requests, discarded, throttled) = self.sums();
        let accepts = totals.accepts;
        let (window_requests, window_accepts) = self.window_counts();
        ThrottleMetrics {
            requests,
            accepts,
            throttled,
            discarded,
            window_requests,
            window_accepts,
            rejection_probability: self.rejection_probability(),
        }
    }
}

impl HealthSource for Throttle {
    fn name(&self) -> &str {
        Throttle::name(self)
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Throttle
    }

    /// State `throttling` (status `warn`) while the rejection probability is above zero;
    /// `admitting` (`pass`) otherwise.
    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        let (state, status) = if m.rejection_probability > 0.0 {
            ("throttling", HealthStatus::Warn)
        } else {
            ("admitting", HealthStatus::Pass)
        };
        let mut snap = HealthSnapshot::new(self.name(), ComponentKind::Throttle, state, status)
            .with_metric(Metric::ratio(
                "rejection_probability",
                m.rejection_probability,
            ))
            .with_metric(Metric::calls("window_requests", m.window_requests))
            .with_metric(Metric::calls("window_accepts", m.window_accepts))
            .with_metric(Metric::calls("requests", m.requests))
            .with_metric(Metric::calls("accepts", m.accepts))
            .with_metric(Metric::calls("throttled", m.throttled))
            .with_metric(Metric::unitless("k", self.k()))
            .with_metric(Metric::millis("window", self.window()));
        if status == HealthStatus::Warn {
            snap = snap.with_message(format!(
                "adaptive throttle `{}` rejects calls with probability {:.3}: the dependency \
                 accepted {} of {} calls in the last {:?}",
                self.name(),
                m.rejection_probability,
                m.window_accepts,
                m.window_requests,
                self.window()
            ));
        }
        snap
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.counter(&REQUESTS, &[], m.requests);
        out.counter(&ACCEPTS, &[], m.accepts);
        out.counter(&THROTTLED, &[], m.throttled);
        out.gauge(&REJECTION_PROBABILITY, &[], m.rejection_probability);
        out.gauge(&WINDOW_REQUESTS, &[], m.window_requests as f64);
        out.gauge(&WINDOW_ACCEPTS, &[], m.window_accepts as f64);
    }
}
