//! Snapshots: what a stateful component reports to the health registry.
//!
//! Pattern crates do not depend on the health crate. Each stateful component (a breaker, a
//! bulkhead, a probe) implements [`HealthSource`]; the health registry holds `Arc<dyn HealthSource>` and
//! reads [`HealthSnapshot`]s, which are plain, serde-serializable data. A builder given a
//! [`HealthSink`] (the health registry implements it) registers the component it builds.
//!
//! Components are identified by (kind, name): a breaker and a bulkhead may share a name, two
//! breakers may not. Registering a second component of the same kind and name is an error
//! ([`ConfigError`]) that the builder which registers returns, never a silent replacement.

use crate::error::ConfigError;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A component's health, in the `application/health+json` vocabulary.
///
/// Ordered from best to worst, so the aggregate of several is their maximum.
///
/// ```
/// use battlement_core::HealthStatus;
///
/// assert!(HealthStatus::Fail > HealthStatus::Warn);
/// assert_eq!(HealthStatus::Warn.as_str(), "warn");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Healthy.
    #[default]
    Pass,
    /// Degraded but serving.
    Warn,
    /// Unhealthy.
    Fail,
}

impl HealthStatus {
    /// `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Pass => "pass",
            HealthStatus::Warn => "warn",
            HealthStatus::Fail => "fail",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sort of component a snapshot describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ComponentKind {
    /// A circuit breaker.
    CircuitBreaker,
    /// A bulkhead.
    Bulkhead,
    /// A retry policy.
    Retry,
    /// A timeout.
    Timeout,
    /// A passive health probe.
    Probe,
    /// A custom health check.
    Check,
    /// A fallback chain.
    Fallback,
    /// A hedging layer.
    Hedge,
    /// A kill switch.
    KillSwitch,
    /// Fault injection (chaos).
    Chaos,
    /// A rate limiter.
    RateLimit,
    /// A client-side adaptive throttle.
    Throttle,
    /// Outlier detection for a pool of endpoints.
    OutlierDetection,
    /// Anything else.
    Other,
}

impl ComponentKind {
    /// A short, stable, snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::CircuitBreaker => "circuit_breaker",
            ComponentKind::Bulkhead => "bulkhead",
            ComponentKind::Retry => "retry",
            ComponentKind::Timeout => "timeout",
            ComponentKind::Probe => "probe",
            ComponentKind::Check => "check",
            ComponentKind::Fallback => "fallback",
            ComponentKind::Hedge => "hedge",
            ComponentKind::KillSwitch => "kill_switch",
            ComponentKind::Chaos => "chaos",
            ComponentKind::RateLimit => "rate_limit",
            ComponentKind::Throttle => "throttle",
            ComponentKind::OutlierDetection => "outlier_detection",
            ComponentKind::Other => "other",
        }
    }

    /// The kind in words (`circuit breaker`, `kill switch`, …), for messages.
    ///
    /// ```
    /// use battlement_core::ComponentKind;
    ///
    /// assert_eq!(ComponentKind::CircuitBreaker.describe(), "circuit breaker");
    /// ```
    pub fn describe(self) -> &'static str {
        match self {
            ComponentKind::CircuitBreaker => "circuit breaker",
            ComponentKind::Bulkhead => "bulkhead",
            ComponentKind::Retry => "retry policy",
            ComponentKind::Timeout => "timeout",
            ComponentKind::Probe => "health probe",
            ComponentKind::Check => "health check",
            ComponentKind::Fallback => "fallback chain",
            ComponentKind::Hedge => "hedge",
            ComponentKind::KillSwitch => "kill switch",
            ComponentKind::Chaos => "chaos",
            ComponentKind::RateLimit => "rate limiter",
            ComponentKind::Throttle => "adaptive throttle",
            ComponentKind::OutlierDetection => "outlier detector",
            ComponentKind::Other => "component",
        }
    }
}

