//! The fallback `tower::Service`.

use crate::future::ResponseFuture;
use crate::source::FallbackSource;
use battlement_core::{BoxError, Classify, ResultClassifier};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

pub(crate) struct Shared<C> {
    pub(crate) name: Arc<str>,
    pub(crate) classifier: C,
    pub(crate) on_rejected: bool,
}

impl<C> fmt::Debug for Shared<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("on_rejected", &self.on_rejected)
            .finish_non_exhaustive()
    }
}

/// A service with a fallback; made by [`FallbackLayer`](crate::FallbackLayer).
///
/// `poll_ready` is the inner service's (an error there is returned as is: no call was made, so
/// there is nothing to fall back from). `call` prepares the fallback (for
/// [`FallbackTo`](crate::FallbackTo), clones the request), calls the inner service and
/// classifies the result; a failure is answered by the fallback. Successes and
/// [`Ignored`](battlement_core::Outcome::Ignored) outcomes pass through unchanged.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_core::BoxError;
/// use battlement_fallback::{FallbackInput, FallbackService, FallbackFn};
/// use tower::{service_fn, ServiceExt};
///
/// let svc = FallbackService::new(
///     service_fn(|q: &'static str| async move { Err::<String, BoxError>(format!("{q}: down").into()) }),
///     FallbackFn::new(|input: FallbackInput<String>| Ok(format!("cached ({})", input.error().unwrap()))),
/// );
/// assert_eq!(svc.oneshot("price").await.unwrap(), "cached (price: down)");
/// # }
/// ```
pub struct FallbackService<S, F, C = ResultClassifier> {
    inner: S,
    source: F,
    shared: Arc<Shared<C>>,
}

impl<S, F> FallbackService<S, F> {
    /// Wraps `inner` with `source`, the default classifier, falling back on rejections too.
    pub fn new(inner: S, source: F) -> Self {
        Self::from_parts(inner, source, Arc::from("fallback"), ResultClassifier, true)
    }
}

impl<S, F, C> FallbackService<S, F, C> {
    pub(crate) fn from_parts(
        inner: S,
        source: F,
        name: Arc<str>,
        classifier: C,
        on_rejected: bool,
    ) -> Self {
        FallbackService {
            inner,
            source,
            shared: Arc::new(Shared {
                name,
                classifier,
                on_rejected,
            }),
        }
    }

    /// The fallback source.
    pub fn source(&self) -> &F {
        &self.source
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S: Clone, F: Clone, C> Clone for FallbackService<S, F, C> {
    fn clone(&self) -> Self {
        FallbackService {
            inner: self.inner.clone(),
            source: self.source.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, F: fmt::Debug, C> fmt::Debug for FallbackService<S, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackService")
            .field("inner", &self.inner)
            .field("source", &self.source)
            .field("name", &self.shared.name)
            .field("on_rejected", &self.shared.on_rejected)
            .finish()
    }
}

impl<S, F, C, Req> Service<Req> for FallbackService<S, F, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: FallbackSource<Req, S::Response>,
    C: Classify<S::Response, BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, F::Pending, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let pending = self.source.prepare(&req);
        ResponseFuture::new(self.inner.call(req), pending, self.shared.clone())
    }
}
