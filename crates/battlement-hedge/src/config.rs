//! The hedging layer's builder and its validation.

use crate::handle::{DelaySetting, HedgeHandle, Shared};
use crate::policy::{Always, PredicateFn};
use crate::HedgeLayer;
use battlement_core::{ComponentKind, ConfigError, Registration};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const MAX_ATTEMPTS: usize = 16;
const MAX_WINDOW: usize = 100_000;

#[derive(Debug, Clone, Copy)]
enum Delay {
    Fixed(Duration),
    Percentile(f64),
}

/// Builds a [`HedgeLayer`], validating every setting.
///
/// Defaults: the delay is the 95th percentile of the last 1000 latencies (per worker thread),
/// used once 100 were recorded (100 ms until then) and clamped to 1 ms..=10 s; at most 2
/// attempts per call; no budget; every request hedgeable ([`Always`]); not a critical
/// component for the registries given (a hedge's default, its status is always `pass`).
///
/// ```
/// use battlement_hedge::HedgeLayer;
/// use std::time::Duration;
///
/// let layer = HedgeLayer::builder()
///     .name("search")
///     .latency_percentile(0.9)
///     .latency_window(500)
///     .min_samples(50)
///     .initial_delay(Duration::from_millis(30))
///     .max_attempts(3)
///     .budget(0.1)
///     .build()
///     .unwrap();
/// assert_eq!(layer.handle().current_delay(), Duration::from_millis(30));
///
/// let err = HedgeLayer::builder().latency_percentile(1.5).build().unwrap_err();
/// assert_eq!(err.setting(), "latency_percentile");
/// let err = HedgeLayer::builder().max_attempts(0).build().unwrap_err();
/// assert_eq!(err.setting(), "max_attempts");
/// ```
#[must_use]
pub struct HedgeBuilder<P = Always> {
    registration: Registration,
    delay: Delay,
    window: usize,
    min_samples: usize,
    initial_delay: Duration,
    min_delay: Duration,
    max_delay: Duration,
    max_attempts: usize,
    budget: Option<f64>,
    burst: u32,
    policy: P,
}

impl<P> fmt::Debug for HedgeBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBuilder")
            .field("registration", &self.registration)
            .field("delay", &self.delay)
            .field("window", &self.window)
            .field("min_samples", &self.min_samples)
            .field("initial_delay", &self.initial_delay)
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("max_attempts", &self.max_attempts)
            .field("budget", &self.budget)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl HedgeBuilder {
    pub(crate) fn new() -> Self {
        HedgeBuilder {
            registration: Registration::new(ComponentKind::Hedge, "hedge"),
            delay: Delay::Percentile(0.95),
            window: 1000,
            min_samples: 100,
            initial_delay: Duration::from_millis(100),
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(10),
            max_attempts: 2,
            budget: None,
            burst: 10,
            policy: Always,
        }
    }
}