impl ComponentKind {
    /// Whether a component of this kind is critical when its builder is not told
    /// (`critical(bool)`): a critical component that fails fails the health aggregate, a
    /// non-critical one only degrades it to `warn`. Every builder and the facade's stack take
    /// their default from here:
    ///
    /// | kind | critical by default | why |
    /// |---|---|---|
    /// | `CircuitBreaker` | yes | an open breaker means its dependency is failing |
    /// | `Bulkhead` | no | its own status is at worst `warn` (saturated, rejecting): back-pressure, not an outage |
    /// | `Retry` | no | a retry policy only reports; its status is at worst `warn` (budget exhausted) |
    /// | `Timeout` | no | timeouts show as failures of the breaker or probe around them |
    /// | `Probe` | yes | a failing probe means the probed dependency is failing |
    /// | `Check` | yes | a custom check is written to say whether the service can serve |
    /// | `Fallback` | yes | a chain with no healthy member cannot serve |
    /// | `Hedge` | no | hedging is a latency optimisation; calls still succeed without it |
    /// | `KillSwitch` | yes | a halted switch rejects every call on purpose |
    /// | `Chaos` | no | injected faults are an experiment, not an outage to page on |
    /// | `RateLimit` | no | its status is at worst `warn` (rejecting): it sheds excess load on purpose |
    /// | `Throttle` | no | its status is at worst `warn` (throttling): it sheds calls a dependency is refusing anyway; the dependency's own breaker or probe says whether it is down |
    /// | `OutlierDetection` | no | its status is at worst `warn` (endpoints ejected): the pool still serves from the others |
    /// | `Other` | yes | a component registered by hand says what it is |
    ///
    /// ```
    /// use battlement_core::ComponentKind;
    ///
    /// assert!(ComponentKind::CircuitBreaker.critical_by_default());
    /// assert!(!ComponentKind::Bulkhead.critical_by_default());
    /// ```
    pub fn critical_by_default(self) -> bool {
        match self {
            ComponentKind::CircuitBreaker
            | ComponentKind::Probe
            | ComponentKind::Check
            | ComponentKind::Fallback
            | ComponentKind::KillSwitch
            | ComponentKind::Other => true,
            ComponentKind::Bulkhead
            | ComponentKind::Retry
            | ComponentKind::Timeout
            | ComponentKind::Hedge
            | ComponentKind::Chaos
            | ComponentKind::RateLimit
            | ComponentKind::Throttle
            | ComponentKind::OutlierDetection => false,
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named measurement in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// The measurement's name (e.g. `failure_rate`).
    pub name: Cow<'static, str>,
    /// Its value.
    pub value: f64,
    /// Its unit (e.g. `ratio`, `ms`, `calls`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Cow<'static, str>>,
}

impl Metric {
    /// A measurement with a unit.
    pub fn new(name: impl Into<Cow<'static, str>>, value: f64, unit: &'static str) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: Some(Cow::Borrowed(unit)),
        }
    }

    /// A count of calls (unit `calls`), e.g. `Metric::calls("rejected", 3)`.
    pub fn calls(name: impl Into<Cow<'static, str>>, count: u64) -> Self {
        Metric::new(name, count as f64, "calls")
    }

    /// A duration in milliseconds (unit `ms`).
    ///
    /// ```
    /// use battlement_core::Metric;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Metric::millis("p99", Duration::from_micros(2500)).value, 2.5);
    /// ```
    pub fn millis(name: impl Into<Cow<'static, str>>, duration: std::time::Duration) -> Self {
        Metric::new(name, duration.as_secs_f64() * 1e3, "ms")
    }

    /// A ratio from 0 to 1 (unit `ratio`).
    pub fn ratio(name: impl Into<Cow<'static, str>>, ratio: f64) -> Self {
        Metric::new(name, ratio, "ratio")
    }

    /// A measurement without a unit.
    pub fn unitless(name: impl Into<Cow<'static, str>>, value: f64) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: None,
        }
    }
}

