//! gRPC classification (feature `grpc`).

use crate::error::{failure_kind, AsDynError};
use crate::{Classify, FailureKind, Finish, Outcome, ResponseOutcome, Settle};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tonic::Code;

/// The outcome a gRPC status code maps to.
///
/// `OK` succeeds; `DEADLINE_EXCEEDED` is a timeout; `UNAVAILABLE` a connection failure;
/// `RESOURCE_EXHAUSTED` rate limiting; `INTERNAL`, `UNKNOWN` and `DATA_LOSS` server errors.
/// Codes that describe the caller's request (`INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`,
/// `PERMISSION_DENIED`, `UNAUTHENTICATED`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`,
/// `UNIMPLEMENTED`, `ABORTED`, `CANCELLED`) are ignored: they say nothing of the server's health.
pub fn code_outcome(code: Code) -> Outcome {
    crate::http::grpc_status_outcome(code as i32)
}

/// Classifies gRPC calls: `tonic::Status` errors and HTTP responses carrying a `grpc-status`
/// header (trailers-only responses) by [`code_outcome`]; other errors by the default rules.
///
/// With the breaker and the health probe (`circuit_breaker_with(&breaker, GrpcClassifier)`,
/// `.classifier(GrpcClassifier)`), an `http::Response<B>` whose head does not decide (a 200
/// without `grpc-status`: the status comes in trailers, after the messages) is judged at end of
/// stream: the response's body becomes a [`GrpcBody`] holding the breaker's call (or the
/// probe's record) until the trailers' `grpc-status` arrives. A stream that ends without one
/// counts as `UNKNOWN` (a server error), as tonic reports it; a body error fails with kind
/// `Other`; a body dropped before its end counts as nothing. When the head decides, the body is
/// wrapped all the same (the type is fixed) but holds nothing.
///
/// As a plain [`Classify`] (retry, fallback), it reads the head only.
///
/// ```
/// use battlement_core::{Classify, FailureKind, GrpcClassifier, Outcome};
///
/// let status = tonic::Status::unavailable("down");
/// assert_eq!(
///     Classify::<(), _>::classify(&GrpcClassifier, Err(&status)),
///     Outcome::Failure(FailureKind::Connection)
/// );
/// let status = tonic::Status::not_found("no such user");
/// assert_eq!(Classify::<(), _>::classify(&GrpcClassifier, Err(&status)), Outcome::Ignored);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcClassifier;

fn classify_error<E: AsDynError>(e: &E) -> Outcome {
    let err = e.as_dyn_error();
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            return code_outcome(status.code());
        }
        current = e.source();
    }
    Outcome::Failure(failure_kind(err))
}

impl<E: AsDynError> Classify<tonic::Status, E> for GrpcClassifier {
    fn classify(&self, result: Result<&tonic::Status, &E>) -> Outcome {
        match result {
            Ok(status) => code_outcome(status.code()),
            Err(e) => classify_error(e),
        }
    }
}

impl<T, E: AsDynError> Classify<tonic::Response<T>, E> for GrpcClassifier {
    fn classify(&self, result: Result<&tonic::Response<T>, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => classify_error(e),
        }
    }
}

impl<B, E: AsDynError> Classify<http::Response<B>, E> for GrpcClassifier {
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
        match result {
            Ok(res) => head_outcome(res).unwrap_or(Outcome::Success),
            Err(e) => classify_error(e),
        }
    }
}

/// The outcome a gRPC response's head decides, or `None` when the status is to come in
/// trailers.
#[inline]
fn head_outcome<B>(res: &http::Response<B>) -> Option<Outcome> {
    if !res.status().is_success() {
        return Some(Outcome::Failure(crate::classify::status_failure_kind(
            res.status().as_u16(),
        )));
    }
    crate::http::grpc_status_in(res.headers())
}

/// What a gRPC stream that ends without a `grpc-status` counts as: `UNKNOWN`, as tonic reads it.
fn missing_status() -> Outcome {
    code_outcome(Code::Unknown)
}

impl<B, E> Settle<http::Response<B>, E> for GrpcClassifier
where
    B: Body,
    E: AsDynError,
{
    type Response<F: Finish> = http::Response<GrpcBody<B, F>>;

    #[inline]
    fn decide(&self, result: Result<&http::Response<B>, &E>) -> Option<Outcome> {
        match result {
            Ok(res) => match head_outcome(res) {
                Some(outcome) => Some(outcome),
                None if res.body().is_end_stream() => Some(missing_status()),
                None => None,
            },
            Err(e) => Some(classify_error(e)),
        }
    }

    #[inline]
    fn respond<F: Finish>(
        &self,
        result: Result<http::Response<B>, E>,
        finish: Option<F>,
    ) -> Result<Self::Response<F>, E> {
        result.map(|res| res.map(|inner| GrpcBody { inner, finish }))
    }
}

