//! The global rate limit's layer.

use crate::key::FleetKey;
use crate::limit::GlobalRateLimit;
use crate::service::GlobalRateLimitService;
use battlement_rate_limit::{KeyExtractor, Unkeyed};
use std::fmt;
use tower_layer::Layer;

/// Applies a [`GlobalRateLimit`] to a service; every layer of one limiter shares it.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_fleet::{Fleet, GlobalRateLimit, GlobalRateLimitLayer};
/// use std::time::Duration;
/// use tower::Layer;
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/").build().unwrap();
/// let limit = GlobalRateLimit::builder("api", &fleet)
///     .rate(100, Duration::from_secs(1))
///     .build()
///     .unwrap();
/// let svc = GlobalRateLimitLayer::new(&limit)
///     .layer(tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
/// # let _ = svc;
/// # }
/// ```
pub struct GlobalRateLimitLayer<X: KeyExtractor = Unkeyed> {
    limit: GlobalRateLimit<X>,
}

impl<X: KeyExtractor> Clone for GlobalRateLimitLayer<X> {
    fn clone(&self) -> Self {
        GlobalRateLimitLayer {
            limit: self.limit.clone(),
        }
    }
}

impl<X: KeyExtractor> GlobalRateLimitLayer<X>
where
    X::Key: FleetKey,
{
    /// A layer applying `limit`.
    pub fn new(limit: &GlobalRateLimit<X>) -> Self {
        GlobalRateLimitLayer {
            limit: limit.clone(),
        }
    }

    /// The limiter.
    pub fn rate_limit(&self) -> &GlobalRateLimit<X> {
        &self.limit
    }
}

impl<S, X: KeyExtractor> Layer<S> for GlobalRateLimitLayer<X>
where
    X::Key: FleetKey,
{
    type Service = GlobalRateLimitService<S, X>;

    fn layer(&self, inner: S) -> Self::Service {
        GlobalRateLimitService::new(inner, self.limit.clone())
    }
}

impl<X: KeyExtractor> fmt::Debug for GlobalRateLimitLayer<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalRateLimitLayer")
            .field("limit", &self.limit)
            .finish()
    }
}
