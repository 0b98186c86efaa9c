//! The rate limiter's builder and its validation.

use crate::event::RateLimitEvent;
use crate::key::{KeyExtractor, Unkeyed};
use crate::keys::{Direct, Keys, KeysFull, KeysSettings, Store};
use crate::limit::{Inner, Limits, RateLimit, TokioClock};
use arc_swap::ArcSwap;
use battlement_core::event::{EventChannel, DEFAULT_EVENT_CAPACITY};
use battlement_core::stripe::StripedCounter;
use battlement_core::{ComponentKind, ConfigError, Registration};
use governor::nanos::Nanos;
use governor::state::InMemoryState;
use governor::Quota;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// The default [`max_keys`](RateLimitBuilder::max_keys): 100,000 keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// The default [`eviction_interval`](RateLimitBuilder::eviction_interval): 60 s.
pub const DEFAULT_EVICTION_INTERVAL: Duration = Duration::from_secs(60);

/// The default [`rejection_window`](RateLimitBuilder::rejection_window): 10 s.
pub const DEFAULT_REJECTION_WINDOW: Duration = Duration::from_secs(10);

/// Builds a [`RateLimit`], validating every setting.
///
/// Defaults: no rate (it must be set: [`rate`](Self::rate)), a burst equal to the rate's `n`,
/// calls over the rate rejected at once ([`max_delay`](Self::max_delay) zero), unkeyed; keyed,
/// at most [`DEFAULT_MAX_KEYS`] keys, new keys rejected when that many are tracked
/// ([`KeysFull::Reject`]), idle keys evicted at most every [`DEFAULT_EVICTION_INTERVAL`] as new
/// keys arrive; a [`DEFAULT_REJECTION_WINDOW`] of `warn` after a rejection; registered, with
/// every registry given, as a non-critical component (a rate limiter's default,
/// [`ComponentKind::critical_by_default`]).
///
/// ```
/// use battlement_rate_limit::{KeysFull, RateLimit};
/// use std::time::Duration;
///
/// let limit = RateLimit::builder("login")
///     .rate(5, Duration::from_secs(60)) // 5 a minute…
///     .burst(2)                          // …at most 2 at once
///     .max_delay(Duration::from_millis(200))
///     .build()
///     .unwrap();
/// assert_eq!((limit.quota(), limit.burst()), (5, 2));
///
/// // Bad settings are refused when building, never at call time.
/// let err = RateLimit::builder("login").build().unwrap_err();
/// assert_eq!(err.setting(), "rate");
/// let err = RateLimit::builder("login").rate(0, Duration::from_secs(1)).build().unwrap_err();
/// assert_eq!(err.setting(), "rate");
/// let err = RateLimit::builder("login")
///     .rate(5, Duration::from_secs(1))
///     .burst(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "burst");
/// ```
#[must_use]
pub struct RateLimitBuilder<X = Unkeyed> {
    registration: Registration,
    rate: Option<(u32, Duration)>,
    burst: Option<u32>,
    max_delay: Duration,
    extractor: X,
    keyed: bool,
    max_keys: usize,
    when_full: KeysFull,
    eviction_interval: Duration,
    rejection_window: Duration,
    event_capacity: usize,
}

impl<X: fmt::Debug> fmt::Debug for RateLimitBuilder<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("registration", &self.registration)
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("max_delay", &self.max_delay)
            .field("key", &self.extractor)
            .field("max_keys", &self.max_keys)
            .field("when_full", &self.when_full)
            .field("eviction_interval", &self.eviction_interval)
            .field("rejection_window", &self.rejection_window)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl RateLimitBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        RateLimitBuilder {
            registration: Registration::new(ComponentKind::RateLimit, name),
            rate: None,
            burst: None,
            max_delay: Duration::ZERO,
            extractor: Unkeyed,
            keyed: false,
            max_keys: DEFAULT_MAX_KEYS,
            when_full: KeysFull::default(),
            eviction_interval: DEFAULT_EVICTION_INTERVAL,
            rejection_window: DEFAULT_REJECTION_WINDOW,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// Counts calls per key, read from each request by `extractor` ([`ClientIp`],
    /// [`ForwardedFor`], [`Header`], [`Extension`] with the feature `http`, or a closure with
    /// [`key_fn`](crate::key_fn)). Calls whose request has no key share one limit of their
    /// own.
    ///
    /// [`ClientIp`]: crate::key
    /// [`ForwardedFor`]: crate::key
    /// [`Header`]: crate::key
    /// [`Extension`]: crate::key
    pub fn keyed<X: KeyExtractor>(self, extractor: X) -> RateLimitBuilder<X> {
        RateLimitBuilder {
            registration: self.registration,
            rate: self.rate,
            burst: self.burst,
            max_delay: self.max_delay,
            extractor,
            keyed: true,
            max_keys: self.max_keys,
            when_full: self.when_full,
            eviction_interval: self.eviction_interval,
            rejection_window: self.rejection_window,
            event_capacity: self.event_capacity,
        }
    }
}

