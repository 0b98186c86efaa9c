//! The breaker's `tower::Service`.

use crate::breaker::{local_shard, Shard};
use crate::future::ResponseFuture;
use crate::CircuitBreaker;
use battlement_core::{BoxError, Classify};
use crossbeam_utils::CachePadded;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service guarded by a [`CircuitBreaker`]; made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
///
/// `poll_ready` is the inner service's. A call the breaker rejects never reaches the inner
/// service: `call` returns a future that fails at once with
/// [`BreakerOpen`](battlement_core::error::BreakerOpen) (like `tower::load_shed`, the rejection is
/// made in the response future, since inside an axum router `poll_ready` is always ready).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_breaker::{BreakerOpen, CircuitBreaker, CircuitBreakerService};
/// use battlement_core::DefaultClassifier;
/// use tower::{service_fn, ServiceExt};
///
/// let breaker = CircuitBreaker::builder("db").build().unwrap();
/// let svc = CircuitBreakerService::new(
///     service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) }),
///     breaker.clone(),
///     DefaultClassifier,
/// );
/// assert_eq!(svc.clone().oneshot(21).await.unwrap(), 42);
/// breaker.force_open("maintenance");
/// let err = svc.oneshot(1).await.unwrap_err();
/// assert!(err.downcast_ref::<BreakerOpen>().is_some());
/// # }
/// ```
#[derive(Debug)]
pub struct CircuitBreakerService<S, C> {
    inner: S,
    pub(crate) shard: Arc<CachePadded<Shard>>,
    classifier: C,
}

/// A clone takes the cloning thread's shard of the breaker, not the original's: tower's retry
/// and axum's routes clone the service for every request, and a shared reference count written
/// by every request on every core is the contention the breaker is built to avoid.
impl<S: Clone, C: Clone> Clone for CircuitBreakerService<S, C> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            shard: local_shard(&self.shard),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S, C> CircuitBreakerService<S, C> {
    /// Guards `inner` with `breaker`, classifying outcomes with `classifier`.
    pub fn new(inner: S, breaker: CircuitBreaker, classifier: C) -> Self {
        Self::from_handle(inner, &breaker, classifier)
    }

    pub(crate) fn from_handle(inner: S, breaker: &CircuitBreaker, classifier: C) -> Self {
        CircuitBreakerService {
            inner,
            shard: breaker.shard(),
            classifier,
        }
    }

    /// A handle to the breaker.
    pub fn breaker(&self) -> CircuitBreaker {
        CircuitBreaker::from_shard(&self.shard)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for CircuitBreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, BoxError> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shard = local_shard(&self.shard);
        match shard.shared.admit() {
            Ok(admission) => {
                let future = self.inner.call(req);
                ResponseFuture::admitted(future, shard, admission, self.classifier.clone())
            }
            Err(rejected) => ResponseFuture::rejected(rejected),
        }
    }
}
