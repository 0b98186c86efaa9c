//! Snapshots: what a stateful component reports to the health registry.
//!
//! Pattern crates do not depend on the health crate. Each stateful component (a breaker, a
//! bulkhead, a probe) implements [`Observe`]; the health registry holds `Arc<dyn Observe>` and
//! reads [`Snapshot`]s, which are plain, serde-serializable data. A builder given a
//! [`Registrar`] (the health registry implements it) registers the component it builds.

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
    /// Anything else.
    Other,
}

impl ComponentKind {
    /// A short, stable, snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::CircuitBreaker => "circuit_breaker",
            ComponentKind::Bulkhead => "bulkhead",
            ComponentKind::Probe => "probe",
            ComponentKind::Check => "check",
            ComponentKind::Fallback => "fallback",
            ComponentKind::Hedge => "hedge",
            ComponentKind::KillSwitch => "kill_switch",
            ComponentKind::Other => "other",
        }
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
/// use battlement_core::{ComponentKind, HealthStatus, Metric, Snapshot};
///
/// let snap = Snapshot::new("payments", ComponentKind::CircuitBreaker, "closed", HealthStatus::Pass)
///     .with_metric(Metric::new("failure_rate", 0.0, "ratio"));
/// assert_eq!(snap.metric("failure_rate"), Some(0.0));
/// let json = serde_json::to_value(&snap).unwrap();
/// assert_eq!(json["kind"], "circuit_breaker");
/// assert_eq!(json["status"], "pass");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
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

impl Snapshot {
    /// A snapshot without metrics.
    pub fn new(
        name: impl Into<String>,
        kind: ComponentKind,
        state: impl Into<Cow<'static, str>>,
        status: HealthStatus,
    ) -> Self {
        Snapshot {
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

/// A component that can report a [`Snapshot`] of itself.
///
/// ```
/// use battlement_core::{ComponentKind, HealthStatus, Observe, Snapshot};
///
/// struct Cache;
/// impl Observe for Cache {
///     fn name(&self) -> &str { "cache" }
///     fn snapshot(&self) -> Snapshot {
///         Snapshot::new("cache", ComponentKind::Other, "warm", HealthStatus::Pass)
///     }
/// }
/// assert_eq!(Cache.snapshot().state, "warm");
/// ```
pub trait Observe: Send + Sync + 'static {
    /// The component's name, unique within a registry.
    fn name(&self) -> &str;
    /// A snapshot of its state and metrics now.
    fn snapshot(&self) -> Snapshot;
}

impl<T: Observe + ?Sized> Observe for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn snapshot(&self) -> Snapshot {
        (**self).snapshot()
    }
}

/// Something components can register with, so a health report includes them (the health
/// registry implements it).
pub trait Registrar {
    /// Registers `component`; a `critical` component that fails fails the aggregate.
    fn register_component(&self, component: Arc<dyn Observe>, critical: bool);
}
