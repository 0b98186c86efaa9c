//! The rate limiter's `tower::Layer`.

use crate::key::KeyExtractor;
use crate::{RateLimit, RateLimitService};
use std::fmt;
use tower_layer::Layer;

/// Limits the rate of calls to services with a [`RateLimit`].
///
/// The layer only holds a handle: every service it makes, and every other layer made from the
/// same limiter, shares its limits.
///
/// ```
/// use battlement_rate_limit::{RateLimit, RateLimitLayer};
/// use std::time::Duration;
/// use tower::ServiceBuilder;
///
/// let limit = RateLimit::builder("api").rate(100, Duration::from_secs(1)).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(&limit))
///     .service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
/// assert_eq!(svc.rate_limit().name(), "api");
/// ```
pub struct RateLimitLayer<X: KeyExtractor = crate::Unkeyed> {
    limit: RateLimit<X>,
}

impl<X: KeyExtractor> Clone for RateLimitLayer<X> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limit: self.limit.clone(),
        }
    }
}

impl<X: KeyExtractor + fmt::Debug> fmt::Debug for RateLimitLayer<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limit", &self.limit)
            .finish()
    }
}

impl<X: KeyExtractor> RateLimitLayer<X> {
    /// A layer limiting services with `limit`.
    pub fn new(limit: &RateLimit<X>) -> Self {
        RateLimitLayer {
            limit: limit.clone(),
        }
    }

    /// The limiter.
    pub fn rate_limit(&self) -> &RateLimit<X> {
        &self.limit
    }
}

impl<S, X: KeyExtractor> Layer<S> for RateLimitLayer<X> {
    type Service = RateLimitService<S, X>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService::new(inner, self.limit.clone())
    }
}

impl<X: KeyExtractor> RateLimit<X> {
    /// A layer limiting services with this limiter.
    pub fn layer(&self) -> RateLimitLayer<X> {
        RateLimitLayer::new(self)
    }
}
