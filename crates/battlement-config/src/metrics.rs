//! The reloads of a [`Resilience`](crate::Resilience), counted in a health source its health
//! registry holds, and the metric family it exports.
//!
//! # Exported metrics
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_config_reloads` | counter | `outcome` | Reloads, `applied` or `refused` (an invalid configuration, or a file that did not load). Both are reported. |

use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

static RELOADS: Family = Family::counter(
    "battlement_config_reloads",
    "Configuration reloads, by outcome: applied, refused.",
    "",
);

/// Every family a [`Resilience`](crate::Resilience)'s reload source exports (the table in
/// this module's docs).
///
/// ```
/// assert_eq!(battlement_config::FAMILIES[0].name, "battlement_config_reloads");
/// ```
pub static FAMILIES: &[&Family] = &[&RELOADS];

/// How many reloads a [`Resilience`](crate::Resilience) applied and refused; see
/// [`Resilience::reloads`](crate::Resilience::reloads).
///
/// ```
/// use battlement_config::{Configuration, Resilience};
///
/// let resilience = Resilience::new(Configuration::default());
/// resilience.reload(Configuration::default()).unwrap();
/// let m = resilience.reloads();
/// assert_eq!((m.applied, m.refused), (1, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadMetrics {
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused: the configuration serving was kept.
    pub refused: u64,
    /// Whether the last reload was refused (the configuration serving is not the one last
    /// offered).
    pub last_refused: bool,
}

#[derive(Debug, Default)]
pub(crate) struct ReloadCounts {
    applied: AtomicU64,
    refused: AtomicU64,
    last_refused: AtomicBool,
}

impl ReloadCounts {
    pub(crate) fn applied(&self) {
        self.applied.fetch_add(1, Relaxed);
        self.last_refused.store(false, Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
        self.last_refused.store(true, Relaxed);
    }

    pub(crate) fn read(&self) -> ReloadMetrics {
        ReloadMetrics {
            applied: self.applied.load(Relaxed),
            refused: self.refused.load(Relaxed),
            last_refused: self.last_refused.load(Relaxed),
        }
    }
}

/// The reload counts as a health source (kind `other`, never critical): status `pass`, or
/// `warn` while the last reload was refused, since the configuration serving is then not the
/// one on disk (chosen so a bad file shows on the health endpoint without failing readiness:
/// the old configuration keeps serving).
#[derive(Clone)]
pub(crate) struct ReloadSource {
    pub(crate) name: Arc<str>,
    pub(crate) counts: Arc<ReloadCounts>,
}

impl fmt::Debug for ReloadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadSource")
            .field("name", &self.name)
            .field("counts", &self.counts.read())
            .finish()
    }
}

impl HealthSource for ReloadSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Other
    }

    fn snapshot(&self) -> HealthSnapshot {
        let m = self.counts.read();
        let (state, status) = if m.last_refused {
            ("last reload refused", HealthStatus::Warn)
        } else {
            ("serving", HealthStatus::Pass)
        };
        HealthSnapshot::new(self.name.to_string(), ComponentKind::Other, state, status)
            .with_metric(Metric::new("reloads_applied", m.applied as f64, "reloads"))
            .with_metric(Metric::new("reloads_refused", m.refused as f64, "reloads"))
    }

    /// Reports [`FAMILIES`].
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.counts.read();
        out.counter(&RELOADS, &[("outcome", "applied")], m.applied);
        out.counter(&RELOADS, &[("outcome", "refused")], m.refused);
    }
}
