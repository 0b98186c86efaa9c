//! Custom checks: async functions run by the monitor on their interval, with a timeout.

use battlement_core::{ComponentKind, ConfigError, HealthStatus};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The default interval between two runs of a check: 10 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The default time a check may take before it fails with a timeout: 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What one run of a custom check found: a status, an optional message and an optional observed
/// value with its unit.
///
/// ```
/// use battlement_core::HealthStatus;
/// use battlement_health::CheckResult;
///
/// let r = CheckResult::pass().with_value(12.5, "ms");
/// assert_eq!(r.status, HealthStatus::Pass);
/// assert_eq!(r.observed_value, Some(12.5));
///
/// let r = CheckResult::fail("connection refused");
/// assert_eq!(r.message.as_deref(), Some("connection refused"));
///
/// // Any `Result<_, impl Display>` converts: `Ok` passes, `Err` fails with the error's text.
/// let r: CheckResult = Err::<(), _>(std::io::Error::other("disk full")).into();
/// assert_eq!(r.status, HealthStatus::Fail);
/// assert_eq!(r.message.as_deref(), Some("disk full"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckResult {
    /// Pass, warn or fail.
    pub status: HealthStatus,
    /// A human-readable note (served as the JSON `output`).
    pub message: Option<String>,
    /// A measurement the check made (served as the JSON `observedValue`).
    pub observed_value: Option<f64>,
    /// The measurement's unit (served as the JSON `observedUnit`).
    pub observed_unit: Option<Cow<'static, str>>,
}

impl CheckResult {
    /// A result with `status` and nothing else.
    pub fn new(status: HealthStatus) -> Self {
        CheckResult {
            status,
            message: None,
            observed_value: None,
            observed_unit: None,
        }
    }

    /// A passing result.
    pub fn pass() -> Self {
        CheckResult::new(HealthStatus::Pass)
    }

    /// A degraded result with a message.
    pub fn warn(message: impl Into<String>) -> Self {
        CheckResult::new(HealthStatus::Warn).with_message(message)
    }

    /// A failing result with a message.
    pub fn fail(message: impl Into<String>) -> Self {
        CheckResult::new(HealthStatus::Fail).with_message(message)
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the observed value and its unit.
    pub fn with_value(mut self, value: f64, unit: impl Into<Cow<'static, str>>) -> Self {
        self.observed_value = Some(value);
        self.observed_unit = Some(unit.into());
        self
    }

    /// Sets an observed value without a unit.
    pub fn with_unitless_value(mut self, value: f64) -> Self {
        self.observed_value = Some(value);
        self.observed_unit = None;
        self
    }
}

impl From<HealthStatus> for CheckResult {
    fn from(status: HealthStatus) -> Self {
        CheckResult::new(status)
    }
}

impl<T, E: fmt::Display> From<Result<T, E>> for CheckResult {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(_) => CheckResult::pass(),
            Err(e) => CheckResult::fail(e.to_string()),
        }
    }
}

type CheckFn = dyn Fn() -> BoxFuture<'static, CheckResult> + Send + Sync;

/// A custom health check: a named async function with an interval, a timeout and a `critical`
/// flag. Add it to a registry with [`HealthRegistry::add_check`](crate::HealthRegistry::add_check);
/// the [monitor](crate::HealthRegistry::spawn_monitor) runs it.
///
/// A run that takes longer than the timeout fails with a timeout message; a run that panics fails
/// with the panic's message. Neither stops the monitor. The timeout is enforced at the check's
/// `.await` points: a check that blocks its thread cannot be interrupted.
///
/// ```
/// use battlement_health::{CheckResult, HealthCheck};
/// use std::time::Duration;
///
/// let check = HealthCheck::builder("disk", || async {
///     let free_ratio = 0.42; // measure something
///     if free_ratio < 0.1 {
///         CheckResult::fail("disk almost full").with_value(free_ratio, "ratio")
///     } else {
///         CheckResult::pass().with_value(free_ratio, "ratio")
///     }
/// })
/// .interval(Duration::from_secs(30))
/// .timeout(Duration::from_secs(2))
/// .critical(false)
/// .build()
/// .unwrap();
/// assert_eq!(check.name(), "disk");
/// assert_eq!(check.interval(), Duration::from_secs(30));
/// assert!(!check.is_critical());
/// ```
#[derive(Clone)]
pub struct HealthCheck {
    pub(crate) name: Arc<str>,
    pub(crate) f: Arc<CheckFn>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) critical: bool,
    pub(crate) startup: bool,
    pub(crate) measurement: Cow<'static, str>,
}

impl fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("critical", &self.critical)
            .field("startup", &self.startup)
            .field("measurement", &self.measurement)
            .finish_non_exhaustive()
    }
}

