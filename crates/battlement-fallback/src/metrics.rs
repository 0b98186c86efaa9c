//! The fallback chain's read-out ([`ChainHandle`], [`MemberStatus`]), its health snapshot and
//! the metric families it exports.
//!
//! # Exported metrics
//!
//! [`HealthSource::export`] reads the members' states and counters at collection time. Every
//! family is in [`FAMILIES`]; the exporter adds the chain's `name` label. Per-member families
//! carry a `member` label, the member's name: its values are fixed when the chain is built, so
//! the cardinality stays bounded.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_fallback_member_calls` | counter | `member`, `outcome` | Per member: attempts that ended in `success` or `failure`, and calls that `skipped` it while it was unhealthy; all three reported. |
//! | `battlement_fallback_member_state` | gauge | `member`, `state` | Per member: 1 for its state (`healthy`, `unhealthy`, `trial`), 0 for the others; every state reported. |
//! | `battlement_fallback_member_success_rate` | gauge | `member` | Per member: success rate over its window, 0 to 1; reported only while its window holds outcomes. |
//! | `battlement_fallback_serving` | gauge | `member` | 1 for the member that answered the most recent call, 0 for the others (all 0 before any answer). |
//! | `battlement_fallback_all_failed_calls` | counter | | Calls no member answered. |

use crate::event::ChainEvent;
use crate::health::{ChainHealth, MemberState};
use crate::FallbackChain;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

static MEMBER_CALLS: Family = Family::counter(
    "battlement_fallback_member_calls",
    "Per member: attempts by outcome (success, failure), and calls that skipped it.",
    "calls",
);
static MEMBER_STATE: Family = Family::gauge(
    "battlement_fallback_member_state",
    "Per member: 1 for its health state, 0 for the others.",
    "",
);
static MEMBER_SUCCESS_RATE: Family = Family::gauge(
    "battlement_fallback_member_success_rate",
    "Per member: success rate over its window (0 to 1).",
    "",
);
static SERVING: Family = Family::gauge(
    "battlement_fallback_serving",
    "1 for the member that answered the most recent call, 0 for the others.",
    "",
);
static ALL_FAILED: Family = Family::counter(
    "battlement_fallback_all_failed_calls",
    "Calls that no member answered.",
    "calls",
);

/// Every family a fallback chain exports (the table in this module's docs).
///
/// ```
/// assert!(battlement_fallback::FAMILIES
///     .iter()
///     .any(|f| f.name == "battlement_fallback_member_calls"));
/// ```
pub static FAMILIES: &[&Family] = &[
    &MEMBER_CALLS,
    &MEMBER_STATE,
    &MEMBER_SUCCESS_RATE,
    &SERVING,
    &ALL_FAILED,
];

impl<S, C> HealthSource for FallbackChain<S, C>
where
    S: Send + Sync + 'static,
    C: Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.inner.health.name
    }

    fn snapshot(&self) -> HealthSnapshot {
        self.handle().snapshot()
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        self.handle().export(out)
    }
}

/// A cheap, `Send + Sync` handle to a [`FallbackChain`]'s health, whatever its member type:
/// member states and rates, which member is serving, typed events, health snapshots.
///
/// Its [`HealthSnapshot`] has state `primary` (the first member is healthy, status `pass`),
/// `degraded` (it is not, but another member is: `warn`) or `unavailable` (no member is healthy:
/// `fail`); a message naming the serving member and the unhealthy ones; and metrics:
/// `serving_index` (the member that answered last, `-1` before any answer), `all_failed`, and per
/// member `<name>.healthy` (1 or 0), `<name>.success_rate`, `<name>.window_calls`,
/// `<name>.successes`, `<name>.failures`, `<name>.skipped`.
///
/// ```
/// use battlement_core::{HealthStatus, HealthSource};
/// use battlement_fallback::FallbackChain;
/// use tower::service_fn;
///
/// let a = service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
/// let chain = FallbackChain::builder("c").member("a", a).member("b", a).build().unwrap();
/// let snap = chain.handle().snapshot();
/// assert_eq!(snap.state, "primary");
/// assert_eq!(snap.status, HealthStatus::Pass);
/// assert_eq!(snap.metric("a.healthy"), Some(1.0));
/// assert_eq!(snap.metric("serving_index"), Some(-1.0));
/// ```
#[derive(Clone)]
pub struct ChainHandle {
    pub(crate) health: Arc<ChainHealth>,
}

impl fmt::Debug for ChainHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainHandle")
            .field("name", &self.health.name)
            .finish()
    }
}

impl ChainHandle {
    pub(crate) fn new(health: Arc<ChainHealth>) -> Self {
        ChainHandle { health }
    }

    /// The chain's name.
    pub fn name(&self) -> &str {
        &self.health.name
    }

    /// Every member's state and counters, in order.
    pub fn members(&self) -> Vec<MemberStatus> {
        (0..self.health.members.len())
            .map(|i| self.health.status(i))
            .collect()
    }

    /// The member that answered the most recent call (`None` before any answer).
    pub fn serving(&self) -> Option<Arc<str>> {
        self.health
            .serving()
            .map(|i| self.health.members[i].name.clone())
    }

