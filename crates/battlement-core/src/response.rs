//! Response-aware classification: how a successful (`Ok`) response counts.

use crate::error::{failure_kind, AsDynError};
use crate::{Classify, Outcome};

/// How a response that arrived (an `Ok` result) counts for the breaker and the health probe.
///
/// The default method says [`Outcome::Success`], so a type that is never a failure once it
/// arrived implements it in one line: `impl ResponseOutcome for MyReply {}`. Types whose value can
/// report a failure say so: `http::Response<B>` (feature `http`) fails for 5xx and 429 and reads
/// a `grpc-status` in its head (a gRPC trailers-only error response); `http::StatusCode` by the
/// same rule; `tonic::Status` (feature `grpc`) by its code.
///
/// It is implemented for the common std types (`()`, `bool`, the integers and floats, `char`,
/// `String`, `str`, `Vec<T>`, `Option<T>` and tuples up to four: always a success) and for the
/// transparent wrappers `&T`, `Box<T>` and `Arc<T>` (as `T` counts).
///
/// [`ResponseClassifier`], the default classifier of the breaker and the health probe, reads it;
/// a type that lacks it is a compile error that names this trait. Where you cannot implement it
/// (a foreign type), pass a classifier instead:
/// [`ResultClassifier`](crate::ResultClassifier) keeps "every `Ok` succeeds", or write your own
/// with [`classify_ok`](crate::classify_ok).
///
/// ```
/// use battlement_core::{FailureKind, Outcome, ResponseOutcome};
///
/// struct Reply { ok: bool }
/// impl ResponseOutcome for Reply {
///     fn outcome(&self) -> Outcome {
///         if self.ok { Outcome::Success } else { Outcome::Failure(FailureKind::ServerError) }
///     }
/// }
///
/// struct Row;
/// impl ResponseOutcome for Row {} // every Row that arrives is a success
///
/// assert_eq!(Reply { ok: false }.outcome(), Outcome::Failure(FailureKind::ServerError));
/// assert_eq!(Row.outcome(), Outcome::Success);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say how a response counts: it does not implement `ResponseOutcome`",
    label = "the breaker's and the health probe's default classifier reads `ResponseOutcome` on the response type",
    note = "implement it: `impl battlement_core::ResponseOutcome for {Self} {{}}` counts every response that arrives as a success; override `outcome` to fail some",
    note = "or pass a classifier: `.circuit_breaker_with(&breaker, ResultClassifier)` / `CircuitBreakerLayer::new(&breaker).classifier(ResultClassifier)` / `HealthProbeLayer::new(&probe).classifier(ResultClassifier)`"
)]
pub trait ResponseOutcome {
    /// How this response counts. Default: [`Outcome::Success`].
    #[inline]
    fn outcome(&self) -> Outcome {
        Outcome::Success
    }
}

macro_rules! always_success {
    ($($ty:ty),* $(,)?) => {
        $(impl ResponseOutcome for $ty {})*
    };
}

always_success!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    str,
    String,
);

impl<T> ResponseOutcome for Vec<T> {}
impl<T> ResponseOutcome for Option<T> {}
impl<A> ResponseOutcome for (A,) {}
impl<A, B> ResponseOutcome for (A, B) {}
impl<A, B, C> ResponseOutcome for (A, B, C) {}
impl<A, B, C, D> ResponseOutcome for (A, B, C, D) {}

impl<T: ResponseOutcome + ?Sized> ResponseOutcome for &T {
    #[inline]
    fn outcome(&self) -> Outcome {
        (**self).outcome()
    }
}

impl<T: ResponseOutcome + ?Sized> ResponseOutcome for Box<T> {
    #[inline]
    fn outcome(&self) -> Outcome {
        (**self).outcome()
    }
}

impl<T: ResponseOutcome + ?Sized> ResponseOutcome for std::sync::Arc<T> {
    #[inline]
    fn outcome(&self) -> Outcome {
        (**self).outcome()
    }
}

/// The breaker's and the health probe's default classifier: errors fail with the kind read from
/// their source chain (as [`ResultClassifier`](crate::ResultClassifier) does), and a response
/// that arrived counts as its type says through [`ResponseOutcome`].
///
/// So an axum or hyper service's `http::Response` is judged by status (5xx and 429 fail, with
/// the kinds of [`status_failure_kind`](crate::status_failure_kind)) and a gRPC trailers-only
/// error response by the `grpc-status` in its head, without naming a classifier. A gRPC status
/// that arrives in trailers, after data, is not seen on this path: the response has already
/// been handed on. Pass [`GrpcClassifier`](crate::GrpcClassifier) (feature `grpc`) to judge
/// streams at their end.
///
/// ```
/// use battlement_core::{error::BoxError, Classify, FailureKind, Outcome, ResponseClassifier};
///
/// # #[cfg(feature = "http")] {
/// let res = |code: u16| http::Response::builder().status(code).body(()).unwrap();
/// let classify = |code| Classify::<_, BoxError>::classify(&ResponseClassifier, Ok(&res(code)));
/// assert_eq!(classify(500), Outcome::Failure(FailureKind::ServerError));
/// assert_eq!(classify(429), Outcome::Failure(FailureKind::RateLimited));
/// assert_eq!(classify(404), Outcome::Success);
/// # }
/// // Plain values succeed; errors fail by their kind.
/// assert_eq!(Classify::<_, BoxError>::classify(&ResponseClassifier, Ok(&42u32)), Outcome::Success);
/// let err = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(
///     Classify::<u32, _>::classify(&ResponseClassifier, Err(&err)),
///     Outcome::Failure(FailureKind::Connection)
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseClassifier;

impl<Res: ResponseOutcome, E: AsDynError> Classify<Res, E> for ResponseClassifier {
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(res) => res.outcome(),
            Err(e) => Outcome::Failure(failure_kind(e.as_dyn_error())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BoxError;
    use crate::FailureKind;

    struct Custom(bool);
    impl ResponseOutcome for Custom {
        fn outcome(&self) -> Outcome {
            if self.0 {
                Outcome::Success
            } else {
                Outcome::Ignored
            }
        }
    }

    #[test]
    fn std_types_succeed_and_wrappers_delegate() {
        let c = ResponseClassifier;
        let ok = |o: Outcome| assert_eq!(o, Outcome::Success);
        ok(Classify::<_, BoxError>::classify(&c, Ok(&())));
        ok(Classify::<_, BoxError>::classify(&c, Ok(&String::new())));
        ok(Classify::<_, BoxError>::classify(&c, Ok(&vec![1u8])));
        ok(Classify::<_, BoxError>::classify(&c, Ok(&None::<u8>)));
        ok(Classify::<_, BoxError>::classify(
            &c,
            Ok(&(1u8, "a", 2.0f64)),
        ));
        assert_eq!(
            Classify::<_, BoxError>::classify(&c, Ok(&Box::new(Custom(false)))),
            Outcome::Ignored
        );
        assert_eq!(
            Classify::<_, BoxError>::classify(&c, Ok(&std::sync::Arc::new(Custom(false)))),
            Outcome::Ignored
        );
        assert_eq!(
            Classify::<_, BoxError>::classify(&c, Ok(&&Custom(true))),
            Outcome::Success
        );
        let err: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(
            Classify::<Custom, _>::classify(&c, Err(&err)),
            Outcome::Failure(FailureKind::Timeout)
        );
    }
}
