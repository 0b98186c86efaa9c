//! The rate limiter's `tower::Service`.

use crate::future::ResponseFuture;
use crate::key::{ExtractKey, KeyExtractor};
use crate::limit::LimitsCache;
use crate::RateLimit;
use battlement_core::BoxError;
use std::fmt;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service whose calls are rate limited; made by [`RateLimitLayer`](crate::RateLimitLayer).
///
/// `poll_ready` is the inner service's; the limit is checked by `call`:
///
/// - within the rate: the inner service is called at once (an unkeyed limiter: one
///   compare-and-swap on governor's state word, no lock, no allocation);
/// - over it, with a [`max_delay`](crate::RateLimitBuilder::max_delay) long enough: the ready
///   inner service and the request move into the response future (a clone takes the
///   service's place here, hence `S: Clone`), which sleeps until the call's turn and checks
///   again; the inner service is only called once the call is admitted;
/// - over it otherwise: the response future fails at once with
///   [`RateLimited`](crate::RateLimited); the inner service is not called (and stays ready).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_rate_limit::{RateLimit, RateLimitService, RateLimited};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceExt};
///
/// let limit = RateLimit::builder("one").rate(1, Duration::from_secs(1)).build().unwrap();
/// let svc = RateLimitService::new(service_fn(|()| async { Ok::<_, std::io::Error>(()) }), limit);
/// svc.clone().oneshot(()).await.unwrap();
/// let err = svc.oneshot(()).await.unwrap_err();
/// assert!(err.is::<RateLimited>());
/// # }
/// ```
pub struct RateLimitService<S, X: KeyExtractor = crate::Unkeyed> {
    inner: S,
    limit: RateLimit<X>,
    /// The limiters now, refreshed when a reload swaps them.
    limits: LimitsCache<X::Key>,
}

impl<S: Clone, X: KeyExtractor> Clone for RateLimitService<S, X> {
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            limit: self.limit.clone(),
            limits: self.limits.clone(),
        }
    }
}

impl<S: fmt::Debug, X: KeyExtractor + fmt::Debug> fmt::Debug for RateLimitService<S, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<S, X: KeyExtractor> RateLimitService<S, X> {
    /// Limits calls to `inner` with `limit`.
    pub fn new(inner: S, limit: RateLimit<X>) -> Self {
        let limits = limit.cache();
        RateLimitService {
            inner,
            limit,
            limits,
        }
    }

    /// The limiter.
    pub fn rate_limit(&self) -> &RateLimit<X> {
        &self.limit
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, Req, X> Service<Req> for RateLimitService<S, X>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    X: ExtractKey<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, X>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.limit.check_with(self.limits.load(), &req) {
            Ok(()) => ResponseFuture::admitted(self.inner.call(req)),
            Err(wait) if self.limit.may_wait(wait) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(self.limit.clone(), wait, ready, req)
            }
            Err(wait) => ResponseFuture::rejected(Box::new(self.limit.reject(wait))),
        }
    }
}
