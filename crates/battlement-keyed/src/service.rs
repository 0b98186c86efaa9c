//! The keyed `tower::Service`: looks up the key's component and calls through its own call
//! path (its future and errors are the component's own, so there is no future type here).

use crate::component::{Component, Guard};
use crate::future::ResponseFuture;
use crate::key::ExtractKey;
use crate::keyed::Keyed;
use battlement_core::BoxError;
use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service guarded by a [`Keyed`] table; made by [`KeyedLayer`](crate::KeyedLayer).
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
    pub(crate) inner: S,
    pub(crate) keyed: Keyed<C, K>,
    pub(crate) extractor: Arc<X>,
    pub(crate) extra: E,
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
    type Future = ResponseFuture<C, S, Req, E>;

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
