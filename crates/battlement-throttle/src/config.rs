//! The throttle's builder and its validation.

use crate::event::ThrottleEvent;
use crate::Throttle;
use battlement_core::event::{EventChannel, DEFAULT_EVENT_CAPACITY};
use battlement_core::{ComponentKind, ConfigError, Registration};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// The default [`k`](ThrottleBuilder::k): 2, Google SRE's.
pub const DEFAULT_K: f64 = 2.0;

/// The default [`window`](ThrottleBuilder::window): 10 s.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// The default [`buckets`](ThrottleBuilder::buckets): 20 (of 500 ms with the default window).
pub const DEFAULT_BUCKETS: usize = 20;

/// The most [`buckets`](ThrottleBuilder::buckets) a window may have.
pub const MAX_BUCKETS: usize = 4096;

/// The shortest bucket (`window / buckets`) accepted: 1 ms.
pub const MIN_BUCKET: Duration = Duration::from_millis(1);

/// Builds a [`Throttle`], validating every setting.
///
/// Defaults: `K` = [`DEFAULT_K`] (2), a [`DEFAULT_WINDOW`] (10 s) window in
/// [`DEFAULT_BUCKETS`] (20) buckets, a random seed, registered with every registry given as a
/// non-critical component (a throttle's default,
/// [`ComponentKind::critical_by_default`]).
///
/// Google's SRE book keeps two minutes of history; the default window is shorter, so that a
/// dependency that recovered gets its traffic back sooner (`window(Duration::from_secs(120))`
/// for the book's).
///
/// ```
/// use battlement_throttle::Throttle;
/// use std::time::Duration;
///
/// let throttle = Throttle::builder("search")
///     .k(1.5) // more aggressive: throttle once a third of the calls are refused
///     .window(Duration::from_secs(60))
///     .buckets(60)
///     .build()
///     .unwrap();
/// assert_eq!(throttle.k(), 1.5);
///
/// // Bad settings are refused when building, never at call time.
/// let err = Throttle::builder("search").k(0.5).build().unwrap_err();
/// assert_eq!(err.setting(), "k");
/// assert_eq!(err.component(), "adaptive throttle `search`");
/// let err = Throttle::builder("search").window(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.setting(), "window");
/// let err = Throttle::builder("search").buckets(0).build().unwrap_err();
/// assert_eq!(err.setting(), "buckets");
/// ```
#[must_use]
pub struct ThrottleBuilder {
    registration: Registration,
    k: f64,
    window: Duration,
    buckets: usize,
    seed: Option<u64>,
    event_capacity: usize,
}

