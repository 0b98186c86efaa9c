//! The settings of each pattern as a file writes them, and how they map onto the builders.
//!
//! Every field is optional: a field left out falls back to the `defaults` section, and then to
//! the builder's own default. Each `apply` calls the builder's setters, so every range check is
//! the builder's: a file can never build what code could not.

use crate::admission::{AdaptiveLimitSettings, RateLimitSettings, ThrottleSettings};
use battlement_breaker::{CircuitBreakerBuilder, SlidingWindow};
use battlement_bulkhead::BulkheadBuilder;
use battlement_core::ConfigError;
use battlement_hedge::HedgeBuilder;
use battlement_kill_switch::KillSwitchBuilder;
use battlement_retry::{Backoff, HttpRules, Jitter, RetryPolicyBuilder, Rules};
use battlement_timeout::{TimeoutBuilder, TimeoutLayer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Field-wise merge: a field set in `over` wins.
macro_rules! merge_fields {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $ty {
            /// These settings with every field that `over` sets taken from `over`.
            pub fn merged(&self, over: &Self) -> Self {
                $ty { $($field: over.$field.clone().or_else(|| self.$field.clone())),* }
            }
        }
    };
}

pub(crate) use merge_fields;

/// For each named field that is set, calls the builder's setter of the same name with its
/// value (the fields are `Option`s of `Copy` values): `set_fields!(b, self; max_wait, critical)`.
/// A field whose setter is named otherwise or takes more is applied by hand.
macro_rules! set_fields {
    ($b:ident, $self:ident; $($field:ident),+ $(,)?) => {
        $(
            if let Some(v) = $self.$field {
                $b = $b.$field(v);
            }
        )+
    };
}

pub(crate) use set_fields;

