//! The probe's response future.

use crate::window::Stripe;
use battlement_core::stripe::CachePadded;
use battlement_core::{Finish, Outcome, Settle};
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

/// A call through a [`HealthProbeService`](crate::HealthProbeService), until its outcome is
/// recorded into the probe.
///
/// The probe's response future hands it to the classifier ([`battlement_core::Settle`]) when the
/// response arrives: most classifiers record at once; the `GrpcClassifier` on an HTTP response
/// whose status comes in trailers keeps it in the response body until the end of stream. The
/// latency recorded runs until the outcome is known (the end of stream, for those). Dropped
/// without being finished, it records nothing.
pub struct ProbeRecord {
    stripe: Arc<CachePadded<Stripe>>,
    start: Instant,
}

impl Finish for ProbeRecord {
    #[inline]
    fn finish(self, outcome: Outcome) {
        let success = match outcome {
            Outcome::Success => true,
            Outcome::Failure(_) => false,
            Outcome::Ignored => return,
        };
        let now = Instant::now();
        self.stripe
            .record(success, now.saturating_duration_since(self.start), now);
    }
}

impl fmt::Debug for ProbeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeRecord")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Settle<T, E>,
{
    type Output = Result<C::Response<ProbeRecord>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        let stripe = this
            .stripe
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(this.classifier.settle(
            result,
            ProbeRecord {
                stripe,
                start: *this.start,
            },
        ))
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

#[cfg(test)]
mod tests {
    //! How the probe applies its classifier: by default to the response's type, and with the
    //! `GrpcClassifier` at the end of a gRPC stream.

    use crate::{HealthProbe, HealthProbeLayer};
    use battlement_core::GrpcClassifier;
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use tower::{service_fn, Layer, ServiceExt};

    fn probe() -> HealthProbe {
        HealthProbe::builder("upstream").build().unwrap()
    }

    /// An HTTP service's 500s are failures with the default classification (`new`, `layer()`).
    #[tokio::test(start_paused = true)]
    async fn default_probe_counts_http_500_as_failure() {
        for via_handle in [false, true] {
            let probe = probe();
            let layer = if via_handle {
                probe.layer()
            } else {
                HealthProbeLayer::new(&probe)
            };
            let svc = layer.layer(service_fn(|req: http::Request<u16>| async move {
                let code = *req.body();
                Ok::<_, Infallible>(http::Response::builder().status(code).body(()).unwrap())
            }));
            for code in [500u16, 500, 503, 429, 200, 404] {
                let res = svc.clone().oneshot(http::Request::new(code)).await.unwrap();
                assert_eq!(res.status(), code);
            }
            let stats = probe.metrics();
            assert_eq!((stats.failures, stats.successes), (4, 2));
        }
    }

    type Body =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    /// A gRPC server streaming a message, then `grpc-status` `code` in trailers.
    fn grpc_stream(code: &'static str) -> http::Response<Body> {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static(code));
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"message"))),
            Ok(Frame::trailers(trailers)),
        ];
        http::Response::builder()
            .header("content-type", "application/grpc")
            .body(StreamBody::new(futures::stream::iter(frames)))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_trailers_are_recorded_at_end_of_stream() {
        let probe = probe();
        let svc = HealthProbeLayer::new(&probe)
            .classifier(GrpcClassifier)
            .layer(service_fn(|code: &'static str| async move {
                Ok::<_, Infallible>(grpc_stream(code))
            }));
        let res = svc.clone().oneshot("14").await.unwrap();
        assert_eq!(probe.metrics().failures, 0, "not before the end of stream");
        res.into_body().collect().await.unwrap();
        assert_eq!(probe.metrics().failures, 1);

        let res = svc.clone().oneshot("0").await.unwrap();
        res.into_body().collect().await.unwrap();
        assert_eq!(probe.metrics().successes, 1);

        // Dropped mid-stream: nothing is recorded.
        let res = svc.clone().oneshot("14").await.unwrap();
        let mut body = res.into_body();
        assert!(body.frame().await.unwrap().unwrap().is_data());
        drop(body);
        let stats = probe.metrics();
        assert_eq!((stats.failures, stats.successes), (1, 1));
    }
}