impl<X> RateLimitBuilder<X> {
    /// The rate: `n` calls per `period` (required; `n` at least 1, `period / n` at least 1 ns).
    /// Calls are spaced evenly (GCRA): one is admitted every `period / n`, with up to
    /// [`burst`](Self::burst) at once after a quiet spell.
    pub fn rate(mut self, n: u32, period: Duration) -> Self {
        self.rate = Some((n, period));
        self
    }

    /// How many calls may pass at once after a quiet spell (default: the rate's `n`; at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// How long a call over the rate may wait to be admitted (default zero: rejected at once).
    ///
    /// A call whose wait would be longer is rejected at once (waiting could not help it); one
    /// that waits is checked again when its time comes, and rejected if another call took its
    /// turn and the next one is past its deadline. A waiting call holds nothing in the
    /// limiter: dropping it is all it takes to cancel. Waiting needs a tokio runtime with time
    /// enabled (as for `tower::timeout`).
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// At most how many keys a keyed limiter tracks (default [`DEFAULT_MAX_KEYS`]; at least 1).
    /// Each takes a `DashMap` entry: the key and 8 bytes of state.
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    /// What happens to new keys while `max_keys` are tracked and none is idle (default
    /// [`KeysFull::Reject`]: fail closed).
    pub fn when_full(mut self, when_full: KeysFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// How often, at most, a new key's arrival evicts idle keys (default
    /// [`DEFAULT_EVICTION_INTERVAL`]; greater than zero). A key is idle once its state is
    /// indistinguishable from a key never seen (its burst has refilled). Eviction is amortised
    /// on new keys, with no timer task: when the table is full it also runs at most once per
    /// emission interval; [`RateLimit::evict_idle`] runs it by hand.
    pub fn eviction_interval(mut self, interval: Duration) -> Self {
        self.eviction_interval = interval;
        self
    }

    /// How long after a rejection the health snapshot still reports `warn` (state
    /// `limiting`; default [`DEFAULT_REJECTION_WINDOW`]). Zero: only at the instant of a
    /// rejection.
    pub fn rejection_window(mut self, window: Duration) -> Self {
        self.rejection_window = window;
        self
    }

    battlement_core::define_event_capacity_method!();
    battlement_core::define_registration_methods!();

    fn err(&self, setting: &'static str, value: impl fmt::Debug, why: &'static str) -> ConfigError {
        self.registration.error(setting, value, why)
    }

    /// The governor quota, or the refused setting.
    fn quota(&self) -> Result<(Quota, u32, Duration, u32), ConfigError> {
        let Some((n, period)) = self.rate else {
            return Err(self.err("rate", "unset", "must be set (n calls per period)"));
        };
        if n == 0 {
            return Err(self.err("rate", (n, period), "n must be at least 1"));
        }
        let Some(interval) = Quota::with_period(period / n) else {
            return Err(self.err(
                "rate",
                (n, period),
                "period / n must be at least 1 ns (and the period greater than zero)",
            ));
        };
        let burst = self.burst.unwrap_or(n);
        let Some(max_burst) = NonZeroU32::new(burst) else {
            return Err(self.err("burst", burst, "must be at least 1"));
        };
        Ok((interval.allow_burst(max_burst), n, period, burst))
    }

    /// Runs every check [`build`](Self::build) runs, except registration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.registration.require_name()?;
        self.quota()?;
        if self.keyed && self.max_keys == 0 {
            return Err(self.err("max_keys", self.max_keys, "must be at least 1"));
        }
        if self.eviction_interval.is_zero() {
            return Err(self.err(
                "eviction_interval",
                self.eviction_interval,
                "must be greater than zero",
            ));
        }
        EventChannel::<RateLimitEvent>::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::RateLimit, self.registration.name()))?;
        Ok(())
    }

    /// The key table's settings for a quota of `quota` with `burst`.
    fn keys_settings(&self, quota: Quota, burst: u32) -> KeysSettings {
        let t = Nanos::from(quota.replenish_interval().max(Duration::from_nanos(1)));
        let tau = Nanos::new(t.as_u64().saturating_mul(u64::from(burst - 1)));
        KeysSettings {
            max: self.max_keys,
            when_full: self.when_full,
            t,
            tau,
            eviction_interval: Nanos::from(self.eviction_interval),
        }
    }

    fn rejection_nanos(&self) -> u64 {
        u64::try_from(self.rejection_window.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl<X: KeyExtractor> RateLimitBuilder<X> {
    /// Validates the settings and builds the limiter (registering it with every registry
    /// given).
    pub fn build(self) -> Result<RateLimit<X>, ConfigError> {
        self.validate()?;
        let (quota, n, period, burst) = self.quota()?;
        let name: Arc<str> = Arc::from(self.registration.name());
        let events = EventChannel::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::RateLimit, &name))?;
        let clock = TokioClock::new();
        let keys = self.keyed.then(|| {
            Arc::new(Keys::new(
                self.keys_settings(quota, burst),
                name.clone(),
                events.clone(),
            ))
        });
        let direct_state = Arc::new(InMemoryState::default());
        let rejection_window = AtomicU64::new(self.rejection_nanos());
        let limits = Limits {
            direct: governor::RateLimiter::new(quota, Direct(direct_state.clone()), clock),
            keyed: keys
                .as_ref()
                .map(|keys| governor::RateLimiter::new(quota, Store(keys.clone()), clock)),
            quota: n,
            window: period,
            burst,
            max_delay: self.max_delay,
        };
        let limit = RateLimit {
            inner: Arc::new(Inner {
                name,
                extractor: self.extractor,
                limits: Arc::new(ArcSwap::from_pointee(limits)),
                direct_state,
                keys,
                clock,
                rejection_window,
                admitted: StripedCounter::new(),
                rejected: AtomicU64::new(0),
                waited: AtomicU64::new(0),
                last_rejection: AtomicU64::new(0),
                events,
            }),
        };
        self.registration.register(Arc::new(limit.clone()))?;
        Ok(limit)
    }
}