/// The sliding window of a breaker: a number of calls (`window = 100`) or a span of time
/// (`window = "30s"`, kept in `window_buckets` buckets).
///
/// ```
/// use battlement_config::Window;
/// use std::time::Duration;
///
/// let w: Window = serde_json_like("100");
/// assert_eq!(w, Window::Calls(100));
/// let w: Window = serde_json_like("\"30s\"");
/// assert_eq!(w, Window::Time(Duration::from_secs(30)));
/// # fn serde_json_like(s: &str) -> Window {
/// #     use figment::{Figment, providers::{Format, Json}};
/// #     Figment::from(Json::string(&format!("{{\"w\": {s}}}"))).extract_inner("w").unwrap()
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last N calls (of each ring; see the breaker's `SlidingWindow::Count`).
    Calls(u64),
    /// The calls of the last span of time.
    Time(Duration),
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of calls or a duration such as \"30s\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Window, E> {
                Ok(Window::Calls(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Window, E> {
                u64::try_from(v)
                    .map(Window::Calls)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Window, E> {
                if let Ok(n) = v.parse::<u64>() {
                    return Ok(Window::Calls(n)); // from an environment variable
                }
                humantime::parse_duration(v)
                    .map(Window::Time)
                    .map_err(|e| E::custom(format_args!("`{v}` is not a duration: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Window::Calls(n) => s.serialize_u64(*n),
            Window::Time(d) => s.collect_str(&humantime::format_duration(*d)),
        }
    }
}

/// A circuit breaker's settings (the `breaker` section). Each maps onto a
/// [`CircuitBreakerBuilder`] setter.
///
/// | key | builder setter | when left out |
/// |---|---|---|
/// | `window` | `sliding_window` (`100` calls or `"30s"`) | 100 calls |
/// | `window_buckets` | the buckets of a time window (ignored with a count window) | 10 |
/// | `minimum_calls` | `minimum_calls` | 10 |
/// | `failure_rate` | `failure_rate_threshold` | 0.5 |
/// | `slow_call_duration`, `slow_call_rate` | `slow_call` (the rate alone is ignored) | off; rate 1.0 |
/// | `consecutive_failures` | `consecutive_failures` | off |
/// | `open_wait`, `open_wait_multiplier`, `open_wait_max` | `open_wait` | 5 s, 2.0, max(60 s, `open_wait`) |
/// | `half_open_permits`, `half_open_successes` | `half_open_calls` | 1, 1 |
/// | `max_half_open` | `max_half_open` | none |
/// | `record_latency`, `count_rejections` | the same | false |
/// | `critical` | `critical` | true |
/// | `event_capacity` | `event_capacity` | the builder's |
///
/// ```
/// use battlement_breaker::CircuitBreaker;
/// use battlement_config::BreakerSettings;
///
/// let settings = BreakerSettings { failure_rate: Some(0.25), ..Default::default() };
/// let breaker = settings.apply(CircuitBreaker::builder("payments")).build().unwrap();
/// assert_eq!(breaker.name(), "payments");
///
/// // The builder's own validation refuses what it would refuse from code.
/// let bad = BreakerSettings { failure_rate: Some(1.5), ..Default::default() };
/// let err = bad.apply(CircuitBreaker::builder("payments")).build().unwrap_err();
/// assert_eq!(err.setting(), "failure_rate_threshold");
/// assert_eq!(BreakerSettings::key_of(err.setting()), Some("failure_rate"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// The sliding window: a number of calls or a duration.
    pub window: Option<Window>,
    /// The buckets a time window is kept in.
    pub window_buckets: Option<u32>,
    /// Calls the window must hold before a rate can trip the breaker.
    pub minimum_calls: Option<u64>,
    /// The failure rate (`0 < rate <= 1`) that opens the breaker.
    pub failure_rate: Option<f64>,
    /// A call slower than this is slow (turns the slow-call rule on).
    #[serde(with = "humantime_serde")]
    pub slow_call_duration: Option<Duration>,
    /// The slow-call rate that opens the breaker.
    pub slow_call_rate: Option<f64>,
    /// Opens after this many failures in a row.
    pub consecutive_failures: Option<u64>,
    /// How long to stay open after the first opening.
    #[serde(with = "humantime_serde")]
    pub open_wait: Option<Duration>,
    /// The open wait's growth on each reopening.
    pub open_wait_multiplier: Option<f64>,
    /// The longest open wait.
    #[serde(with = "humantime_serde")]
    pub open_wait_max: Option<Duration>,
    /// Trial calls admitted in half-open.
    pub half_open_permits: Option<u32>,
    /// Trial successes that close the breaker.
    pub half_open_successes: Option<u32>,
    /// Reopen if half-open lasts longer than this.
    #[serde(with = "humantime_serde")]
    pub max_half_open: Option<Duration>,
    /// Time every call for the latency metrics.
    pub record_latency: Option<bool>,
    /// Count rejections from layers below as failures.
    pub count_rejections: Option<bool>,
    /// Whether the breaker is critical for health.
    pub critical: Option<bool>,
    /// Room for events per slow subscriber.
    pub event_capacity: Option<usize>,
}

merge_fields!(BreakerSettings {
    window,
    window_buckets,
    minimum_calls,
    failure_rate,
    slow_call_duration,
    slow_call_rate,
    consecutive_failures,
    open_wait,
    open_wait_multiplier,
    open_wait_max,
    half_open_permits,
    half_open_successes,
    max_half_open,
    record_latency,
    count_rejections,
    critical,
    event_capacity,
});

/// The breaker builder's documented open-wait defaults, used when a file sets only some of the
/// three (a test checks they match the builder's).
const OPEN_WAIT: Duration = Duration::from_secs(5);
const OPEN_WAIT_MULTIPLIER: f64 = 2.0;
const OPEN_WAIT_MAX: Duration = Duration::from_secs(60);
/// The buckets of a time window when `window_buckets` is left out.
const WINDOW_BUCKETS: u32 = 10;

impl BreakerSettings {
    /// Calls the setters of `builder` for every field that is set.
    pub fn apply(&self, mut b: CircuitBreakerBuilder) -> CircuitBreakerBuilder {
        match self.window {
            Some(Window::Calls(n)) => b = b.sliding_window(SlidingWindow::Count(n)),
            Some(Window::Time(length)) => {
                b = b.sliding_window(SlidingWindow::Time {
                    length,
                    buckets: self.window_buckets.unwrap_or(WINDOW_BUCKETS),
                })
            }
            None => {}
        }
        if let Some(n) = self.minimum_calls {
            b = b.minimum_calls(n);
        }
        if let Some(rate) = self.failure_rate {
            b = b.failure_rate_threshold(rate);
        }
        if let Some(d) = self.slow_call_duration {
            b = b.slow_call(d, self.slow_call_rate.unwrap_or(1.0));
        }
        if let Some(n) = self.consecutive_failures {
            b = b.consecutive_failures(n);
        }
        if self.open_wait.is_some()
            || self.open_wait_multiplier.is_some()
            || self.open_wait_max.is_some()
        {
            let base = self.open_wait.unwrap_or(OPEN_WAIT);
            b = b.open_wait(
                base,
                self.open_wait_multiplier.unwrap_or(OPEN_WAIT_MULTIPLIER),
                self.open_wait_max.unwrap_or(OPEN_WAIT_MAX.max(base)),
            );
        }
        if self.half_open_permits.is_some() || self.half_open_successes.is_some() {
            b = b.half_open_calls(
                self.half_open_permits.unwrap_or(1),
                self.half_open_successes.unwrap_or(1),
            );
        }
        set_fields!(b, self;
            max_half_open,
            record_latency,
            count_rejections,
            critical,
            event_capacity,
        );
        b
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        Some(match setting {
            "sliding_window" => "window",
            "minimum_calls" => "minimum_calls",
            "failure_rate_threshold" => "failure_rate",
            "slow_call.duration" => "slow_call_duration",
            "slow_call.rate" => "slow_call_rate",
            "consecutive_failures" => "consecutive_failures",
            "open_wait.base" => "open_wait",
            "open_wait.multiplier" => "open_wait_multiplier",
            "open_wait.cap" => "open_wait_max",
            "half_open_calls.permits" => "half_open_permits",
            "half_open_calls.successes" => "half_open_successes",
            "max_half_open" => "max_half_open",
            "event_capacity" => "event_capacity",
            _ => return None,
        })
    }
}

/// A bulkhead's settings (the `bulkhead` section), each the [`BulkheadBuilder`] setter of the
/// same name: `max_concurrent`, `max_queued`, `max_wait`, `rejection_window`, `critical`.
///
/// ```
/// use battlement_bulkhead::Bulkhead;
/// use battlement_config::BulkheadSettings;
/// use std::time::Duration;
///
/// let settings = BulkheadSettings {
///     max_concurrent: Some(10),
///     max_queued: Some(5),
///     max_wait: Some(Duration::from_millis(50)),
///     ..Default::default()
/// };
/// let bulkhead = settings.apply(Bulkhead::builder("db")).build().unwrap();
/// assert_eq!(bulkhead.max_queued(), 5);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkheadSettings {
    /// Calls that may run at once.
    pub max_concurrent: Option<usize>,
    /// Calls that may wait for a permit.
    pub max_queued: Option<usize>,
    /// How long a call may wait in the queue.
    #[serde(with = "humantime_serde")]
    pub max_wait: Option<Duration>,
    /// How long after a rejection health still reports `warn`.
    #[serde(with = "humantime_serde")]
    pub rejection_window: Option<Duration>,
    /// Whether the bulkhead is critical for health.
    pub critical: Option<bool>,
}

merge_fields!(BulkheadSettings {
    max_concurrent,
    max_queued,
    max_wait,
    rejection_window,
    critical,
});

impl BulkheadSettings {
    /// Calls the setters of `builder` for every field that is set.
    pub fn apply(&self, mut b: BulkheadBuilder) -> BulkheadBuilder {
        set_fields!(b, self; max_concurrent, max_queued, max_wait, rejection_window, critical);
        b
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        Some(match setting {
            "max_concurrent" => "max_concurrent",
            "max_queued" => "max_queued",
            "max_wait" => "max_wait",
            "rejection_window" => "rejection_window",
            _ => return None,
        })
    }
}

/// A retry backoff's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffKind {
    /// The same delay every time (`backoff_base`).
    Fixed,
    /// `backoff_base`, then `backoff_step` more each time.
    Linear,
    /// `backoff_base`, multiplied by `backoff_multiplier` each time.
    Exponential,
    /// `backoff_base` times the Fibonacci numbers.
    Fibonacci,
    /// AWS's decorrelated jitter from `backoff_base` up to `backoff_cap`.
    Decorrelated,
}

/// A retry's jitter as a file writes it: `"none"`, `"full"`, `"equal"` or a percentage such as
/// `"25%"` (plus or minus up to 25 % of each delay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterSetting(pub Jitter);

impl<'de> Deserialize<'de> for JitterSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let jitter = match s.trim() {
            "none" => Jitter::None,
            "full" => Jitter::Full,
            "equal" => Jitter::Equal,
            other => match other.strip_suffix('%').map(|p| p.trim().parse::<f64>()) {
                Some(Ok(p)) => Jitter::Proportional(p),
                _ => {
                    return Err(serde::de::Error::custom(format_args!(
                        "`{s}` is not a jitter: \"none\", \"full\", \"equal\" or a percentage such as \"25%\""
                    )))
                }
            },
        };
        Ok(JitterSetting(jitter))
    }
}

