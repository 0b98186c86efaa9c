//! The timeout's `tower::Layer`.

use crate::{DefaultOnly, TimeoutService};
use std::time::Duration;
use tower_layer::Layer;

/// Limits each call to a duration, failing it with a typed
/// [`Elapsed`](battlement_core::error::Elapsed) (which names the layer and the limit) when it
/// takes longer. The inner future is dropped at the deadline.
///
/// Place it innermost, under the retry and the breaker, so each attempt has its own deadline and
/// a timeout is a failure the breaker sees. `P` decides per-request limits: [`DefaultOnly`], or
/// [`HttpTimeouts`](crate::HttpTimeouts) for request extensions and `grpc-timeout`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_timeout::{Elapsed, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let svc = ServiceBuilder::new()
///     .layer(TimeoutLayer::new(Duration::from_millis(100)).name("inventory"))
///     .service(service_fn(|_: ()| async {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Ok::<_, std::convert::Infallible>(())
///     }));
/// let err = svc.oneshot(()).await.unwrap_err();
/// let elapsed = err.downcast_ref::<Elapsed>().unwrap();
/// assert_eq!(elapsed.name(), "inventory");
/// assert_eq!(elapsed.limit(), Duration::from_millis(100));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer<P = DefaultOnly> {
    pub(crate) limit: Duration,
    pub(crate) name: &'static str,
    pub(crate) policy: P,
}

impl TimeoutLayer {
    /// Limits every call to `limit` (a zero limit fails every call at once; use
    /// [`try_new`](Self::try_new) to refuse it).
    pub fn new(limit: Duration) -> Self {
        TimeoutLayer {
            limit,
            name: "timeout",
            policy: DefaultOnly,
        }
    }
}

impl<S, P: Clone> Layer<S> for TimeoutLayer<P> {
    type Service = TimeoutService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService::new(inner, self.clone())
    }
}
