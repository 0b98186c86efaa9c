//! The keyed `tower::Layer` and `tower::Service`.

use crate::component::{Component, Guard};
use crate::key::ExtractKey;
use crate::keyed::Keyed;
use battlement_core::BoxError;
use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

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

/// A service guarded by a [`Keyed`] table; made by [`KeyedLayer`].
///
/// `poll_ready` is the inner service's. `call` reads the request's key, looks up the key's
/// component (creating it on the key's first call) and goes through that component's own call
/// path: its response future is the component's (a breaker's or a bulkhead's `ResponseFuture`),
/// and its errors are the component's ([`BreakerOpen`](battlement_core::error::BreakerOpen)
/// naming `<name>/<key>`, [`BulkheadFull`](battlement_core::error::BulkheadFull), ...).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_core::{error::BreakerOpen, ResultClassifier};
/// use battlement_breaker::CircuitBreaker;
/// use battlement_keyed::{key_fn, KeyedBuilder};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let agents = KeyedBuilder::<CircuitBreaker, u64>::new("agents").build().unwrap();
/// let layer = agents
///     .layer(key_fn(|req: &(u64, u32)| Some(req.0)))
///     .classifier(ResultClassifier);
/// let svc = layer.layer(service_fn(|req: (u64, u32)| async move {
///     Ok::<_, std::io::Error>(req.1 * 2)
/// }));
/// agents.force_open(&7, "misbehaving");
/// let err = svc.clone().oneshot((7, 1)).await.unwrap_err();
/// assert_eq!(err.downcast_ref::<BreakerOpen>().unwrap().name(), "agents/7");
/// assert_eq!(svc.oneshot((8, 1)).await.unwrap(), 2);
/// # }
/// ```
pub struct KeyedService<S, C: Component, K, X, E> {
    inner: S,
    keyed: Keyed<C, K>,
    extractor: Arc<X>,
    extra: E,
}

impl<S, C: Component, K, X, E> KeyedService<S, C, K, X, E> {
    /// The table.
    pub fn keyed(&self) -> &Keyed<C, K> {
        &self.keyed
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S: Clone, C: Component, K, X, E: Clone> Clone for KeyedService<S, C, K, X, E> {
    fn clone(&self) -> Self {
        KeyedService {
            inner: self.inner.clone(),
            keyed: self.keyed.clone(),
            extractor: self.extractor.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl<S: fmt::Debug, C: Component, K, X, E> fmt::Debug for KeyedService<S, C, K, X, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedService")
            .field("inner", &self.inner)
            .field("keyed", &self.keyed)
            .finish_non_exhaustive()
    }
}

impl<S, C, K, X, E, Req> Service<Req> for KeyedService<S, C, K, X, E>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Guard<S, Req, E>,
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static + Borrow<X::Key>,
    X: ExtractKey<Req>,
    X::Key: ToOwned<Owned = K>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = C::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let ticket = match self.extractor.extract(&req) {
            Some(key) => self.keyed.admit(key),
            None => self.keyed.admit_unkeyed(),
        };
        C::call(ticket, &mut self.inner, &self.extra, req)
    }
}