impl HealthCheck {
    /// Starts building a check named `name` that runs `f`.
    ///
    /// Defaults: interval [`DEFAULT_INTERVAL`] (10 s), timeout [`DEFAULT_TIMEOUT`] (5 s),
    /// critical, not a startup check, measurement name `value`.
    pub fn builder<F, Fut, R>(name: impl Into<String>, f: F) -> HealthCheckBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Into<CheckResult> + 'static,
    {
        HealthCheckBuilder {
            name: name.into(),
            f: Arc::new(move || f().map(Into::into).boxed()),
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            critical: ComponentKind::Check.critical_by_default(),
            startup: false,
            measurement: Cow::Borrowed("value"),
        }
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interval between the end of one run and the start of the next.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a run may take before it fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether a failing run fails the aggregate.
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// Whether the startup view waits for this check to pass once.
    pub fn is_startup(&self) -> bool {
        self.startup
    }

    /// Runs the check once, with its timeout; panics and timeouts become failing results.
    ///
    /// The monitor calls this; it is public so a check can be exercised on its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_core::HealthStatus;
    /// use battlement_health::{CheckResult, HealthCheck};
    ///
    /// let check = HealthCheck::builder("ok", || async { CheckResult::pass() }).build().unwrap();
    /// let run = check.run().await;
    /// assert_eq!(run.result.status, HealthStatus::Pass);
    /// assert!(!run.timed_out && !run.panicked);
    /// # }
    /// ```
    pub async fn run(&self) -> CheckRun {
        let start = Instant::now();
        // Calling the function may itself panic (before it returns a future).
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)())) {
            Err(panic) => Err(panic),
            Ok(fut) => {
                match tokio::time::timeout(self.timeout, AssertUnwindSafe(fut).catch_unwind()).await
                {
                    Ok(Ok(result)) => Ok(Some(result)),
                    Ok(Err(panic)) => Err(panic),
                    Err(_elapsed) => Ok(None),
                }
            }
        };
        let duration = start.elapsed();
        match outcome {
            Ok(Some(result)) => CheckRun {
                result,
                duration,
                timed_out: false,
                panicked: false,
            },
            Ok(None) => {
                tracing::warn!(check = %self.name, timeout = ?self.timeout, "health check timed out");
                CheckRun {
                    result: CheckResult::fail(format!(
                        "check `{}` timed out after {:?}",
                        self.name, self.timeout
                    )),
                    duration,
                    timed_out: true,
                    panicked: false,
                }
            }
            Err(panic) => {
                let msg = panic_message(&*panic);
                tracing::error!(check = %self.name, panic = %msg, "health check panicked");
                CheckRun {
                    result: CheckResult::fail(format!("check `{}` panicked: {msg}", self.name)),
                    duration,
                    timed_out: false,
                    panicked: true,
                }
            }
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// One run of a [`HealthCheck`]: its result (a timeout or panic already turned into a failing
/// result), how long it took, and whether it timed out or panicked.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::HealthStatus;
/// use battlement_health::HealthCheck;
/// use std::time::Duration;
///
/// let check = HealthCheck::builder("hangs", || std::future::pending::<battlement_health::CheckResult>())
///     .timeout(Duration::from_secs(1))
///     .build()
///     .unwrap();
/// let run = check.run().await;
/// assert!(run.timed_out);
/// assert_eq!(run.result.status, HealthStatus::Fail);
/// assert_eq!(run.duration, Duration::from_secs(1));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckRun {
    /// What the run found.
    pub result: CheckResult,
    /// How long it took (measured with `tokio::time`).
    pub duration: Duration,
    /// It took longer than the check's timeout.
    pub timed_out: bool,
    /// It panicked.
    pub panicked: bool,
}

impl CheckRun {
    /// The state name a run leaves its check in: `passing`, `warning`, `failing`, `timed_out` or
    /// `panicked`.
    pub(crate) fn state(&self) -> &'static str {
        if self.timed_out {
            "timed_out"
        } else if self.panicked {
            "panicked"
        } else {
            match self.result.status {
                HealthStatus::Pass => "passing",
                HealthStatus::Warn => "warning",
                HealthStatus::Fail => "failing",
            }
        }
    }
}

/// Builds a [`HealthCheck`]; made by [`HealthCheck::builder`].
///
/// ```
/// use battlement_health::{CheckResult, HealthCheck};
/// use std::time::Duration;
///
/// let err = HealthCheck::builder("db", || async { CheckResult::pass() })
///     .interval(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "interval");
/// ```
pub struct HealthCheckBuilder {
    name: String,
    f: Arc<CheckFn>,
    interval: Duration,
    timeout: Duration,
    critical: bool,
    startup: bool,
    measurement: Cow<'static, str>,
}

impl fmt::Debug for HealthCheckBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheckBuilder")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("critical", &self.critical)
            .field("startup", &self.startup)
            .field("measurement", &self.measurement)
            .finish_non_exhaustive()
    }
}

