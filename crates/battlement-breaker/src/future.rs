//! The breaker's response future.

use crate::guard::CallGuard;
use battlement_core::error::BreakerOpen;
use battlement_core::{BoxError, Settle};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The future of a call through a [`CircuitBreakerService`](crate::CircuitBreakerService).
    ///
    /// When it finishes it records the call's outcome; dropped before that, it counts as neither
    /// success nor failure and returns any half-open trial permit it held.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Admitted {
            #[pin]
            future: F,
            guard: CallGuard,
            classifier: C,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    /// The future of a call admitted or rejected by
    /// [`CircuitBreaker::try_call`](crate::CircuitBreaker::try_call): `Ok` holds the inner
    /// service's future and the call's guard, `Err` the rejection.
    #[inline]
    pub fn new(call: Result<(F, CallGuard), BreakerOpen>, classifier: C) -> Self {
        match call {
            Ok((future, guard)) => Self::admitted(future, guard, classifier),
            Err(open) => Self::rejected(open),
        }
    }

    #[inline]
    pub(crate) fn admitted(future: F, guard: CallGuard, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Admitted {
                future,
                guard,
                classifier,
            },
        }
    }

    pub(crate) fn rejected(error: BreakerOpen) -> Self {
        // Boxed here rather than when polled: the same one allocation, and a smaller future.
        ResponseFuture {
            kind: Kind::Rejected {
                error: Some(Box::new(error)),
            },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Settle<T, BoxError>,
{
    type Output = Result<C::Response<CallGuard>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Admitted {
                future,
                guard,
                classifier,
            } => {
                assert!(!guard.is_done(), "ResponseFuture polled after completion");
                let result = ready!(future.poll(cx)).map_err(Into::into);
                // Recorded in place when the result decides (the response stays where it is);
                // else the call goes with the response's body.
                let later = match classifier.decide(result.as_ref()) {
                    Some(outcome) => {
                        guard.record(outcome);
                        None
                    }
                    None => Some(guard.hand_off()),
                };
                Poll::Ready(classifier.respond(result, later))
            }
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Admitted { .. } => "admitted",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! How the breaker applies its classifier: by default to the response's type, and with the
    //! `GrpcClassifier` at the end of a gRPC stream.

    use crate::{CircuitBreaker, CircuitBreakerLayer, State};
    use battlement_core::GrpcClassifier;
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use std::time::Duration;
    use tower::{service_fn, Layer, ServiceExt};

    fn new_breaker() -> CircuitBreaker {
        CircuitBreaker::builder("upstream")
            .minimum_calls(4)
            .failure_rate_threshold(0.5)
            .fixed_open_wait(Duration::from_secs(10))
            .half_open_calls(1, 1)
            .build()
            .unwrap()
    }

    fn answering(
        code: u16,
    ) -> impl tower::Service<
        http::Request<()>,
        Response = http::Response<()>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        service_fn(move |_req: http::Request<()>| async move {
            Ok::<_, Infallible>(http::Response::builder().status(code).body(()).unwrap())
        })
    }

    /// The default classifier judges an `http::Response` by status: a handler that answers 500
    /// (an `Ok` response) opens the breaker, through `new`, `layer()` alike.
    #[tokio::test(start_paused = true)]
    async fn default_layer_counts_http_500_as_failure() {
        for via_handle in [false, true] {
            let breaker = new_breaker();
            let layer = if via_handle {
                breaker.layer()
            } else {
                CircuitBreakerLayer::new(&breaker)
            };
            let svc = layer.layer(answering(500));
            for _ in 0..4 {
                let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
                assert_eq!(res.status(), 500);
            }
            assert_eq!(breaker.state(), State::Open);
            assert_eq!(breaker.metrics().failures, 4);
            let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
            assert!(err.is::<crate::BreakerOpen>());
        }
        // 404s and 200s are not failures.
        let breaker = new_breaker();
        let svc = breaker.layer().layer(answering(404));
        for _ in 0..8 {
            svc.clone().oneshot(http::Request::new(())).await.unwrap();
        }
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(breaker.metrics().successes, 8);
    }

    /// A gRPC trailers-only error (grpc-status in the head of a 200) fails on the default path.
    #[tokio::test(start_paused = true)]
    async fn default_layer_reads_grpc_status_in_the_head() {
        let breaker = new_breaker();
        let svc = breaker
            .layer()
            .layer(service_fn(|_req: http::Request<()>| async {
                Ok::<_, Infallible>(
                    http::Response::builder()
                        .header("content-type", "application/grpc")
                        .header("grpc-status", "14")
                        .body(())
                        .unwrap(),
                )
            }));
        for _ in 0..4 {
            svc.clone().oneshot(http::Request::new(())).await.unwrap();
        }
        assert_eq!(breaker.state(), State::Open);
    }

    /// Polling a finished call again is a bug in the caller: it panics rather than record the
    /// call twice.
    #[test]
    #[should_panic(expected = "ResponseFuture polled after completion")]
    fn polled_after_completion_panics() {
        use std::future::Future;
        use tower::Service;
        let breaker = new_breaker();
        let mut svc = breaker.layer().layer(service_fn(|x: u32| {
            std::future::ready(Ok::<_, Infallible>(x))
        }));
        let mut call = std::pin::pin!(svc.call(1));
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        assert!(call.as_mut().poll(&mut cx).is_ready());
        assert_eq!(breaker.metrics().successes, 1);
        let _ = call.as_mut().poll(&mut cx);
    }

    type Frames = Vec<Result<Frame<Bytes>, Infallible>>;
    type Streamed =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    /// A gRPC server that streams a message, then its status in trailers.
    fn streaming(
        code: &'static str,
    ) -> impl tower::Service<
        http::Request<()>,
        Response = http::Response<Streamed>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        service_fn(move |_req: http::Request<()>| async move {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static(code));
            let frames: Frames = vec![
                Ok(Frame::data(Bytes::from_static(b"message"))),
                Ok(Frame::trailers(trailers)),
            ];
            Ok::<_, Infallible>(
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(StreamBody::new(futures::stream::iter(frames)))
                    .unwrap(),
            )
        })
    }

    /// A call judged at the end of its stream is timed to the response's head: a body that
    /// takes long does not make it slow, a late head does.
    #[tokio::test(start_paused = true)]
    async fn grpc_stream_is_timed_to_its_head() {
        let breaker = CircuitBreaker::builder("upstream")
            .slow_call(Duration::from_millis(100), 1.0)
            .minimum_calls(100)
            .build()
            .unwrap();
        let layer = CircuitBreakerLayer::new(&breaker).classifier(GrpcClassifier);
        let res = layer
            .layer(streaming("0"))
            .oneshot(http::Request::new(()))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        res.into_body().collect().await.unwrap();
        let m = breaker.metrics();
        assert_eq!((m.successes, m.slow_calls), (1, 0));

        let late = service_fn(|req: http::Request<()>| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            streaming("0").oneshot(req).await
        });
        let res = layer
            .layer(late)
            .oneshot(http::Request::new(()))
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
        let m = breaker.metrics();
        assert_eq!((m.successes, m.slow_calls), (2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_status_in_trailers_counts_at_end_of_stream() {
        let breaker = new_breaker();
        let svc = CircuitBreakerLayer::new(&breaker)
            .classifier(GrpcClassifier)
            .layer(streaming("14"));
        for i in 0..4 {
            let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
            // Nothing is counted until the body ends.
            assert!(res.body().is_pending());
            assert_eq!(breaker.metrics().failures, i);
            let body = res.into_body().collect().await.unwrap();
            assert_eq!(body.trailers().unwrap()["grpc-status"], "14");
        }
        assert_eq!(breaker.metrics().failures, 4);
        assert_eq!(breaker.state(), State::Open);

        let breaker = new_breaker();
        let svc = CircuitBreakerLayer::new(&breaker)
            .classifier(GrpcClassifier)
            .layer(streaming("0"));
        for _ in 0..6 {
            let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
            res.into_body().collect().await.unwrap();
        }
        assert_eq!(breaker.metrics().successes, 6);
        assert_eq!(breaker.state(), State::Closed);
    }

    /// A stream dropped before its end counts as nothing, and a half-open trial permit it held
    /// is returned, so the next call can be the trial.
    #[tokio::test(start_paused = true)]
    async fn grpc_stream_dropped_mid_way_counts_nothing() {
        let breaker = new_breaker();
        let svc = CircuitBreakerLayer::new(&breaker)
            .classifier(GrpcClassifier)
            .layer(streaming("14"));
        let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
        let mut body = res.into_body();
        assert!(body.frame().await.unwrap().unwrap().is_data());
        drop(body);
        let m = breaker.metrics();
        assert_eq!((m.successes, m.failures, m.cancelled), (0, 0, 1));

        // Half-open with one trial permit: a dropped trial stream hands it back.
        breaker.force_open("test");
        breaker.reset();
        for _ in 0..4 {
            let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
            res.into_body().collect().await.unwrap();
        }
        assert_eq!(breaker.state(), State::Open);
        tokio::time::advance(Duration::from_secs(11)).await;
        let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(breaker.state(), State::HalfOpen);
        drop(res);
        // The permit is back: another trial is admitted (and, failing, reopens the breaker).
        let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
        res.into_body().collect().await.unwrap();
        assert_eq!(breaker.state(), State::Open);
    }
}
