//! gRPC classification (feature `grpc`).

use crate::error::{failure_kind, AsDynError};
use crate::{Classify, FailureKind, Outcome};
use tonic::Code;

/// The outcome a gRPC status code maps to.
///
/// `OK` succeeds; `DEADLINE_EXCEEDED` is a timeout; `UNAVAILABLE` a connection failure;
/// `RESOURCE_EXHAUSTED` rate limiting; `INTERNAL`, `UNKNOWN` and `DATA_LOSS` server errors.
/// Codes that describe the caller's request (`INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`,
/// `PERMISSION_DENIED`, `UNAUTHENTICATED`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`,
/// `UNIMPLEMENTED`, `ABORTED`, `CANCELLED`) are ignored: they say nothing of the server's health.
pub fn code_outcome(code: Code) -> Outcome {
    match code {
        Code::Ok => Outcome::Success,
        Code::DeadlineExceeded => Outcome::Failure(FailureKind::Timeout),
        Code::Unavailable => Outcome::Failure(FailureKind::Connection),
        Code::ResourceExhausted => Outcome::Failure(FailureKind::RateLimited),
        Code::Internal | Code::Unknown | Code::DataLoss => {
            Outcome::Failure(FailureKind::ServerError)
        }
        _ => Outcome::Ignored,
    }
}

/// Classifies gRPC calls: `tonic::Status` errors and HTTP responses carrying a `grpc-status`
/// header (trailers-only responses) by [`code_outcome`]; other errors by the default rules.
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
            Ok(res) => {
                if !res.status().is_success() {
                    return Outcome::Failure(crate::classify::status_failure_kind(
                        res.status().as_u16(),
                    ));
                }
                match res.headers().get("grpc-status") {
                    Some(v) => match v.to_str().ok().and_then(|s| s.parse::<i32>().ok()) {
                        Some(code) => code_outcome(Code::from_i32(code)),
                        None => Outcome::Failure(FailureKind::Other),
                    },
                    // The status comes in trailers, after the body; the head alone succeeded.
                    None => Outcome::Success,
                }
            }
            Err(e) => classify_error(e),
        }
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

    #[test]
    fn boxed_status_is_read() {
        let err: BoxError = Box::new(tonic::Status::resource_exhausted("slow down"));
        assert_eq!(
            Classify::<(), _>::classify(&GrpcClassifier, Err(&err)),
            Outcome::Failure(FailureKind::RateLimited)
        );
    }
}
