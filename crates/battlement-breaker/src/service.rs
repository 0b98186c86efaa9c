//! The breaker's `tower::Service`.

use crate::future::ResponseFuture;
use crate::guard::CallGuard;
use crate::CircuitBreaker;
use battlement_core::{BoxError, Settle};
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
/// use battlement_core::ResultClassifier;
/// use tower::{service_fn, ServiceExt};
///
/// let breaker = CircuitBreaker::builder("db").build().unwrap();
/// let svc = CircuitBreakerService::new(
///     service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) }),
///     breaker.clone(),
///     ResultClassifier,
/// );
/// assert_eq!(svc.clone().oneshot(21).await.unwrap(), 42);
/// breaker.force_open("maintenance");
/// let err = svc.oneshot(1).await.unwrap_err();
/// assert!(err.downcast_ref::<BreakerOpen>().is_some());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S, C> {
    inner: S,
    breaker: CircuitBreaker,
    classifier: C,
}

impl<S, C> CircuitBreakerService<S, C> {
    /// Guards `inner` with `breaker`, classifying outcomes with `classifier`.
    pub fn new(inner: S, breaker: CircuitBreaker, classifier: C) -> Self {
        CircuitBreakerService {
            inner,
            breaker,
            classifier,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, C, Req> Service<Req> for CircuitBreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Settle<S::Response, BoxError> + Clone,
{
    type Response = C::Response<CallGuard>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // `try_call`'s steps. The guard is made before the inner call, so that:
        // - the inner future goes straight into the response future. Made after the call, the
        //   guard and the classifier's clone kept the inner future in a temporary, copied once
        //   more: behind an axum router, about 65 of the 1,022 instructions the server stack
        //   added per request;
        // - a `call` that panics drops the guard as it unwinds, which gives back the call's
        //   permit (a half-open trial's too) instead of losing it.
        // Through the breaker's own handle, not the call's: the call's handle on its shard is
        // a counted `Arc` or a leaked pointer, which each use would tell apart again.
        let shared = self.breaker.shared();
        match shared.admit() {
            Ok(admission) => {
                let time = shared.start_timer();
                let guard = CallGuard::started(self.breaker.shard(), admission, time);
                let classifier = self.classifier.clone();
                ResponseFuture::admitted(self.inner.call(req), guard, classifier)
            }
            Err(rejected) => ResponseFuture::rejected(rejected),
        }
    }
}
