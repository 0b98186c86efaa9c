//! The hedging `tower::Layer`.

use crate::config::HedgeBuilder;
use crate::handle::{HedgeHandle, Shared};
use crate::policy::Always;
use crate::Hedge;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Hedges calls: sends another attempt when the ones in flight have not answered after a
/// delay, and answers with the first success.
///
/// Every service a layer makes shares its metrics, latency window and budget (see
/// [`handle`](HedgeLayer::handle)). Build one with [`HedgeLayer::builder`] (or
/// [`HedgeLayer::http_builder`] for HTTP clients).
///
/// ```
/// use battlement_hedge::HedgeLayer;
/// use std::time::Duration;
/// use tower::ServiceBuilder;
///
/// let layer = HedgeLayer::builder().delay(Duration::from_millis(50)).max_attempts(3).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service_fn(|key: u64| async move { Ok::<_, std::io::Error>(key) });
/// assert_eq!(svc.handle().max_attempts(), 3);
/// ```
#[derive(Clone)]
pub struct HedgeLayer<P = Always> {
    shared: Arc<Shared>,
    policy: P,
}

impl HedgeLayer {
    /// A builder with the defaults (see [`HedgeBuilder`]).
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::new()
    }

    /// A builder for HTTP clients: hedges only requests with an idempotent method
    /// ([`IdempotentMethods`](crate::IdempotentMethods)). The requests' bodies must be `Clone`.
    #[cfg(feature = "http")]
    pub fn http_builder() -> HedgeBuilder<crate::IdempotentMethods> {
        HedgeBuilder::new().policy(crate::IdempotentMethods)
    }
}

impl<P> HedgeLayer<P> {
    pub(crate) fn from_parts(shared: Arc<Shared>, policy: P) -> Self {
        HedgeLayer { shared, policy }
    }

    /// A handle to the layer's metrics.
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<P> fmt::Debug for HedgeLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("name", &self.shared.name)
            .field("delay", &self.shared.delay)
            .field("max_attempts", &self.shared.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<S, P: Clone> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_parts(inner, self.policy.clone(), self.shared.clone())
    }
}
