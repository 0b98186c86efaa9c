//! The response future of a call to a watched endpoint.

use crate::detector::Membership;
use crate::ClassifyEndpoint;
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The future of a call through an [`OutlierService`](crate::OutlierService): the inner
    /// future, the endpoint's membership and the classifier, no boxing. When the inner future
    /// finishes it records the call's [`Verdict`](crate::Verdict) for its endpoint; dropped
    /// before that (cancelled), the call counts for nothing.
    pub struct ResponseFuture<F, C> {
        #[pin]
        future: F,
        membership: Option<Arc<Membership>>,
        classifier: C,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(future: F, membership: Arc<Membership>, classifier: C) -> Self {
        ResponseFuture {
            future,
            membership: Some(membership),
            classifier,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: ClassifyEndpoint<T, BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx)).map_err(Into::into);
        if let Some(membership) = this.membership.take() {
            membership.record(this.classifier.verdict(result.as_ref()));
        }
        Poll::Ready(result)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field(
                "endpoint",
                &self.membership.as_ref().map(|m| m.endpoint.label.clone()),
            )
            .finish()
    }
}