impl<P> HedgeBuilder<P> {
    /// Names the layer in `tracing` events and health reports (default `hedge`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.registration.set_name(name);
        self
    }

    /// A fixed delay: a hedge is sent when the attempts in flight have not answered after
    /// `delay` (zero sends every attempt at once).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Delay::Fixed(delay);
        self
    }

    /// A delay that follows recent latency: the `percentile` (within `0 < p <= 1`, e.g. 0.95)
    /// of the latencies of recent successful calls.
    pub fn latency_percentile(mut self, percentile: f64) -> Self {
        self.delay = Delay::Percentile(percentile);
        self
    }

    /// How many recent latencies each worker thread keeps for the percentile (default 1000;
    /// 1..=100000).
    pub fn latency_window(mut self, latencies: usize) -> Self {
        self.window = latencies;
        self
    }

    /// How many latencies must be recorded before the percentile is used (default 100;
    /// 1..=window).
    pub fn min_samples(mut self, samples: usize) -> Self {
        self.min_samples = samples;
        self
    }

    /// The delay used until `min_samples` latencies were recorded (default 100 ms).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The percentile delay is never shorter than this (default 1 ms).
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The percentile delay is never longer than this (default 10 s).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The most attempts one call makes, the first included (default 2; 1..=16, where 1
    /// turns hedging off).
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Caps hedges at `ratio` of requests (within 0..=1): each request earns `ratio` of a
    /// hedge, a hedge spends one. The budget starts empty (with 0.1, the first hedge needs ten
    /// requests) and saves up at most [`budget_burst`](Self::budget_burst) hedges.
    pub fn budget(mut self, ratio: f64) -> Self {
        self.budget = Some(ratio);
        self
    }

    /// The most hedges the budget saves up (default 10; at least 1).
    pub fn budget_burst(mut self, hedges: u32) -> Self {
        self.burst = hedges;
        self
    }

    /// Decides which requests may be hedged (default [`Always`]).
    pub fn policy<P2>(self, policy: P2) -> HedgeBuilder<P2> {
        HedgeBuilder {
            registration: self.registration,
            delay: self.delay,
            window: self.window,
            min_samples: self.min_samples,
            initial_delay: self.initial_delay,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            max_attempts: self.max_attempts,
            budget: self.budget,
            burst: self.burst,
            policy,
        }
    }

    /// Hedges only the requests `f` accepts (the idempotent ones).
    pub fn hedge_if<F>(self, f: F) -> HedgeBuilder<PredicateFn<F>> {
        self.policy(PredicateFn::new(f))
    }

    battlement_core::define_registration_methods!();

    fn err(&self, setting: &'static str, value: impl fmt::Debug, why: &'static str) -> ConfigError {
        self.registration.error(setting, value, why)
    }

    /// Runs every check [`build`](Self::build) runs except registration (a name already taken
    /// in a registry is only found by registering), without building anything: what a
    /// [`reload`](HedgeLayer::reload) with these settings would accept.
    ///
    /// ```
    /// use battlement_hedge::HedgeLayer;
    ///
    /// assert!(HedgeLayer::builder().max_attempts(3).budget(0.1).validate().is_ok());
    /// let err = HedgeLayer::builder().budget(1.5).validate().unwrap_err();
    /// assert_eq!(err.setting(), "budget");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.registration.require_name()?;
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(self.err("max_attempts", self.max_attempts, "must be within 1..=16"));
        }
        if let Delay::Percentile(p) = self.delay {
            if !(p > 0.0 && p <= 1.0) {
                return Err(self.err("latency_percentile", p, "must be within 0 < p <= 1"));
            }
            if self.window == 0 || self.window > MAX_WINDOW {
                return Err(self.err("latency_window", self.window, "must be within 1..=100000"));
            }
            if self.min_samples == 0 || self.min_samples > self.window {
                return Err(self.err(
                    "min_samples",
                    self.min_samples,
                    "must be within 1..=latency_window",
                ));
            }
            if self.min_delay > self.max_delay {
                return Err(self.err(
                    "min_delay",
                    self.min_delay,
                    "must not be longer than max_delay",
                ));
            }
        }
        if let Some(ratio) = self.budget {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(self.err("budget", ratio, "must be within 0..=1"));
            }
            if self.burst == 0 {
                return Err(self.err("budget_burst", self.burst, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The delay as the layer keeps it.
    pub(crate) fn delay_setting(&self) -> DelaySetting {
        match self.delay {
            Delay::Fixed(d) => DelaySetting::Fixed(d),
            Delay::Percentile(percentile) => DelaySetting::Percentile {
                percentile,
                window: self.window,
                min_samples: self.min_samples,
                initial: self.initial_delay,
                min: self.min_delay,
                max: self.max_delay,
            },
        }
    }

    /// The budget as the layer keeps it: ratio and burst.
    pub(crate) fn budget_setting(&self) -> Option<(f64, u32)> {
        self.budget.map(|ratio| (ratio, self.burst))
    }

    /// The most attempts per call.
    pub(crate) fn max_attempts_setting(&self) -> usize {
        self.max_attempts
    }

    /// Validates the settings and builds the layer.
    pub fn build(self) -> Result<HedgeLayer<P>, ConfigError> {
        self.validate()?;
        let shared = Arc::new(Shared::new(
            self.registration.name().into(),
            self.delay_setting(),
            self.max_attempts,
            self.budget_setting(),
        ));
        self.registration.register(Arc::new(HedgeHandle {
            shared: shared.clone(),
        }))?;
        Ok(HedgeLayer::from_parts(shared, self.policy))
    }
}
