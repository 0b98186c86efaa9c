//! The bulkhead's builder and its validation.

use crate::bulkhead::{validate_max_concurrent, Bulkhead};
use crate::BulkheadEvent;
use battlement_core::event::EventChannel;
use battlement_core::{ComponentKind, ConfigError, Registration};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Builds a [`Bulkhead`], validating every setting.
///
/// Defaults: 25 concurrent calls, no queue (a call that finds no free permit is rejected at
/// once), no wait limit, a 10 s rejection window, and, with every registry given, registered as
/// a non-critical component (a bulkhead's default, [`ComponentKind::critical_by_default`]: a
/// saturated or recently rejecting bulkhead reports `warn`, which degrades the aggregate without
/// failing it).
///
/// ```
/// use battlement_bulkhead::Bulkhead;
/// use std::time::Duration;
///
/// let b = Bulkhead::builder("payments")
///     .max_concurrent(10)
///     .max_queued(20)
///     .max_wait(Duration::from_millis(100))
///     .build()
///     .unwrap();
/// assert_eq!(b.max_queued(), 20);
///
/// // Bad settings are refused when building, never at call time.
/// let err = Bulkhead::builder("payments").max_concurrent(0).build().unwrap_err();
/// assert_eq!(err.setting(), "max_concurrent");
/// let err = Bulkhead::builder("payments").max_wait(Duration::from_millis(5)).build().unwrap_err();
/// assert_eq!(err.setting(), "max_wait"); // a wait limit needs a queue
/// ```
#[must_use]
pub struct BulkheadBuilder {
    registration: Registration,
    pub(crate) max_concurrent: usize,
    pub(crate) max_queued: usize,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) rejection_window: Duration,
    event_capacity: usize,
    histogram: bool,
    pub(crate) sheddable_queue_share: f64,
    pub(crate) starvation_bound: u32,
}

/// The default share of the queue sheddable calls may fill: half.
pub const DEFAULT_SHEDDABLE_QUEUE_SHARE: f64 = 0.5;
/// The default starvation bound: a priority class with waiters is passed over at most 8 times
/// in a row.
pub const DEFAULT_STARVATION_BOUND: u32 = 8;
/// The default [`rejection_window`](BulkheadBuilder::rejection_window): 10 s.
pub const DEFAULT_REJECTION_WINDOW: Duration = Duration::from_secs(10);