macro_rules! settle_at_once {
    ($($ty:ty => [$($gen:ident),*]),* $(,)?) => {
        $(
            impl<$($gen,)* E: AsDynError> Settle<$ty, E> for GrpcClassifier {
                type Response<F: Finish> = $ty;

                #[inline]
                fn decide(&self, result: Result<&$ty, &E>) -> Option<Outcome> {
                    Some(self.classify(result))
                }

                #[inline]
                fn respond<F: Finish>(&self, result: Result<$ty, E>, _: Option<F>) -> Result<$ty, E> {
                    result
                }
            }
        )*
    };
}

settle_at_once!(tonic::Status => [], tonic::Response<T> => [T], () => []);

pin_project! {
    /// A gRPC response body that records the call's outcome at its end, from the trailers'
    /// `grpc-status`; made by [`GrpcClassifier`] under the breaker and the health probe.
    ///
    /// Frames pass through unchanged. It finishes the call when the trailers arrive (by their
    /// `grpc-status`), when the stream ends without them (as `UNKNOWN`), or when the body fails
    /// (kind `Other`). Dropped before any of these, it counts the call as nothing and releases
    /// what it held (a half-open trial permit).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_core::{error::BoxError, Finish, GrpcClassifier, Outcome, Settle};
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, StreamBody};
    /// use http_body::Frame;
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Clone, Default)]
    /// struct Seen(Arc<Mutex<Option<Outcome>>>);
    /// impl Finish for Seen {
    ///     fn finish(self, outcome: Outcome) { *self.0.lock().unwrap() = Some(outcome); }
    /// }
    ///
    /// let mut trailers = http::HeaderMap::new();
    /// trailers.insert("grpc-status", "14".parse().unwrap()); // UNAVAILABLE, after a message
    /// let frames = vec![
    ///     Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"msg"))),
    ///     Ok(Frame::trailers(trailers)),
    /// ];
    /// let res = http::Response::new(StreamBody::new(futures::stream::iter(frames)));
    /// let seen = Seen::default();
    /// let res = GrpcClassifier.settle(Ok::<_, BoxError>(res), seen.clone()).unwrap();
    /// assert_eq!(*seen.0.lock().unwrap(), None); // the head did not decide
    /// res.into_body().collect().await.unwrap();
    /// assert!(seen.0.lock().unwrap().unwrap().is_failure());
    /// # }
    /// ```
    pub struct GrpcBody<B, F> {
        #[pin]
        inner: B,
        finish: Option<F>,
    }
}

impl<B, F> GrpcBody<B, F> {
    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Whether the call's outcome is still to be recorded (the head did not decide it and the
    /// stream has not ended).
    pub fn is_pending(&self) -> bool {
        self.finish.is_some()
    }
}

/// An empty body that records nothing (what an error-mapping layer such as the facade's
/// `GrpcErrorLayer` builds for a trailers-only error response).
impl<B: Default, F> Default for GrpcBody<B, F> {
    fn default() -> Self {
        GrpcBody {
            inner: B::default(),
            finish: None,
        }
    }
}

impl<B: fmt::Debug, F> fmt::Debug for GrpcBody<B, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcBody")
            .field("inner", &self.inner)
            .field("pending", &self.finish.is_some())
            .finish()
    }
}

