//! The kill switch's read-out ([`KillSwitchMetrics`]) and its health snapshot.

use crate::switch::lock;
use crate::KillSwitch;
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};

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
}
