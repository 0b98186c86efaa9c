//! The keyed `tower::Layer`.

use crate::component::Component;
use crate::keyed::Keyed;
use crate::service::KeyedService;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Guards services with a [`Keyed`] table: each call goes through its key's component, read
/// from the request by the extractor `X`; `E` is the component's per-call setting (a breaker's
/// classifier, default [`ResponseClassifier`](battlement_core::ResponseClassifier); nothing for
/// a bulkhead).
///
/// ```
/// use battlement_keyed::{Authority, KeyedCircuitBreaker, KeyedLayer};
/// use tower::ServiceBuilder;
///
/// let hosts = KeyedCircuitBreaker::builder("upstreams").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(KeyedLayer::new(&hosts, Authority))
///     .service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(()))
///     });
/// # drop(svc);
/// ```
pub struct KeyedLayer<C: Component, K, X, E = <C as Component>::Extra> {
    keyed: Keyed<C, K>,
    extractor: Arc<X>,
    extra: E,
}

/// A [`KeyedLayer`] of circuit breakers.
pub type KeyedCircuitBreakerLayer<X, K = String, E = battlement_core::ResponseClassifier> =
    KeyedLayer<battlement_breaker::CircuitBreaker, K, X, E>;
/// A [`KeyedLayer`] of bulkheads.
pub type KeyedBulkheadLayer<X, K = String> = KeyedLayer<battlement_bulkhead::Bulkhead, K, X, ()>;

impl<C: Component, K, X> KeyedLayer<C, K, X> {
    /// A layer for `keyed`, keying calls with `extractor`, with the component's default per-call
    /// setting (a breaker's [`ResponseClassifier`](battlement_core::ResponseClassifier)).
    pub fn new(keyed: &Keyed<C, K>, extractor: X) -> Self {
        KeyedLayer {
            keyed: keyed.clone(),
            extractor: Arc::new(extractor),
            extra: C::Extra::default(),
        }
    }
}

impl<K, X, E> KeyedLayer<battlement_breaker::CircuitBreaker, K, X, E> {
    /// Uses `classifier` to decide which outcomes are failures (as
    /// [`CircuitBreakerLayer::classifier`](battlement_breaker::CircuitBreakerLayer::classifier)).
    pub fn classifier<E2>(
        self,
        classifier: E2,
    ) -> KeyedLayer<battlement_breaker::CircuitBreaker, K, X, E2> {
        KeyedLayer {
            keyed: self.keyed,
            extractor: self.extractor,
            extra: classifier,
        }
    }
}

impl<C: Component, K, X, E> KeyedLayer<C, K, X, E> {
    /// The table this layer guards with.
    pub fn keyed(&self) -> &Keyed<C, K> {
        &self.keyed
    }
}

impl<C: Component, K, X, E: Clone> Clone for KeyedLayer<C, K, X, E> {
    fn clone(&self) -> Self {
        KeyedLayer {
            keyed: self.keyed.clone(),
            extractor: self.extractor.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl<C: Component, K, X, E> fmt::Debug for KeyedLayer<C, K, X, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLayer")
            .field("keyed", &self.keyed)
            .finish_non_exhaustive()
    }
}

impl<S, C: Component, K, X, E: Clone> Layer<S> for KeyedLayer<C, K, X, E> {
    type Service = KeyedService<S, C, K, X, E>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedService {
            inner,
            keyed: self.keyed.clone(),
            extractor: self.extractor.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl<C: Component, K> Keyed<C, K> {
    /// A layer guarding services with this table, keying calls with `extractor`.
    pub fn layer<X>(&self, extractor: X) -> KeyedLayer<C, K, X> {
        KeyedLayer::new(self, extractor)
    }
}