/// A point-in-time report of one component, as plain data.
///
/// `status` is the component's own view of its health (a breaker that is open says `fail`, a
/// half-open one `warn`, a saturated bulkhead `warn`); the registry combines it with whether the
/// component is critical.
///
/// ```
/// use battlement_core::{ComponentKind, HealthStatus, Metric, HealthSnapshot};
///
/// let snap = HealthSnapshot::new("payments", ComponentKind::CircuitBreaker, "closed", HealthStatus::Pass)
///     .with_metric(Metric::new("failure_rate", 0.0, "ratio"));
/// assert_eq!(snap.metric("failure_rate"), Some(0.0));
/// let json = serde_json::to_value(&snap).unwrap();
/// assert_eq!(json["kind"], "circuit_breaker");
/// assert_eq!(json["status"], "pass");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// The component's name.
    pub name: String,
    /// What it is.
    pub kind: ComponentKind,
    /// Its state, in its own words (`closed`, `open`, `half_open`, `saturated`, …).
    pub state: Cow<'static, str>,
    /// Its own view of its health.
    pub status: HealthStatus,
    /// A human-readable note (e.g. why a breaker was forced open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its measurements.
    pub metrics: Vec<Metric>,
}

impl HealthSnapshot {
    /// A snapshot without metrics.
    pub fn new(
        name: impl Into<String>,
        kind: ComponentKind,
        state: impl Into<Cow<'static, str>>,
        status: HealthStatus,
    ) -> Self {
        HealthSnapshot {
            name: name.into(),
            kind,
            state: state.into(),
            status,
            message: None,
            metrics: Vec::new(),
        }
    }

    /// Adds a measurement.
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The value of the named measurement.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// A component that can report a [`HealthSnapshot`] of itself.
///
/// ```
/// use battlement_core::{ComponentKind, HealthStatus, HealthSource, HealthSnapshot};
///
/// struct Cache;
/// impl HealthSource for Cache {
///     fn name(&self) -> &str { "cache" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("cache", ComponentKind::Other, "warm", HealthStatus::Pass)
///     }
/// }
/// assert_eq!(Cache.snapshot().state, "warm");
/// assert_eq!(Cache.kind(), ComponentKind::Other); // read from a snapshot unless overridden
/// ```
pub trait HealthSource: Send + Sync + 'static {
    /// The component's name; with its [`kind`](Self::kind), unique within a registry.
    fn name(&self) -> &str;
    /// What sort of component it is. A registry reads it once, when the component registers.
    ///
    /// The default takes a [`snapshot`](Self::snapshot) and returns its kind; override it when
    /// the kind is known without one.
    fn kind(&self) -> ComponentKind {
        self.snapshot().kind
    }
    /// A snapshot of its state and metrics now.
    fn snapshot(&self) -> HealthSnapshot;

    /// Reports its metrics to an exporter at collection time (see [`export`](crate::export)):
    /// each value once, under the component's own [`Family`](crate::export::Family) statics.
    /// The exporter adds the component's `name` label and, for every component, its health
    /// status; the default reports nothing more.
    fn export(&self, out: &mut dyn crate::export::MetricsVisitor) {
        let _ = out;
    }
}

impl<T: HealthSource + ?Sized> HealthSource for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> ComponentKind {
        (**self).kind()
    }
    fn snapshot(&self) -> HealthSnapshot {
        (**self).snapshot()
    }
    fn export(&self, out: &mut dyn crate::export::MetricsVisitor) {
        (**self).export(out)
    }
}

/// Something components can register with, so a health report includes them (the health
/// registry implements it).
///
/// Components are identified by ([`kind`](HealthSource::kind), [`name`](HealthSource::name)): a
/// registrar refuses a second component of the same kind and name with a [`ConfigError`]
/// (whose [`setting`](ConfigError::setting) is `name`) and keeps the first; it never replaces
/// one silently, since the component replaced would vanish from readiness while it still
/// rejects calls. A builder given registrars registers with all of them or none: see
/// [`register_with`].
///
/// ```
/// use battlement_core::{ComponentKind, ConfigError, HealthStatus, HealthSource, HealthSink, HealthSnapshot};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Clone, Default)]
/// struct Names(Arc<Mutex<Vec<(ComponentKind, String)>>>);
/// impl HealthSink for Names {
///     fn register_component(&self, c: Arc<dyn HealthSource>, _critical: bool) -> Result<(), ConfigError> {
///         let key = (c.kind(), c.name().to_owned());
///         let mut names = self.0.lock().unwrap();
///         if names.contains(&key) {
///             return Err(ConfigError::new("component", "name", &key.1, "is already registered"));
///         }
///         names.push(key);
///         Ok(())
///     }
///     fn unregister_component(&self, kind: ComponentKind, name: &str) -> bool {
///         let mut names = self.0.lock().unwrap();
///         let before = names.len();
///         names.retain(|(k, n)| (*k, n.as_str()) != (kind, name));
///         names.len() != before
///     }
/// }
///
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn kind(&self) -> ComponentKind { ComponentKind::Other }
///     fn snapshot(&self) -> HealthSnapshot { HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass) }
/// }
/// let names = Names::default();
/// names.register_component(Arc::new(Db), true).unwrap();
/// assert!(names.register_component(Arc::new(Db), true).is_err());
/// ```
pub trait HealthSink {
    /// Registers `component`; a `critical` component that fails fails the aggregate.
    ///
    /// # Errors
    ///
    /// A component of the same kind and name is already registered.
    fn register_component(
        &self,
        component: Arc<dyn HealthSource>,
        critical: bool,
    ) -> Result<(), ConfigError>;

