//! Typed errors shared by every battlement component.
//!
//! The rejection and timeout errors live here, in the shared vocabulary, so that any component
//! (the retry policy, the default classifier, the facade's HTTP mapping) can recognise them by
//! downcasting without depending on the crate that raises them. Each pattern crate re-exports the
//! errors it returns.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The error type tower layers return: a boxed, downcastable error.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A setting that a builder refused: which component, which setting, what value and why.
///
/// ```
/// use battlement_core::ConfigError;
///
/// let err = ConfigError::new("circuit breaker", "failure_rate_threshold", 1.5, "must be within 0..=1");
/// assert_eq!(err.setting(), "failure_rate_threshold");
/// assert_eq!(
///     err.to_string(),
///     "invalid circuit breaker setting `failure_rate_threshold` = 1.5: must be within 0..=1"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    component: Cow<'static, str>,
    setting: &'static str,
    value: String,
    reason: Cow<'static, str>,
}

impl ConfigError {
    /// A refused `setting` of `component` with its `value` and the `reason`.
    pub fn new(
        component: impl Into<Cow<'static, str>>,
        setting: &'static str,
        value: impl fmt::Debug,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError {
            component: component.into(),
            setting,
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }

    /// The component being configured (e.g. `circuit breaker`).
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The name of the refused setting.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The refused value, as written with `Debug`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} setting `{}` = {}: {}",
            self.component, self.setting, self.value, self.reason
        )
    }
}

impl Error for ConfigError {}

/// A call rejected because a circuit breaker is open (or half-open with no trial permit left,
/// or forced open).
///
/// ```
/// use battlement_core::error::BreakerOpen;
/// use std::time::Duration;
///
/// let err = BreakerOpen::new("payments".into(), Some(Duration::from_secs(3)));
/// assert_eq!(err.name(), "payments");
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
/// assert_eq!(err.to_string(), "circuit breaker `payments` is open; retry after 3s");
/// ```
#[derive(Debug, Clone)]
pub struct BreakerOpen {
    name: Arc<str>,
    retry_after: Option<Duration>,
    reason: Option<Arc<str>>,
}

impl BreakerOpen {
    /// A rejection by the breaker `name`; `retry_after` is the time until it will admit a trial
    /// call, when known.
    pub fn new(name: Arc<str>, retry_after: Option<Duration>) -> Self {
        BreakerOpen {
            name,
            retry_after,
            reason: None,
        }
    }

    /// A rejection by a breaker that was forced open, with the operator's reason.
    pub fn forced(name: Arc<str>, reason: Arc<str>) -> Self {
        BreakerOpen {
            name,
            retry_after: None,
            reason: Some(reason),
        }
    }

    /// The same rejection with `retry_after` set: a breaker forced open for a time knows when
    /// it will admit a trial call.
    ///
    /// ```
    /// use battlement_core::error::BreakerOpen;
    /// use std::time::Duration;
    ///
    /// let err = BreakerOpen::forced("db".into(), "migration".into())
    ///     .with_retry_after(Some(Duration::from_secs(90)));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(90)));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "circuit breaker `db` is open (forced: migration); retry after 90s"
    /// );
    /// ```
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long until the breaker admits a trial call, when known (`None` when forced open with
    /// no end, or half-open with every trial permit taken).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The reason given when the breaker was forced open.
    pub fn forced_reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker `{}` is open", self.name)?;
        if let Some(reason) = &self.reason {
            write!(f, " (forced: {reason})")?;
        }
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {after:?}")?;
        }
        Ok(())
    }
}

impl Error for BreakerOpen {}

/// A call rejected because a bulkhead had no free permit and its wait queue was full.
///
/// ```
/// use battlement_core::error::BulkheadFull;
///
/// let err = BulkheadFull::new("db".into());
/// assert_eq!(err.name(), "db");
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadFull {
    name: Arc<str>,
}

impl BulkheadFull {
    /// A rejection by the bulkhead `name`.
    pub fn new(name: Arc<str>) -> Self {
        BulkheadFull { name }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bulkhead `{}` is full", self.name)
    }
}

impl Error for BulkheadFull {}

