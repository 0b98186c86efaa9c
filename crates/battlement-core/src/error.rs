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

use crate::ComponentKind;
// Reading an error's source chain is classification; it lives in `classify.rs`, and is named
// here too, beside the errors it reads.
pub use crate::classify::{failure_kind, retry_after};

/// The error type tower layers return: a boxed, downcastable error.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A setting that a builder refused: which component, which setting, what value and why.
///
/// A builder of a named component scopes its errors to the component's (kind, name) with
/// [`scoped`](Self::scoped) (or its [`Registration`](crate::Registration)'s
/// [`error`](crate::Registration::error)), so every crate words the component the same way:
/// the kind [described](ComponentKind::describe), then the name in backticks.
///
/// ```
/// use battlement_core::{ComponentKind, ConfigError};
///
/// let err = ConfigError::scoped(
///     ComponentKind::CircuitBreaker,
///     "payments",
///     "failure_rate_threshold",
///     1.5,
///     "must be within 0..=1",
/// );
/// assert_eq!(err.setting(), "failure_rate_threshold");
/// assert_eq!(err.component(), "circuit breaker `payments`");
/// assert_eq!(err.kind(), Some(ComponentKind::CircuitBreaker));
/// assert_eq!(err.name(), Some("payments"));
/// assert_eq!(
///     err.to_string(),
///     "invalid circuit breaker `payments` setting `failure_rate_threshold` = 1.5: must be within 0..=1"
/// );
///
/// // Something that is not a (kind, name) component names itself in words.
/// let err = ConfigError::new("http classifier", "status", 99, "not an HTTP status");
/// assert_eq!(err.component(), "http classifier");
/// assert_eq!(err.kind(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    component: Cow<'static, str>,
    scope: Option<(ComponentKind, Arc<str>)>,
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
            scope: None,
            setting,
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }

    /// A refused `setting` of the component of `kind` named `name`, with its `value` and the
    /// `reason`; its [`component`](Self::component) reads ``circuit breaker `payments` ``.
    pub fn scoped(
        kind: ComponentKind,
        name: &str,
        setting: &'static str,
        value: impl fmt::Debug,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError::new("", setting, value, reason).within(kind, name)
    }

    /// The same refusal, said of the component of `kind` named `name` (for an error a shared
    /// check returned, such as [`EventChannel::new`](crate::event::EventChannel::new)'s).
    ///
    /// ```
    /// use battlement_core::{event::EventChannel, ComponentKind};
    ///
    /// let err = EventChannel::<u32>::new(0).unwrap_err();
    /// assert_eq!(err.component(), "event channel");
    /// let err = err.within(ComponentKind::KillSwitch, "deploys");
    /// assert_eq!(err.component(), "kill switch `deploys`");
    /// assert_eq!(err.setting(), "event_capacity");
    /// ```
    pub fn within(mut self, kind: ComponentKind, name: &str) -> Self {
        self.component = format!("{} `{name}`", kind.describe()).into();
        self.scope = Some((kind, name.into()));
        self
    }

    /// The same refusal, said of `component` (in words, for something that is not a (kind,
    /// name) component, such as a retry policy).
    pub fn of(mut self, component: impl Into<Cow<'static, str>>) -> Self {
        self.component = component.into();
        self.scope = None;
        self
    }

    /// The component being configured, in words (e.g. ``circuit breaker `payments` ``).
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The kind of the component being configured, when the error is [scoped](Self::scoped)
    /// to one.
    pub fn kind(&self) -> Option<ComponentKind> {
        self.scope.as_ref().map(|(kind, _)| *kind)
    }

    /// The name of the component being configured, when the error is [scoped](Self::scoped)
    /// to one.
    pub fn name(&self) -> Option<&str> {
        self.scope.as_ref().map(|(_, name)| &**name)
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
/// assert!(!err.is_shed());
/// assert!(BulkheadFull::shed("db".into()).is_shed());
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadFull {
    name: Arc<str>,
    shed: bool,
}

impl BulkheadFull {
    /// A rejection by the bulkhead `name`: no permit free, and the queue full.
    pub fn new(name: Arc<str>) -> Self {
        BulkheadFull { name, shed: false }
    }

    /// A sheddable call shed by the bulkhead `name`: no permit free, and the queue fuller than
    /// sheddable calls may fill it.
    pub fn shed(name: Arc<str>) -> Self {
        BulkheadFull { name, shed: true }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the call was shed for its low priority (the queue may still have had room for
    /// others).
    pub fn is_shed(&self) -> bool {
        self.shed
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shed {
            write!(f, "bulkhead `{}` shed a sheddable call", self.name)
        } else {
            write!(f, "bulkhead `{}` is full", self.name)
        }
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
/// [`scope`](Self::scope) says which limit fired: an attempt's (a timeout layer's default, the
/// per-try timeout inside a retry) or the total one that bounds all attempts and the waits
/// between them (`ResilienceStack::total_timeout` in the facade).
///
/// ```
/// use battlement_core::error::{Elapsed, TimeoutScope};
/// use std::time::Duration;
///
/// let err = Elapsed::new("upstream".into(), Duration::from_secs(2));
/// assert_eq!(err.limit(), Duration::from_secs(2));
/// assert_eq!(err.scope(), TimeoutScope::Attempt);
/// assert_eq!(err.to_string(), "timeout `upstream`: call exceeded 2s");
///
/// let total = Elapsed::new("total".into(), Duration::from_secs(30)).with_scope(TimeoutScope::Total);
/// assert_eq!(total.to_string(), "timeout `total`: all attempts exceeded 30s");
/// ```
#[derive(Debug, Clone)]
pub struct Elapsed {
    name: Arc<str>,
    limit: Duration,
    scope: TimeoutScope,
}

/// Which limit an [`Elapsed`] is about.
///
/// ```
/// use battlement_core::error::TimeoutScope;
///
/// assert_eq!(TimeoutScope::default(), TimeoutScope::Attempt);
/// assert_eq!(TimeoutScope::Total.as_str(), "total");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TimeoutScope {
    /// One call through the timeout layer: under a retry, one attempt. A timeout layer's
    /// default.
    #[default]
    Attempt,
    /// The whole call: every attempt and every wait between them.
    Total,
}

impl TimeoutScope {
    /// `"attempt"` or `"total"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutScope::Attempt => "attempt",
            TimeoutScope::Total => "total",
        }
    }
}

impl fmt::Display for TimeoutScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Elapsed {
    /// The timeout layer `name` gave up after `limit` (an [`Attempt`](TimeoutScope::Attempt)
    /// limit; see [`with_scope`](Self::with_scope)).
    pub fn new(name: Arc<str>, limit: Duration) -> Self {
        Elapsed {
            name,
            limit,
            scope: TimeoutScope::Attempt,
        }
    }

    /// The same error about a limit of `scope`.
    pub fn with_scope(mut self, scope: TimeoutScope) -> Self {
        self.scope = scope;
        self
    }

    /// The name of the timeout layer.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limit the call exceeded.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Which limit fired: an attempt's or the total.
    pub fn scope(&self) -> TimeoutScope {
        self.scope
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            TimeoutScope::Attempt => {
                write!(f, "timeout `{}`: call exceeded {:?}", self.name, self.limit)
            }
            TimeoutScope::Total => write!(
                f,
                "timeout `{}`: all attempts exceeded {:?}",
                self.name, self.limit
            ),
        }
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

/// A call rejected by a rate limiter: its (key's) rate is spent, and `retry_after` says when a
/// call would next be admitted.
///
/// It carries the limiter's policy (the quota of calls per window) so an HTTP answer can state
/// it (`RateLimit-Policy`, `RateLimit`; the facade's `http_error` does). Classified
/// [`Rejected`](crate::FailureKind::Rejected).
///
/// ```
/// use battlement_core::error::{failure_kind, retry_after, BoxError, RateLimited};
/// use battlement_core::FailureKind;
/// use std::time::Duration;
///
/// let err: BoxError = Box::new(RateLimited::new(
///     "api".into(),
///     Duration::from_millis(2500),
///     100,
///     Duration::from_secs(60),
/// ));
/// let limited = err.downcast_ref::<RateLimited>().unwrap();
/// assert_eq!(limited.name(), "api");
/// assert_eq!(limited.retry_after(), Duration::from_millis(2500));
/// assert_eq!((limited.quota(), limited.window()), (100, Duration::from_secs(60)));
/// assert_eq!(failure_kind(&*err), FailureKind::Rejected);
/// assert_eq!(retry_after(&*err), Some(Duration::from_millis(2500)));
/// assert_eq!(err.to_string(), "rate limit `api` reached (100 per 60s); retry after 2.5s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    name: Arc<str>,
    retry_after: Duration,
    quota: u64,
    window: Duration,
}

impl RateLimited {
    /// A rejection by the rate limiter `name`, whose policy is `quota` calls per `window`; a
    /// call would next be admitted after `retry_after`.
    pub fn new(name: Arc<str>, retry_after: Duration, quota: u64, window: Duration) -> Self {
        RateLimited {
            name,
            retry_after,
            quota,
            window,
        }
    }

    /// The rate limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long until a call (with the same key) would be admitted.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The calls the policy allows per [`window`](Self::window).
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// The policy's window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limit `{}` reached ({} per {:?}); retry after {:?}",
            self.name, self.quota, self.window, self.retry_after
        )
    }
}

