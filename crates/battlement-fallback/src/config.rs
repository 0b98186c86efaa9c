//! The fallback chain's builder and its validation.

use crate::chain::FallbackChain;
use crate::health::{ChainHealth, HealthSettings};
use crate::ChainHandle;
use battlement_core::event::EventChannel;
use battlement_core::{ComponentKind, ConfigError, Registration, ResultClassifier};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const MAX_WINDOW: usize = 100_000;

/// Builds a [`FallbackChain`], validating every setting.
///
/// Defaults: a window of the last 20 outcomes per member, at least 5 of them before a member can
/// turn unhealthy, a minimum success rate of 0.5, a cool-down of 30 s, the
/// [`ResultClassifier`], registered as a critical component with every registry given, room
/// for 64 events per slow subscriber.
///
/// ```
/// use battlement_fallback::FallbackChain;
/// use std::time::Duration;
/// use tower::service_fn;
///
/// let svc = service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
/// let chain = FallbackChain::builder("prices")
///     .member("primary", svc)
///     .member("replica", svc)
///     .cool_down(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// assert_eq!(chain.members().len(), 2);
///
/// let err = FallbackChain::builder("prices")
///     .member("a", svc)
///     .member("a", svc)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "member");
///
/// let err = FallbackChain::builder("prices").member("a", svc).min_success_rate(1.5).build().unwrap_err();
/// assert_eq!(err.setting(), "min_success_rate");
/// ```
#[must_use]
pub struct FallbackChainBuilder<S, C = ResultClassifier> {
    registration: Registration,
    members: Vec<(String, S)>,
    classifier: C,
    window: usize,
    min_calls: usize,
    min_success_rate: f64,
    cool_down: Duration,
    event_capacity: usize,
}

impl<S, C> fmt::Debug for FallbackChainBuilder<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackChainBuilder")
            .field("registration", &self.registration)
            .field(
                "members",
                &self.members.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("window", &self.window)
            .field("min_calls", &self.min_calls)
            .field("min_success_rate", &self.min_success_rate)
            .field("cool_down", &self.cool_down)
            .field("event_capacity", &self.event_capacity)
            .finish_non_exhaustive()
    }
}

impl<S> FallbackChainBuilder<S> {
    /// A builder for a chain named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        FallbackChainBuilder {
            registration: Registration::new(ComponentKind::Fallback, name),
            members: Vec::new(),
            classifier: ResultClassifier,
            window: 20,
            min_calls: 5,
            min_success_rate: 0.5,
            cool_down: Duration::from_secs(30),
            event_capacity: battlement_core::event::DEFAULT_EVENT_CAPACITY,
        }
    }
}

impl<S, C> FallbackChainBuilder<S, C> {
    /// Appends a member; calls try members in the order they were added. Names must be unique
    /// and not empty.
    pub fn member(mut self, name: impl Into<String>, service: S) -> Self {
        self.members.push((name.into(), service));
        self
    }

    /// Decides what counts as a member's failure (default [`ResultClassifier`]; use
    /// `HttpClassifier` from `battlement-core` for HTTP responses).
    pub fn classifier<C2>(self, classifier: C2) -> FallbackChainBuilder<S, C2> {
        FallbackChainBuilder {
            registration: self.registration,
            members: self.members,
            classifier,
            window: self.window,
            min_calls: self.min_calls,
            min_success_rate: self.min_success_rate,
            cool_down: self.cool_down,
            event_capacity: self.event_capacity,
        }
    }

    /// How many recent outcomes of each member the success rate is computed over (default 20;
    /// 1..=100000).
    pub fn window(mut self, calls: usize) -> Self {
        self.window = calls;
        self
    }

    /// How many outcomes a member's window must hold before it can turn unhealthy (default 5;
    /// 1..=window).
    pub fn min_calls(mut self, calls: usize) -> Self {
        self.min_calls = calls;
        self
    }

    /// A member whose success rate over its window falls below this turns unhealthy (default
    /// 0.5; within 0..=1).
    pub fn min_success_rate(mut self, rate: f64) -> Self {
        self.min_success_rate = rate;
        self
    }

    /// How long an unhealthy member is skipped before a trial call (default 30 s; not zero).
    pub fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    battlement_core::define_registration_methods!();

    battlement_core::define_event_capacity_method!();

    fn err(&self, setting: &'static str, value: impl fmt::Debug, why: &'static str) -> ConfigError {
        self.registration.error(setting, value, why)
    }

    fn validate(&self) -> Result<EventChannel<crate::ChainEvent>, ConfigError> {
        self.registration.require_name()?;
        if self.members.is_empty() {
            return Err(self.err("member", "none", "a chain needs at least one member"));
        }
        for (i, (name, _)) in self.members.iter().enumerate() {
            if name.is_empty() {
                return Err(self.err("member", name, "a member's name must not be empty"));
            }
            if self.members[..i].iter().any(|(n, _)| n == name) {
                return Err(self.err("member", name, "member names must be unique"));
            }
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(self.err("window", self.window, "must be within 1..=100000"));
        }
        if self.min_calls == 0 || self.min_calls > self.window {
            return Err(self.err("min_calls", self.min_calls, "must be within 1..=window"));
        }
        if !(0.0..=1.0).contains(&self.min_success_rate) {
            return Err(self.err(
                "min_success_rate",
                self.min_success_rate,
                "must be within 0..=1",
            ));
        }
        if self.cool_down.is_zero() {
            return Err(self.err("cool_down", self.cool_down, "must not be zero"));
        }
        EventChannel::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::Fallback, self.registration.name()))
    }

    /// Validates the settings and builds the chain (every member healthy).
    pub fn build(self) -> Result<FallbackChain<S, C>, ConfigError> {
        let events = self.validate()?;
        let settings = HealthSettings {
            window: self.window,
            min_calls: self.min_calls,
            min_success_rate: self.min_success_rate,
            cool_down: self.cool_down,
        };
        let (names, services): (Vec<Arc<str>>, Vec<S>) = self
            .members
            .into_iter()
            .map(|(name, svc)| (Arc::from(name), svc))
            .unzip();
        let health = Arc::new(ChainHealth::new(
            self.registration.name().into(),
            names,
            settings,
            events,
        ));
        self.registration
            .register(Arc::new(ChainHandle::new(health.clone())))?;
        Ok(FallbackChain::from_parts(services, self.classifier, health))
    }
}
