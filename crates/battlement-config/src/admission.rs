//! The settings of the admission controls: the rate limiter, the adaptive throttle and the
//! adaptive concurrency limit.

use crate::settings::{merge_fields, set_fields};
use battlement_bulkhead::{AdaptiveBuilder, Bulkhead, Limit};
use battlement_core::ConfigError;
use battlement_rate_limit::{KeysFull, RateLimitBuilder};
use battlement_throttle::ThrottleBuilder;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a keyed rate limiter does with new keys while its key table is full (`when_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Reject their calls (fail closed; the default).
    Reject,
    /// Admit their calls untracked (fail open).
    Admit,
}

impl From<WhenFull> for KeysFull {
    fn from(w: WhenFull) -> Self {
        match w {
            WhenFull::Reject => KeysFull::Reject,
            WhenFull::Admit => KeysFull::Admit,
        }
    }
}

/// A rate limiter's settings (the `rate_limit` section). Each maps onto a
/// [`RateLimitBuilder`] setter; `quota` and `window` make its `rate(quota, window)`.
///
/// | key | builder setter | when left out |
/// |---|---|---|
/// | `quota`, `window` | `rate` (`quota` calls per `window`) | required; window 1 s |
/// | `burst` | `burst` | `quota` |
/// | `max_delay` | `max_delay` | 0 (reject at once) |
/// | `max_keys`, `when_full` (`"reject"`/`"admit"`), `eviction_interval` | the same (keyed limiters) | 100,000, reject, 60 s |
/// | `rejection_window` | `rejection_window` | 10 s |
/// | `critical`, `event_capacity` | the same | false, the builder's |
///
/// A file cannot name a key extractor (it is code): a limiter built by
/// [`Resilience::rate_limit`](crate::Resilience::rate_limit) is unkeyed, and
/// [`Resilience::keyed_rate_limit`](crate::Resilience::keyed_rate_limit) takes the extractor
/// and these settings.
///
/// ```
/// use battlement_config::RateLimitSettings;
/// use battlement_rate_limit::RateLimit;
/// use std::time::Duration;
///
/// let settings = RateLimitSettings { quota: Some(100), burst: Some(10), ..Default::default() };
/// let limit = settings.apply(RateLimit::builder("api")).build().unwrap();
/// assert_eq!((limit.quota(), limit.window(), limit.burst()), (100, Duration::from_secs(1), 10));
///
/// let err = RateLimitSettings::default().apply(RateLimit::builder("api")).build().unwrap_err();
/// assert_eq!(RateLimitSettings::key_of(err.setting()), Some("quota"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Calls allowed per `window`.
    pub quota: Option<u32>,
    /// The rate's period (default 1 s).
    #[serde(with = "humantime_serde")]
    pub window: Option<Duration>,
    /// Calls that may pass at once after a quiet spell.
    pub burst: Option<u32>,
    /// How long a call over the rate may wait to be admitted.
    #[serde(with = "humantime_serde")]
    pub max_delay: Option<Duration>,
    /// At most how many keys a keyed limiter tracks.
    pub max_keys: Option<usize>,
    /// What happens to new keys while the table is full.
    pub when_full: Option<WhenFull>,
    /// How often, at most, new keys evict idle ones.
    #[serde(with = "humantime_serde")]
    pub eviction_interval: Option<Duration>,
    /// How long after a rejection health still reports `warn`.
    #[serde(with = "humantime_serde")]
    pub rejection_window: Option<Duration>,
    /// Whether the limiter is critical for health.
    pub critical: Option<bool>,
    /// Room for events per slow subscriber.
    pub event_capacity: Option<usize>,
}

merge_fields!(RateLimitSettings {
    quota,
    window,
    burst,
    max_delay,
    max_keys,
    when_full,
    eviction_interval,
    rejection_window,
    critical,
    event_capacity,
});