impl Serialize for JitterSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Jitter::None => s.serialize_str("none"),
            Jitter::Full => s.serialize_str("full"),
            Jitter::Equal => s.serialize_str("equal"),
            Jitter::Proportional(p) => s.collect_str(&format_args!("{p}%")),
        }
    }
}

/// A retry policy's settings (the `retry` section), each a [`RetryPolicyBuilder`] setter.
///
/// | key | builder setter | when left out |
/// |---|---|---|
/// | `max_attempts`, `time_limit`, `min_delay`, `max_delay`, `max_retry_after`, `seed` | the same | the builder's |
/// | `backoff` (`"fixed"`, `"linear"`, `"exponential"`, `"fibonacci"`, `"decorrelated"`), `backoff_base`, `backoff_step`, `backoff_multiplier`, `backoff_cap` | `backoff` | exponential from 100 ms, ×2, cap max(10 s, base); step = base |
/// | `jitter` (`"none"`, `"full"`, `"equal"`, `"25%"`) | `jitter` | none |
/// | `budget_ratio`, `budget_min_per_sec`, `budget_ttl` | `budget`, `budget_ttl` | no budget; 0.2, 10, 10 s once one is set |
/// | `retry_rejected` | `retry_rejected` | false |
///
/// ```
/// use battlement_config::RetrySettings;
/// use battlement_retry::RetryPolicy;
///
/// let settings = RetrySettings { max_attempts: Some(0), ..Default::default() };
/// let err = settings.apply(RetryPolicy::builder()).build().unwrap_err();
/// assert_eq!(RetrySettings::key_of(err.setting()), Some("max_attempts"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// The most attempts in all, the first included.
    pub max_attempts: Option<u32>,
    /// No attempt starts later than this after the first.
    #[serde(with = "humantime_serde")]
    pub time_limit: Option<Duration>,
    /// The backoff's shape.
    pub backoff: Option<BackoffKind>,
    /// The backoff's first delay.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Option<Duration>,
    /// A linear backoff's step.
    #[serde(with = "humantime_serde")]
    pub backoff_step: Option<Duration>,
    /// An exponential backoff's multiplier.
    pub backoff_multiplier: Option<f64>,
    /// The longest backoff delay.
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Option<Duration>,
    /// The jitter on each delay.
    pub jitter: Option<JitterSetting>,
    /// No delay is shorter.
    #[serde(with = "humantime_serde")]
    pub min_delay: Option<Duration>,
    /// No backoff delay is longer.
    #[serde(with = "humantime_serde")]
    pub max_delay: Option<Duration>,
    /// The longest server-given delay waited for.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Option<Duration>,
    /// Retries allowed per request by the budget.
    pub budget_ratio: Option<f32>,
    /// Retries per second the budget allows regardless.
    pub budget_min_per_sec: Option<u32>,
    /// How long a budget deposit counts.
    #[serde(with = "humantime_serde")]
    pub budget_ttl: Option<Duration>,
    /// Retry rejections by battlement's own components.
    pub retry_rejected: Option<bool>,
    /// Seeds the randomness.
    pub seed: Option<u64>,
}

