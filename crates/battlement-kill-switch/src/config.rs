//! The kill switch's builder and its validation.

use crate::limit::{Limit, LimitStatus};
use crate::switch::{validate_limit_name, KillSwitch};
use battlement_core::event::EventChannel;
use battlement_core::{ComponentKind, ConfigError, Registration};
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
    registration: Registration,
    limits: Vec<Limit>,
    event_capacity: usize,
}

impl fmt::Debug for KillSwitchBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillSwitchBuilder")
            .field("registration", &self.registration)
            .field("limits", &self.limits)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl KillSwitchBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        KillSwitchBuilder {
            registration: Registration::new(ComponentKind::KillSwitch, name),
            limits: Vec::new(),
            event_capacity: battlement_core::event::DEFAULT_EVENT_CAPACITY,
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

    battlement_core::define_registration_methods!();

    battlement_core::define_event_capacity_method!();

    /// Validates the settings and builds the switch (running).
    pub fn build(self) -> Result<KillSwitch, ConfigError> {
        let name = self.registration.name();
        self.registration.require_name()?;
        let events = EventChannel::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::KillSwitch, name))?;
        for (i, limit) in self.limits.iter().enumerate() {
            validate_limit_name(name, &limit.name, self.limits[..i].iter().map(|l| &*l.name))?;
        }
        let limits = self.limits.into_iter().map(Arc::new).collect();
        let switch = KillSwitch::from_parts(name.into(), limits, events);
        self.registration.register(Arc::new(switch.clone()))?;
        Ok(switch)
    }
}