impl RateLimitSettings {
    /// Calls the setters of `builder` for every field that is set (`window` alone sets no
    /// rate: the builder then refuses the missing quota).
    pub fn apply<X>(&self, mut b: RateLimitBuilder<X>) -> RateLimitBuilder<X> {
        if let Some(n) = self.quota {
            b = b.rate(n, self.window.unwrap_or(Duration::from_secs(1)));
        }
        if let Some(w) = self.when_full {
            b = b.when_full(w.into());
        }
        set_fields!(b, self;
            burst,
            max_delay,
            max_keys,
            eviction_interval,
            rejection_window,
            critical,
            event_capacity,
        );
        b
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        Some(match setting {
            "rate" => "quota",
            "burst" => "burst",
            "max_keys" => "max_keys",
            "eviction_interval" => "eviction_interval",
            "event_capacity" => "event_capacity",
            _ => return None,
        })
    }
}

/// A client-side adaptive throttle's settings (the `throttle` section), each the
/// [`ThrottleBuilder`] setter of the same name: `k`, `window`, `buckets`, `critical`,
/// `event_capacity`. A reload changes `k` only (the window holds the history).
///
/// ```
/// use battlement_config::ThrottleSettings;
/// use battlement_throttle::Throttle;
///
/// let settings = ThrottleSettings { k: Some(1.5), ..Default::default() };
/// assert_eq!(settings.apply(Throttle::builder("search")).build().unwrap().k(), 1.5);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSettings {
    /// The multiplier `K` (at least 1).
    pub k: Option<f64>,
    /// The sliding window's length.
    #[serde(with = "humantime_serde")]
    pub window: Option<Duration>,
    /// The buckets the window is cut into.
    pub buckets: Option<usize>,
    /// Whether the throttle is critical for health.
    pub critical: Option<bool>,
    /// Room for events per slow subscriber.
    pub event_capacity: Option<usize>,
}

merge_fields!(ThrottleSettings {
    k,
    window,
    buckets,
    critical,
    event_capacity,
});

impl ThrottleSettings {
    /// Calls the setters of `builder` for every field that is set.
    pub fn apply(&self, mut b: ThrottleBuilder) -> ThrottleBuilder {
        set_fields!(b, self; k, window, buckets, critical, event_capacity);
        b
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        Some(match setting {
            "k" => "k",
            "window" => "window",
            "buckets" => "buckets",
            "event_capacity" => "event_capacity",
            _ => return None,
        })
    }
}

/// An adaptive limit's algorithm (`algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Additive increase, multiplicative decrease.
    Aimd,
    /// TCP Vegas's queue estimate (the default).
    Vegas,
    /// Netflix's Gradient2.
    Gradient2,
}

