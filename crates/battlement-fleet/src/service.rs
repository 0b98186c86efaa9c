//! The global rate limit's service.

use crate::future::ResponseFuture;
use crate::key::FleetKey;
use crate::limit::GlobalRateLimit;
use battlement_core::BoxError;
use battlement_rate_limit::{ExtractKey, KeyExtractor, Unkeyed};
use std::fmt;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service behind a [`GlobalRateLimit`]: `poll_ready` delegates; `call` spends a leased
/// permit at once, or asks Redis (one round trip, at most the fleet's command timeout), or,
/// while Redis is unreachable, decides locally; then calls the inner service (a clone of it,
/// the ready one moved into the future) or fails with `RateLimited`.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_fleet::{Fleet, GlobalRateLimit, GlobalRateLimitService};
/// use std::time::Duration;
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/").build().unwrap();
/// let limit = GlobalRateLimit::builder("api", &fleet)
///     .rate(100, Duration::from_secs(1))
///     .build()
///     .unwrap();
/// let svc = GlobalRateLimitService::new(
///     tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }),
///     limit,
/// );
/// # let _ = svc;
/// # }
/// ```
pub struct GlobalRateLimitService<S, X: KeyExtractor = Unkeyed> {
    inner: S,
    limit: GlobalRateLimit<X>,
}

impl<S: Clone, X: KeyExtractor> Clone for GlobalRateLimitService<S, X> {
    fn clone(&self) -> Self {
        GlobalRateLimitService {
            inner: self.inner.clone(),
            limit: self.limit.clone(),
        }
    }
}

impl<S, X: KeyExtractor> GlobalRateLimitService<S, X>
where
    X::Key: FleetKey,
{
    /// `inner` behind `limit`.
    pub fn new(inner: S, limit: GlobalRateLimit<X>) -> Self {
        GlobalRateLimitService { inner, limit }
    }

    /// The limiter.
    pub fn rate_limit(&self) -> &GlobalRateLimit<X> {
        &self.limit
    }
}

impl<S, X, Req> Service<Req> for GlobalRateLimitService<S, X>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    X: ExtractKey<Req>,
    X::Key: FleetKey,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, X>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = match self.limit.check_local(&req) {
            Ok(Ok(())) => return ResponseFuture::called(self.inner.call(req)),
            Ok(Err(e)) => return ResponseFuture::rejected(e),
            Err(key) => key,
        };
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit.clone();
        let decision = Box::pin(async move { limit.decide(key).await });
        ResponseFuture::deciding(decision, ready, req, self.limit.clone())
    }
}

impl<S: fmt::Debug, X: KeyExtractor> fmt::Debug for GlobalRateLimitService<S, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalRateLimitService")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}