impl HealthCheckBuilder {
    /// The time between the end of one run and the start of the next (default 10 s; must not be
    /// zero). The monitor runs a check as soon as it starts, then on this interval.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long a run may take before it fails with a timeout message (default 5 s; must not be
    /// zero).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether a failing run fails the aggregate (default `true`); a failing non-critical check
    /// only degrades it to `warn`.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Whether this is a startup check (default `false`): the startup view (`/startupz`,
    /// `/health/startup`) fails until every startup check has passed once (a run that does not
    /// fail: `pass` or `warn`), and passes from then on, whatever later runs find (readiness
    /// follows those). Use it for work a pod must finish before its other probes count: a cache
    /// warmed, migrations run, a first connection made.
    ///
    /// ```
    /// use battlement_health::{CheckResult, HealthCheck};
    ///
    /// let warm = HealthCheck::builder("cache-warm", || async { CheckResult::pass() })
    ///     .startup(true)
    ///     .critical(false)
    ///     .build()
    ///     .unwrap();
    /// assert!(warm.is_startup());
    /// ```
    pub fn startup(mut self, startup: bool) -> Self {
        self.startup = startup;
        self
    }

    /// The name of the measurement the check's observed value is served under: the JSON key is
    /// `<check>:<measurement>` (default `value`).
    pub fn measurement(mut self, measurement: impl Into<Cow<'static, str>>) -> Self {
        self.measurement = measurement.into();
        self
    }

    /// Validates the settings and builds the check.
    pub fn build(self) -> Result<HealthCheck, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::scoped(
                ComponentKind::Check,
                &self.name,
                "name",
                &self.name,
                "must not be empty",
            ));
        }
        if self.interval.is_zero() {
            return Err(ConfigError::scoped(
                ComponentKind::Check,
                &self.name,
                "interval",
                self.interval,
                "must be greater than zero",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::scoped(
                ComponentKind::Check,
                &self.name,
                "timeout",
                self.timeout,
                "must be greater than zero",
            ));
        }
        if self.measurement.is_empty() || self.measurement == "state" {
            return Err(ConfigError::scoped(
                ComponentKind::Check,
                &self.name,
                "measurement",
                &self.measurement,
                "must be non-empty and not `state` (reserved for the component's state)",
            ));
        }
        Ok(HealthCheck {
            name: self.name.into(),
            f: self.f,
            interval: self.interval,
            timeout: self.timeout,
            critical: self.critical,
            startup: self.startup,
            measurement: self.measurement,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_times_out_at_its_timeout() {
        let check = HealthCheck::builder("slow", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            CheckResult::pass()
        })
        .timeout(Duration::from_millis(250))
        .build()
        .unwrap();
        let run = check.run().await;
        assert!(run.timed_out);
        assert_eq!(run.state(), "timed_out");
        assert_eq!(run.duration, Duration::from_millis(250));
        assert_eq!(run.result.status, HealthStatus::Fail);
        assert_eq!(
            run.result.message.as_deref(),
            Some("check `slow` timed out after 250ms")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_check_fails_with_the_panic_message() {
        let in_future = HealthCheck::builder("boom", || async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if true {
                panic!("kaboom {}", 42);
            }
            CheckResult::pass()
        })
        .build()
        .unwrap();
        let run = in_future.run().await;
        assert!(run.panicked);
        assert_eq!(run.state(), "panicked");
        assert_eq!(run.result.status, HealthStatus::Fail);
        assert_eq!(
            run.result.message.as_deref(),
            Some("check `boom` panicked: kaboom 42")
        );

        // A function that panics before returning its future.
        let in_call = HealthCheck::builder("eager", || -> std::future::Ready<CheckResult> {
            panic!("eager")
        })
        .build()
        .unwrap();
        let run = in_call.run().await;
        assert!(run.panicked);
        assert_eq!(
            run.result.message.as_deref(),
            Some("check `eager` panicked: eager")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn results_and_conversions() {
        let check = HealthCheck::builder("io", || async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Err::<(), _>(std::io::Error::other("refused"))
        })
        .build()
        .unwrap();
        let run = check.run().await;
        assert_eq!(run.duration, Duration::from_millis(30));
        assert_eq!(run.state(), "failing");
        assert_eq!(run.result, CheckResult::fail("refused"));

        let warn = HealthCheck::builder("w", || async { HealthStatus::Warn })
            .build()
            .unwrap()
            .run()
            .await;
        assert_eq!(warn.state(), "warning");
    }

    #[test]
    fn builder_validates() {
        let f = || async { CheckResult::pass() };
        let e = HealthCheck::builder("", f).build().unwrap_err();
        assert_eq!(e.setting(), "name");
        let e = HealthCheck::builder("a", f)
            .timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "timeout");
        let e = HealthCheck::builder("a", f)
            .measurement("state")
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "measurement");
        let ok = HealthCheck::builder("a", f).build().unwrap();
        assert_eq!(ok.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(ok.interval(), DEFAULT_INTERVAL);
        assert!(ok.is_critical());
    }
}
