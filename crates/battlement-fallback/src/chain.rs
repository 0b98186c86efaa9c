//! The fallback chain: an ordered list of services with passive health.

use crate::config::FallbackChainBuilder;
use crate::future::ChainFuture;
use crate::health::ChainHealth;
use crate::ChainHandle;
use battlement_core::{BoxError, Classify, ResultClassifier};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
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
///   [`HealthSource`](battlement_core::HealthSource): its snapshot says which member answered last and every member's state and
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
    pub(crate) inner: Arc<ChainInner<S, C>>,
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
