//! Adapter for `tower_http::classify` classifiers (feature `tower-http`).

use crate::classify::status_failure_kind;
use crate::error::{failure_kind, AsDynError};
use crate::{Classify, Outcome};
use tower_http::classify::{ClassifiedResponse, ClassifyResponse};

/// Uses a `tower_http::classify::ClassifyResponse` (for example
/// `ServerErrorsAsFailures`) as a battlement [`Classify`].
///
/// A response tower-http marks as a failure fails with the kind of its status code; a response
/// whose class is only known at end of stream (`ClassifiedResponse::RequiresEos`, as
/// `GrpcErrorsAsFailures` answers for gRPC) counts as a success here, since the head arrived:
/// this adapter judges at once and never wraps the body. To judge gRPC streams by the
/// `grpc-status` in their trailers, give the breaker or the health probe
/// `GrpcClassifier` (feature `grpc`) instead. Errors are classified by battlement's default
/// rules (by type, not by text).
///
/// ```
/// use battlement_core::{Classify, FailureKind, Outcome, TowerHttpClassifier, error::BoxError};
/// use tower_http::classify::ServerErrorsAsFailures;
///
/// let c = TowerHttpClassifier::new(ServerErrorsAsFailures::new());
/// let res = http::Response::builder().status(502).body(()).unwrap();
/// assert_eq!(Classify::<_, BoxError>::classify(&c, Ok(&res)), Outcome::Failure(FailureKind::ServerError));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TowerHttpClassifier<C> {
    inner: C,
}

impl<C> TowerHttpClassifier<C> {
    /// Wraps a tower-http classifier.
    pub fn new(inner: C) -> Self {
        TowerHttpClassifier { inner }
    }
}

impl<C, B, E> Classify<http::Response<B>, E> for TowerHttpClassifier<C>
where
    C: ClassifyResponse + Clone,
    E: AsDynError,
{
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
        match result {
            Ok(res) => match self.inner.clone().classify_response(res) {
                ClassifiedResponse::Ready(Ok(())) => Outcome::Success,
                ClassifiedResponse::Ready(Err(_)) => {
                    Outcome::Failure(status_failure_kind(res.status().as_u16()))
                }
                ClassifiedResponse::RequiresEos(_) => Outcome::Success,
            },
            Err(e) => Outcome::Failure(failure_kind(e.as_dyn_error())),
        }
    }
}