impl fmt::Debug for BulkheadBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadBuilder")
            .field("registration", &self.registration)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_queued", &self.max_queued)
            .field("max_wait", &self.max_wait)
            .field("rejection_window", &self.rejection_window)
            .field("histogram", &self.histogram)
            .field("sheddable_queue_share", &self.sheddable_queue_share)
            .field("starvation_bound", &self.starvation_bound)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl BulkheadBuilder {
    /// These queue settings under a bare registration, with `max_concurrent` (an adaptive
    /// limit's reload: the algorithm owns the limit).
    pub(crate) fn queue_settings(&self, max_concurrent: usize) -> Self {
        BulkheadBuilder {
            max_concurrent,
            max_queued: self.max_queued,
            max_wait: self.max_wait,
            rejection_window: self.rejection_window,
            sheddable_queue_share: self.sheddable_queue_share,
            starvation_bound: self.starvation_bound,
            histogram: self.histogram,
            event_capacity: self.event_capacity,
            ..BulkheadBuilder::new(self.registration.name())
        }
    }

    pub(crate) fn new(name: impl Into<String>) -> Self {
        BulkheadBuilder {
            registration: Registration::new(ComponentKind::Bulkhead, name),
            max_concurrent: 25,
            max_queued: 0,
            max_wait: None,
            rejection_window: DEFAULT_REJECTION_WINDOW,
            histogram: false,
            sheddable_queue_share: DEFAULT_SHEDDABLE_QUEUE_SHARE,
            starvation_bound: DEFAULT_STARVATION_BOUND,
            event_capacity: battlement_core::event::DEFAULT_EVENT_CAPACITY,
        }
    }

    /// How many calls may run at once (default 25; at least 1). Can be changed later with
    /// [`Bulkhead::set_max_concurrent`].
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// How many calls may wait for a permit (default 0: reject at once when every permit is
    /// taken). Waiting calls are admitted in arrival order. Queued calls are counted in 32 bits:
    /// a larger bound (`usize::MAX` for "no bound") means 4294967295.
    pub fn max_queued(mut self, max: usize) -> Self {
        self.max_queued = max;
        self
    }

    /// How long a call may wait in the queue before it is rejected with
    /// [`BulkheadTimeout`](crate::BulkheadTimeout) (default: no limit; the caller's own
    /// timeout, or cancellation, ends the wait). Must be greater than zero and needs a queue.
    ///
    /// The wait's timer starts when the call is queued, inside `call`, which must then run within
    /// a tokio runtime with time enabled (as for `tower::timeout::Timeout`).
    pub fn max_wait(mut self, max: Duration) -> Self {
        self.max_wait = Some(max);
        self
    }

    /// How long after a rejection the health snapshot still reports `warn` (state `rejecting`),
    /// once the bulkhead is no longer saturated (default [`DEFAULT_REJECTION_WINDOW`], 10 s):
    /// a bulkhead that rejected calls in a burst is seen doing so by a health scrape that comes
    /// after the burst, not only by one that lands inside it. Zero reports `warn` only while
    /// saturated. Only the rejection path records its time: admitted calls write nothing more.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    /// use std::time::Duration;
    ///
    /// let b = Bulkhead::builder("pool").rejection_window(Duration::from_secs(30)).build().unwrap();
    /// assert_eq!(b.rejection_window(), Duration::from_secs(30));
    /// ```
    pub fn rejection_window(mut self, window: Duration) -> Self {
        self.rejection_window = window;
        self
    }

    /// Keep a histogram of queue waits for the metrics exporters
    /// (`battlement_bulkhead_queue_wait_seconds`; see [`FAMILIES`](crate::FAMILIES)). Off by
    /// default. Only a call that went through the queue records its wait (when it leaves the
    /// queue admitted or timed out, as [`BulkheadMetrics::waited`](crate::BulkheadMetrics::waited)
    /// counts), into its thread's cell of a fixed-bucket histogram: no lock, no allocation; a call
    /// that finds a free permit does not touch it.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let b = Bulkhead::builder("db").max_queued(10).histogram(true).build().unwrap();
    /// # let _ = b;
    /// ```
    pub fn histogram(mut self, on: bool) -> Self {
        self.histogram = on;
        self
    }

    /// The share of `max_queued` that [`Sheddable`](crate::Priority::Sheddable) calls may fill
    /// (default [`DEFAULT_SHEDDABLE_QUEUE_SHARE`], between 0 and 1): a sheddable call that finds
    /// no free permit queues only while fewer than `max_queued × share` (rounded down) calls
    /// wait, and is otherwise shed at once ([`BulkheadFull::is_shed`](crate::BulkheadFull::is_shed)),
    /// keeping the rest of the queue for critical and normal calls. 0 never queues a sheddable
    /// call; 1 queues it like any other.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// assert!(Bulkhead::builder("api").max_queued(10).sheddable_queue_share(0.2).build().is_ok());
    /// let err = Bulkhead::builder("api").sheddable_queue_share(1.5).build().unwrap_err();
    /// assert_eq!(err.setting(), "sheddable_queue_share");
    /// ```
    pub fn sheddable_queue_share(mut self, share: f64) -> Self {
        self.sheddable_queue_share = share;
        self
    }

    /// The starvation bound (default [`DEFAULT_STARVATION_BOUND`], at least 1): a permit freed
    /// while calls wait goes to the highest [`Priority`](crate::Priority) with waiters, but a
    /// lower priority with waiters that has been passed over this many times in a row gets the
    /// next one. So the oldest waiter of any class is served after at most `bound` permits
    /// handed to higher classes (with the priority's own earlier waiters ahead of it, a waiter
    /// `k`-th in its class waits for at most `k × (bound + 1)` hand-offs). Hand-offs that race
    /// (two calls finishing at once) may each count the same pass-over, so under contention the
    /// bound can be exceeded by the number of racing hand-offs.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let err = Bulkhead::builder("api").starvation_bound(0).build().unwrap_err();
    /// assert_eq!(err.setting(), "starvation_bound");
    /// ```
    pub fn starvation_bound(mut self, bound: u32) -> Self {
        self.starvation_bound = bound;
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
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// assert!(Bulkhead::builder("db").max_concurrent(4).validate().is_ok());
    /// let err = Bulkhead::builder("db").max_concurrent(0).validate().unwrap_err();
    /// assert_eq!(err.setting(), "max_concurrent");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.events().map(drop)
    }

    /// The checks, and the event channel the bulkhead publishes on.
    fn events(&self) -> Result<EventChannel<BulkheadEvent>, ConfigError> {
        self.registration.require_name()?;
        validate_max_concurrent(self.registration.name(), self.max_concurrent)?;
        if let Some(wait) = self.max_wait {
            if wait.is_zero() {
                return Err(self.err(
                    "max_wait",
                    wait,
                    "must be greater than zero (use max_queued(0) to reject at once)",
                ));
            }
            if self.max_queued == 0 {
                return Err(self.err(
                    "max_wait",
                    wait,
                    "has no effect without a queue: set max_queued too",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sheddable_queue_share) {
            return Err(self.err(
                "sheddable_queue_share",
                self.sheddable_queue_share,
                "must be between 0 and 1",
            ));
        }
        if self.starvation_bound == 0 {
            return Err(self.err("starvation_bound", 0, "must be at least 1"));
        }
        EventChannel::new(self.event_capacity)
            .map_err(|e| e.within(ComponentKind::Bulkhead, self.registration.name()))
    }

    /// Validates the settings and builds the bulkhead.
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        let bulkhead = self.assemble(self.max_concurrent, None)?;
        self.register(Arc::new(bulkhead.clone()))?;
        Ok(bulkhead)
    }

    /// Validates the settings and builds the bulkhead with `max_concurrent` permits, without
    /// registering it.
    pub(crate) fn assemble(
        &self,
        max_concurrent: usize,
        adaptive: Option<Box<crate::adaptive::Adaptive>>,
    ) -> Result<Bulkhead, ConfigError> {
        let events = self.events()?;
        Ok(Bulkhead::from_parts(
            Arc::from(self.registration.name()),
            max_concurrent,
            self.max_queued,
            self.max_wait,
            self.rejection_window,
            self.histogram,
            events,
            adaptive,
            (self.sheddable_queue_share, self.starvation_bound),
        ))
    }

    /// Registers `component` with the builder's registries.
    pub(crate) fn register(
        &self,
        component: Arc<dyn battlement_core::HealthSource>,
    ) -> Result<(), ConfigError> {
        self.registration.register(component)
    }

    /// A configuration error about `setting`, scoped to this bulkhead.
    pub(crate) fn error(
        &self,
        setting: &'static str,
        value: String,
        why: &'static str,
    ) -> ConfigError {
        struct Raw(String);
        impl fmt::Debug for Raw {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        self.err(setting, Raw(value), why)
    }
}