impl<X: KeyExtractor> RateLimit<X> {
    /// Takes new settings from `settings` (a live reload; see `battlement-config`), or refuses
    /// them all, changing nothing, if any is invalid.
    ///
    /// - The rate, the burst and `max_delay` apply to the next call. The limiter's state stays:
    ///   each key (and the unkeyed limit) keeps its GCRA theoretical arrival time, which the
    ///   new rate reads, so a reload neither refills every burst nor forgets who was limited.
    ///   Calls waiting under `max_delay` keep the deadline they had.
    /// - `max_keys`, `when_full` and `eviction_interval` apply to the key table in place; a
    ///   `max_keys` smaller than the keys tracked now refuses (or admits untracked, as
    ///   `when_full` says) new keys until idle keys are evicted.
    /// - `rejection_window` applies to the next health snapshot.
    /// - Fixed at build: the name, the key extractor (`settings` may be unkeyed: whether calls
    ///   are counted per key is this limiter's), registration and event capacity.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_rate_limit::RateLimit;
    /// use std::time::Duration;
    ///
    /// let settings = |n| RateLimit::builder("api").rate(n, Duration::from_secs(1));
    /// let limit = settings(2).build().unwrap();
    /// limit.reload(&settings(100)).unwrap();
    /// assert_eq!(limit.quota(), 100);
    /// assert!(limit.reload(&settings(0)).is_err());
    /// assert_eq!(limit.quota(), 100);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The first setting refused, as [`build`](RateLimitBuilder::build) would refuse it.
    pub fn reload<Y>(&self, settings: &RateLimitBuilder<Y>) -> Result<(), ConfigError> {
        settings.registration.require_name()?;
        let (quota, n, period, burst) = settings.quota()?;
        if self.is_keyed() && settings.max_keys == 0 {
            return Err(settings.err("max_keys", settings.max_keys, "must be at least 1"));
        }
        if settings.eviction_interval.is_zero() {
            return Err(settings.err(
                "eviction_interval",
                settings.eviction_interval,
                "must be greater than zero",
            ));
        }
        let inner = &*self.inner;
        if let Some(keys) = &inner.keys {
            keys.configure(&settings.keys_settings(quota, burst));
        }
        let limits = Limits {
            direct: governor::RateLimiter::new(
                quota,
                Direct(inner.direct_state.clone()),
                inner.clock,
            ),
            keyed: inner
                .keys
                .as_ref()
                .map(|keys| governor::RateLimiter::new(quota, Store(keys.clone()), inner.clock)),
            quota: n,
            window: period,
            burst,
            max_delay: settings.max_delay,
        };
        inner.limits.store(Arc::new(limits));
        inner.rejection_window.store(
            settings.rejection_nanos(),
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::info!(name = %inner.name, kind = "rate_limit", quota = n, ?period, burst, "rate limiter reloaded");
        Ok(())
    }
}
