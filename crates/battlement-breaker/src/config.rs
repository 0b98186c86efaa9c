//! The breaker's builder and its validation.

use crate::breaker::CircuitBreaker;
use crate::event::BreakerEvent;
use crate::state::MachineConfig;
use battlement_core::event::EventChannel;
use battlement_core::{ComponentKind, ConfigError, Registration};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The largest count-based window.
pub const MAX_COUNT_WINDOW: u64 = 1 << 24;
/// The most buckets a time-based window may have.
pub const MAX_TIME_BUCKETS: u32 = 1024;

/// The sliding window of recent calls a breaker judges by.
///
/// ```
/// use battlement_breaker::SlidingWindow;
/// use std::time::Duration;
///
/// let by_count = SlidingWindow::Count(100);
/// let by_time = SlidingWindow::Time { length: Duration::from_secs(10), buckets: 10 };
/// assert_ne!(by_count, by_time);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last N calls (exact up to 128 calls; larger windows are kept in 128 buckets) **of
    /// each ring**: a call records into the ring of the thread that finishes it, one ring per
    /// stripe (S stripes: the machine's available parallelism rounded up to a power of two, at
    /// most 64), written only by the thread that holds that stripe, and one ring shared by the
    /// threads that hold none (more threads than stripes). So with calls on several threads
    /// the window holds up to N × (S + 1) calls; `minimum_calls` and the rates are judged over
    /// that union. This is chosen: one ring of exactly N calls across threads needs a cursor
    /// that every call writes, one contended cache line that would stop the breaker scaling
    /// with cores. On one thread, or with all calls on one worker, the window is exactly the
    /// last N calls.
    Count(u64),
    /// The calls of the last `length`, kept in `buckets` buckets so memory is constant and old
    /// buckets age out.
    Time {
        /// How far back the window reaches.
        length: Duration,
        /// How many buckets it is kept in (1 ..= 1024).
        buckets: u32,
    },
}

/// Builds a [`CircuitBreaker`], validating every setting.
///
/// Defaults: a count window of 100 calls, at least 10 calls before judging, open at a 50 %
/// failure rate; no slow-call or consecutive-failure rule; wait 5 s in open, doubling on each
/// reopening up to 60 s; one trial call in half-open, which closes the breaker if it succeeds.
///
/// ```
/// use battlement_breaker::{CircuitBreaker, SlidingWindow};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder("payments")
///     .sliding_window(SlidingWindow::Time { length: Duration::from_secs(30), buckets: 30 })
///     .minimum_calls(20)
///     .failure_rate_threshold(0.25)
///     .slow_call(Duration::from_millis(500), 0.5)
///     .consecutive_failures(5)
///     .open_wait(Duration::from_secs(1), 2.0, Duration::from_secs(30))
///     .half_open_calls(3, 2)
///     .max_half_open(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(breaker.name(), "payments");
///
/// let err = CircuitBreaker::builder("x").failure_rate_threshold(1.5).build().unwrap_err();
/// assert_eq!(err.setting(), "failure_rate_threshold");
/// ```
#[must_use]
pub struct CircuitBreakerBuilder {
    pub(crate) registration: Registration,
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u64,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_call: Option<(Duration, f64)>,
    pub(crate) consecutive_failures: Option<u64>,
    pub(crate) open_base: Duration,
    pub(crate) open_multiplier: f64,
    pub(crate) open_cap: Duration,
    pub(crate) half_open_permits: u32,
    pub(crate) half_open_successes: u32,
    pub(crate) max_half_open: Option<Duration>,
    pub(crate) record_latency: bool,
    pub(crate) histogram: bool,
    pub(crate) count_rejections: bool,
    pub(crate) event_capacity: usize,
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("registration", &self.registration)
            .field("window", &self.window)
            .field("minimum_calls", &self.minimum_calls)
            .field("failure_rate", &self.failure_rate)
            .field("slow_call", &self.slow_call)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("open_base", &self.open_base)
            .field("open_multiplier", &self.open_multiplier)
            .field("open_cap", &self.open_cap)
            .field("half_open_permits", &self.half_open_permits)
            .field("half_open_successes", &self.half_open_successes)
            .field("max_half_open", &self.max_half_open)
            .field("record_latency", &self.record_latency)
            .field("histogram", &self.histogram)
            .field("count_rejections", &self.count_rejections)
            .finish()
    }
}