/// An adaptive concurrency limit's settings (the `adaptive_limit` section): the algorithm and
/// its settings, the windows it reads, and the queue. Each maps onto the setter of the same
/// name of [`Limit`]'s algorithms or of [`AdaptiveBuilder`] / the bulkhead builder.
///
/// | key | applies to | when left out |
/// |---|---|---|
/// | `algorithm` (`"aimd"`, `"vegas"`, `"gradient2"`) | | `"vegas"` |
/// | `initial_limit`, `min_limit`, `max_limit` | all | the algorithm's (20, 1, 1000 for Vegas) |
/// | `backoff_ratio`, `timeout` | aimd | 0.9, 5 s |
/// | `alpha`, `beta`, `threshold`, `probe_multiplier` | vegas | log10-based, 30 |
/// | `smoothing` | vegas, gradient2 | 1.0, 0.2 |
/// | `queue_size`, `long_window` | gradient2 | 4, 600 |
/// | `min_window`, `max_window`, `window_samples`, `min_rtt` | the windows | 1 s, 1 s, 10, 100 µs |
/// | `max_queued`, `max_wait`, `rejection_window`, `critical` | the queue and health | the bulkhead's |
///
/// A setting of another algorithm is refused (`timeout` with Vegas, say), as is an instance
/// with both a `bulkhead` and an `adaptive_limit` section (both register as the bulkhead of
/// that name).
///
/// ```
/// use battlement_config::{AdaptiveLimitSettings, Algorithm};
///
/// let settings = AdaptiveLimitSettings {
///     algorithm: Some(Algorithm::Gradient2),
///     max_limit: Some(200),
///     ..Default::default()
/// };
/// let limit = settings.builder("db").unwrap().build().unwrap();
/// assert_eq!(limit.metrics().algorithm, "gradient2");
///
/// let wrong = AdaptiveLimitSettings { backoff_ratio: Some(0.5), ..Default::default() };
/// let err = wrong.builder("db").unwrap_err();
/// assert_eq!(err.setting(), "backoff_ratio");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveLimitSettings {
    /// The algorithm.
    pub algorithm: Option<Algorithm>,
    /// The limit it starts from.
    pub initial_limit: Option<usize>,
    /// The lowest limit.
    pub min_limit: Option<usize>,
    /// The highest limit.
    pub max_limit: Option<usize>,
    /// AIMD: the factor a drop multiplies the limit by.
    pub backoff_ratio: Option<f64>,
    /// AIMD: a window slower than this counts as a drop.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Vegas: below this queue estimate the limit grows by a step.
    pub alpha: Option<u32>,
    /// Vegas: above this queue estimate the limit shrinks.
    pub beta: Option<u32>,
    /// Vegas: below this queue estimate the limit grows fast.
    pub threshold: Option<u32>,
    /// Vegas, Gradient2: how much of each change is taken.
    pub smoothing: Option<f64>,
    /// Vegas: how often the no-load latency is probed again.
    pub probe_multiplier: Option<u32>,
    /// Gradient2: the queue allowed above the gradient's limit.
    pub queue_size: Option<u32>,
    /// Gradient2: the windows the long-term latency averages.
    pub long_window: Option<u32>,
    /// The shortest a window lasts.
    #[serde(with = "humantime_serde")]
    pub min_window: Option<Duration>,
    /// The longest a window lasts.
    #[serde(with = "humantime_serde")]
    pub max_window: Option<Duration>,
    /// The fewest samples a window needs.
    pub window_samples: Option<u64>,
    /// Calls faster than this are not sampled.
    #[serde(with = "humantime_serde")]
    pub min_rtt: Option<Duration>,
    /// Calls that may wait for a permit.
    pub max_queued: Option<usize>,
    /// How long a call may wait in the queue.
    #[serde(with = "humantime_serde")]
    pub max_wait: Option<Duration>,
    /// How long after a rejection health still reports `warn`.
    #[serde(with = "humantime_serde")]
    pub rejection_window: Option<Duration>,
    /// Whether the limit is critical for health.
    pub critical: Option<bool>,
}

merge_fields!(AdaptiveLimitSettings {
    algorithm,
    initial_limit,
    min_limit,
    max_limit,
    backoff_ratio,
    timeout,
    alpha,
    beta,
    threshold,
    smoothing,
    probe_multiplier,
    queue_size,
    long_window,
    min_window,
    max_window,
    window_samples,
    min_rtt,
    max_queued,
    max_wait,
    rejection_window,
    critical,
});

