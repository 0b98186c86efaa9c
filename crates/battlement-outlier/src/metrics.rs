//! The detector's read-out ([`OutlierMetrics`]), its health snapshot and its metric families.

use crate::{OutlierDetector, Reason};
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

static ENDPOINTS: Family = Family::gauge(
    "battlement_outlier_endpoints",
    "Endpoints in the pool the outlier detector watches.",
    "",
);
static EJECTED: Family = Family::gauge("battlement_outlier_ejected", "Endpoints ejected now.", "");
static EJECTIONS: Family = Family::counter(
    "battlement_outlier_ejections",
    "Endpoints ejected, by the rule that ejected them.",
    "",
);
static EJECTIONS_OVERFLOW: Family = Family::counter(
    "battlement_outlier_ejections_overflow",
    "Ejections a rule asked for that the maximum ejected percentage refused.",
    "",
);
static READMISSIONS: Family = Family::counter(
    "battlement_outlier_readmissions",
    "Ejected endpoints readmitted after their ejection time.",
    "",
);

/// Every family an outlier detector reports.
pub static FAMILIES: &[&Family] = &[
    &ENDPOINTS,
    &EJECTED,
    &EJECTIONS,
    &EJECTIONS_OVERFLOW,
    &READMISSIONS,
];

/// A point-in-time view of an [`OutlierDetector`], from [`OutlierDetector::metrics`].
/// Counters count since the detector was built.
///
/// ```
/// use battlement_outlier::OutlierDetector;
///
/// let detector = OutlierDetector::builder("pool").build().unwrap();
/// let m = detector.metrics();
/// assert_eq!((m.endpoints, m.ejected, m.ejections(), m.overflow), (0, 0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutlierMetrics {
    /// Endpoints in the pool now.
    pub endpoints: usize,
    /// Endpoints ejected now.
    pub ejected: usize,
    /// Ejections by [`consecutive_5xx`](crate::OutlierDetectorBuilder::consecutive_5xx).
    pub ejections_consecutive_5xx: u64,
    /// Ejections by consecutive gateway failures.
    pub ejections_consecutive_gateway_failure: u64,
    /// Ejections of success-rate outliers.
    pub ejections_success_rate: u64,
    /// Ejections refused by the maximum ejected percentage.
    pub overflow: u64,
    /// Readmissions.
    pub readmissions: u64,
}

impl OutlierMetrics {
    /// Ejections by every rule.
    pub fn ejections(&self) -> u64 {
        self.ejections_consecutive_5xx
            + self.ejections_consecutive_gateway_failure
            + self.ejections_success_rate
    }

    /// Ejections by `reason`.
    pub fn ejections_by(&self, reason: Reason) -> u64 {
        match reason {
            Reason::Consecutive5xx => self.ejections_consecutive_5xx,
            Reason::ConsecutiveGatewayFailure => self.ejections_consecutive_gateway_failure,
            Reason::SuccessRate => self.ejections_success_rate,
        }
    }
}

impl OutlierDetector {
    /// A snapshot of the detector's counts (endpoints whose ejection time has passed are
    /// readmitted first).
    pub fn metrics(&self) -> OutlierMetrics {
        let endpoints = self.endpoints();
        let i = &*self.inner;
        OutlierMetrics {
            endpoints: endpoints.len(),
            ejected: endpoints.iter().filter(|e| e.ejected.is_some()).count(),
            ejections_consecutive_5xx: i.ejections[0].load(Relaxed),
            ejections_consecutive_gateway_failure: i.ejections[1].load(Relaxed),
            ejections_success_rate: i.ejections[2].load(Relaxed),
            overflow: i.overflow.load(Relaxed),
            readmissions: i.readmissions.load(Relaxed),
        }
    }
}

impl HealthSource for OutlierDetector {
    fn name(&self) -> &str {
        OutlierDetector::name(self)
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::OutlierDetection
    }

    /// State `ejecting` (status `warn`) while an endpoint is ejected, `serving` (`pass`)
    /// otherwise: the pool still serves from its other endpoints, so never `fail`. The message
    /// names each ejected endpoint, why, its ejection count and the time left; the metrics
    /// count endpoints, ejected endpoints and ejections.
    fn snapshot(&self) -> HealthSnapshot {
        let endpoints = self.endpoints();
        let m = self.metrics();
        let ejected: Vec<_> = endpoints.iter().filter(|e| e.ejected.is_some()).collect();
        let (state, status) = if ejected.is_empty() {
            ("serving", HealthStatus::Pass)
        } else {
            ("ejecting", HealthStatus::Warn)
        };
        let mut snap =
            HealthSnapshot::new(self.name(), ComponentKind::OutlierDetection, state, status)
                .with_metric(Metric::unitless("endpoints", endpoints.len() as f64))
                .with_metric(Metric::unitless("ejected", ejected.len() as f64))
                .with_metric(Metric::unitless("ejections", m.ejections() as f64))
                .with_metric(Metric::unitless("readmissions", m.readmissions as f64));
        if !ejected.is_empty() {
            let mut msg = format!(
                "{} of {} endpoints ejected:",
                ejected.len(),
                endpoints.len()
            );
            for (i, e) in ejected.iter().enumerate() {
                let (reason, left) = e
                    .ejected
                    .unwrap_or((Reason::Consecutive5xx, Default::default()));
                let sep = if i == 0 { " " } else { ", " };
                let _ = write!(
                    msg,
                    "{sep}{} ({reason}, ejection {}, {:.0}s left)",
                    e.label,
                    e.ejections,
                    left.as_secs_f64().ceil()
                );
            }
            snap = snap.with_message(msg);
        }
        snap
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.gauge(&ENDPOINTS, &[], m.endpoints as f64);
        out.gauge(&EJECTED, &[], m.ejected as f64);
        for reason in Reason::ALL {
            out.counter(
                &EJECTIONS,
                &[("reason", reason.as_str())],
                m.ejections_by(reason),
            );
        }
        out.counter(&EJECTIONS_OVERFLOW, &[], m.overflow);
        out.counter(&READMISSIONS, &[], m.readmissions);
    }
}
