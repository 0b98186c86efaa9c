//! The throttle's `tower::Service`.

use crate::future::{Recorder, ResponseFuture};
use crate::throttle::Admit;
use crate::Throttle;
use battlement_core::{BoxError, Settle};
use std::task::{Context, Poll};
use tower_service::Service;

/// A service whose calls pass a client-side adaptive [`Throttle`]; made by
/// [`ThrottleLayer`](crate::ThrottleLayer).
///
/// `poll_ready` is the inner service's. `call` counts the call as a request and, with the
/// throttle's current rejection probability, either calls the inner service (and records
/// whether the dependency accepted the call, classified by `C`) or returns a future that fails
/// at once with [`Throttled`](crate::Throttled), without calling the inner service (which stays
/// ready), as the breaker does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_throttle::{Throttle, ThrottleService};
/// use battlement_core::ResponseClassifier;
/// use tower::{service_fn, ServiceExt};
///
/// let throttle = Throttle::builder("search").build().unwrap();
/// let svc = ThrottleService::new(
///     service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) }),
///     throttle.clone(),
///     ResponseClassifier,
/// );
/// assert_eq!(svc.oneshot(21).await.unwrap(), 42);
/// assert_eq!(throttle.metrics().accepts, 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ThrottleService<S, C> {
    inner: S,
    throttle: Throttle,
    classifier: C,
}

impl<S, C> ThrottleService<S, C> {
    /// Throttles calls to `inner` with `throttle`, judging with `classifier` which calls the
    /// dependency accepted.
    pub fn new(inner: S, throttle: Throttle, classifier: C) -> Self {
        ThrottleService {
            inner,
            throttle,
            classifier,
        }
    }

    /// The throttle.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, C, Req> Service<Req> for ThrottleService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Settle<S::Response, BoxError> + Clone,
{
    type Response = C::Response<Recorder>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.throttle.admit() {
            Admit::Send(cell) => ResponseFuture::admitted(
                self.inner.call(req),
                Recorder::new(cell),
                self.classifier.clone(),
            ),
            Admit::Reject(p) => ResponseFuture::throttled(Box::new(self.throttle.reject(p))),
        }
    }
}