    /// The first healthy member: the one the next call tries first (`None`: none is healthy).
    pub fn preferred(&self) -> Option<Arc<str>> {
        self.members()
            .into_iter()
            .find(|m| m.state == MemberState::Healthy)
            .map(|m| m.name)
    }

    /// Calls that no member answered, ever.
    pub fn all_failed(&self) -> u64 {
        self.health.all_failed()
    }

    /// Subscribes to the chain's [`ChainEvent`]s.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.health.subscribe()
    }
}

impl HealthSource for ChainHandle {
    fn name(&self) -> &str {
        &self.health.name
    }

    fn snapshot(&self) -> HealthSnapshot {
        let members = self.members();
        let first_healthy = members.iter().position(|m| m.state == MemberState::Healthy);
        let (state, status) = match first_healthy {
            Some(0) => ("primary", HealthStatus::Pass),
            Some(_) => ("degraded", HealthStatus::Warn),
            None => ("unavailable", HealthStatus::Fail),
        };
        let serving = self.health.serving();
        let mut message = match serving {
            Some(i) => format!("serving from `{}`", members[i].name),
            None => "no call answered yet".to_owned(),
        };
        let unhealthy: Vec<&str> = members
            .iter()
            .filter(|m| m.state != MemberState::Healthy)
            .map(|m| &*m.name)
            .collect();
        if !unhealthy.is_empty() {
            message.push_str("; unhealthy: ");
            message.push_str(&unhealthy.join(", "));
        }
        let mut snap = HealthSnapshot::new(
            self.health.name.to_string(),
            ComponentKind::Fallback,
            state,
            status,
        )
        .with_message(message)
        .with_metric(Metric::unitless(
            "serving_index",
            serving.map_or(-1.0, |i| i as f64),
        ))
        .with_metric(Metric::new(
            "all_failed",
            self.health.all_failed() as f64,
            "calls",
        ));
        for m in &members {
            let healthy = if m.state == MemberState::Healthy {
                1.0
            } else {
                0.0
            };
            snap = snap
                .with_metric(Metric::unitless(format!("{}.healthy", m.name), healthy))
                .with_metric(Metric::new(
                    format!("{}.success_rate", m.name),
                    m.success_rate.unwrap_or(1.0),
                    "ratio",
                ))
                .with_metric(Metric::new(
                    format!("{}.window_calls", m.name),
                    m.window_calls as f64,
                    "calls",
                ))
                .with_metric(Metric::new(
                    format!("{}.successes", m.name),
                    m.successes as f64,
                    "calls",
                ))
                .with_metric(Metric::new(
                    format!("{}.failures", m.name),
                    m.failures as f64,
                    "calls",
                ))
                .with_metric(Metric::new(
                    format!("{}.skipped", m.name),
                    m.skipped as f64,
                    "calls",
                ));
        }
        snap
    }

    /// Reports the families of [`FAMILIES`] from [`members`](ChainHandle::members),
    /// [`serving`](ChainHandle::serving) and [`all_failed`](ChainHandle::all_failed).
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let serving = self.health.serving();
        for (i, m) in self.members().iter().enumerate() {
            let member = &*m.name;
            for (outcome, n) in [
                ("success", m.successes),
                ("failure", m.failures),
                ("skipped", m.skipped),
            ] {
                out.counter(
                    &MEMBER_CALLS,
                    &[("member", member), ("outcome", outcome)],
                    n,
                );
            }
            for state in [
                MemberState::Healthy,
                MemberState::Unhealthy,
                MemberState::Trial,
            ] {
                let on = if state == m.state { 1.0 } else { 0.0 };
                out.gauge(
                    &MEMBER_STATE,
                    &[("member", member), ("state", state.as_str())],
                    on,
                );
            }
            if let Some(rate) = m.success_rate {
                out.gauge(&MEMBER_SUCCESS_RATE, &[("member", member)], rate);
            }
            let on = if serving == Some(i) { 1.0 } else { 0.0 };
            out.gauge(&SERVING, &[("member", member)], on);
        }
        out.counter(&ALL_FAILED, &[], self.health.all_failed());
    }
}

/// One member's health and counters at a point in time; see
/// [`ChainHandle::members`](crate::ChainHandle::members).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_fallback::{FallbackChain, MemberState};
/// use tower::{service_fn, ServiceExt};
///
/// let svc = service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
/// let chain = FallbackChain::builder("c").member("only", svc).build().unwrap();
/// chain.clone().oneshot(1).await.unwrap();
/// let m = &chain.handle().members()[0];
/// assert_eq!((m.name.as_ref(), m.state, m.successes), ("only", MemberState::Healthy, 1));
/// assert_eq!(m.success_rate, Some(1.0));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MemberStatus {
    /// The member's name.
    pub name: Arc<str>,
    /// Its state.
    pub state: MemberState,
    /// Its success rate over the window (`None` while the window is empty).
    pub success_rate: Option<f64>,
    /// How many outcomes the window holds.
    pub window_calls: usize,
    /// Attempts that succeeded, ever.
    pub successes: u64,
    /// Attempts that failed, ever.
    pub failures: u64,
    /// Calls that skipped it because it was unhealthy, ever.
    pub skipped: u64,
    /// Time until it admits a trial call, while unhealthy.
    pub trial_in: Option<Duration>,
}