impl<B: Body, F: Finish> Body for GrpcBody<B, F> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let frame = ready!(inner.as_mut().poll_frame(cx));
        if this.finish.is_some() {
            let outcome = match &frame {
                Some(Ok(frame)) => match frame.trailers_ref() {
                    Some(trailers) => {
                        Some(crate::http::grpc_status_in(trailers).unwrap_or_else(missing_status))
                    }
                    // A data frame; if the body now says it has ended, no trailers will come.
                    None if inner.is_end_stream() => Some(missing_status()),
                    None => None,
                },
                Some(Err(_)) => Some(Outcome::Failure(FailureKind::Other)),
                None => Some(missing_status()),
            };
            if let Some(outcome) = outcome {
                if let Some(finish) = this.finish.take() {
                    finish.finish(outcome);
                }
            }
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
impl<E: AsDynError> Classify<(), E> for GrpcClassifier {
    fn classify(&self, result: Result<&(), &E>) -> Outcome {
        match result {
            Ok(()) => Outcome::Success,
            Err(e) => classify_error(e),
        }
    }
}

/// By its code, as [`code_outcome`] maps it: a `Status` returned as a value counts as one.
impl ResponseOutcome for tonic::Status {
    fn outcome(&self) -> Outcome {
        code_outcome(self.code())
    }
}

/// A `tonic::Response` is an `OK` answer.
impl<T> ResponseOutcome for tonic::Response<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BoxError;

    #[test]
    fn header_codes() {
        let res = http::Response::builder()
            .header("grpc-status", "4")
            .body(())
            .unwrap();
        assert_eq!(
            Classify::<_, BoxError>::classify(&GrpcClassifier, Ok(&res)),
            Outcome::Failure(FailureKind::Timeout)
        );
        let res = http::Response::builder()
            .header("grpc-status", "5")
            .body(())
            .unwrap();
        assert_eq!(
            Classify::<_, BoxError>::classify(&GrpcClassifier, Ok(&res)),
            Outcome::Ignored
        );
    }

    use bytes::Bytes;
    use futures::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::{Arc, Mutex};

    /// Records the outcome it finishes with; counts drops without one.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<Outcome>>>);
    impl Finish for Seen {
        fn finish(self, outcome: Outcome) {
            self.0.lock().unwrap().push(outcome);
        }
    }
    impl Seen {
        fn get(&self) -> Vec<Outcome> {
            self.0.lock().unwrap().clone()
        }
    }

    type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;

    type Streamed =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

    fn streamed(frames: Frames) -> http::Response<Streamed> {
        http::Response::new(StreamBody::new(futures::stream::iter(frames)))
    }

    fn trailers(code: &str) -> Result<Frame<Bytes>, std::io::Error> {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", code.parse().unwrap());
        Ok(Frame::trailers(t))
    }

    fn data() -> Result<Frame<Bytes>, std::io::Error> {
        Ok(Frame::data(Bytes::from_static(b"message")))
    }

    #[tokio::test]
    async fn trailers_decide_at_end_of_stream() {
        for (code, want) in [
            ("14", Outcome::Failure(FailureKind::Connection)),
            ("0", Outcome::Success),
            ("5", Outcome::Ignored),
        ] {
            let seen = Seen::default();
            let res = GrpcClassifier
                .settle(
                    Ok::<_, BoxError>(streamed(vec![data(), trailers(code)])),
                    seen.clone(),
                )
                .unwrap();
            assert!(res.body().is_pending());
            assert!(seen.get().is_empty(), "the head does not decide");
            let collected = res.into_body().collect().await.unwrap();
            assert_eq!(collected.trailers().unwrap()["grpc-status"], code);
            assert_eq!(seen.get(), vec![want], "grpc-status {code}");
        }
    }

    #[tokio::test]
    async fn missing_status_and_body_errors_fail() {
        let seen = Seen::default();
        let res = GrpcClassifier
            .settle(Ok::<_, BoxError>(streamed(vec![data()])), seen.clone())
            .unwrap();
        res.into_body().collect().await.unwrap();
        assert_eq!(seen.get(), vec![Outcome::Failure(FailureKind::ServerError)]);

        let seen = Seen::default();
        let broken = vec![data(), Err(std::io::Error::other("reset"))];
        let res = GrpcClassifier
            .settle(Ok::<_, BoxError>(streamed(broken)), seen.clone())
            .unwrap();
        assert!(res.into_body().collect().await.is_err());
        assert_eq!(seen.get(), vec![Outcome::Failure(FailureKind::Other)]);
    }

    #[tokio::test]
    async fn dropped_mid_stream_counts_nothing() {
        let seen = Seen::default();
        let res = GrpcClassifier
            .settle(
                Ok::<_, BoxError>(streamed(vec![data(), data(), trailers("14")])),
                seen.clone(),
            )
            .unwrap();
        let mut body = res.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
        assert!(seen.get().is_empty());
        assert_eq!(Arc::strong_count(&seen.0), 1, "the finisher was released");
    }

    #[tokio::test]
    async fn head_decides_without_holding_the_finisher() {
        let seen = Seen::default();
        let mut res = streamed(vec![]);
        res.headers_mut()
            .insert("grpc-status", "14".parse().unwrap());
        let res = GrpcClassifier
            .settle(Ok::<_, BoxError>(res), seen.clone())
            .unwrap();
        assert!(!res.body().is_pending());
        assert_eq!(seen.get(), vec![Outcome::Failure(FailureKind::Connection)]);

        let seen = Seen::default();
        let mut res = streamed(vec![data(), trailers("0")]);
        *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        let res = GrpcClassifier
            .settle(Ok::<_, BoxError>(res), seen.clone())
            .unwrap();
        assert!(!res.body().is_pending());
        assert_eq!(seen.get(), vec![Outcome::Failure(FailureKind::ServerError)]);
        // The rest of the body passes through without recording again.
        let frames: Vec<_> = res.into_body().into_data_stream().collect().await;
        assert_eq!(frames.len(), 1);
        assert_eq!(seen.get().len(), 1);
    }

    #[test]
    fn mapping_matches_tonic_codes() {
        for code in 0..=20 {
            assert_eq!(
                crate::http::grpc_status_outcome(code),
                match Code::from_i32(code) {
                    Code::Ok => Outcome::Success,
                    Code::DeadlineExceeded => Outcome::Failure(FailureKind::Timeout),
                    Code::Unavailable => Outcome::Failure(FailureKind::Connection),
                    Code::ResourceExhausted => Outcome::Failure(FailureKind::RateLimited),
                    Code::Internal | Code::Unknown | Code::DataLoss =>
                        Outcome::Failure(FailureKind::ServerError),
                    _ => Outcome::Ignored,
                },
                "{code}"
            );
        }
    }

    #[test]
    fn boxed_status_is_read() {
        let err: BoxError = Box::new(tonic::Status::resource_exhausted("slow down"));
        assert_eq!(
            Classify::<(), _>::classify(&GrpcClassifier, Err(&err)),
            Outcome::Failure(FailureKind::RateLimited)
        );
    }
}
