//! The timeout's response future.

use battlement_core::error::Elapsed;
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

pin_project! {
    /// The future of a call through a [`TimeoutService`](crate::TimeoutService): the inner
    /// future raced against a timer, no boxing. Dropping it drops both.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        limit: Duration,
        name: &'static str,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, limit: Duration, name: &'static str) -> Self {
        ResponseFuture {
            inner,
            sleep: tokio::time::sleep(limit),
            limit,
            name,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!(timeout = this.name, limit = ?this.limit, "call timed out");
                Poll::Ready(Err(Box::new(Elapsed::new(
                    (*this.name).into(),
                    *this.limit,
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
