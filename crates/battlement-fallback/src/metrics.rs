//! The fallback chain's read-out ([`ChainHandle`], [`MemberStatus`]) and its health snapshot.

use crate::event::ChainEvent;
use crate::health::{ChainHealth, MemberState};
use crate::FallbackChain;
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

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