/// A call rejected because it waited in a bulkhead's queue longer than allowed.
///
/// ```
/// use battlement_core::error::BulkheadTimeout;
/// use std::time::Duration;
///
/// let err = BulkheadTimeout::new("db".into(), Duration::from_millis(50));
/// assert_eq!(err.waited(), Duration::from_millis(50));
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadTimeout {
    name: Arc<str>,
    waited: Duration,
}

impl BulkheadTimeout {
    /// A rejection by the bulkhead `name` after waiting `waited` in its queue.
    pub fn new(name: Arc<str>, waited: Duration) -> Self {
        BulkheadTimeout { name, waited }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long the call waited before it gave up.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for BulkheadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulkhead `{}`: no permit after waiting {:?}",
            self.name, self.waited
        )
    }
}

impl Error for BulkheadTimeout {}

/// A call that did not finish within its time limit.
///
/// ```
/// use battlement_core::error::Elapsed;
/// use std::time::Duration;
///
/// let err = Elapsed::new("upstream".into(), Duration::from_secs(2));
/// assert_eq!(err.limit(), Duration::from_secs(2));
/// assert_eq!(err.to_string(), "timeout `upstream`: call exceeded 2s");
/// ```
#[derive(Debug, Clone)]
pub struct Elapsed {
    name: Arc<str>,
    limit: Duration,
}

impl Elapsed {
    /// The timeout layer `name` gave up after `limit`.
    pub fn new(name: Arc<str>, limit: Duration) -> Self {
        Elapsed { name, limit }
    }

    /// The name of the timeout layer.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limit the call exceeded.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeout `{}`: call exceeded {:?}", self.name, self.limit)
    }
}

impl Error for Elapsed {}

/// A failure injected on purpose by a fault injection (chaos) layer, imitating a real failure
/// of a given [`FailureKind`](crate::FailureKind).
///
/// It lives here, with the other errors, so the default classification reads it as the kind it
/// imitates: the breaker counts it, the retry policy retries it (or not) and the health probe
/// records it exactly as it would the real failure, which is what a fault injection experiment
/// is for; a test still tells it from a real failure by downcasting. It imitates a
/// [`Connection`](crate::FailureKind::Connection) failure unless told otherwise
/// ([`imitating`](Self::imitating)): an error, rather than a response, is what a transport
/// returns when the upstream cannot be reached. `battlement-chaos` re-exports it.
///
/// ```
/// use battlement_core::error::{failure_kind, BoxError, InjectedFault};
/// use battlement_core::FailureKind;
///
/// let err: BoxError = Box::new(InjectedFault::new("payments".into()));
/// let fault = err.downcast_ref::<InjectedFault>().unwrap();
/// assert_eq!(fault.name(), "payments");
/// assert_eq!(fault.kind(), FailureKind::Connection);
/// assert_eq!(failure_kind(&*err), FailureKind::Connection);
/// assert_eq!(err.to_string(), "fault injected by chaos `payments` (connection)");
///
/// let slow = InjectedFault::new("payments".into()).imitating(FailureKind::Timeout);
/// assert_eq!(failure_kind(&slow), FailureKind::Timeout);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault {
    name: Arc<str>,
    kind: crate::FailureKind,
}

impl InjectedFault {
    /// A fault injected by the chaos handle `name`, imitating a connection failure.
    pub fn new(name: Arc<str>) -> Self {
        InjectedFault {
            name,
            kind: crate::FailureKind::Connection,
        }
    }

    /// The same fault, imitating a failure of `kind`.
    pub fn imitating(mut self, kind: crate::FailureKind) -> Self {
        self.kind = kind;
        self
    }

    /// The name of the chaos handle that injected it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind of failure it imitates, which classification reports.
    pub fn kind(&self) -> crate::FailureKind {
        self.kind
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault injected by chaos `{}` ({})", self.name, self.kind)
    }
}

impl Error for InjectedFault {}

/// A call rejected because a kill switch is halted.
///
/// ```
/// use battlement_core::error::Halted;
/// use std::time::SystemTime;
///
/// let err = Halted::new("trading".into(), "daily loss limit".into(), SystemTime::UNIX_EPOCH);
/// assert_eq!(err.reason(), "daily loss limit");
/// ```
#[derive(Debug, Clone)]
pub struct Halted {
    name: Arc<str>,
    reason: Arc<str>,
    since: SystemTime,
}

