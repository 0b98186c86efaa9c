//! The outlier detector's builder and its validation.

use crate::detector::OutlierDetector;
use crate::event::OutlierEvent;
use battlement_core::event::{EventChannel, DEFAULT_EVENT_CAPACITY};
use battlement_core::{ComponentKind, ConfigError, Registration};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The default [`consecutive_5xx`](OutlierDetectorBuilder::consecutive_5xx): 5, Envoy's.
pub const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
/// The default [`interval`](OutlierDetectorBuilder::interval): 10 s, Envoy's.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The default [`base_ejection_time`](OutlierDetectorBuilder::base_ejection_time): 30 s,
/// Envoy's.
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
/// The default [`max_ejection_time`](OutlierDetectorBuilder::max_ejection_time): 300 s,
/// Envoy's.
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// The default [`max_ejection_percent`](OutlierDetectorBuilder::max_ejection_percent): 10,
/// Envoy's.
pub const DEFAULT_MAX_EJECTION_PERCENT: u8 = 10;
/// The default [`success_rate_minimum_hosts`](OutlierDetectorBuilder::success_rate_minimum_hosts):
/// 5, Envoy's.
pub const DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS: usize = 5;
/// The default [`success_rate_request_volume`](OutlierDetectorBuilder::success_rate_request_volume):
/// 100, Envoy's.
pub const DEFAULT_SUCCESS_RATE_REQUEST_VOLUME: u64 = 100;
/// The default [`success_rate_stdev_factor`](OutlierDetectorBuilder::success_rate_stdev_factor):
/// 1.9, Envoy's (its `1900` in thousandths).
pub const DEFAULT_SUCCESS_RATE_STDEV_FACTOR: f64 = 1.9;

/// The detector's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) consecutive_5xx: u32,
    pub(crate) consecutive_gateway: u32,
    pub(crate) success_rate: bool,
    pub(crate) sr_minimum_hosts: usize,
    pub(crate) sr_request_volume: u64,
    pub(crate) sr_stdev_factor: f64,
    pub(crate) interval: Duration,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) max_ejection_percent: u8,
    pub(crate) always_eject_one: bool,
}

/// Builds an [`OutlierDetector`], validating every setting.
///
/// Defaults are Envoy's: 5 consecutive 5xx eject; consecutive gateway failures off (Envoy
/// enforces them 0 % of the time by default); success-rate outliers on (at least 5 endpoints
/// with at least 100 calls each in the interval, below mean − 1.9 × stdev); evaluated every
/// 10 s; ejected for 30 s × the endpoint's ejection multiplier, at most 300 s; at most 10 % of
/// the endpoints ejected, but always one
/// ([`always_eject_one_host`](OutlierDetectorBuilder::always_eject_one_host)). Registered with every registry
/// given as a non-critical component ([`ComponentKind::OutlierDetection`]).
///
/// ```
/// use battlement_outlier::OutlierDetector;
/// use std::time::Duration;
///
/// let detector = OutlierDetector::builder("backends")
///     .consecutive_5xx(3)
///     .consecutive_gateway_failures(2)
///     .base_ejection_time(Duration::from_secs(10))
///     .max_ejection_time(Duration::from_secs(120))
///     .max_ejection_percent(50)
///     .build()
///     .unwrap();
/// assert_eq!(detector.name(), "backends");
///
/// // Bad settings are refused when building, never at call time.
/// let err = OutlierDetector::builder("backends").max_ejection_percent(101).build().unwrap_err();
/// assert_eq!(err.setting(), "max_ejection_percent");
/// assert_eq!(err.component(), "outlier detector `backends`");
/// let err = OutlierDetector::builder("backends")
///     .base_ejection_time(Duration::from_secs(60))
///     .max_ejection_time(Duration::from_secs(30))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "max_ejection_time");
/// ```
#[must_use]
pub struct OutlierDetectorBuilder {
    registration: Registration,
    settings: Settings,
    event_capacity: usize,
}

