//! The bulkhead's `tower::Service`.

use crate::bulkhead::Admission;
use crate::future::ResponseFuture;
use crate::{Bulkhead, BulkheadAdmission, Prioritize};
use battlement_core::BoxError;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service guarded by a [`Bulkhead`]; made by [`BulkheadLayer`](crate::BulkheadLayer).
///
/// # Where the permit is taken
///
/// `poll_ready` is the inner service's: the bulkhead never holds a permit for a service that is
/// merely ready, so idle clones (axum clones the service per request; a `tower::buffer` worker
/// readies its service before a request arrives) hold nothing. The permit is taken by `call`:
///
/// - a free permit: the inner service is called at once, and the permit travels in the response
///   future. No lock, no allocation.
/// - none free, queue not full: the request and the *ready* inner service move into the response
///   future (a fresh clone takes their place here, to be readied by the next `poll_ready`), which
///   waits its turn in FIFO order and calls the inner service once it holds a permit. The inner
///   service is never called without a permit. This is why `S: Clone` is required; only this
///   path clones it, and allocates two boxes (the wait, and the service with the request, so
///   that the response future stays as small as the inner one whatever the request's size).
/// - queue full: the response future fails at once with
///   [`BulkheadFull`](crate::BulkheadFull); the inner service is not called (and stays ready).
///
/// The permit is released when the inner future completes (with a response or an error) or when
/// the response future is dropped, whichever comes first. A streaming response body is not
/// covered: the permit is released once the inner service has produced the response.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_bulkhead::{Bulkhead, BulkheadFull, BulkheadService};
/// use std::future::pending;
/// use tower::{service_fn, Service, ServiceExt};
///
/// let b = Bulkhead::builder("one").max_concurrent(1).build().unwrap();
/// let mut svc = BulkheadService::new(
///     service_fn(|_: ()| pending::<Result<(), std::io::Error>>()),
///     b.clone(),
/// );
/// let _first = svc.ready().await.unwrap().call(()); // holds the only permit
/// let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// assert!(err.downcast_ref::<BulkheadFull>().is_some());
/// # }
/// ```
///
/// `P` gives each request its [`Priority`](crate::Priority) ([`Prioritize`]): `()` makes every
/// call `Normal`; see [`BulkheadLayer::priority_fn`](crate::BulkheadLayer::priority_fn).
#[derive(Debug, Clone)]
pub struct BulkheadService<S, P = ()> {
    inner: S,
    bulkhead: Bulkhead,
    priority: P,
}

impl<S> BulkheadService<S> {
    /// Guards `inner` with `bulkhead`.
    pub fn new(inner: S, bulkhead: Bulkhead) -> Self {
        BulkheadService {
            inner,
            bulkhead,
            priority: (),
        }
    }
}

impl<S, P> BulkheadService<S, P> {
    /// Guards `inner` with `bulkhead`, giving each request the priority `priority` finds.
    pub fn with_priority(inner: S, bulkhead: Bulkhead, priority: P) -> Self {
        BulkheadService {
            inner,
            bulkhead,
            priority,
        }
    }

    /// The bulkhead.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, P, Req> Service<Req> for BulkheadService<S, P>
where
    S: Service<Req> + Clone,
    P: Prioritize<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let priority = &self.priority;
        match self.bulkhead.admit(|| priority.priority(&req)) {
            // Called here, not in `ResponseFuture::new`: the request is moved once, straight
            // into the inner call (through `new` it was copied twice more on this path).
            Admission::Now(permit) => ResponseFuture::admitted(self.inner.call(req), permit),
            queued_or_rejected => {
                ResponseFuture::new(BulkheadAdmission(queued_or_rejected), &mut self.inner, req)
            }
        }
    }
}
