//! How a finished call counts for outlier detection: [`Verdict`], and the classifiers that
//! give one.

use battlement_core::error::failure_kind;
use battlement_core::{AsDynError, Classify, FailureKind, Outcome, ResponseOutcome};
use std::fmt;

/// How one finished call to an endpoint counts for outlier detection (Envoy's view of a
/// response code, with locally originated errors folded in, as Envoy does by default).
///
/// ```
/// use battlement_outlier::{Verdict, verdict_of};
/// use battlement_core::{FailureKind, Outcome};
///
/// assert_eq!(verdict_of(Outcome::Failure(FailureKind::Connection)), Verdict::GatewayFailure);
/// assert_eq!(verdict_of(Outcome::Failure(FailureKind::ServerError)), Verdict::Failure);
/// assert_eq!(verdict_of(Outcome::Failure(FailureKind::Rejected)), Verdict::Ignored);
/// assert!(Verdict::GatewayFailure.is_failure());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The endpoint answered (any status below 500: a 404 or a 429 is the endpoint working).
    /// Resets both runs of failures; counts as a success for the success rate.
    Success,
    /// A 5xx other than 502, 503 and 504, or an error of another kind: counts towards
    /// consecutive 5xx and against the success rate, and resets the run of gateway failures.
    Failure,
    /// A 502, 503 or 504, or a connection error or timeout: counts towards consecutive 5xx,
    /// consecutive gateway failures, and against the success rate.
    GatewayFailure,
    /// Does not count: a call a layer inside rejected locally (it never reached the
    /// endpoint), or one the classifier ignores.
    Ignored,
}

impl Verdict {
    /// Whether it counts as a failure (either kind).
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Failure | Verdict::GatewayFailure)
    }
}

/// The [`Verdict`] of a battlement-core [`Outcome`]: a success, and a 429 (`RateLimited`: the
/// endpoint answered), are successes; `Connection` and `Timeout` failures are gateway failures
/// (Envoy maps a connect failure to 503 and a timeout to 504); `ServerError` and `Other`
/// failures are failures; `Rejected` (a layer inside rejected the call locally) and ignored
/// outcomes do not count.
pub fn verdict_of(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Success | Outcome::Failure(FailureKind::RateLimited) => Verdict::Success,
        Outcome::Failure(FailureKind::Connection | FailureKind::Timeout) => Verdict::GatewayFailure,
        Outcome::Failure(FailureKind::Rejected) | Outcome::Ignored => Verdict::Ignored,
        Outcome::Failure(_) => Verdict::Failure,
    }
}

/// The [`Verdict`] of an HTTP status: 502, 503 and 504 are gateway failures, other 5xx
/// failures, anything else a success.
///
/// ```
/// use battlement_outlier::{status_verdict, Verdict};
///
/// assert_eq!(status_verdict(503), Verdict::GatewayFailure);
/// assert_eq!(status_verdict(500), Verdict::Failure);
/// assert_eq!(status_verdict(429), Verdict::Success);
/// ```
pub fn status_verdict(status: u16) -> Verdict {
    match status {
        502..=504 => Verdict::GatewayFailure,
        500..=599 => Verdict::Failure,
        _ => Verdict::Success,
    }
}

/// Decides how a finished call counts for outlier detection.
///
/// Implemented by [`EndpointClassifier`] (the default), by [`Outcomes`] (any battlement-core
/// [`Classify`]) and by [`VerdictFn`] (a closure, from [`verdict_fn`]).
pub trait ClassifyEndpoint<Res, E> {
    /// The verdict on `result`.
    fn verdict(&self, result: Result<&Res, &E>) -> Verdict;
}

/// How a response that arrived counts for outlier detection, read by [`EndpointClassifier`].
/// The default method says [`Verdict::Success`].
///
/// `http::Response` counts by status ([`status_verdict`]), and a 200 with a `grpc-status` in
/// its head (a gRPC trailers-only error) as battlement-core's `ResponseOutcome` says
/// (`UNAVAILABLE` is a gateway failure); `http::StatusCode` by [`status_verdict`]; the std
/// types below always succeed.
///
/// ```
/// use battlement_outlier::{EndpointResponse, Verdict};
///
/// struct Reply { overloaded: bool }
/// impl EndpointResponse for Reply {
///     fn verdict(&self) -> Verdict {
///         if self.overloaded { Verdict::GatewayFailure } else { Verdict::Success }
///     }
/// }
/// let res = http::Response::builder().status(502).body(()).unwrap();
/// assert_eq!(res.verdict(), Verdict::GatewayFailure);
/// assert_eq!(Reply { overloaded: true }.verdict(), Verdict::GatewayFailure);
/// ```
pub trait EndpointResponse {
    /// How this response counts. Default: [`Verdict::Success`].
    fn verdict(&self) -> Verdict {
        Verdict::Success
    }
}

