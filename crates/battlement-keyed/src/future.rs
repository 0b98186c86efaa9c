//! The response future of a [`KeyedService`](crate::KeyedService): the key's component's own
//! response future, named here.
//!
//! A keyed call runs on its component's call path, so its future is that component's (the
//! breaker's or the bulkhead's `ResponseFuture`), not a wrapper around it: a wrapper would move
//! the inner future once more on every call and add nothing, since the table's part of the call
//! (finding the key's component) is over when `call` returns.

use crate::component::Guard;

/// The future of a [`KeyedService`](crate::KeyedService) over a service `S` with requests `Req`
/// guarded by components `C` (with the per-call setting `E`): `C`'s own response future.
///
/// ```
/// use battlement_breaker::CircuitBreaker;
/// use battlement_core::ResponseClassifier;
/// use battlement_keyed::{Authority, KeyedCircuitBreaker, KeyedService, ResponseFuture};
/// use http::{Request, Response};
/// use std::convert::Infallible;
/// use tower::{Layer, Service};
///
/// let hosts = KeyedCircuitBreaker::builder("upstreams").build().unwrap();
/// let inner = tower::service_fn(|_: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(()))
/// });
/// let mut client = hosts.layer(Authority).layer(inner);
/// // The future named, as a field of a hand-written future would name it.
/// fn call<S, X>(
///     svc: &mut KeyedService<S, CircuitBreaker, String, X, ResponseClassifier>,
///     req: Request<()>,
/// ) -> ResponseFuture<CircuitBreaker, S, Request<()>, ResponseClassifier>
/// where
///     S: Service<Request<()>, Response = Response<()>>,
///     S::Error: Into<battlement_core::BoxError>,
///     KeyedService<S, CircuitBreaker, String, X, ResponseClassifier>: Service<
///         Request<()>,
///         Future = ResponseFuture<CircuitBreaker, S, Request<()>, ResponseClassifier>,
///     >,
/// {
///     svc.call(req)
/// }
/// let _future = call(&mut client, Request::get("http://a.example/").body(()).unwrap());
/// ```
pub type ResponseFuture<C, S, Req, E> = <C as Guard<S, Req, E>>::Future;
