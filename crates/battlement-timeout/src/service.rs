//! The timeout's `tower::Service`.

use crate::config::Named;
use crate::future::ResponseFuture;
use crate::{TimeoutLayer, TimeoutPolicy};
use battlement_core::error::TimeoutScope;
use battlement_core::BoxError;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service whose calls are limited in time; made by [`TimeoutLayer`].
///
/// ```
/// use battlement_timeout::{TimeoutLayer, TimeoutService};
/// use std::time::Duration;
/// use tower::service_fn;
///
/// let svc = TimeoutService::new(
///     service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }),
///     TimeoutLayer::new(Duration::from_secs(1)),
/// );
/// # drop(svc);
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutService<S, P> {
    inner: S,
    layer: TimeoutLayer<P>,
    /// The layer's name and counters, copied out of its shared state so that a call reaches
    /// them without going through it.
    named: &'static Named,
    /// The layer's scope, copied out too.
    scope: TimeoutScope,
}

impl<S, P> TimeoutService<S, P> {
    /// Limits `inner`'s calls as `layer` says.
    pub fn new(inner: S, layer: TimeoutLayer<P>) -> Self {
        let named = layer.shared.named;
        let scope = layer.shared.scope;
        TimeoutService {
            inner,
            layer,
            named,
            scope,
        }
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, P, Req> Service<Req> for TimeoutService<S, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: TimeoutPolicy<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut req: Req) -> Self::Future {
        let default = self.layer.shared.limit_nanos();
        let limit = self.layer.policy.limit_nanos(&mut req, default);
        self.named.calls.increment();
        ResponseFuture::new(self.inner.call(req), limit, self.named, self.scope)
    }
}
