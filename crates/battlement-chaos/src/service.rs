//! The fault injection `tower::Service`.

use crate::chaos::Action;
use crate::future::ResponseFuture;
use crate::response::{InjectResponse, NoResponse};
use crate::Chaos;
use battlement_core::BoxError;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service with faults injected per a [`Chaos`] handle; made by
/// [`ChaosLayer`](crate::ChaosLayer).
///
/// `poll_ready` is the inner service's. While the handle is off, `call` reads one atomic flag and
/// calls the inner service; its future is the inner future. While on, each call takes one random
/// draw: a call picked for an injected error or response does not reach the inner service (its
/// future answers at once, or after an injected delay); otherwise the inner service is called at
/// once, as tower's readiness contract requires, and its future is first polled when any injected
/// delay has passed.
///
/// Injected delays use `tokio::time::sleep`, so calls with latency injection on need a tokio
/// runtime with its time driver (and run in paused time in tests).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_chaos::{Chaos, ChaosService};
/// use tower::{service_fn, ServiceExt};
///
/// let chaos = Chaos::builder("flaky")
///     .enabled(true)
///     .response(1.0, || 0u32)
///     .build()
///     .unwrap();
/// let svc = ChaosService::new(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }), chaos.clone());
/// assert_eq!(svc.clone().oneshot(5).await.unwrap(), 0); // injected
/// chaos.disable();
/// assert_eq!(svc.oneshot(5).await.unwrap(), 5);
/// # }
/// ```
pub struct ChaosService<S, R = NoResponse> {
    inner: S,
    chaos: Chaos<R>,
}

impl<S: Clone, R: Clone> Clone for ChaosService<S, R> {
    fn clone(&self) -> Self {
        ChaosService {
            inner: self.inner.clone(),
            chaos: self.chaos.clone(),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for ChaosService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosService")
            .field("inner", &self.inner)
            .field("chaos", &self.chaos)
            .finish()
    }
}

impl<S, R> ChaosService<S, R> {
    /// Injects faults into `inner` per `chaos`.
    pub fn new(inner: S, chaos: Chaos<R>) -> Self {
        ChaosService { inner, chaos }
    }

    /// The handle.
    pub fn chaos(&self) -> &Chaos<R> {
        &self.chaos
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, R, Req> Service<Req> for ChaosService<S, R>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    R: InjectResponse<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        if !self.chaos.shared.enabled.load(Relaxed) {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        self.call_with_chaos(req)
    }
}

impl<S, R> ChaosService<S, R> {
    fn call_with_chaos<Req>(&mut self, req: Req) -> ResponseFuture<S::Future, S::Response>
    where
        S: Service<Req>,
        R: InjectResponse<S::Response>,
    {
        let shared = &self.chaos.shared;
        let (delay, action) = shared.draw();
        let future = match action {
            Action::Error => ResponseFuture::error(shared.make_error()),
            Action::Response => match self.chaos.responder().make_response() {
                Some(response) => {
                    shared.record_response();
                    ResponseFuture::response(response)
                }
                // Unreachable: without a response maker the response probability is 0.
                None => ResponseFuture::passthrough(self.inner.call(req)),
            },
            Action::Pass => ResponseFuture::passthrough(self.inner.call(req)),
        };
        match delay {
            Some(delay) => {
                shared.record_delay(delay);
                future.delayed(delay)
            }
            None => future,
        }
    }
}