merge_fields!(RetrySettings {
    max_attempts,
    time_limit,
    backoff,
    backoff_base,
    backoff_step,
    backoff_multiplier,
    backoff_cap,
    jitter,
    min_delay,
    max_delay,
    max_retry_after,
    budget_ratio,
    budget_min_per_sec,
    budget_ttl,
    retry_rejected,
    seed,
});

/// The body of [`RetrySettings::apply`] and [`RetrySettings::apply_http`]: every set field's
/// setter, on either rules type.
macro_rules! apply_retry_settings {
    ($self:ident, $b:ident) => {{
        let mut b = $b;
        let s = $self;
        set_fields!(b, s; max_attempts, time_limit);
        if let Some(backoff) = s.backoff() {
            b = b.backoff(backoff);
        }
        if let Some(JitterSetting(j)) = s.jitter {
            b = b.jitter(j);
        }
        set_fields!(b, s; min_delay, max_delay, max_retry_after);
        if s.budget_ratio.is_some() || s.budget_min_per_sec.is_some() {
            b = b.budget(
                s.budget_ratio.unwrap_or(0.2),
                s.budget_min_per_sec.unwrap_or(10),
            );
        }
        set_fields!(b, s; budget_ttl, retry_rejected, seed);
        b
    }};
}

impl RetrySettings {
    /// The backoff these settings describe, if they set any backoff field.
    fn backoff(&self) -> Option<Backoff> {
        if self.backoff.is_none()
            && self.backoff_base.is_none()
            && self.backoff_step.is_none()
            && self.backoff_multiplier.is_none()
            && self.backoff_cap.is_none()
        {
            return None;
        }
        let base = self.backoff_base.unwrap_or(Duration::from_millis(100));
        let cap = self
            .backoff_cap
            .unwrap_or(Duration::from_secs(10).max(base));
        let backoff = match self.backoff.unwrap_or(BackoffKind::Exponential) {
            BackoffKind::Fixed => Backoff::fixed(base),
            BackoffKind::Linear => Backoff::linear(base, self.backoff_step.unwrap_or(base)),
            BackoffKind::Exponential => {
                Backoff::exponential(base, self.backoff_multiplier.unwrap_or(2.0)).with_cap(cap)
            }
            BackoffKind::Fibonacci => Backoff::fibonacci(base),
            BackoffKind::Decorrelated => return Some(Backoff::decorrelated_jitter(base, cap)),
        };
        Some(match (self.backoff_cap, self.backoff) {
            (Some(cap), _) => backoff.with_cap(cap),
            _ => backoff,
        })
    }