impl fmt::Debug for OutlierDetectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDetectorBuilder")
            .field("registration", &self.registration)
            .field("settings", &self.settings)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl OutlierDetectorBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        OutlierDetectorBuilder {
            registration: Registration::new(ComponentKind::OutlierDetection, name),
            settings: Settings {
                consecutive_5xx: DEFAULT_CONSECUTIVE_5XX,
                consecutive_gateway: 0,
                success_rate: true,
                sr_minimum_hosts: DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS,
                sr_request_volume: DEFAULT_SUCCESS_RATE_REQUEST_VOLUME,
                sr_stdev_factor: DEFAULT_SUCCESS_RATE_STDEV_FACTOR,
                interval: DEFAULT_INTERVAL,
                base_ejection: DEFAULT_BASE_EJECTION_TIME,
                max_ejection: DEFAULT_MAX_EJECTION_TIME,
                max_ejection_percent: DEFAULT_MAX_EJECTION_PERCENT,
                always_eject_one: true,
            },
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// Ejects an endpoint after this many failures in a row (default 5; 0 turns the rule off).
    /// A failure here is a 5xx response or an error that reached the endpoint (a refused or
    /// reset connection, a timeout): see [`Verdict`](crate::Verdict). Any success resets the
    /// run.
    pub fn consecutive_5xx(mut self, n: u32) -> Self {
        self.settings.consecutive_5xx = n;
        self
    }

    /// Ejects an endpoint after this many gateway failures in a row (default 0: off, as Envoy
    /// enforces it 0 % of the time by default): a 502, 503 or 504, or a connection error or
    /// timeout ([`Verdict::GatewayFailure`](crate::Verdict::GatewayFailure)). Any other
    /// outcome, another 5xx included, resets the run.
    pub fn consecutive_gateway_failures(mut self, n: u32) -> Self {
        self.settings.consecutive_gateway = n;
        self
    }

    /// Whether success-rate outliers are ejected (default `true`): every
    /// [`interval`](Self::interval), among the endpoints in service with at least
    /// [`success_rate_request_volume`](Self::success_rate_request_volume) calls in the
    /// interval, if there are at least
    /// [`success_rate_minimum_hosts`](Self::success_rate_minimum_hosts) of them, those whose
    /// success rate is below `mean − stdev ×`
    /// [`success_rate_stdev_factor`](Self::success_rate_stdev_factor) are ejected.
    pub fn success_rate(mut self, enabled: bool) -> Self {
        self.settings.success_rate = enabled;
        self
    }

    /// The fewest endpoints with enough calls for the success-rate rule to judge (default 5;
    /// at least 1).
    pub fn success_rate_minimum_hosts(mut self, hosts: usize) -> Self {
        self.settings.sr_minimum_hosts = hosts;
        self
    }

    /// The fewest calls an endpoint needs in an interval for the success-rate rule to count it
    /// (default 100; at least 1).
    pub fn success_rate_request_volume(mut self, calls: u64) -> Self {
        self.settings.sr_request_volume = calls;
        self
    }

    /// How many standard deviations below the mean success rate an endpoint is ejected at
    /// (default 1.9; finite, at least 0).
    pub fn success_rate_stdev_factor(mut self, factor: f64) -> Self {
        self.settings.sr_stdev_factor = factor;
        self
    }

    /// How often the detector evaluates success rates and decays the ejection multipliers of
    /// endpoints that stayed healthy (default 10 s; greater than zero). There is no timer
    /// task: the first call after an interval has passed evaluates (or
    /// [`OutlierDetector::evaluate`]), so an idle pool does not evaluate.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.settings.interval = interval;
        self
    }

    /// The ejection time of a first ejection (default 30 s; greater than zero). An endpoint
    /// is ejected for `base_ejection_time × its ejection multiplier`, capped at
    /// [`max_ejection_time`](Self::max_ejection_time); the multiplier grows by one with each
    /// ejection and shrinks by one at each interval once the endpoint has been back for
    /// `base_ejection_time` without being ejected again.
    pub fn base_ejection_time(mut self, time: Duration) -> Self {
        self.settings.base_ejection = time;
        self
    }

    /// The longest ejection (default 300 s; at least
    /// [`base_ejection_time`](Self::base_ejection_time)).
    pub fn max_ejection_time(mut self, time: Duration) -> Self {
        self.settings.max_ejection = time;
        self
    }

    /// The largest share of the pool's endpoints ejected at once, in percent (default 10;
    /// within `0..=100`), but see [`always_eject_one_host`](Self::always_eject_one_host).
    /// Whatever the percentage, never the last endpoint in service: unlike Envoy's load
    /// balancer, `tower::balance` has no panic mode, so a pool with every endpoint ejected would
    /// make every call wait.
    pub fn max_ejection_percent(mut self, percent: u8) -> Self {
        self.settings.max_ejection_percent = percent;
        self
    }

    /// Whether one endpoint may be ejected even when that exceeds
    /// [`max_ejection_percent`](Self::max_ejection_percent) (default `true`). Chosen as Envoy
    /// long behaved (and gRPC's outlier detection still does): with the default 10 %, a pool
    /// of fewer than ten endpoints could otherwise never eject one. Envoy since 1.31 enforces
    /// the percentage strictly unless its `always_eject_one_host` is set; `false` here does
    /// the same.
    pub fn always_eject_one_host(mut self, enabled: bool) -> Self {
        self.settings.always_eject_one = enabled;
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
        let s = &self.settings;
        if s.interval.is_zero() {
            return Err(self.err("interval", s.interval, "must be greater than zero"));
        }
        if s.base_ejection.is_zero() {
            return Err(self.err(
                "base_ejection_time",
                s.base_ejection,
                "must be greater than zero",
            ));
        }
        if s.max_ejection < s.base_ejection {
            return Err(self.err(
                "max_ejection_time",
                (s.max_ejection, s.base_ejection),
                "must be at least base_ejection_time",
            ));
        }
        // Nanosecond deadlines are kept in a u64 (about 584 years).
        if u64::try_from(s.max_ejection.as_nanos()).is_err()
            || u64::try_from(s.interval.as_nanos()).is_err()
        {
            return Err(self.err(
                "max_ejection_time",
                s.max_ejection,
                "must be at most u64::MAX ns (as must interval)",
            ));
        }
        if s.max_ejection_percent > 100 {
            return Err(self.err(
                "max_ejection_percent",
                s.max_ejection_percent,
                "must be within 0..=100",
            ));
        }
        if s.sr_minimum_hosts == 0 {
            return Err(self.err(
                "success_rate_minimum_hosts",
                s.sr_minimum_hosts,
                "must be at least 1",
            ));
        }
        if s.sr_request_volume == 0 {
            return Err(self.err(
                "success_rate_request_volume",
                s.sr_request_volume,
                "must be at least 1",
            ));
        }
        if !(s.sr_stdev_factor.is_finite() && s.sr_stdev_factor >= 0.0) {
            return Err(self.err(
                "success_rate_stdev_factor",
                s.sr_stdev_factor,
                "must be finite and at least 0",
            ));
        }
        EventChannel::<OutlierEvent>::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::OutlierDetection, self.registration.name()))?;
        Ok(())
    }

    /// Validates the settings and builds the detector (registering it with every registry
    /// given).
    pub fn build(self) -> Result<OutlierDetector, ConfigError> {
        self.validate()?;
        let name: Arc<str> = Arc::from(self.registration.name());
        let events = EventChannel::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::OutlierDetection, &name))?;
        let detector = OutlierDetector::new(name, self.settings, events);
        self.registration.register(Arc::new(detector.clone()))?;
        Ok(detector)
    }
}
