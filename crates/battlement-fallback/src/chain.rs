//! The fallback chain: an ordered list of services with passive health.

use crate::config::FallbackChainBuilder;
use crate::event::ChainEvent;
use crate::future::ChainFuture;
use crate::health::{ChainHealth, MemberState, MemberStatus};
use battlement_core::{
    BoxError, Classify, ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric,
    ResultClassifier,
};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::broadcast;
use tower_service::Service;

pub(crate) struct ChainInner<S, C> {
    pub(crate) members: Box<[S]>,
    pub(crate) classifier: C,
    pub(crate) health: Arc<ChainHealth>,
}

/// An ordered list of services (primary, backup, last resort) answering the same requests: a
/// call goes to the first healthy member, and on failure to the next, until one answers.
///
/// - **Passive health**: every member's outcomes (per the chain's classifier; default
///   [`ResultClassifier`]) fill a count window; when it holds at least `min_calls` outcomes and
///   the success rate is below `min_success_rate`, the member is skipped for `cool_down`. Then
///   one trial call is let through; its success makes the member healthy again, its failure
///   starts another cool-down.
/// - **Errors**: when no member answers, the call fails with [`AllFailed`](crate::AllFailed),
///   carrying one `(member, error)` pair per member in order (skipped members as
///   [`MemberUnavailable`](crate::MemberUnavailable), answers classified as failures as
///   [`FailedResponse`](crate::FailedResponse)). Outcomes the classifier ignores (a 404) are
///   returned as they are, without trying the next member.
/// - **Health reporting**: the chain ([`handle`](FallbackChain::handle)) implements
///   [`HealthSource`]: its snapshot says which member answered last and every member's state and
///   success rate; the builder's [`registry`](FallbackChainBuilder::registry) registers it.
///
/// # Members and requests
///
/// All members have one type `S`; for members of different types, box them as
/// `tower::util::BoxCloneSyncService` (or `BoxCloneService`, which is not `Sync`: the chain's
/// [`ChainHandle`] still is). A call clones the request for every member it tries except the
/// last one (`Req: Clone` is inherent to a chain) and calls a clone of the member (`S: Clone`),
/// awaiting that clone's readiness: the chain's own `poll_ready` is always ready, and a member
/// whose `poll_ready` fails counts as a failed attempt.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::BoxError;
/// use battlement_fallback::{AllFailed, FallbackChain};
/// use std::time::Duration;
/// use tower::util::BoxCloneSyncService;
/// use tower::{service_fn, ServiceExt};
///
/// type Svc = BoxCloneSyncService<u32, String, BoxError>;
/// let primary: Svc = BoxCloneSyncService::new(service_fn(|_id: u32| async {
///     Err::<String, BoxError>("primary: connection refused".into())
/// }));
/// let backup: Svc = BoxCloneSyncService::new(service_fn(|id: u32| async move {
///     Ok::<_, BoxError>(format!("backup answers #{id}"))
/// }));
///
/// let chain = FallbackChain::builder("users")
///     .member("primary", primary)
///     .member("backup", backup)
///     .window(10)
///     .min_calls(3)
///     .min_success_rate(0.5)
///     .cool_down(Duration::from_secs(5))
///     .build()
///     .unwrap();
///
/// for id in 0..3 {
///     assert_eq!(chain.clone().oneshot(id).await.unwrap(), format!("backup answers #{id}"));
/// }
/// // Three failures in a row: the primary is skipped now.
/// let members = chain.handle().members();
/// assert_eq!(members[0].state, battlement_fallback::MemberState::Unhealthy);
/// assert_eq!(chain.handle().serving().as_deref(), Some("backup"));
/// # }
/// ```
pub struct FallbackChain<S, C = ResultClassifier> {
    inner: Arc<ChainInner<S, C>>,
}

impl<S> FallbackChain<S> {
    /// A builder for a chain named `name` (used in `tracing` events, errors and health
    /// reports).
    pub fn builder(name: impl Into<String>) -> FallbackChainBuilder<S> {
        FallbackChainBuilder::new(name)
    }
}

impl<S, C> FallbackChain<S, C> {
    pub(crate) fn from_parts(members: Vec<S>, classifier: C, health: Arc<ChainHealth>) -> Self {
        FallbackChain {
            inner: Arc::new(ChainInner {
                members: members.into_boxed_slice(),
                classifier,
                health,
            }),
        }
    }

    /// The chain's name.
    pub fn name(&self) -> &str {
        &self.inner.health.name
    }

    /// A handle to the chain's health: members, which one is serving, events, snapshots.
    pub fn handle(&self) -> ChainHandle {
        ChainHandle {
            health: self.inner.health.clone(),
        }
    }

    /// The member services, in order.
    pub fn members(&self) -> &[S] {
        &self.inner.members
    }
}

impl<S, C> Clone for FallbackChain<S, C> {
    fn clone(&self) -> Self {
        FallbackChain {
            inner: self.inner.clone(),
        }
    }
}

impl<S, C> fmt::Debug for FallbackChain<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackChain")
            .field("name", &self.inner.health.name)
            .field(
                "members",
                &self
                    .inner
                    .health
                    .members
                    .iter()
                    .map(|m| &*m.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S, C, Req> Service<Req> for FallbackChain<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
    C: Classify<S::Response, BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ChainFuture<S, Req, C>;

    /// Always ready: each member's readiness is awaited when the call reaches it.
    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ChainFuture::new(self.inner.clone(), req)
    }
}

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
    health: Arc<ChainHealth>,
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
            None => "no call answered yet".to_string(),
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