    /// Calls the setters of `builder` for every field that is set.
    pub fn apply<C, P>(
        &self,
        b: RetryPolicyBuilder<Rules<C>, P>,
    ) -> RetryPolicyBuilder<Rules<C>, P> {
        apply_retry_settings!(self, b)
    }

    /// [`apply`](Self::apply) for a policy over HTTP requests
    /// ([`RetryPolicy::http_builder`](battlement_retry::RetryPolicy::http_builder)), as the
    /// facade's standard client pipeline uses.
    pub fn apply_http<C, P>(
        &self,
        b: RetryPolicyBuilder<HttpRules<C>, P>,
    ) -> RetryPolicyBuilder<HttpRules<C>, P> {
        apply_retry_settings!(self, b)
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        Some(match setting {
            "max_attempts" => "max_attempts",
            "time_limit" => "time_limit",
            "backoff multiplier" => "backoff_multiplier",
            "backoff base" => "backoff_base",
            "backoff cap" => "backoff_cap",
            "jitter percent" => "jitter",
            "max_delay" => "max_delay",
            "max_retry_after" => "max_retry_after",
            "budget ratio" => "budget_ratio",
            "budget min_per_sec" => "budget_min_per_sec",
            "budget ttl" => "budget_ttl",
            _ => return None,
        })
    }
}

