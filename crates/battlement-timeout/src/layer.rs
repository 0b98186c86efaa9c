//! The timeout's `tower::Layer`.

use crate::config::{intern, Named};
use crate::{DefaultOnly, TimeoutService};
use battlement_core::error::TimeoutScope;
use battlement_core::handle::Handle;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
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
///
/// Clones of a layer, and the services it makes, share its limit: a
/// [`reload`](Self::reload) changes it for every call that starts after it.
#[derive(Debug, Clone)]
pub struct TimeoutLayer<P = DefaultOnly> {
    pub(crate) shared: Handle<Shared>,
    pub(crate) policy: P,
}

/// What a layer's clones share and a registry holds: the name and counters (stored once per
/// name for the life of the process) and the live limit.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) named: &'static Named,
    /// The default limit, in nanoseconds (one relaxed read per call; a reload writes it).
    limit_nanos: AtomicU64,
    /// Which limit this layer's errors name.
    pub(crate) scope: TimeoutScope,
}

impl Shared {
    pub(crate) fn new(named: &'static Named, limit: Duration) -> Self {
        Shared {
            named,
            limit_nanos: AtomicU64::new(nanos(limit)),
            scope: TimeoutScope::Attempt,
        }
    }

    #[inline]
    pub(crate) fn limit(&self) -> Duration {
        Duration::from_nanos(self.limit_nanos())
    }

    /// The default limit in nanoseconds: what a call reads.
    #[inline]
    pub(crate) fn limit_nanos(&self) -> u64 {
        self.limit_nanos.load(Relaxed)
    }

    pub(crate) fn set_limit(&self, limit: Duration) {
        self.limit_nanos.store(nanos(limit), Relaxed);
    }
}

/// A duration in whole nanoseconds, saturating (about 584 years).
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl TimeoutLayer {
    /// Limits every call to `limit` (a zero limit fails every call at once; use
    /// [`try_new`](Self::try_new) to refuse it).
    pub fn new(limit: Duration) -> Self {
        TimeoutLayer {
            shared: Arc::new(Shared::new(intern("timeout"), limit)).into(),
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
