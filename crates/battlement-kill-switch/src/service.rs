//! The kill switch's `tower::Service`.

use crate::future::ResponseFuture;
use crate::KillSwitch;
use battlement_core::BoxError;
use std::task::{Context, Poll};
use tower_service::Service;

/// A service guarded by a [`KillSwitch`]; made by [`KillSwitchLayer`](crate::KillSwitchLayer).
///
/// `poll_ready` is the inner service's: the switch never makes it wait. While the switch is
/// halted, `call` does not call the inner service; it returns a future that fails at once with
/// [`Halted`](battlement_core::error::Halted) (like `tower::load_shed`, the rejection is made in
/// the response future, since inside an axum router `poll_ready` is always ready). While running,
/// `call` costs one atomic load and allocates nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_kill_switch::{Halted, KillSwitchService, KillSwitch};
/// use tower::{service_fn, ServiceExt};
///
/// let switch = KillSwitch::builder("db").build().unwrap();
/// let svc = KillSwitchService::new(
///     service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) }),
///     switch.clone(),
/// );
/// assert_eq!(svc.clone().oneshot(21).await.unwrap(), 42);
/// switch.halt("migration");
/// let err = svc.oneshot(1).await.unwrap_err();
/// assert!(err.downcast_ref::<Halted>().is_some());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KillSwitchService<S> {
    inner: S,
    switch: KillSwitch,
}

impl<S> KillSwitchService<S> {
    /// Guards `inner` with `switch`.
    pub fn new(inner: S, switch: KillSwitch) -> Self {
        KillSwitchService { inner, switch }
    }

    /// The switch.
    pub fn switch(&self) -> &KillSwitch {
        &self.switch
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, Req> Service<Req> for KillSwitchService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.switch.check() {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(halted) => ResponseFuture::rejected(halted),
        }
    }
}