/// A timeout's settings (the `timeout` section): `limit`, the per-call limit
/// ([`TimeoutLayer::try_new`]), which a timeout needs (from the instance, its bases or
/// `defaults`).
///
/// ```
/// use battlement_config::TimeoutSettings;
/// use std::time::Duration;
///
/// let layer = TimeoutSettings { limit: Some(Duration::from_millis(250)) }.layer("search").unwrap();
/// assert_eq!(layer.limit(), Duration::from_millis(250));
/// assert_eq!(TimeoutSettings::default().layer("search").unwrap_err().setting(), "limit");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSettings {
    /// The per-call limit.
    #[serde(with = "humantime_serde")]
    pub limit: Option<Duration>,
}

merge_fields!(TimeoutSettings { limit });

impl TimeoutSettings {
    /// The builder of the timeout named `name` with this limit (add a registry and build, or
    /// give it to [`TimeoutLayer::reload`]).
    ///
    /// # Errors
    ///
    /// No limit is set.
    pub fn builder(&self, name: &str) -> Result<TimeoutBuilder, ConfigError> {
        let limit = self.limit.ok_or_else(|| {
            // (`format_args!`: the value reads `none`, not `"none"`.)
            ConfigError::new(
                "timeout",
                "limit",
                format_args!("none"),
                "must be set (e.g. \"2s\")",
            )
        })?;
        Ok(TimeoutLayer::builder(name).limit(limit))
    }

    /// The timeout layer named `name` (built by [`builder`](Self::builder), with no
    /// registry).
    ///
    /// # Errors
    ///
    /// No limit is set, or it is zero.
    pub fn layer(&self, name: &str) -> Result<TimeoutLayer, ConfigError> {
        self.builder(name)?.build()
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        (setting == "limit").then_some("limit")
    }
}

/// A hedge's delay as a file writes it: a fixed duration (`"50ms"`) or a percentile of recent
/// latencies (`"p95"`, `"p99.9"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// A fixed delay.
    Fixed(Duration),
    /// The percentile (`0 < p <= 1`) of recent latencies.
    Percentile(f64),
}

impl<'de> Deserialize<'de> for HedgeDelay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(p) = s.trim().strip_prefix('p') {
            return p
                .parse::<f64>()
                .map(|p| HedgeDelay::Percentile(p / 100.0))
                .map_err(|_| {
                    serde::de::Error::custom(format_args!(
                        "`{s}` is not a percentile such as \"p95\""
                    ))
                });
        }
        humantime::parse_duration(&s)
            .map(HedgeDelay::Fixed)
            .map_err(|e| {
                serde::de::Error::custom(format_args!(
                    "`{s}` is not a duration nor a percentile such as \"p95\": {e}"
                ))
            })
    }
}

impl Serialize for HedgeDelay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            HedgeDelay::Fixed(d) => s.collect_str(&humantime::format_duration(d)),
            HedgeDelay::Percentile(p) => s.collect_str(&format_args!("p{}", p * 100.0)),
        }
    }
}

