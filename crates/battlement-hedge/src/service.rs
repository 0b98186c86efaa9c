//! The hedging `tower::Service`.

use crate::future::ResponseFuture;
use crate::handle::{HedgeHandle, Shared};
use crate::policy::{Always, HedgePolicy};
use battlement_core::BoxError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// A hedged service; made by [`HedgeLayer`](crate::HedgeLayer).
///
/// `poll_ready` is the inner service's, and the first attempt is a call on it. A call the
/// policy accepts also keeps a clone of the request (`Req: Clone`) and of the inner service
/// (`S: Clone`); each hedge calls a further clone of that service with a further clone of the
/// request, awaiting the clone's readiness. A call the policy refuses is a plain call.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_hedge::HedgeLayer;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tokio::time::{sleep, Instant};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// // The first attempt is slow (1 s), the hedge fast (10 ms).
/// let n = Arc::new(AtomicU32::new(0));
/// let inner = service_fn(move |_key: u32| {
///     let slow = n.fetch_add(1, Ordering::SeqCst) == 0;
///     async move {
///         sleep(Duration::from_millis(if slow { 1000 } else { 10 })).await;
///         Ok::<_, std::io::Error>(if slow { "first" } else { "hedge" })
///     }
/// });
/// let layer = HedgeLayer::builder().delay(Duration::from_millis(50)).build().unwrap();
/// let svc = layer.layer(inner);
/// let start = Instant::now();
/// assert_eq!(svc.oneshot(1).await.unwrap(), "hedge");
/// assert_eq!(start.elapsed(), Duration::from_millis(60));
/// assert_eq!(layer.handle().metrics().hedges_won, 1);
/// # }
/// ```
pub struct Hedge<S, P = Always> {
    inner: S,
    policy: P,
    shared: Arc<Shared>,
}

impl<S, P> Hedge<S, P> {
    pub(crate) fn from_parts(inner: S, policy: P, shared: Arc<Shared>) -> Self {
        Hedge {
            inner,
            policy,
            shared,
        }
    }

    /// A handle to the metrics (shared with the layer and its other services).
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle {
            shared: self.shared.clone(),
        }
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S: Clone, P: Clone> Clone for Hedge<S, P> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Hedge<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .field("max_attempts", &self.shared.max_attempts())
            .finish_non_exhaustive()
    }
}

impl<S, P, Req> Service<Req> for Hedge<S, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
    P: HedgePolicy<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.shared.count_request();
        let max = self.shared.max_attempts();
        if max > 1 && self.policy.can_hedge(&req) {
            let spare = (self.inner.clone(), req.clone());
            ResponseFuture::hedged(self.inner.call(req), spare, max, self.shared.clone())
        } else {
            ResponseFuture::single(self.inner.call(req), self.shared.clone())
        }
    }
}