impl Halted {
    /// The kill switch `name` has been halted since `since` for `reason`.
    pub fn new(name: Arc<str>, reason: Arc<str>, since: SystemTime) -> Self {
        Halted {
            name,
            reason,
            since,
        }
    }

    /// The kill switch's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why it was halted.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When it was halted.
    pub fn since(&self) -> SystemTime {
        self.since
    }
}

impl fmt::Display for Halted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kill switch `{}` is halted: {}", self.name, self.reason)
    }
}

impl Error for Halted {}

/// Anything that can be viewed as a `dyn Error`, so the default classifier can walk its source
/// chain without stringifying it.
///
/// Implemented for the boxed errors tower layers return, for `std::io::Error`, for every
/// battlement error, and (with features) for hyper's and tonic's errors. Implement it for your own
/// error type with [`impl_as_dyn_error!`](crate::impl_as_dyn_error).
pub trait AsDynError {
    /// This error as a `dyn Error`.
    fn as_dyn_error(&self) -> &(dyn Error + 'static);
}

impl AsDynError for Box<dyn Error + Send + Sync + 'static> {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        &**self
    }
}

impl AsDynError for Box<dyn Error + Send + 'static> {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        &**self
    }
}

impl AsDynError for Box<dyn Error + 'static> {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        &**self
    }
}

impl AsDynError for Arc<dyn Error + Send + Sync + 'static> {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        &**self
    }
}

impl AsDynError for std::convert::Infallible {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        match *self {}
    }
}

/// Implements [`AsDynError`] for error types that implement `std::error::Error + 'static`.
///
/// ```
/// use battlement_core::{impl_as_dyn_error, Classify, ResultClassifier, FailureKind, Outcome};
///
/// #[derive(Debug)]
/// struct MyError;
/// impl std::fmt::Display for MyError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("mine") }
/// }
/// impl std::error::Error for MyError {}
/// impl_as_dyn_error!(MyError);
///
/// let r: Result<&(), &MyError> = Err(&MyError);
/// assert_eq!(ResultClassifier.classify(r), Outcome::Failure(FailureKind::Other));
/// ```
#[macro_export]
macro_rules! impl_as_dyn_error {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl $crate::AsDynError for $ty {
                fn as_dyn_error(&self) -> &(dyn ::std::error::Error + 'static) {
                    self
                }
            }
        )+
    };
}

impl_as_dyn_error!(
    std::io::Error,
    ConfigError,
    BreakerOpen,
    BulkheadFull,
    BulkheadTimeout,
    Elapsed,
    Halted,
    InjectedFault,
    tower::timeout::error::Elapsed,
    tokio::time::error::Elapsed,
);

#[cfg(feature = "hyper")]
impl_as_dyn_error!(hyper::Error, hyper_util::client::legacy::Error);

#[cfg(feature = "http")]
impl_as_dyn_error!(http::Error);

#[cfg(feature = "grpc")]
impl_as_dyn_error!(tonic::Status);

/// Reads a failure kind from an error by walking its source chain, never by its text.
///
/// The first error in the chain that is recognised decides: battlement's rejections
/// ([`BreakerOpen`], [`BulkheadFull`], [`BulkheadTimeout`], [`Halted`]) are
/// [`Rejected`](crate::FailureKind::Rejected); battlement's [`Elapsed`], tower's and tokio's
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
pub fn failure_kind(err: &(dyn Error + 'static)) -> crate::FailureKind {
    use crate::FailureKind;
    let mut current: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(kind) = direct_kind(e) {
            return kind;
        }
        current = e.source();
    }
    FailureKind::Other
}

fn direct_kind(e: &(dyn Error + 'static)) -> Option<crate::FailureKind> {
    use crate::FailureKind;
    if e.is::<BreakerOpen>()
        || e.is::<BulkheadFull>()
        || e.is::<BulkheadTimeout>()
        || e.is::<Halted>()
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
        use std::io::ErrorKind::*;
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
/// ([`BreakerOpen::retry_after`]).
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
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;
    use std::io;

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

    #[test]
    fn config_error_fields() {
        let e = ConfigError::new("bulkhead", "max_concurrent", 0usize, "must be at least 1");
        assert_eq!(e.component(), "bulkhead");
        assert_eq!(e.value(), "0");
        assert_eq!(e.reason(), "must be at least 1");
    }
}