    /// Removes the component of `kind` named `name`; returns whether there was one.
    fn unregister_component(&self, kind: ComponentKind, name: &str) -> bool;
}

/// Registers `component` with every registrar in `registrars`, or with none: should one refuse
/// it, those that took it already are made to forget it, and the refusal is returned. Builders
/// call this from `build()`, so a duplicate is an error at build time.
///
/// ```
/// use battlement_core::{register_with, ComponentKind, ConfigError, HealthStatus, HealthSource, HealthSink, HealthSnapshot};
/// use std::sync::{Arc, Mutex};
///
/// /// Takes one component, then refuses.
/// #[derive(Clone, Default)]
/// struct One(Arc<Mutex<Option<String>>>);
/// impl HealthSink for One {
///     fn register_component(&self, c: Arc<dyn HealthSource>, _: bool) -> Result<(), ConfigError> {
///         let mut slot = self.0.lock().unwrap();
///         if slot.is_some() {
///             return Err(ConfigError::new("component", "name", c.name(), "is already registered"));
///         }
///         *slot = Some(c.name().to_owned());
///         Ok(())
///     }
///     fn unregister_component(&self, _: ComponentKind, name: &str) -> bool {
///         let mut slot = self.0.lock().unwrap();
///         slot.take_if(|n| n == name).is_some()
///     }
/// }
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn snapshot(&self) -> HealthSnapshot { HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass) }
/// }
///
/// let (free, taken) = (One::default(), One::default());
/// taken.register_component(Arc::new(Db), true).unwrap();
/// let registrars: Vec<Box<dyn HealthSink + Send + Sync>> = vec![Box::new(free.clone()), Box::new(taken)];
/// assert!(register_with(&registrars, Arc::new(Db), true).is_err());
/// assert!(free.0.lock().unwrap().is_none(), "all or none");
/// ```
///
/// # Errors
///
/// The first refusal.
pub fn register_with(
    registrars: &[Box<dyn HealthSink + Send + Sync>],
    component: Arc<dyn HealthSource>,
    critical: bool,
) -> Result<(), ConfigError> {
    register_all_with(registrars, &[(component, critical)])
}

/// Registers every `(component, critical)` pair with every registrar in `registrars`, or
/// nothing anywhere: on a refusal, every registration made so far is undone and the refusal
/// returned (the facade's stack builder registers its parts this way).
///
/// # Errors
///
/// The first refusal.
pub fn register_all_with(
    registrars: &[Box<dyn HealthSink + Send + Sync>],
    components: &[(Arc<dyn HealthSource>, bool)],
) -> Result<(), ConfigError> {
    let mut done: Vec<(&dyn HealthSink, &Arc<dyn HealthSource>)> = Vec::new();
    for registrar in registrars {
        for (component, critical) in components {
            if let Err(refused) = registrar.register_component(component.clone(), *critical) {
                for (registrar, component) in done.into_iter().rev() {
                    registrar.unregister_component(kind_of(&**component), component.name());
                }
                return Err(refused);
            }
            done.push((&**registrar, component));
        }
    }
    Ok(())
}

/// A component's kind as a registry reads it: [`HealthSource::kind`], or
/// [`ComponentKind::Other`] should that panic (the registry does not let a component's panic
/// escape into the code registering it).
pub fn kind_of(component: &dyn HealthSource) -> ComponentKind {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| component.kind()))
        .unwrap_or(ComponentKind::Other)
}