impl CircuitBreakerBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        CircuitBreakerBuilder {
            registration: Registration::new(ComponentKind::CircuitBreaker, name),
            window: SlidingWindow::Count(100),
            minimum_calls: 10,
            failure_rate: Some(0.5),
            slow_call: None,
            consecutive_failures: None,
            open_base: Duration::from_secs(5),
            open_multiplier: 2.0,
            open_cap: Duration::from_secs(60),
            half_open_permits: 1,
            half_open_successes: 1,
            max_half_open: None,
            record_latency: false,
            histogram: false,
            count_rejections: false,
            event_capacity: battlement_core::event::DEFAULT_EVENT_CAPACITY,
        }
    }

    /// The window the failure and slow-call rates are computed over. A count window holds the
    /// last N calls of each ring (one per stripe of threads, and one shared), so up to
    /// N × (S + 1) calls with calls on several threads (see [`SlidingWindow::Count`]); a time
    /// window holds every call of its span.
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// How many calls the window must hold before a rate can trip the breaker.
    pub fn minimum_calls(mut self, calls: u64) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Opens when the failure rate over the window reaches `rate` (in `0.0 < rate <= 1.0`).
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// Turns the failure-rate rule off (only the slow-call and consecutive-failure rules trip).
    pub fn no_failure_rate_threshold(mut self) -> Self {
        self.failure_rate = None;
        self
    }

    /// A call slower than `duration` is slow, even if it succeeded; opens when the rate of slow
    /// calls over the window reaches `rate`. Turning this on times every call.
    pub fn slow_call(mut self, duration: Duration, rate: f64) -> Self {
        self.slow_call = Some((duration, rate));
        self
    }

    /// Opens after `failures` failures in a row, whatever the window says.
    pub fn consecutive_failures(mut self, failures: u64) -> Self {
        self.consecutive_failures = Some(failures);
        self
    }

    /// How long to stay open: `base` after the first opening, multiplied by `multiplier` on each
    /// reopening without a close in between, never more than `cap`. A close resets it.
    pub fn open_wait(mut self, base: Duration, multiplier: f64, cap: Duration) -> Self {
        self.open_base = base;
        self.open_multiplier = multiplier;
        self.open_cap = cap;
        self
    }

    /// How long to stay open, always the same.
    pub fn fixed_open_wait(self, wait: Duration) -> Self {
        self.open_wait(wait, 1.0, wait)
    }

    /// In half-open, admit `permits` trial calls; `successes` of them close the breaker, and as
    /// soon as that many successes are out of reach it reopens.
    pub fn half_open_calls(mut self, permits: u32, successes: u32) -> Self {
        self.half_open_permits = permits;
        self.half_open_successes = successes;
        self
    }

    /// Reopen if half-open lasts longer than this without a decision (trial calls that hang).
    pub fn max_half_open(mut self, limit: Duration) -> Self {
        self.max_half_open = Some(limit);
        self
    }

    /// Time every call so metrics carry the window's mean and max latency (implied by
    /// [`slow_call`](Self::slow_call)).
    pub fn record_latency(mut self, on: bool) -> Self {
        self.record_latency = on;
        self
    }

    /// Keep a histogram of call durations for the metrics exporters
    /// (`battlement_circuit_breaker_call_duration_seconds`; see [`FAMILIES`](crate::FAMILIES)).
    /// Off by default, so a call costs what it did without export. On, every call is timed (as
    /// with [`record_latency`](Self::record_latency)) and its duration is added to the calling
    /// thread's cell of a fixed-bucket histogram: no lock, no allocation, no word shared with
    /// other threads. It holds the calls counted as a success or a failure (the window's calls;
    /// not ignored, cancelled or stale ones), timed to the response's head as the window's
    /// latency is.
    ///
    /// ```
    /// use battlement_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder("payments").histogram(true).build().unwrap();
    /// # let _ = breaker;
    /// ```
    pub fn histogram(mut self, on: bool) -> Self {
        self.histogram = on;
        self
    }

    /// Whether failures of kind `Rejected` count as failures (default `false`): a rejection by a
    /// layer below the breaker (a full bulkhead, a halted kill switch) is local back-pressure,
    /// not the dependency failing, so by default it counts as nothing, like an ignored outcome.
    pub fn count_rejections(mut self, count: bool) -> Self {
        self.count_rejections = count;
        self
    }

    battlement_core::define_registration_methods!();

    battlement_core::define_event_capacity_method!();

    fn err(&self, setting: &'static str, value: impl fmt::Debug, why: &'static str) -> ConfigError {
        self.registration.error(setting, value, why)
    }

    /// Runs every check [`build`](Self::build) runs except registration (a name already taken
    /// in a registry is only found by registering), without building anything: a reload, or a
    /// configuration loader, validates a whole configuration before it applies any of it.
    ///
    /// ```
    /// use battlement_breaker::CircuitBreaker;
    ///
    /// let good = CircuitBreaker::builder("db").failure_rate_threshold(0.3);
    /// assert!(good.validate().is_ok());
    /// let bad = CircuitBreaker::builder("db").failure_rate_threshold(1.5);
    /// assert_eq!(bad.validate().unwrap_err().setting(), "failure_rate_threshold");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.settings()?;
        self.events()?;
        Ok(())
    }

    fn events(&self) -> Result<EventChannel<BreakerEvent>, ConfigError> {
        EventChannel::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::CircuitBreaker, self.registration.name()))
    }

    /// The checks, and the settings in the form the breaker keeps them.
    pub(crate) fn settings(&self) -> Result<Settings, ConfigError> {
        self.registration.require_name()?;
        match self.window {
            SlidingWindow::Count(0) => {
                return Err(self.err("sliding_window", self.window, "a window of zero calls"))
            }
            SlidingWindow::Count(n) if n > MAX_COUNT_WINDOW => {
                return Err(self.err("sliding_window", self.window, "at most 2^24 calls"))
            }
            SlidingWindow::Time { length, .. } if length.is_zero() => {
                return Err(self.err("sliding_window", self.window, "a window of zero length"))
            }
            SlidingWindow::Time { buckets, .. } if buckets == 0 || buckets > MAX_TIME_BUCKETS => {
                return Err(self.err("sliding_window", self.window, "buckets must be 1..=1024"))
            }
            SlidingWindow::Time { length, buckets } if length.as_nanos() < u128::from(buckets) => {
                return Err(self.err(
                    "sliding_window",
                    self.window,
                    "each bucket must span at least 1 ns",
                ))
            }
            _ => {}
        }
        if self.minimum_calls == 0 {
            return Err(self.err("minimum_calls", self.minimum_calls, "must be at least 1"));
        }
        if let SlidingWindow::Count(n) = self.window {
            if self.minimum_calls > n {
                return Err(self.err(
                    "minimum_calls",
                    self.minimum_calls,
                    "larger than the count window, so the rate rules could never trip",
                ));
            }
        }
        if let Some(rate) = self.failure_rate {
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(self.err("failure_rate_threshold", rate, "must be within (0, 1]"));
            }
        }
        if let Some((duration, rate)) = self.slow_call {
            if duration.is_zero() {
                return Err(self.err("slow_call.duration", duration, "must be greater than zero"));
            }
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(self.err("slow_call.rate", rate, "must be within (0, 1]"));
            }
        }
        if self.consecutive_failures == Some(0) {
            return Err(self.err("consecutive_failures", 0, "must be at least 1"));
        }
        if self.open_base.is_zero() {
            return Err(self.err(
                "open_wait.base",
                self.open_base,
                "must be greater than zero",
            ));
        }
        if !(self.open_multiplier >= 1.0 && self.open_multiplier.is_finite()) {
            return Err(self.err(
                "open_wait.multiplier",
                self.open_multiplier,
                "must be finite and at least 1",
            ));
        }
        if self.open_cap < self.open_base {
            return Err(self.err("open_wait.cap", self.open_cap, "must not be below the base"));
        }
        if self.half_open_permits == 0 || self.half_open_permits > u32::from(u16::MAX) {
            return Err(self.err(
                "half_open_calls.permits",
                self.half_open_permits,
                "must be within 1..=65535",
            ));
        }
        if self.half_open_successes == 0 || self.half_open_successes > self.half_open_permits {
            return Err(self.err(
                "half_open_calls.successes",
                self.half_open_successes,
                "must be within 1..=permits",
            ));
        }
        if self.max_half_open.is_some_and(|d| d.is_zero()) {
            return Err(self.err(
                "max_half_open",
                self.max_half_open,
                "must be greater than zero",
            ));
        }
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Ok(Settings {
            machine: MachineConfig {
                permits: self.half_open_permits as u16,
                successes_to_close: self.half_open_successes as u16,
                wait_base: nanos(self.open_base),
                wait_multiplier: self.open_multiplier,
                wait_cap: nanos(self.open_cap),
            },
            slow_nanos: self.slow_call.map(|(d, _)| nanos(d)),
            max_half_open: self.max_half_open.map(nanos),
        })
    }

    /// Validates the settings and builds the breaker.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        let validated = Validated {
            settings: self.settings()?,
            events: self.events()?,
        };
        let breaker = CircuitBreaker::from_builder(&self, validated);
        self.registration.register(Arc::new(breaker.clone()))?;
        Ok(breaker)
    }
}