impl Error for RateLimited {}

/// A call rejected locally by a client-side adaptive throttle (Google SRE's rule): the
/// dependency has been refusing so many calls lately that this one was dropped before it was
/// sent, with the throttle's rejection probability at the time.
///
/// It names the throttle and carries the probability; it has no `retry_after` (the probability
/// falls as the dependency accepts calls again, not at a known time). Classified
/// [`Rejected`](crate::FailureKind::Rejected), like a breaker's rejection, so the retry policy
/// does not retry it by default; it is its own type, so a caller (and the metrics) tell local
/// throttling apart from an open breaker.
///
/// ```
/// use battlement_core::error::{failure_kind, retry_after, BoxError, Throttled};
/// use battlement_core::FailureKind;
///
/// let err: BoxError = Box::new(Throttled::new("search".into(), 0.25));
/// let throttled = err.downcast_ref::<Throttled>().unwrap();
/// assert_eq!(throttled.name(), "search");
/// assert_eq!(throttled.probability(), 0.25);
/// assert_eq!(failure_kind(&*err), FailureKind::Rejected);
/// assert_eq!(retry_after(&*err), None);
/// assert_eq!(
///     err.to_string(),
///     "adaptive throttle `search` rejected the call locally (rejection probability 0.250)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Throttled {
    name: Arc<str>,
    probability: f64,
}

impl Throttled {
    /// A local rejection by the throttle `name`, which rejected calls with `probability`.
    pub fn new(name: Arc<str>, probability: f64) -> Self {
        Throttled { name, probability }
    }

    /// The throttle's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rejection probability the call was dropped with (greater than 0, less than 1).
    pub fn probability(&self) -> f64 {
        self.probability
    }
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "adaptive throttle `{}` rejected the call locally (rejection probability {:.3})",
            self.name, self.probability
        )
    }
}

impl Error for Throttled {}

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
    RateLimited,
    Throttled,
    tower::timeout::error::Elapsed,
    tokio::time::error::Elapsed,
);

#[cfg(feature = "hyper")]
impl_as_dyn_error!(hyper::Error, hyper_util::client::legacy::Error);

#[cfg(feature = "http")]
impl_as_dyn_error!(http::Error);

#[cfg(feature = "grpc")]
impl_as_dyn_error!(tonic::Status);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_fields() {
        let e = ConfigError::new("bulkhead", "max_concurrent", 0usize, "must be at least 1");
        assert_eq!(e.component(), "bulkhead");
        assert_eq!(e.value(), "0");
        assert_eq!(e.reason(), "must be at least 1");
    }
}