/// A hedge's settings (the `hedge` section), each a [`HedgeBuilder`] setter: `delay` (`"50ms"`
/// or `"p95"`: `delay` or `latency_percentile`), `latency_window`, `min_samples`,
/// `initial_delay`, `min_delay`, `max_delay`, `max_attempts`, `budget`, `budget_burst`,
/// `critical`.
///
/// ```
/// use battlement_config::{HedgeDelay, HedgeSettings};
/// use battlement_hedge::HedgeLayer;
///
/// let settings = HedgeSettings { delay: Some(HedgeDelay::Percentile(1.5)), ..Default::default() };
/// let err = settings.apply(HedgeLayer::builder().name("search")).build().unwrap_err();
/// assert_eq!(HedgeSettings::key_of(err.setting()), Some("delay"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HedgeSettings {
    /// When to send a hedge.
    pub delay: Option<HedgeDelay>,
    /// Recent latencies kept per worker for the percentile.
    pub latency_window: Option<usize>,
    /// Latencies recorded before the percentile is used.
    pub min_samples: Option<usize>,
    /// The delay until then.
    #[serde(with = "humantime_serde")]
    pub initial_delay: Option<Duration>,
    /// The shortest percentile delay.
    #[serde(with = "humantime_serde")]
    pub min_delay: Option<Duration>,
    /// The longest percentile delay.
    #[serde(with = "humantime_serde")]
    pub max_delay: Option<Duration>,
    /// The most attempts per call, the first included.
    pub max_attempts: Option<usize>,
    /// Hedges allowed per request.
    pub budget: Option<f64>,
    /// Hedges the budget saves up.
    pub budget_burst: Option<u32>,
    /// Whether the hedge is critical for health.
    pub critical: Option<bool>,
}

merge_fields!(HedgeSettings {
    delay,
    latency_window,
    min_samples,
    initial_delay,
    min_delay,
    max_delay,
    max_attempts,
    budget,
    budget_burst,
    critical,
});

impl HedgeSettings {
    /// Calls the setters of `builder` for every field that is set.
    pub fn apply<P>(&self, mut b: HedgeBuilder<P>) -> HedgeBuilder<P> {
        match self.delay {
            Some(HedgeDelay::Fixed(d)) => b = b.delay(d),
            Some(HedgeDelay::Percentile(p)) => b = b.latency_percentile(p),
            None => {}
        }
        set_fields!(b, self;
            latency_window,
            min_samples,
            initial_delay,
            min_delay,
            max_delay,
            max_attempts,
            budget,
            budget_burst,
            critical,
        );
        b
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        Some(match setting {
            "latency_percentile" => "delay",
            "latency_window" => "latency_window",
            "min_samples" => "min_samples",
            "min_delay" => "min_delay",
            "max_attempts" => "max_attempts",
            "budget" => "budget",
            "budget_burst" => "budget_burst",
            _ => return None,
        })
    }
}

/// A kill switch's settings (the `kill_switch` section): `critical` and `event_capacity`. A
/// switch from a file has no limits of its own: add them in code
/// (`KillSwitch::add_limit`), or halt and resume it by hand.
///
/// ```
/// use battlement_config::KillSwitchSettings;
/// use battlement_kill_switch::KillSwitch;
///
/// let settings = KillSwitchSettings { event_capacity: Some(0), ..Default::default() };
/// let err = settings.apply(KillSwitch::builder("deploys")).build().unwrap_err();
/// assert_eq!(KillSwitchSettings::key_of(err.setting()), Some("event_capacity"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillSwitchSettings {
    /// Whether the switch is critical for health.
    pub critical: Option<bool>,
    /// Room for events per slow subscriber.
    pub event_capacity: Option<usize>,
}

merge_fields!(KillSwitchSettings {
    critical,
    event_capacity
});

