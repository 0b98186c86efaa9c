//! The fleet connection's metric families (exported through its health registration, as every
//! component's are).

use crate::Fleet;
use battlement_core::export::{Family, MetricsVisitor};

/// Whether Redis answers now.
pub(crate) static REACHABLE: Family = Family::gauge(
    "battlement_fleet_reachable",
    "Whether the fleet's Redis answers now (1) or not (0): while it does not, every part decides locally.",
    "",
);
/// Commands sent.
pub(crate) static COMMANDS: Family = Family::counter(
    "battlement_fleet_commands",
    "Commands (and scripts) the fleet sent to Redis.",
    "commands",
);
/// Commands that failed.
pub(crate) static FAILURES: Family = Family::counter(
    "battlement_fleet_command_failures",
    "Commands to Redis that failed or timed out (the fleet then decided locally).",
    "commands",
);
/// Replicas in a shared breaker view.
pub(crate) static VIEW_REPLICAS: Family = Family::gauge(
    "battlement_fleet_breaker_replicas",
    "Live replicas reporting a shared breaker (`state=\"live\"`), and of them those reporting it open of their own finding (`state=\"open\"`).",
    "replicas",
);

/// Every family a fleet connection reports.
pub static FAMILIES: &[&Family] = &[&REACHABLE, &COMMANDS, &FAILURES, &VIEW_REPLICAS];

impl Fleet {
    /// Reports the families in [`FAMILIES`] to `out`.
    pub(crate) fn export_to(&self, out: &mut dyn MetricsVisitor) {
        out.gauge(&REACHABLE, &[], f64::from(u8::from(self.is_reachable())));
        out.counter(&COMMANDS, &[], self.commands());
        out.counter(&FAILURES, &[], self.failures());
        for view in self.views() {
            let v = view.view();
            out.gauge(
                &VIEW_REPLICAS,
                &[("breaker", v.breaker.as_str()), ("state", "live")],
                v.replicas.len() as f64,
            );
            out.gauge(
                &VIEW_REPLICAS,
                &[("breaker", v.breaker.as_str()), ("state", "open")],
                v.open() as f64,
            );
        }
    }
}