impl fmt::Debug for ThrottleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleBuilder")
            .field("registration", &self.registration)
            .field("k", &self.k)
            .field("window", &self.window)
            .field("buckets", &self.buckets)
            .field("seed", &self.seed)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl ThrottleBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        ThrottleBuilder {
            registration: Registration::new(ComponentKind::Throttle, name),
            k: DEFAULT_K,
            window: DEFAULT_WINDOW,
            buckets: DEFAULT_BUCKETS,
            seed: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// The multiplier `K` (default 2; finite and at least 1): calls are rejected locally with
    /// probability `max(0, (requests − K × accepts) / (requests + 1))`, so the dependency may
    /// refuse up to `1 − 1/K` of the calls before any is throttled, and in overload the client
    /// keeps sending about `K` times what it accepts. A smaller `K` throttles sooner and sends
    /// less waste; a larger one waits longer.
    ///
    /// At least 1, as the SRE book advises: below 1 a dependency that accepts every call would
    /// still be throttled (with `K` = 0.5 and every call accepted, the rule rejects about half).
    pub fn k(mut self, k: f64) -> Self {
        self.k = k;
        self
    }

    /// The sliding window's length (default [`DEFAULT_WINDOW`]; greater than zero): how much
    /// history the rule reads, and so how long a dependency's refusals are remembered.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many buckets the window is cut into (default [`DEFAULT_BUCKETS`]; within
    /// `1..=`[`MAX_BUCKETS`], and `window / buckets` at least [`MIN_BUCKET`]). The window
    /// slides a bucket at a time, and the rejection probability is recomputed once per bucket
    /// (by the first call of the bucket), so it is at most one bucket old.
    pub fn buckets(mut self, buckets: usize) -> Self {
        self.buckets = buckets;
        self
    }

    /// Seeds the per-thread random numbers that decide which calls are rejected (default: a
    /// random seed), so a test on one thread sees the same rejections every run.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    battlement_core::define_event_capacity_method!();
    battlement_core::define_registration_methods!();

    fn err(&self, setting: &'static str, value: impl fmt::Debug, why: &'static str) -> ConfigError {
        self.registration.error(setting, value, why)
    }

    /// Runs every check [`build`](Self::build) runs, except registration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.registration.require_name()?;
        if !(self.k.is_finite() && self.k >= 1.0) {
            return Err(self.err(
                "k",
                self.k,
                "must be finite and at least 1 (below 1, a dependency that accepts every call \
                 would be throttled)",
            ));
        }
        if self.window.is_zero() || u64::try_from(self.window.as_nanos()).is_err() {
            return Err(self.err(
                "window",
                self.window,
                "must be greater than zero (and at most u64::MAX ns)",
            ));
        }
        if !(1..=MAX_BUCKETS).contains(&self.buckets) {
            return Err(self.err("buckets", self.buckets, "must be within 1..=4096"));
        }
        if self.window / (self.buckets as u32) < MIN_BUCKET {
            return Err(self.err(
                "buckets",
                (self.buckets, self.window),
                "window / buckets must be at least 1 ms",
            ));
        }
        EventChannel::<ThrottleEvent>::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::Throttle, self.registration.name()))?;
        Ok(())
    }

    /// Validates the settings and builds the throttle (registering it with every registry
    /// given).
    pub fn build(self) -> Result<Throttle, ConfigError> {
        self.validate()?;
        let name: Arc<str> = Arc::from(self.registration.name());
        let events = EventChannel::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::Throttle, &name))?;
        let seed = self.seed.unwrap_or_else(|| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write(name.as_bytes());
            hasher.finish()
        });
        let throttle = Throttle::new(name, self.k, self.window, self.buckets, seed, events);
        self.registration.register(Arc::new(throttle.clone()))?;
        Ok(throttle)
    }
}

impl Throttle {
    /// Takes new settings from `settings` (a live reload; see `battlement-config`), or refuses
    /// them, changing nothing.
    ///
    /// `K` applies from the next bucket (the probability is recomputed once per bucket). The
    /// window and its buckets hold the history the rule reads, so they are fixed at build: a
    /// reload that changes either is refused (restart to change them), as are the name,
    /// registration, seed and event capacity, which it ignores.
    ///
    /// ```
    /// use battlement_throttle::Throttle;
    /// use std::time::Duration;
    ///
    /// let throttle = Throttle::builder("search").build().unwrap();
    /// throttle.reload(&Throttle::builder("search").k(1.5)).unwrap();
    /// assert_eq!(throttle.k(), 1.5);
    /// let err = throttle.reload(&Throttle::builder("search").window(Duration::from_secs(60))).unwrap_err();
    /// assert_eq!(err.setting(), "window");
    /// assert_eq!(throttle.k(), 1.5);
    /// ```
    ///
    /// # Errors
    ///
    /// The first setting refused.
    pub fn reload(&self, settings: &ThrottleBuilder) -> Result<(), ConfigError> {
        self.check_reload(settings)?;
        self.inner
            .k
            .store(settings.k.to_bits(), std::sync::atomic::Ordering::Relaxed);
        tracing::info!(name = %self.inner.name, kind = "throttle", k = settings.k, "throttle reloaded");
        Ok(())
    }

    /// Runs every check [`reload`](Self::reload) runs, changing nothing.
    ///
    /// # Errors
    ///
    /// The first setting [`reload`](Self::reload) would refuse.
    pub fn check_reload(&self, settings: &ThrottleBuilder) -> Result<(), ConfigError> {
        settings.validate()?;
        if settings.window != self.window() {
            return Err(settings.err(
                "window",
                settings.window,
                "is fixed once built (it holds the history the rule reads): restart to change it",
            ));
        }
        if settings.buckets != self.buckets() {
            return Err(settings.err(
                "buckets",
                settings.buckets,
                "is fixed once built (it holds the history the rule reads): restart to change it",
            ));
        }
        Ok(())
    }
}
