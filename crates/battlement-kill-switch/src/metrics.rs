//! The kill switch's read-out ([`KillSwitchMetrics`]), its health snapshot and the metric
//! families it exports.
//!
//! # Exported metrics
//!
//! [`HealthSource::export`] reads the switch's state and counters at collection time. Every
//! family is in [`FAMILIES`]; the exporter adds the switch's `name` label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_kill_switch_halted` | gauge | | 1 while the switch is halted, else 0. |
//! | `battlement_kill_switch_rejected_calls` | counter | | Calls rejected while halted ([`Halted`](crate::Halted)). |
//! | `battlement_kill_switch_halts` | counter | | Times the switch was halted (by hand or by a limit). |
//! | `battlement_kill_switch_limits` | gauge | | Limits registered now. |

use crate::switch::lock;
use crate::KillSwitch;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};

static HALTED: Family = Family::gauge(
    "battlement_kill_switch_halted",
    "1 while the kill switch is halted, else 0.",
    "",
);
static REJECTED: Family = Family::counter(
    "battlement_kill_switch_rejected_calls",
    "Calls rejected while the kill switch was halted.",
    "calls",
);
static HALTS: Family = Family::counter(
    "battlement_kill_switch_halts",
    "Times the kill switch was halted.",
    "",
);
static LIMITS: Family = Family::gauge(
    "battlement_kill_switch_limits",
    "Limits registered now.",
    "",
);

/// Every family a [`KillSwitch`] exports (the table in this module's docs).
///
/// ```
/// assert!(battlement_kill_switch::FAMILIES
///     .iter()
///     .any(|f| f.name == "battlement_kill_switch_halted"));
/// ```
pub static FAMILIES: &[&Family] = &[&HALTED, &REJECTED, &HALTS, &LIMITS];

/// A kill switch's counts at a point in time, from [`KillSwitch::metrics`].
///
/// ```
/// use battlement_kill_switch::KillSwitch;
///
/// let switch = KillSwitch::builder("s").build().unwrap();
/// switch.halt("maintenance");
/// let m = switch.metrics();
/// assert!(m.halted);
/// assert_eq!((m.halts, m.rejected_calls, m.limits), (1, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KillSwitchMetrics {
    /// Whether the switch is halted now.
    pub halted: bool,
    /// Calls rejected while halted, since the switch was built.
    pub rejected_calls: u64,
    /// How many times the switch has been halted.
    pub halts: u64,
    /// Limits registered now.
    pub limits: usize,
}

impl KillSwitch {
    /// A snapshot of the switch's counts.
    pub fn metrics(&self) -> KillSwitchMetrics {
        KillSwitchMetrics {
            halted: self.is_halted(),
            rejected_calls: self.rejected_calls(),
            halts: self.halts(),
            limits: lock(&self.inner.limits).len(),
        }
    }
}

impl HealthSource for KillSwitch {
    fn name(&self) -> &str {
        self.name()
    }

    fn snapshot(&self) -> HealthSnapshot {
        let info = self.halt_info();
        let (state, status) = match info {
            Some(_) => ("halted", HealthStatus::Fail),
            None => ("running", HealthStatus::Pass),
        };
        let limits = lock(&self.inner.limits).len();
        let mut snap = HealthSnapshot::new(self.name(), ComponentKind::KillSwitch, state, status)
            .with_metric(Metric::new(
                "rejected_calls",
                self.rejected_calls() as f64,
                "calls",
            ))
            .with_metric(Metric::new("halts", self.halts() as f64, "count"))
            .with_metric(Metric::new("limits", limits as f64, "count"));
        if let Some(info) = info {
            snap = snap.with_metric(Metric::new(
                "halted_for",
                info.halted_for().as_secs_f64() * 1e3,
                "ms",
            ));
            snap = match info.limit() {
                Some(limit) => {
                    snap.with_message(format!("halted by limit `{limit}`: {}", info.reason()))
                }
                None => snap.with_message(format!("halted: {}", info.reason())),
            };
        }
        snap
    }

    /// Reports the families of [`FAMILIES`] from [`metrics`](KillSwitch::metrics).
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.gauge(&HALTED, &[], if m.halted { 1.0 } else { 0.0 });
        out.counter(&REJECTED, &[], m.rejected_calls);
        out.counter(&HALTS, &[], m.halts);
        out.gauge(&LIMITS, &[], m.limits as f64);
    }
}
