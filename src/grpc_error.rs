//! Turning battlement's errors into gRPC statuses (feature `grpc`).

use battlement_core::error::{
    BreakerOpen, BulkheadFull, BulkheadTimeout, Elapsed, Halted, RateLimited, Throttled,
};
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tonic::{Code, Status};
use tower::{Layer, Service};

/// The gRPC status for a battlement error, walking the error's source chain: a breaker open, a
/// halt or an adaptive throttle's local rejection (its dependency is refusing calls, as with an
/// open breaker) is `UNAVAILABLE`, a full bulkhead or a rate limit `RESOURCE_EXHAUSTED`, a timeout `DEADLINE_EXCEEDED`.
/// `None` if the error is not one of battlement's.
///
/// ```
/// use battlement::grpc_error::grpc_status;
/// use battlement::core::error::BulkheadFull;
///
/// let status = grpc_status(&BulkheadFull::new("db".into())).unwrap();
/// assert_eq!(status.code(), tonic::Code::ResourceExhausted);
/// ```
pub fn grpc_status(err: &(dyn Error + 'static)) -> Option<Status> {
    let mut current = Some(err);
    while let Some(e) = current {
        let code = if e.is::<BreakerOpen>() || e.is::<Halted>() || e.is::<Throttled>() {
            Some(Code::Unavailable)
        } else if e.is::<BulkheadFull>() || e.is::<BulkheadTimeout>() || e.is::<RateLimited>() {
            Some(Code::ResourceExhausted)
        } else if e.is::<Elapsed>()
            || e.is::<tower::timeout::error::Elapsed>()
            || e.is::<tokio::time::error::Elapsed>()
        {
            Some(Code::DeadlineExceeded)
        } else {
            None
        };
        if let Some(code) = code {
            return Some(Status::new(code, e.to_string()));
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return grpc_status(inner);
        }
        current = e.source();
    }
    None
}

/// A layer for tonic servers that answers battlement's errors (and any other error, as
/// `tonic::Status::from_error` would) with a trailers-only gRPC response, so the stack is
/// infallible.
///
/// ```
/// use battlement::grpc_error::GrpcErrorLayer;
/// use tower::ServiceBuilder;
///
/// let layer = ServiceBuilder::new().layer(GrpcErrorLayer::new());
/// # drop(layer);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcErrorLayer;

impl GrpcErrorLayer {
    /// The layer.
    pub fn new() -> Self {
        GrpcErrorLayer
    }
}

impl<S> Layer<S> for GrpcErrorLayer {
    type Service = GrpcError<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcError { inner }
    }
}

/// The service made by [`GrpcErrorLayer`].
#[derive(Debug, Clone)]
pub struct GrpcError<S> {
    inner: S,
}

impl<S, Req, B> Service<Req> for GrpcError<S>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Default,
{
    type Response = http::Response<B>;
    type Error = Infallible;
    type Future = GrpcErrorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        GrpcErrorFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`GrpcError`].
    pub struct GrpcErrorFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> fmt::Debug for GrpcErrorFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcErrorFuture").finish_non_exhaustive()
    }
}

impl<F, E, B> Future for GrpcErrorFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    B: Default,
{
    type Output = Result<http::Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match ready!(self.project().inner.poll(cx)) {
            Ok(res) => res,
            Err(e) => {
                let err: BoxError = e.into();
                grpc_status(&*err)
                    .unwrap_or_else(|| Status::from_error(err))
                    .into_http()
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tower::{service_fn, ServiceExt};

    #[test]
    fn codes() {
        let code = |e: BoxError| grpc_status(&*e).map(|s| s.code());
        assert_eq!(
            code(Box::new(BreakerOpen::new("b".into(), None))),
            Some(Code::Unavailable)
        );
        assert_eq!(
            code(Box::new(BulkheadTimeout::new("b".into(), Duration::ZERO))),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(
            code(Box::new(Elapsed::new("t".into(), Duration::ZERO))),
            Some(Code::DeadlineExceeded)
        );
        assert_eq!(
            code(Box::new(RateLimited::new(
                "r".into(),
                Duration::from_secs(1),
                1,
                Duration::from_secs(1)
            ))),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(
            code(Box::new(Throttled::new("t".into(), 0.5))),
            Some(Code::Unavailable)
        );
        assert_eq!(code("other".into()), None);
    }

    #[tokio::test]
    async fn layer_writes_grpc_status_header() {
        let svc = GrpcErrorLayer::new().layer(service_fn(|_: ()| async {
            Err::<http::Response<String>, BoxError>(Box::new(BreakerOpen::new("b".into(), None)))
        }));
        let res = svc.oneshot(()).await.unwrap();
        assert_eq!(res.headers()["grpc-status"], "14");
    }
}
