//! Classification: one shared vocabulary for "did this call succeed?".

use crate::error::{
    AsDynError, BreakerOpen, BulkheadFull, BulkheadTimeout, Elapsed, Halted, InjectedFault,
    RateLimited, Throttled,
};
use crate::{FailureKind, Outcome};
use std::error::Error;
use std::fmt;
use std::time::Duration;

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

/// Reads a failure kind from an error by walking its source chain, never by its text.
///
/// The first error in the chain that is recognised decides: battlement's rejections
/// ([`BreakerOpen`], [`BulkheadFull`], [`BulkheadTimeout`], [`Halted`], [`RateLimited`],
/// [`Throttled`]) are
/// [`Rejected`](FailureKind::Rejected); battlement's [`Elapsed`], tower's and tokio's
/// timeouts and `io::ErrorKind::TimedOut` are `Timeout`; refused, reset or aborted connections
/// (and, with the `hyper` feature, hyper-util's connect errors) are `Connection`; an
/// [`InjectedFault`] is the kind it imitates. Anything else is `Other`.
///
/// ```
/// use battlement_core::{error::failure_kind, FailureKind};
/// use std::io;
///
/// let err = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert_eq!(failure_kind(&err), FailureKind::Connection);
/// ```
pub fn failure_kind(err: &(dyn Error + 'static)) -> FailureKind {
    let mut current: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(kind) = direct_kind(e) {
            return kind;
        }
        current = e.source();
    }
    FailureKind::Other
}

fn direct_kind(e: &(dyn Error + 'static)) -> Option<FailureKind> {
    if e.is::<BreakerOpen>()
        || e.is::<BulkheadFull>()
        || e.is::<BulkheadTimeout>()
        || e.is::<Halted>()
        || e.is::<RateLimited>()
        || e.is::<Throttled>()
    {
        return Some(FailureKind::Rejected);
    }
    if let Some(fault) = e.downcast_ref::<InjectedFault>() {
        return Some(fault.kind());
    }
    if e.is::<Elapsed>()
        || e.is::<tower::timeout::error::Elapsed>()
        || e.is::<tokio::time::error::Elapsed>()
    {
        return Some(FailureKind::Timeout);
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::{
            BrokenPipe, ConnectionAborted, ConnectionRefused, ConnectionReset, NotConnected,
            TimedOut, UnexpectedEof,
        };
        return match io.kind() {
            TimedOut => Some(FailureKind::Timeout),
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
            | UnexpectedEof => Some(FailureKind::Connection),
            // An io::Error may wrap a richer error; its `source()` skips that error, so look at
            // it directly.
            _ => io
                .get_ref()
                .map(|inner| failure_kind(inner))
                .filter(|kind| *kind != FailureKind::Other),
        };
    }
    #[cfg(feature = "hyper")]
    {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return Some(FailureKind::Timeout);
            }
            if h.is_closed() || h.is_incomplete_message() || h.is_canceled() {
                return Some(FailureKind::Connection);
            }
        }
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                // The source may be more precise (a timeout while connecting).
                return match h.source().map(failure_kind) {
                    Some(FailureKind::Timeout) => Some(FailureKind::Timeout),
                    _ => Some(FailureKind::Connection),
                };
            }
        }
    }
    #[cfg(feature = "grpc")]
    {
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            return match crate::grpc::code_outcome(status.code()) {
                crate::Outcome::Failure(kind) => Some(kind),
                _ => None,
            };
        }
    }
    None
}

/// The time a rejection said to wait before trying again, read from the error's source chain
/// ([`BreakerOpen::retry_after`], [`RateLimited::retry_after`]).
///
/// ```
/// use battlement_core::error::{retry_after, BoxError, BreakerOpen};
/// use std::time::Duration;
///
/// let err: BoxError = Box::new(BreakerOpen::new("b".into(), Some(Duration::from_secs(1))));
/// assert_eq!(retry_after(&*err), Some(Duration::from_secs(1)));
/// ```
pub fn retry_after(err: &(dyn Error + 'static)) -> Option<Duration> {
    let mut current: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(open) = e.downcast_ref::<BreakerOpen>() {
            return open.retry_after();
        }
        if let Some(limited) = e.downcast_ref::<RateLimited>() {
            return Some(limited.retry_after());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BoxError;
    use std::io;
    use std::time::SystemTime;

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

    #[derive(Debug)]
    struct Wrapper(BoxError);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapper")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn kinds_from_chain() {
        let cases: Vec<(BoxError, FailureKind)> = vec![
            (
                Box::new(BreakerOpen::new("b".into(), None)),
                FailureKind::Rejected,
            ),
            (
                Box::new(BulkheadFull::new("b".into())),
                FailureKind::Rejected,
            ),
            (
                Box::new(BulkheadTimeout::new("b".into(), Duration::ZERO)),
                FailureKind::Rejected,
            ),
            (
                Box::new(Halted::new("h".into(), "r".into(), SystemTime::UNIX_EPOCH)),
                FailureKind::Rejected,
            ),
            (
                Box::new(Elapsed::new("t".into(), Duration::ZERO)),
                FailureKind::Timeout,
            ),
            (
                Box::new(tower::timeout::error::Elapsed::new()),
                FailureKind::Timeout,
            ),
            (
                Box::new(io::Error::from(io::ErrorKind::TimedOut)),
                FailureKind::Timeout,
            ),
            (
                Box::new(io::Error::from(io::ErrorKind::ConnectionReset)),
                FailureKind::Connection,
            ),
            (
                Box::new(io::Error::from(io::ErrorKind::ConnectionAborted)),
                FailureKind::Connection,
            ),
            (
                Box::new(io::Error::from(io::ErrorKind::PermissionDenied)),
                FailureKind::Other,
            ),
            ("plain text".into(), FailureKind::Other),
            (
                Box::new(Wrapper(Box::new(io::Error::from(
                    io::ErrorKind::ConnectionRefused,
                )))),
                FailureKind::Connection,
            ),
            (
                Box::new(io::Error::other(Elapsed::new("t".into(), Duration::ZERO))),
                FailureKind::Timeout,
            ),
            (
                Box::new(InjectedFault::new("c".into())),
                FailureKind::Connection,
            ),
            (
                Box::new(Wrapper(Box::new(
                    InjectedFault::new("c".into()).imitating(FailureKind::ServerError),
                ))),
                FailureKind::ServerError,
            ),
            (
                Box::new(io::Error::other(
                    InjectedFault::new("c".into()).imitating(FailureKind::Timeout),
                )),
                FailureKind::Timeout,
            ),
        ];
        for (err, kind) in cases {
            assert_eq!(failure_kind(&*err), kind, "{err}");
        }
    }

    #[test]
    fn default_classifier_reads_an_injected_fault_as_its_kind() {
        use crate::{Classify, Outcome, ResultClassifier};
        for kind in FailureKind::ALL {
            let err: BoxError = Box::new(InjectedFault::new("c".into()).imitating(kind));
            assert_eq!(
                ResultClassifier.classify(Err::<&(), _>(&err)),
                Outcome::Failure(kind)
            );
        }
        let err: BoxError = Box::new(InjectedFault::new("c".into()));
        assert_eq!(
            ResultClassifier.classify(Err::<&(), _>(&err)),
            Outcome::Failure(FailureKind::Connection)
        );
    }

    #[test]
    fn retry_after_walks_chain() {
        let inner: BoxError = Box::new(BreakerOpen::new("b".into(), Some(Duration::from_secs(2))));
        let outer = Wrapper(inner);
        assert_eq!(retry_after(&outer), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&io::Error::other("x")), None);
    }
}
