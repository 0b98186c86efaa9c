//! The probe's response future.

use crate::window::Stripe;
use battlement_core::{Classify, Outcome};
use crossbeam_utils::CachePadded;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::time::Instant;

pin_project! {
    /// The future of a call through a [`HealthProbeService`](crate::HealthProbeService): the
    /// inner future, which records the call's outcome and latency when it finishes. Dropped
    /// before that, it records nothing.
    pub struct ResponseFuture<F, C> {
        #[pin]
        future: F,
        stripe: Option<Arc<CachePadded<Stripe>>>,
        classifier: C,
        start: Instant,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(
        future: F,
        stripe: Arc<CachePadded<Stripe>>,
        classifier: C,
        start: Instant,
    ) -> Self {
        ResponseFuture {
            future,
            stripe: Some(stripe),
            classifier,
            start,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let Some(stripe) = this.stripe.take() {
            let success = match this.classifier.classify(result.as_ref()) {
                Outcome::Success => Some(true),
                Outcome::Failure(_) => Some(false),
                Outcome::Ignored => None,
            };
            if let Some(success) = success {
                let now = Instant::now();
                stripe.record(success, now.saturating_duration_since(*this.start), now);
            }
        }
        Poll::Ready(result)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("start", &self.start)
            .field("finished", &self.stripe.is_none())
            .finish_non_exhaustive()
    }
}
