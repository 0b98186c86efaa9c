//! The fault injection `tower::Layer`.

use crate::response::NoResponse;
use crate::{Chaos, ChaosService};
use tower_layer::Layer;

/// Injects faults into services according to a [`Chaos`] handle.
///
/// The layer only holds a handle: every service it makes (and every other layer made from the
/// same handle) is switched on and off together and shares one random source and one set of
/// counters.
///
/// ```
/// use battlement_chaos::{Chaos, ChaosLayer, Latency};
/// use std::time::Duration;
/// use tower::ServiceBuilder;
///
/// let chaos = Chaos::builder("search")
///     .latency(0.1, Latency::Fixed(Duration::from_millis(300)))
///     .build()
///     .unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(ChaosLayer::new(&chaos))
///     .service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) });
/// assert_eq!(svc.chaos().name(), "search");
/// ```
#[derive(Debug)]
pub struct ChaosLayer<R = NoResponse> {
    chaos: Chaos<R>,
}

impl<R: Clone> Clone for ChaosLayer<R> {
    fn clone(&self) -> Self {
        ChaosLayer {
            chaos: self.chaos.clone(),
        }
    }
}

impl<R: Clone> ChaosLayer<R> {
    /// A layer injecting faults per `chaos`.
    pub fn new(chaos: &Chaos<R>) -> Self {
        ChaosLayer {
            chaos: chaos.clone(),
        }
    }
}

impl<R> ChaosLayer<R> {
    /// The handle this layer injects with.
    pub fn chaos(&self) -> &Chaos<R> {
        &self.chaos
    }
}

impl<S, R: Clone> Layer<S> for ChaosLayer<R> {
    type Service = ChaosService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        ChaosService::new(inner, self.chaos.clone())
    }
}

impl<R: Clone> Chaos<R> {
    /// A layer injecting faults per this handle.
    pub fn layer(&self) -> ChaosLayer<R> {
        ChaosLayer::new(self)
    }
}