impl KillSwitchSettings {
    /// Calls the setters of `builder` for every field that is set.
    pub fn apply(&self, mut b: KillSwitchBuilder) -> KillSwitchBuilder {
        set_fields!(b, self; critical, event_capacity);
        b
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        (setting == "event_capacity").then_some("event_capacity")
    }
}

/// The patterns of one instance, one named config or the `defaults`: any of them, each
/// optional. Instances and configs may name a `base` config they extend.
///
/// ```
/// use battlement_config::{BreakerSettings, InstanceSettings};
///
/// let strict = InstanceSettings {
///     breaker: Some(BreakerSettings { failure_rate: Some(0.2), minimum_calls: Some(5), ..Default::default() }),
///     ..Default::default()
/// };
/// let payments = InstanceSettings {
///     breaker: Some(BreakerSettings { minimum_calls: Some(20), ..Default::default() }),
///     ..Default::default()
/// };
/// let breaker = strict.merged(&payments).breaker.unwrap();
/// assert_eq!((breaker.failure_rate, breaker.minimum_calls), (Some(0.2), Some(20)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceSettings {
    /// The named config these settings extend (not in `defaults`).
    pub base: Option<String>,
    /// A circuit breaker.
    pub breaker: Option<BreakerSettings>,
    /// A bulkhead.
    pub bulkhead: Option<BulkheadSettings>,
    /// A retry policy.
    pub retry: Option<RetrySettings>,
    /// A per-try timeout (inside the retry: each attempt's limit).
    pub timeout: Option<TimeoutSettings>,
    /// A total timeout (outside the retry: all attempts and their waits), for
    /// `ResilienceStack::from_config` and the facade's standard client pipeline; no longer than
    /// the per-try timeout is refused.
    pub total_timeout: Option<TimeoutSettings>,
    /// A hedge.
    pub hedge: Option<HedgeSettings>,
    /// A kill switch.
    pub kill_switch: Option<KillSwitchSettings>,
    /// A rate limiter.
    pub rate_limit: Option<RateLimitSettings>,
    /// A client-side adaptive throttle.
    pub throttle: Option<ThrottleSettings>,
    /// An adaptive concurrency limit (a bulkhead whose limit moves; not with `bulkhead`).
    pub adaptive_limit: Option<AdaptiveLimitSettings>,
}

fn merge_opt<T: Clone>(a: &Option<T>, b: &Option<T>, f: impl Fn(&T, &T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => b.clone().or_else(|| a.clone()),
    }
}

impl InstanceSettings {
    /// These settings with `over` on top, pattern by pattern and field by field (`base` is
    /// `over`'s).
    pub fn merged(&self, over: &Self) -> Self {
        InstanceSettings {
            base: over.base.clone(),
            breaker: merge_opt(&self.breaker, &over.breaker, BreakerSettings::merged),
            bulkhead: merge_opt(&self.bulkhead, &over.bulkhead, BulkheadSettings::merged),
            retry: merge_opt(&self.retry, &over.retry, RetrySettings::merged),
            timeout: merge_opt(&self.timeout, &over.timeout, TimeoutSettings::merged),
            total_timeout: merge_opt(
                &self.total_timeout,
                &over.total_timeout,
                TimeoutSettings::merged,
            ),
            hedge: merge_opt(&self.hedge, &over.hedge, HedgeSettings::merged),
            kill_switch: merge_opt(
                &self.kill_switch,
                &over.kill_switch,
                KillSwitchSettings::merged,
            ),
            rate_limit: merge_opt(
                &self.rate_limit,
                &over.rate_limit,
                RateLimitSettings::merged,
            ),
            throttle: merge_opt(&self.throttle, &over.throttle, ThrottleSettings::merged),
            adaptive_limit: merge_opt(
                &self.adaptive_limit,
                &over.adaptive_limit,
                AdaptiveLimitSettings::merged,
            ),
        }
    }
}