impl AdaptiveLimitSettings {
    /// The builder of the adaptive limit named `name` with these settings (add a registry and
    /// build, or give it to
    /// [`AdaptiveLimit::reload`](battlement_bulkhead::AdaptiveLimit::reload)).
    ///
    /// # Errors
    ///
    /// A setting of another algorithm than the one chosen.
    pub fn builder(&self, name: &str) -> Result<AdaptiveBuilder, ConfigError> {
        let algorithm = self.algorithm.unwrap_or(Algorithm::Vegas);
        let other = |setting: &'static str, only: &'static str| {
            ConfigError::new("bulkhead", setting, format_args!("{algorithm:?}"), only)
                .within(battlement_core::ComponentKind::Bulkhead, name)
        };
        let aimd = [
            ("backoff_ratio", self.backoff_ratio.is_some()),
            ("timeout", self.timeout.is_some()),
        ];
        let vegas = [
            ("alpha", self.alpha.is_some()),
            ("beta", self.beta.is_some()),
            ("threshold", self.threshold.is_some()),
            ("probe_multiplier", self.probe_multiplier.is_some()),
        ];
        let gradient2 = [
            ("queue_size", self.queue_size.is_some()),
            ("long_window", self.long_window.is_some()),
        ];
        let refuse = |set: &[(&'static str, bool)], only| {
            set.iter()
                .find(|(_, on)| *on)
                .map_or(Ok(()), |(s, _)| Err(other(s, only)))
        };
        if algorithm != Algorithm::Aimd {
            refuse(&aimd, "applies to algorithm \"aimd\" only")?;
        }
        if algorithm != Algorithm::Vegas {
            refuse(&vegas, "applies to algorithm \"vegas\" only")?;
        }
        if algorithm != Algorithm::Gradient2 {
            refuse(&gradient2, "applies to algorithm \"gradient2\" only")?;
        }
        if algorithm == Algorithm::Aimd && self.smoothing.is_some() {
            return Err(other(
                "smoothing",
                "applies to algorithms \"vegas\" and \"gradient2\" only",
            ));
        }
        macro_rules! bounds {
            ($l:ident) => {{
                set_fields!($l, self; initial_limit, min_limit, max_limit);
                $l
            }};
        }
        let limit: Limit = match algorithm {
            Algorithm::Aimd => {
                let mut l = Limit::aimd();
                set_fields!(l, self; backoff_ratio, timeout);
                bounds!(l).into()
            }
            Algorithm::Vegas => {
                let mut l = Limit::vegas();
                set_fields!(l, self; alpha, beta, threshold, smoothing, probe_multiplier);
                bounds!(l).into()
            }
            Algorithm::Gradient2 => {
                let mut l = Limit::gradient2();
                set_fields!(l, self; smoothing, queue_size, long_window);
                bounds!(l).into()
            }
        };
        let mut bulkhead = Bulkhead::builder(name);
        set_fields!(bulkhead, self; max_queued, max_wait, rejection_window, critical);
        let mut b = bulkhead.adaptive(limit);
        set_fields!(b, self; min_window, max_window, window_samples, min_rtt);
        Ok(b)
    }

    /// The file key a builder setting (a [`ConfigError::setting`]) comes from.
    pub fn key_of(setting: &str) -> Option<&'static str> {
        Some(match setting {
            "initial_limit" => "initial_limit",
            "min_limit" => "min_limit",
            "max_limit" => "max_limit",
            "backoff_ratio" => "backoff_ratio",
            "timeout" => "timeout",
            "alpha" => "alpha",
            "beta" => "beta",
            "threshold" => "threshold",
            "smoothing" => "smoothing",
            "probe_multiplier" => "probe_multiplier",
            "queue_size" => "queue_size",
            "long_window" => "long_window",
            "min_window" => "min_window",
            "max_window" => "max_window",
            "window_samples" => "window_samples",
            "max_queued" => "max_queued",
            "max_wait" => "max_wait",
            "rejection_window" => "rejection_window",
            _ => return None,
        })
    }
}

/// A refusal's pattern, the mapping of its setting to a file key, and the outcome.
pub(crate) type Check = (
    &'static str,
    fn(&str) -> Option<&'static str>,
    Result<(), ConfigError>,
);

/// Validates the admission controls of an instance (or of `defaults`) with the builders'
/// own checks; and refuses a `bulkhead` beside an `adaptive_limit`.
pub(crate) fn check(settings: &crate::InstanceSettings, name: &str) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    if let Some(s) = &settings.rate_limit {
        // `defaults` may leave the quota to each instance: check the rest with a stand-in.
        let mut s = s.clone();
        if name == "defaults" && s.quota.is_none() {
            s.quota = Some(1);
        }
        out.push((
            "rate_limit",
            RateLimitSettings::key_of,
            s.apply(battlement_rate_limit::RateLimit::builder(name))
                .validate(),
        ));
    }
    if let Some(s) = &settings.throttle {
        out.push((
            "throttle",
            ThrottleSettings::key_of,
            s.apply(battlement_throttle::Throttle::builder(name))
                .validate(),
        ));
    }
    if let Some(s) = &settings.adaptive_limit {
        out.push((
            "adaptive_limit",
            AdaptiveLimitSettings::key_of,
            s.builder(name).and_then(|b| b.validate()),
        ));
        if settings.bulkhead.is_some() {
            out.push((
                "adaptive_limit",
                |_| None,
                Err(ConfigError::new(
                    "bulkhead",
                    "adaptive_limit",
                    format_args!("both"),
                    "an instance has a `bulkhead` or an `adaptive_limit`, not both (both \
                     would register as its bulkhead)",
                )
                .within(battlement_core::ComponentKind::Bulkhead, name)),
            ));
        }
    }
    out
}
