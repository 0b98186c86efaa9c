//! The kill switch's builder and its validation.

use crate::limit::{Limit, LimitStatus};
use crate::switch::{validate_limit_name, KillSwitch, COMPONENT};
use battlement_core::{ConfigError, HealthSink};
use std::fmt;
use std::sync::Arc;

/// Builds a [`KillSwitch`], validating every setting.
///
/// Defaults: no limits, registered as a critical component with every registry given, room for
/// 64 events per slow subscriber.
///
/// ```
/// use battlement_kill_switch::KillSwitch;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let drawdown_bp = Arc::new(AtomicU64::new(0));
/// let d = drawdown_bp.clone();
/// let switch = KillSwitch::builder("strategy-7")
///     .limit("max_drawdown", move || d.load(Ordering::Relaxed) > 500)
///     .event_capacity(16)
///     .build()
///     .unwrap();
/// assert_eq!(switch.limit_names(), ["max_drawdown"]);
///
/// let err = KillSwitch::builder("").build().unwrap_err();
/// assert_eq!(err.setting(), "name");
/// ```
#[must_use]
pub struct KillSwitchBuilder {
    name: String,
    limits: Vec<Limit>,
    registries: Vec<Box<dyn HealthSink + Send + Sync>>,
    critical: bool,
    event_capacity: usize,
}

impl fmt::Debug for KillSwitchBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillSwitchBuilder")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("registries", &self.registries.len())
            .field("critical", &self.critical)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl KillSwitchBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        KillSwitchBuilder {
            name: name.into(),
            limits: Vec::new(),
            registries: Vec::new(),
            critical: true,
            event_capacity: 64,
        }
    }

    /// Registers a limit (see [`KillSwitch::add_limit`]); names must be unique and not empty.
    pub fn limit<F, B>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> B + Send + Sync + 'static,
        B: LimitStatus,
    {
        self.limits.push(Limit::new(name.into().into(), check));
        self
    }

    /// Registers the switch with a health registry when it is built.
    pub fn registry<R>(mut self, registry: &R) -> Self
    where
        R: HealthSink + Clone + Send + Sync + 'static,
    {
        self.registries.push(Box::new(registry.clone()));
        self
    }

    /// Whether the switch is a critical component for the registries it is given (default
    /// `true`: a halted switch fails the health aggregate).
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// How many events a slow subscriber may fall behind by (default 64; within
    /// `1..=`[`MAX_EVENT_CAPACITY`](battlement_core::event::MAX_EVENT_CAPACITY), checked when
    /// built).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    fn err(&self, setting: &'static str, value: impl fmt::Debug, why: &'static str) -> ConfigError {
        ConfigError::new(format!("{COMPONENT} `{}`", self.name), setting, value, why)
    }

    /// Validates the settings and builds the switch (running).
    pub fn build(self) -> Result<KillSwitch, ConfigError> {
        if self.name.is_empty() {
            return Err(self.err("name", &self.name, "must not be empty"));
        }
        battlement_core::event::validate_event_capacity(
            format!("{COMPONENT} `{}`", self.name),
            self.event_capacity,
        )?;
        for (i, limit) in self.limits.iter().enumerate() {
            validate_limit_name(
                &self.name,
                &limit.name,
                self.limits[..i].iter().map(|l| &*l.name),
            )?;
        }
        let limits = self.limits.into_iter().map(Arc::new).collect();
        let switch = KillSwitch::from_parts(self.name.into(), limits, self.event_capacity);
        battlement_core::register_with(&self.registries, Arc::new(switch.clone()), self.critical)?;
        Ok(switch)
    }
}