/// Validated settings, as the breaker keeps them.
pub(crate) struct Settings {
    pub(crate) machine: MachineConfig,
    pub(crate) slow_nanos: Option<u64>,
    pub(crate) max_half_open: Option<u64>,
}

pub(crate) struct Validated {
    pub(crate) settings: Settings,
    pub(crate) events: EventChannel<BreakerEvent>,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The setting `build` refuses, after checking that `validate` refuses the same one.
    fn setting(b: CircuitBreakerBuilder) -> &'static str {
        let validated = b.validate().unwrap_err().setting();
        let built = b.build().unwrap_err().setting();
        assert_eq!(validated, built, "validate agrees with build");
        built
    }

    #[test]
    fn validate_accepts_what_build_accepts() {
        let good = CircuitBreaker::builder("t")
            .sliding_window(SlidingWindow::Time {
                length: Duration::from_secs(10),
                buckets: 10,
            })
            .slow_call(Duration::from_secs(1), 0.5)
            .half_open_calls(3, 2);
        good.validate().unwrap();
        good.build().unwrap();
    }

    #[test]
    fn bad_settings_are_errors() {
        let b = || CircuitBreaker::builder("t");
        assert_eq!(
            setting(b().failure_rate_threshold(0.0)),
            "failure_rate_threshold"
        );
        assert_eq!(
            setting(b().failure_rate_threshold(-0.1)),
            "failure_rate_threshold"
        );
        assert_eq!(
            setting(b().failure_rate_threshold(f64::NAN)),
            "failure_rate_threshold"
        );
        assert_eq!(
            setting(b().sliding_window(SlidingWindow::Count(0))),
            "sliding_window"
        );
        assert_eq!(
            setting(b().sliding_window(SlidingWindow::Time {
                length: Duration::ZERO,
                buckets: 10
            })),
            "sliding_window"
        );
        assert_eq!(
            setting(b().sliding_window(SlidingWindow::Time {
                length: Duration::from_secs(1),
                buckets: 0
            })),
            "sliding_window"
        );
        assert_eq!(setting(b().minimum_calls(0)), "minimum_calls");
        assert_eq!(
            setting(b().sliding_window(SlidingWindow::Count(5)).minimum_calls(6)),
            "minimum_calls"
        );
        assert_eq!(
            setting(b().half_open_calls(0, 0)),
            "half_open_calls.permits"
        );
        assert_eq!(
            setting(b().half_open_calls(2, 3)),
            "half_open_calls.successes"
        );
        assert_eq!(
            setting(b().open_wait(Duration::from_secs(2), 2.0, Duration::from_secs(1))),
            "open_wait.cap"
        );
        assert_eq!(
            setting(b().open_wait(Duration::ZERO, 2.0, Duration::from_secs(1))),
            "open_wait.base"
        );
        assert_eq!(
            setting(b().open_wait(Duration::from_secs(1), 0.5, Duration::from_secs(1))),
            "open_wait.multiplier"
        );
        assert_eq!(
            setting(b().slow_call(Duration::ZERO, 0.5)),
            "slow_call.duration"
        );
        assert_eq!(
            setting(b().slow_call(Duration::from_secs(1), 1.5)),
            "slow_call.rate"
        );
        assert_eq!(setting(b().consecutive_failures(0)), "consecutive_failures");
        assert_eq!(setting(b().max_half_open(Duration::ZERO)), "max_half_open");
        assert_eq!(setting(CircuitBreaker::builder("")), "name");
    }

    /// tokio's broadcast channel panics for a capacity of 0 or above `usize::MAX / 2` (and
    /// cannot allocate one near it): every such capacity is a `ConfigError` at build time.
    #[test]
    fn event_capacities_tokio_cannot_take_are_config_errors_not_panics() {
        let max = battlement_core::event::MAX_EVENT_CAPACITY;
        for capacity in [0, max + 1, usize::MAX / 2, usize::MAX / 2 + 1, usize::MAX] {
            let builder = CircuitBreaker::builder("db").event_capacity(capacity);
            assert_eq!(builder.validate().unwrap_err().setting(), "event_capacity");
            let err = builder.build().unwrap_err();
            assert_eq!(err.setting(), "event_capacity");
            assert_eq!(err.component(), "circuit breaker `db`");
        }
        assert!(CircuitBreaker::builder("db")
            .event_capacity(max)
            .build()
            .is_ok());
    }

    #[test]
    fn error_names_the_breaker() {
        let err = CircuitBreaker::builder("db")
            .failure_rate_threshold(2.0)
            .build()
            .unwrap_err();
        assert_eq!(err.component(), "circuit breaker `db`");
        assert!(err.to_string().contains("must be within (0, 1]"));
    }
}
