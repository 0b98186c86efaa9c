//! Classification: one shared vocabulary for "did this call succeed?".

use crate::error::{failure_kind, AsDynError};
use crate::{FailureKind, Outcome};
use std::fmt;

/// Maps a finished call's result to an [`Outcome`].
///
/// The breaker, the retry policy and the health probe all take a classifier, so the rule is said
/// once. Built-ins: [`ResponseClassifier`](crate::ResponseClassifier) (errors by their source chain,
/// `Ok` responses by [`ResponseOutcome`](crate::ResponseOutcome): the breaker's and the health
/// probe's default), [`ResultClassifier`] (any `Result`: errors fail, every `Ok` succeeds), [`HttpClassifier`](crate::HttpClassifier) (feature `http`),
/// [`GrpcClassifier`](crate::GrpcClassifier) (feature `grpc`) and closures through
/// [`classify_fn`].
///
/// ```
/// use battlement_core::{classify_fn, Classify, FailureKind, Outcome};
///
/// // A 404-style "not found" answer is not a failure of the dependency.
/// let c = classify_fn(|r: Result<&Option<u32>, &std::io::Error>| match r {
///     Ok(Some(_)) => Outcome::Success,
///     Ok(None) => Outcome::Ignored,
///     Err(_) => Outcome::Failure(FailureKind::Other),
/// });
/// assert_eq!(c.classify(Ok(&None)), Outcome::Ignored);
/// ```
pub trait Classify<Res, E> {
    /// Classifies one call's result.
    fn classify(&self, result: Result<&Res, &E>) -> Outcome;
}

impl<Res, E, C: Classify<Res, E> + ?Sized> Classify<Res, E> for &C {
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        (**self).classify(result)
    }
}

impl<Res, E, C: Classify<Res, E> + ?Sized> Classify<Res, E> for std::sync::Arc<C> {
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        (**self).classify(result)
    }
}

/// The result-only classifier: every `Ok` succeeds, every `Err` fails with the kind read by
/// [`failure_kind`](crate::error::failure_kind) from the error's source chain.
///
/// It never looks inside a response: an HTTP 500 that arrives as `Ok` counts as a success. It is
/// the retry policy's and the fallback's default, and the escape hatch for a breaker or a health
/// probe in front of a response type that does not implement
/// [`ResponseOutcome`](crate::ResponseOutcome) (a foreign type the orphan rule keeps you from
/// implementing it for): `circuit_breaker_with(&breaker, ResultClassifier)`,
/// `HealthProbeLayer::new(&probe).classifier(ResultClassifier)`. The breaker's and the health
/// probe's own default is [`ResponseClassifier`](crate::ResponseClassifier).
///
/// ```
/// use battlement_core::{error::{BoxError, BulkheadFull}, Classify, ResultClassifier, FailureKind, Outcome};
///
/// let err: BoxError = Box::new(BulkheadFull::new("db".into()));
/// assert_eq!(ResultClassifier.classify(Err::<&(), _>(&err)), Outcome::Failure(FailureKind::Rejected));
/// assert_eq!(ResultClassifier.classify(Ok::<_, &BoxError>(&())), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ResultClassifier;

impl<Res, E: AsDynError> Classify<Res, E> for ResultClassifier {
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => Outcome::Failure(failure_kind(e.as_dyn_error())),
        }
    }
}

/// A classifier made from a closure; see [`classify_fn`].
#[derive(Clone, Copy)]
pub struct FnClassifier<F> {
    f: F,
}

impl<F> fmt::Debug for FnClassifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnClassifier").finish_non_exhaustive()
    }
}

/// Makes a classifier from a closure over the call's result.
///
/// ```
/// use battlement_core::{classify_fn, Classify, FailureKind, Outcome};
///
/// let c = classify_fn(|r: Result<&u16, &std::io::Error>| match r {
///     Ok(code) if *code >= 500 => Outcome::Failure(FailureKind::ServerError),
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure(FailureKind::Connection),
/// });
/// assert_eq!(c.classify(Ok(&503)), Outcome::Failure(FailureKind::ServerError));
/// ```
pub fn classify_fn<F>(f: F) -> FnClassifier<F> {
    FnClassifier { f }
}

impl<Res, E, F> Classify<Res, E> for FnClassifier<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        (self.f)(result)
    }
}

/// Classifies errors with the default rules and `Ok` values with a closure.
///
/// Handy when only the success side needs a rule:
///
/// ```
/// use battlement_core::{classify_ok, error::BoxError, Classify, FailureKind, Outcome};
///
/// let c = classify_ok(|n: &i32| if *n < 0 { Outcome::Failure(FailureKind::Other) } else { Outcome::Success });
/// assert_eq!(c.classify(Ok::<_, &BoxError>(&-1)), Outcome::Failure(FailureKind::Other));
/// ```
pub fn classify_ok<F>(f: F) -> OkClassifier<F> {
    OkClassifier { f }
}

/// A classifier whose `Ok` rule is a closure; see [`classify_ok`].
#[derive(Clone, Copy)]
pub struct OkClassifier<F> {
    f: F,
}

impl<F> fmt::Debug for OkClassifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OkClassifier").finish_non_exhaustive()
    }
}

impl<Res, E: AsDynError, F> Classify<Res, E> for OkClassifier<F>
where
    F: Fn(&Res) -> Outcome,
{
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(res) => (self.f)(res),
            Err(e) => Outcome::Failure(failure_kind(e.as_dyn_error())),
        }
    }
}

/// The failure kind an HTTP status code maps to by default: 408 → `Timeout`, 429 →
/// `RateLimited`, 5xx → `ServerError`, anything else → `Other`.
pub fn status_failure_kind(status: u16) -> FailureKind {
    match status {
        408 => FailureKind::Timeout,
        429 => FailureKind::RateLimited,
        500..=599 => FailureKind::ServerError,
        _ => FailureKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{BoxError, Elapsed};
    use std::time::Duration;

    #[test]
    fn default_classifier_reads_errors() {
        let err: BoxError = Box::new(Elapsed::new("t".into(), Duration::from_secs(1)));
        assert_eq!(
            ResultClassifier.classify(Err::<&(), _>(&err)),
            Outcome::Failure(FailureKind::Timeout)
        );
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            ResultClassifier.classify(Err::<&(), _>(&io)),
            Outcome::Failure(FailureKind::Connection)
        );
    }

    #[test]
    fn references_and_arcs_classify() {
        let c = std::sync::Arc::new(ResultClassifier);
        assert_eq!(
            Classify::<(), BoxError>::classify(&c, Ok(&())),
            Outcome::Success
        );
        let r = &ResultClassifier;
        assert_eq!(
            Classify::<(), BoxError>::classify(&r, Ok(&())),
            Outcome::Success
        );
    }

    #[test]
    fn status_kinds() {
        assert_eq!(status_failure_kind(503), FailureKind::ServerError);
        assert_eq!(status_failure_kind(429), FailureKind::RateLimited);
        assert_eq!(status_failure_kind(408), FailureKind::Timeout);
        assert_eq!(status_failure_kind(418), FailureKind::Other);
    }
}