impl<B> EndpointResponse for http::Response<B> {
    #[inline]
    fn verdict(&self) -> Verdict {
        if self.status() == http::StatusCode::OK {
            // A gRPC trailers-only error, if any.
            return verdict_of(self.outcome());
        }
        status_verdict(self.status().as_u16())
    }
}

impl EndpointResponse for http::StatusCode {
    #[inline]
    fn verdict(&self) -> Verdict {
        status_verdict(self.as_u16())
    }
}

macro_rules! always_success {
    ($($ty:ty),* $(,)?) => {
        $(impl EndpointResponse for $ty {})*
    };
}

always_success!(
    (),
    bool,
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    String,
    &'static str
);
impl<T> EndpointResponse for Vec<T> {}
impl<T> EndpointResponse for Option<T> {}

/// The default classifier: a response counts as its type says ([`EndpointResponse`]: an
/// `http::Response` by status), an error by the kind battlement-core reads from its source
/// chain ([`failure_kind`], then [`verdict_of`]): a refused or reset connection or a timeout
/// is a gateway failure, a local rejection (an open breaker inside) does not count.
///
/// ```
/// use battlement_outlier::{ClassifyEndpoint, EndpointClassifier, Verdict};
/// use battlement_core::BoxError;
///
/// let res = http::Response::builder().status(504).body(()).unwrap();
/// assert_eq!(ClassifyEndpoint::<_, BoxError>::verdict(&EndpointClassifier, Ok(&res)), Verdict::GatewayFailure);
/// let err: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert_eq!(
///     ClassifyEndpoint::<http::Response<()>, _>::verdict(&EndpointClassifier, Err(&err)),
///     Verdict::GatewayFailure
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointClassifier;

impl<Res: EndpointResponse, E: AsDynError> ClassifyEndpoint<Res, E> for EndpointClassifier {
    #[inline]
    fn verdict(&self, result: Result<&Res, &E>) -> Verdict {
        match result {
            Ok(res) => res.verdict(),
            Err(e) => verdict_of(Outcome::Failure(failure_kind(e.as_dyn_error()))),
        }
    }
}

/// Judges calls with a battlement-core [`Classify`] (an `HttpClassifier`, a
/// `ResultClassifier`, a `classify_fn` closure), mapping its [`Outcome`] with [`verdict_of`]
/// (so a 5xx response it fails is a [`Verdict::Failure`], not a gateway failure: the status
/// is not known from an outcome).
///
/// ```
/// use battlement_outlier::{ClassifyEndpoint, Outcomes, Verdict};
/// use battlement_core::{BoxError, ResultClassifier};
///
/// let c = Outcomes(ResultClassifier);
/// assert_eq!(ClassifyEndpoint::<u32, BoxError>::verdict(&c, Ok(&1)), Verdict::Success);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcomes<C>(pub C);

impl<Res, E, C: Classify<Res, E>> ClassifyEndpoint<Res, E> for Outcomes<C> {
    #[inline]
    fn verdict(&self, result: Result<&Res, &E>) -> Verdict {
        verdict_of(self.0.classify(result))
    }
}

/// A classifier from a closure; made by [`verdict_fn`].
#[derive(Clone, Copy)]
pub struct VerdictFn<F> {
    f: F,
}

impl<F> fmt::Debug for VerdictFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictFn").finish_non_exhaustive()
    }
}

/// A classifier from a closure over the call's result.
///
/// ```
/// use battlement_outlier::{verdict_fn, ClassifyEndpoint, Verdict};
///
/// let c = verdict_fn(|r: Result<&u32, &std::io::Error>| match r {
///     Ok(0) => Verdict::Failure,
///     Ok(_) => Verdict::Success,
///     Err(_) => Verdict::GatewayFailure,
/// });
/// assert_eq!(c.verdict(Ok(&0)), Verdict::Failure);
/// ```
pub fn verdict_fn<F>(f: F) -> VerdictFn<F> {
    VerdictFn { f }
}

impl<Res, E, F> ClassifyEndpoint<Res, E> for VerdictFn<F>
where
    F: Fn(Result<&Res, &E>) -> Verdict,
{
    #[inline]
    fn verdict(&self, result: Result<&Res, &E>) -> Verdict {
        (self.f)(result)
    }
}
