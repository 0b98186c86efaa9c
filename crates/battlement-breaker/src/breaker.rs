//! The shared breaker handle and the call path: admission, recording, the trip rules,
//! transitions and operator actions. Its read-outs (metrics, health) are in `metrics.rs`.

use crate::clock::HotClock;
use crate::config::{CircuitBreakerBuilder, Settings, SlidingWindow, Validated};
use crate::event::{BreakerEvent, TransitionReason};
use crate::state::{Machine, Target, Transition, Word, NO_END};
use crate::window::{Record, Window};
use crate::State;
use battlement_core::error::BreakerOpen;
use battlement_core::event::EventChannel;
use battlement_core::export::Histogram;
use battlement_core::handle::Handle;
use battlement_core::stripe::{CachePadded, Shards};
use battlement_core::{ConfigError, FailureKind, Outcome};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A circuit breaker: a cheap `Clone` handle to state shared by every service it guards.
///
/// Build one with [`CircuitBreaker::builder`], then guard services with
/// [`CircuitBreakerLayer`](crate::CircuitBreakerLayer). One handle may guard several services
/// (all routes to one upstream); one stack may use several breakers.
///
/// ```
/// use battlement_breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder("inventory").build().unwrap();
/// breaker.force_open("deploying inventory v2");
/// assert_eq!(breaker.state(), State::ForcedOpen);
/// breaker.reset();
/// assert_eq!(breaker.state(), State::Closed);
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    shards: Shards<Shard>,
}

/// What a call's future holds: its own cache-line-padded reference to the shared state, so
/// cloning and dropping it per call touches a reference count no other core is writing.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) shared: Arc<Shared>,
    /// This shard's index: the window stripe its calls record into.
    pub(crate) index: usize,
}

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) machine: Machine,
    pub(crate) window: Window,
    consecutive: CachePadded<AtomicU64>,
    eval_pending: CachePadded<AtomicBool>,
    // The settings a reload changes: each in its own atomic, read where the plain fields were
    // read before (one relaxed load, a plain load on the usual targets), so the call path costs
    // the same. Written only by `reload`, under `reload`'s lock.
    minimum_calls: AtomicU64,
    /// Failure-rate threshold (`f64` bits), or [`OFF`].
    failure_rate: AtomicU64,
    /// Slow-call limit in raw clock ticks, or [`OFF`].
    slow_limit: AtomicU64,
    /// Slow-call rate threshold (`f64` bits), or [`OFF`].
    slow_rate: AtomicU64,
    /// The rules a finished closed call checks, in one word (one load on the success path):
    /// the consecutive failures that trip (0: off) shifted left by one, and [`RATE_RULES`] if
    /// a rate rule (failure or slow) is on.
    rules: AtomicU64,
    /// Longest half-open period (ns), or [`OFF`].
    max_half_open: AtomicU64,
    count_rejections: AtomicBool,
    timing: AtomicBool,
    /// Serialises reloads, and holds the window setting the rings are shaped for.
    reload: Mutex<SlidingWindow>,
    reloads: AtomicU64,
    /// Call durations for the exporters, when [`histogram`](CircuitBreakerBuilder::histogram)
    /// is on (fixed at build: a reload does not add or remove it).
    pub(crate) histogram: Option<Histogram>,
    /// Transitions counted by `[from][to]` (state bits); only transitions write them.
    pub(crate) transitions: [[AtomicU64; 5]; 5],
    pub(crate) origin: Instant,
    pub(crate) hot: HotClock,
    events: EventChannel<BreakerEvent>,
}

/// A setting that is off (no such rule).
const OFF: u64 = u64::MAX;

/// In [`Shared::rules`]: a rate rule is on.
const RATE_RULES: u64 = 1;

fn rate_bits(rate: Option<f64>) -> u64 {
    rate.map_or(OFF, f64::to_bits)
}

fn bits_rate(bits: u64) -> Option<f64> {
    (bits != OFF).then(|| f64::from_bits(bits))
}

/// A call the breaker let through: the generation it was admitted in, and whether it holds a
/// half-open trial permit (`gen << 1 | trial`, one word in every call's future).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission(u64);

impl Admission {
    #[inline]
    fn new(gen: u64, trial: bool) -> Self {
        Admission(gen << 1 | u64::from(trial))
    }
    #[inline]
    fn gen(self) -> u64 {
        self.0 >> 1
    }
    #[inline]
    fn trial(self) -> bool {
        self.0 & 1 == 1
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("CircuitBreaker")
            .field("name", &shared.name)
            .field("state", &shared.machine.current().state())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The start of a call that is not timed (no clock reading comes near it).
pub(crate) const UNTIMED: u64 = u64::MAX;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl CircuitBreaker {
    /// Starts building a breaker called `name`.
    pub fn builder(name: impl Into<String>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(name)
    }

    pub(crate) fn from_builder(b: &CircuitBreakerBuilder, v: Validated) -> Self {
        let window = match b.window {
            SlidingWindow::Count(n) => Window::count(n),
            SlidingWindow::Time { length, buckets } => {
                Window::time(nanos(length), u64::from(buckets))
            }
        };
        let hot = HotClock::new();
        let shared = Arc::new(Shared {
            name: b.registration.name().into(),
            machine: Machine::new(v.settings.machine),
            window,
            consecutive: CachePadded::new(AtomicU64::new(0)),
            eval_pending: CachePadded::new(AtomicBool::new(false)),
            minimum_calls: AtomicU64::new(0),
            failure_rate: AtomicU64::new(OFF),
            slow_limit: AtomicU64::new(OFF),
            slow_rate: AtomicU64::new(OFF),
            rules: AtomicU64::new(0),
            max_half_open: AtomicU64::new(OFF),
            count_rejections: AtomicBool::new(false),
            timing: AtomicBool::new(false),
            reload: Mutex::new(b.window),
            reloads: AtomicU64::new(0),
            histogram: b.histogram.then(Histogram::new),
            transitions: Default::default(),
            origin: Instant::now(),
            hot,
            events: v.events,
        });
        shared.apply(b, &v.settings);
        let shards = Shards::new(|index| Shard {
            shared: shared.clone(),
            index,
        });
        CircuitBreaker { shards }
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shards.all()[0].shared
    }

    /// A reference for one call's future, from the calling thread's shard.
    #[inline]
    pub(crate) fn shard(&self) -> Handle<CachePadded<Shard>> {
        self.shards.local()
    }

    /// Admits one call, as a [`CircuitBreakerService`](crate::CircuitBreakerService) does: a
    /// [`CallGuard`](crate::CallGuard) that records the call's outcome (or, dropped unfinished,
    /// counts it as cancelled), or the rejection. For services that pick a breaker per call
    /// (battlement-keyed); pair it with [`ResponseFuture::new`](crate::ResponseFuture::new).
    ///
    /// ```
    /// use battlement_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder("db").build().unwrap();
    /// let guard = breaker.try_call().unwrap();
    /// drop(guard); // cancelled: counts as neither success nor failure
    /// breaker.force_open("maintenance");
    /// assert!(breaker.try_call().is_err());
    /// ```
    #[inline]
    pub fn try_call(&self) -> Result<crate::CallGuard, BreakerOpen> {
        let shard = self.shard();
        let admission = shard.shared.admit()?;
        Ok(crate::CallGuard::new(shard, admission))
    }

    /// Whether anything but this handle holds the breaker: another clone of it (a layer, a
    /// service, the health registry) or a call in flight. A table of breakers drops one only
    /// when this is `false`, so no call's outcome or trial permit is lost.
    ///
    /// ```
    /// use battlement_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder("db").build().unwrap();
    /// assert!(!breaker.is_shared());
    /// let guard = breaker.try_call().unwrap();
    /// assert!(breaker.is_shared());
    /// drop(guard);
    /// assert!(!breaker.is_shared());
    /// ```
    pub fn is_shared(&self) -> bool {
        self.shards.is_shared()
    }

    /// This breaker kept for the rest of the program (never freed), as a handle whose clones
    /// copy a pointer: cloning it, or a layer or service made from it, writes no reference
    /// count that other cores' clones share. For services cloned for every request, as axum's
    /// router clones the matched route (and hyper the service it serves): on several cores
    /// those clones would otherwise write one word from every core, per request. It is the
    /// same breaker: state, metrics and health are those of this handle. A call's guard copies
    /// a pointer to its thread's shard too, where a breaker that is not leaked counts a
    /// reference on it (two locked instructions a call, on a line only that thread writes:
    /// about half of what a closed call costs on a 2-vCPU Xeon).
    ///
    /// For breakers made once, at start, that live as long as the program: each call of `leak`
    /// on a handle that is not leaked yet keeps one more reference for good.
    ///
    /// ```
    /// use battlement_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder("payments").build().unwrap().leak();
    /// let clone = breaker.clone(); // a pointer copy
    /// clone.force_open("maintenance");
    /// assert_eq!(breaker.state(), State::ForcedOpen);
    /// ```
    pub fn leak(self) -> Self {
        CircuitBreaker {
            shards: self.shards.leak(),
        }
    }

    /// Whether this handle was [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.shards.is_leaked()
    }

    /// The reference counts on the breaker's shards (see `Shards::references`).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn references(&self) -> usize {
        self.shards.references()
    }

    /// How many stripes the window records into.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn window_stripes(&self) -> usize {
        self.shared().window.stripes()
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// The current state. An open breaker whose wait has passed, or a breaker forced open for a
    /// time that has passed, moves to half-open here, as it would on the next call.
    pub fn state(&self) -> State {
        let shared = self.shared();
        let word = shared.machine.current();
        if matches!(word.state(), State::Open | State::ForcedOpen) {
            let now = shared.now();
            if now >= shared.machine.open_until() {
                shared.end_open(word, now);
                return shared.machine.current().state();
            }
        }
        word.state()
    }

    /// How long until an open breaker, or a breaker forced open for a time, admits a trial call
    /// (`None` in other states, and when forced open with no end).
    pub fn retry_after(&self) -> Option<Duration> {
        self.shared()
            .retry_after(self.shared().machine.current().state())
    }

    /// Forces the breaker open: every call is rejected until an operator action
    /// ([`reset`](Self::reset), [`disable`](Self::disable), another force). The reason is carried
    /// by each [`BreakerOpen`] error and shown by the health endpoint; the error has no
    /// `retry_after` (so the facade's HTTP mapping sends no `Retry-After`), since nobody knows
    /// when the operator will act.
    pub fn force_open(&self, reason: impl Into<Arc<str>>) {
        let reason: Arc<str> = reason.into();
        self.shared().force(
            Target::ForcedOpen {
                reason: reason.clone(),
                until: None,
            },
            TransitionReason::Forced(reason),
        );
    }

    /// Forces the breaker open for `duration`: every call is rejected with a [`BreakerOpen`]
    /// whose `retry_after` is the time left (the facade's HTTP mapping turns it into a
    /// `Retry-After` header). When the time has passed the breaker goes **half-open**, not
    /// closed: its trial calls check that the dependency is back before full traffic returns,
    /// as after an automatic opening (the open wait does not grow; [`trips`] does not count it).
    /// An operator action before the end ([`reset`](Self::reset), another force) replaces it.
    ///
    /// [`trips`]: crate::CircuitBreakerMetrics::trips
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_breaker::{CircuitBreaker, State};
    /// use std::time::Duration;
    ///
    /// let breaker = CircuitBreaker::builder("search").build().unwrap();
    /// breaker.force_open_for("reindexing", Duration::from_secs(60));
    /// assert_eq!(breaker.state(), State::ForcedOpen);
    /// assert_eq!(breaker.retry_after(), Some(Duration::from_secs(60)));
    ///
    /// tokio::time::advance(Duration::from_secs(60)).await;
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// # }
    /// ```
    pub fn force_open_for(&self, reason: impl Into<Arc<str>>, duration: Duration) {
        let shared = self.shared();
        let until = shared.now().saturating_add(nanos(duration));
        shared.force_open_until(reason.into(), until);
    }

    /// Forces the breaker open until `deadline` (a `tokio::time::Instant`, so paused test time
    /// drives it), then half-open: [`force_open_for`](Self::force_open_for) with an instant. A
    /// deadline already past ends at the next call or [`state`](Self::state) read.
    pub fn force_open_until(&self, reason: impl Into<Arc<str>>, deadline: Instant) {
        let shared = self.shared();
        let until = nanos(deadline.saturating_duration_since(shared.origin));
        shared.force_open_until(reason.into(), until);
    }

    /// Opens the breaker from outside its own window, as if its window had tripped: open for
    /// its next open wait (which grows with consecutive openings, as after any trip), then
    /// half-open; counted in [`trips`](crate::CircuitBreakerMetrics::trips). The transition's
    /// reason is [`TransitionReason::External`] with `reason`. For a fleet that opens a
    /// replica's breaker when a quorum of replicas report it open (battlement-fleet).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_breaker::{CircuitBreaker, State};
    /// use std::time::Duration;
    ///
    /// let breaker = CircuitBreaker::builder("db")
    ///     .fixed_open_wait(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// breaker.trip("fleet quorum");
    /// assert_eq!(breaker.state(), State::Open);
    /// assert_eq!(breaker.retry_after(), Some(Duration::from_secs(5)));
    /// assert_eq!(breaker.metrics().trips, 1);
    /// # }
    /// ```
    pub fn trip(&self, reason: impl Into<Arc<str>>) {
        self.shared()
            .force(Target::Open, TransitionReason::External(reason.into()));
    }

    /// Opens the breaker (state [`Open`](State::Open), not forced) for exactly `remaining`,
    /// then half-open, as an automatic opening would end: restores an open state saved before a
    /// restart for the rest of its wait only. Not counted in
    /// [`trips`](crate::CircuitBreakerMetrics::trips) (the trip was counted by the process that
    /// saw it); the next automatic opening's wait grows from here. The transition's reason is
    /// [`TransitionReason::External`] with `reason`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_breaker::{CircuitBreaker, State};
    /// use std::time::Duration;
    ///
    /// let breaker = CircuitBreaker::builder("db").build().unwrap();
    /// breaker.restore_open("restored", Duration::from_secs(3));
    /// assert_eq!(breaker.state(), State::Open);
    /// assert_eq!(breaker.retry_after(), Some(Duration::from_secs(3)));
    /// assert_eq!(breaker.metrics().trips, 0);
    /// tokio::time::advance(Duration::from_secs(3)).await;
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// # }
    /// ```
    pub fn restore_open(&self, reason: impl Into<Arc<str>>, remaining: Duration) {
        self.shared().force(
            Target::OpenFor(nanos(remaining)),
            TransitionReason::External(reason.into()),
        );
    }

    /// Disables the breaker: every call passes and is recorded, but it never trips.
    pub fn disable(&self) {
        self.shared()
            .force(Target::Disabled, TransitionReason::Disabled);
    }

    /// Back to closed with an empty window and the open wait reset to its base.
    ///
    /// The window's figures ([`CircuitBreakerMetrics::window_calls`](crate::CircuitBreakerMetrics::window_calls), `window_failures`,
    /// `window_slow_calls`, the rates and latencies) start again from zero, as Resilience4j's
    /// reset does; the cumulative counters (`calls_permitted`, `successes`, `failures`,
    /// `calls_rejected`, `trips`, …) keep counting across a reset, as Prometheus counters must
    /// (a counter that went down would read as a restart).
    pub fn reset(&self) {
        self.shared().force(Target::Closed, TransitionReason::Reset);
    }

    /// Subscribes to typed state-transition events.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.shared().events.subscribe()
    }

    /// Applies the settings of `settings` to this live breaker, or, if any is invalid, changes
    /// nothing and returns the error ([`CircuitBreakerBuilder::validate`]'s).
    ///
    /// The builder's name, registries (and `critical`) and event capacity are not applied: the
    /// breaker keeps its identity, its registrations and its event channel (its subscribers
    /// stay subscribed). The classifier belongs to the layer, not the breaker. Everything else
    /// is:
    ///
    /// - The state, the generation and the calls in flight are kept: no call is dropped or
    ///   failed, and a call admitted before the reload is recorded when it finishes.
    /// - Thresholds (failure rate, slow-call rate and duration, consecutive failures, minimum
    ///   calls) apply from the next decision, which is taken when a call's outcome is recorded
    ///   (a failing or slow one, or any while a decision is pending): lowering a threshold does
    ///   not trip the breaker by itself.
    /// - The open wait applies from the next opening (an open period keeps the end it was given;
    ///   the growth count of consecutive openings is kept). Trial permits and the successes
    ///   needed apply from the next half-open period; the half-open limit from the next
    ///   admission.
    /// - The window: one of the same type and size keeps its counts. One of another type or
    ///   size starts empty (a window cannot be converted: a count window does not know when its
    ///   calls happened), and the event says so. The rings keep the memory they were built
    ///   with, at least 128 slots per stripe, so every count window fits exactly; a time window
    ///   with more buckets than the rings have keeps its length in fewer, longer buckets.
    ///   Calls finishing during the change may be counted in the new window.
    /// - Timing (`record_latency`, `slow_call`) applies to calls that start after the reload.
    ///
    /// Each setting is published on its own: a decision racing the reload may see some of the
    /// new settings and some of the old ones, never a setting that was not valid. A reload is
    /// a `tracing` info event, a [`BreakerEvent::Reloaded`], and counts in
    /// [`CircuitBreakerMetrics::reloads`](crate::CircuitBreakerMetrics::reloads).
    ///
    /// ```
    /// use battlement_breaker::CircuitBreaker;
    /// use std::time::Duration;
    ///
    /// let breaker = CircuitBreaker::builder("db").build().unwrap();
    /// breaker
    ///     .reload(&CircuitBreaker::builder("db").failure_rate_threshold(0.2).fixed_open_wait(Duration::from_secs(30)))
    ///     .unwrap();
    /// assert_eq!(breaker.metrics().reloads, 1);
    ///
    /// let err = breaker.reload(&CircuitBreaker::builder("db").failure_rate_threshold(1.5)).unwrap_err();
    /// assert_eq!(err.setting(), "failure_rate_threshold");
    /// assert_eq!(breaker.metrics().reloads, 1); // nothing changed
    /// ```
    pub fn reload(&self, settings: &CircuitBreakerBuilder) -> Result<(), ConfigError> {
        settings.validate()?;
        let v = settings.settings()?;
        let shared = self.shared();
        let mut window = shared.reload.lock().unwrap_or_else(|e| e.into_inner());
        shared.apply(settings, &v);
        shared.machine.reconfigure(v.machine);
        let window_cleared = *window != settings.window;
        if window_cleared {
            match settings.window {
                SlidingWindow::Count(n) => shared.window.reshape_count(n),
                SlidingWindow::Time { length, buckets } => {
                    shared
                        .window
                        .reshape_time(nanos(length), u64::from(buckets));
                }
            }
            shared.eval_pending.store(false, Relaxed);
            *window = settings.window;
        }
        shared.reloads.fetch_add(1, Relaxed);
        drop(window);
        tracing::info!(
            breaker = %shared.name,
            window = ?settings.window,
            window_cleared,
            "circuit breaker settings reloaded"
        );
        shared.events.send(BreakerEvent::Reloaded {
            name: shared.name.clone(),
            window_cleared,
        });
        Ok(())
    }
}

impl Shared {
    /// Stores the settings a reload may change (the machine's are set by the caller).
    fn apply(&self, b: &CircuitBreakerBuilder, v: &Settings) {
        self.minimum_calls.store(b.minimum_calls, Relaxed);
        self.failure_rate.store(rate_bits(b.failure_rate), Relaxed);
        self.slow_limit.store(
            v.slow_nanos
                .map_or(OFF, |limit| self.hot.nanos_to_ticks(limit)),
            Relaxed,
        );
        self.slow_rate
            .store(rate_bits(b.slow_call.map(|(_, rate)| rate)), Relaxed);
        let rates = b.failure_rate.is_some() || b.slow_call.is_some();
        // A limit of 2^63 or more is never reached: kept below that, it means the same.
        let consecutive = b.consecutive_failures.unwrap_or(0).min(u64::MAX >> 1);
        self.rules
            .store(consecutive << 1 | u64::from(rates), Relaxed);
        if !rates {
            // Set only while a rate rule is on: a success reads it without the rules.
            self.eval_pending.store(false, Relaxed);
        }
        self.max_half_open
            .store(v.max_half_open.unwrap_or(OFF), Relaxed);
        self.count_rejections.store(b.count_rejections, Relaxed);
        // A histogram, fixed at build, keeps calls timed whatever the reload says.
        self.timing.store(
            b.record_latency || b.slow_call.is_some() || self.histogram.is_some(),
            Relaxed,
        );
    }

    /// Whether calls are timed.
    #[inline]
    pub(crate) fn timing(&self) -> bool {
        self.timing.load(Relaxed)
    }

    /// Reloads counted since the breaker was built.
    pub(crate) fn reloads(&self) -> u64 {
        self.reloads.load(Relaxed)
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.origin))
    }

    /// A reading of the call-path clock when calls are timed, else [`UNTIMED`].
    #[inline]
    pub(crate) fn start_timer(&self) -> u64 {
        if self.timing() {
            self.hot.raw()
        } else {
            UNTIMED
        }
    }

    /// Raw clock ticks since `start` (from [`start_timer`](Self::start_timer)). Latencies stay
    /// in ticks on the call path (the slow-call limit is kept in ticks); metrics scale them.
    #[inline]
    pub(crate) fn elapsed(&self, start: u64) -> u64 {
        self.hot.raw().saturating_sub(start)
    }

    /// Adds a finished call's duration (clock ticks) to the histogram, when there is one.
    #[inline]
    pub(crate) fn observe(&self, ticks: u64) {
        if let Some(h) = &self.histogram {
            h.record_nanos(self.hot.ticks_to_nanos(ticks));
        }
    }

    /// Decides whether a call may start.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Admission, BreakerOpen> {
        let word = self.machine.current();
        if word.admits_all() {
            Ok(Admission::new(word.gen(), false))
        } else {
            self.admit_restricted(word)
        }
    }

    /// [`admit`](Self::admit) in a state that does not admit every call: open, half-open,
    /// forced open (kept out of line, so the closed path stays small).
    #[cold]
    #[inline(never)]
    fn admit_restricted(&self, mut word: Word) -> Result<Admission, BreakerOpen> {
        loop {
            match word.state() {
                State::Closed | State::Disabled => return Ok(Admission::new(word.gen(), false)),
                State::Open => {
                    let now = self.now();
                    let until = self.machine.open_until();
                    if now < until {
                        return Err(self.reject(Some(Duration::from_nanos(until - now))));
                    }
                    self.end_open(word, now);
                }
                State::HalfOpen => {
                    let max = self.max_half_open.load(Relaxed);
                    if max != OFF {
                        let now = self.now();
                        if now.saturating_sub(self.machine.half_open_since()) > max {
                            self.transition(
                                word,
                                Target::Open,
                                now,
                                TransitionReason::HalfOpenTooLong,
                            );
                            word = self.machine.current();
                            continue;
                        }
                    }
                    return match self.machine.try_take_permit(word) {
                        Some(gen) => Ok(Admission::new(gen, true)),
                        None => Err(self.reject(None)),
                    };
                }
                State::ForcedOpen => {
                    let until = self.machine.open_until();
                    let mut retry_after = None;
                    if until != NO_END {
                        let now = self.now();
                        if now >= until {
                            self.end_open(word, now);
                            word = self.machine.current();
                            continue;
                        }
                        retry_after = Some(Duration::from_nanos(until - now));
                    }
                    self.window.note_rejected();
                    let reason = self
                        .machine
                        .forced_reason()
                        .unwrap_or_else(|| Arc::from("forced open"));
                    tracing::debug!(breaker = %self.name, %reason, ?retry_after, "call rejected: breaker forced open");
                    return Err(BreakerOpen::forced(self.name.clone(), reason)
                        .with_retry_after(retry_after));
                }
            }
            word = self.machine.current();
        }
    }

    /// An open period (automatic, or forced with an end) whose end has passed: to half-open.
    #[cold]
    fn end_open(&self, word: Word, now: u64) {
        let reason = if word.state() == State::ForcedOpen {
            TransitionReason::ForcedOpenEnded
        } else {
            TransitionReason::WaitElapsed
        };
        self.transition(word, Target::HalfOpen, now, reason);
    }

    /// Time left in an open period that has a known end, in `state`.
    pub(crate) fn retry_after(&self, state: State) -> Option<Duration> {
        let until = self.machine.open_until();
        let ends = state == State::Open || (state == State::ForcedOpen && until != NO_END);
        ends.then(|| Duration::from_nanos(until.saturating_sub(self.now())))
    }

    #[cold]
    fn force_open_until(&self, reason: Arc<str>, until: u64) {
        self.force(
            Target::ForcedOpen {
                reason: reason.clone(),
                until: Some(until),
            },
            TransitionReason::Forced(reason),
        );
    }

    fn reject(&self, retry_after: Option<Duration>) -> BreakerOpen {
        self.window.note_rejected();
        tracing::debug!(breaker = %self.name, ?retry_after, "call rejected: breaker open");
        BreakerOpen::new(self.name.clone(), retry_after)
    }

    /// Records a finished call into window stripe `stripe`.
    #[inline]
    pub(crate) fn record(
        &self,
        stripe: usize,
        adm: Admission,
        outcome: Outcome,
        latency: Option<u64>,
    ) {
        let word = self.machine.current();
        if word.gen() != adm.gen() {
            // Admitted in an earlier state: it must not count toward this one.
            self.window.note_stale(stripe);
            return;
        }
        let failure = match outcome {
            Outcome::Success => None,
            Outcome::Failure(FailureKind::Rejected) if !self.count_rejections.load(Relaxed) => {
                // A rejection by a layer below (a full bulkhead, a kill switch) is local
                // back-pressure, not the dependency failing: count it as nothing.
                self.window.note_ignored(stripe);
                if adm.trial() {
                    self.machine.return_permit(adm.gen());
                }
                return;
            }
            Outcome::Failure(kind) => Some(kind),
            Outcome::Ignored => {
                self.window.note_ignored(stripe);
                if adm.trial() {
                    self.machine.return_permit(adm.gen());
                }
                return;
            }
        };
        let slow = match latency {
            // Off is `u64::MAX` ticks, which no latency reaches.
            Some(lat) => {
                self.observe(lat);
                lat >= self.slow_limit.load(Relaxed)
            }
            None => false,
        };
        // Window time is the call-path clock's, as in `metrics` (only time windows read it).
        let now = self.window.record(
            Record {
                failure,
                slow,
                latency,
            },
            || self.hot.now(),
        );
        if word.is_closed() {
            self.judge(word, failure, slow, now);
        } else if adm.trial() {
            self.record_trial(word, adm, failure.is_none() && !slow);
        }
    }

    /// [`record`](Self::record) for an untimed success: the same effect, with the outcome and
    /// latency known. Always inlined, with the window's `record` (their rare branches are out
    /// of line): in the call's future that saves a call and the registers it saves. Left to the
    /// compiler, whether it inlined them changed with unrelated code in the same binary (143
    /// and 154 instructions a closed call in `benches/overhead.rs -- --instructions` for the
    /// same breaker); forced, 139, and no more in the stacks behind an axum router.
    #[inline(always)]
    pub(crate) fn record_success(&self, stripe: usize, adm: Admission) {
        let word = self.machine.current();
        if word.gen() != adm.gen() {
            self.window.note_stale(stripe);
            return;
        }
        let now = self.window.record(
            Record {
                failure: None,
                slow: false,
                latency: None,
            },
            || self.hot.now(),
        );
        if word.is_closed() {
            self.judge(word, None, false, now);
        } else if adm.trial() {
            self.record_trial(word, adm, true);
        }
    }

    /// A half-open trial call finished (`word` is still the half-open state it was admitted in).
    #[cold]
    fn record_trial(&self, word: Word, adm: Admission, good: bool) {
        if let Some(target) = self.machine.record_trial(adm.gen(), good) {
            let reason = if target == Target::Closed {
                TransitionReason::TrialsSucceeded
            } else {
                TransitionReason::TrialsFailed
            };
            self.transition(word, target, self.now(), reason);
        }
    }

    /// A call's future was dropped before it finished: count nothing, return its permit.
    #[cold]
    pub(crate) fn cancel(&self, stripe: usize, adm: Admission) {
        self.window.note_cancelled(stripe);
        if adm.trial() {
            self.machine.return_permit(adm.gen());
        }
    }

    /// Applies the trip rules after a call finished in the closed state: in line (a success's
    /// path through it is a few loads), so that a call's future does not hold its response
    /// across a call here.
    #[inline(always)]
    fn judge(&self, word: Word, failure: Option<FailureKind>, slow: bool, now: u64) {
        let rules = self.rules.load(Relaxed);
        if rules > RATE_RULES {
            let limit = rules >> 1;
            if failure.is_some() {
                let n = self.consecutive.fetch_add(1, Relaxed) + 1;
                if n >= limit {
                    self.trip(word, TransitionReason::ConsecutiveFailures(n));
                    return;
                }
            } else if self.consecutive.load(Relaxed) != 0 {
                self.consecutive.store(0, Relaxed);
            }
        }
        let bad = failure.is_some() || slow;
        if bad {
            if rules & RATE_RULES == 0 {
                return;
            }
        } else if !self.eval_pending.load(Relaxed) {
            // Successes only lower the rates; they need a look only when a failure was seen
            // before the window held enough calls. (That flag is set only while a rate rule is
            // on, so a success need not read the rules for it: a success that races a reload
            // turning the rates off evaluates once and finds nothing to trip.)
            return;
        }
        self.evaluate(word, bad, now);
    }

    #[cold]
    fn evaluate(&self, word: Word, bad: bool, now: u64) {
        let totals = self.window.totals(now);
        if totals.calls < self.minimum_calls.load(Relaxed) {
            if bad && !self.eval_pending.load(Relaxed) {
                self.eval_pending.store(true, Relaxed);
            }
            return;
        }
        if self.eval_pending.load(Relaxed) {
            self.eval_pending.store(false, Relaxed);
        }
        let calls = totals.calls;
        if let Some(threshold) = bits_rate(self.failure_rate.load(Relaxed)) {
            let rate = totals.failures as f64 / calls as f64;
            if rate >= threshold {
                self.trip(word, TransitionReason::FailureRate { rate, calls });
                return;
            }
        }
        if let Some(threshold) = bits_rate(self.slow_rate.load(Relaxed)) {
            let rate = totals.slow as f64 / calls as f64;
            if rate >= threshold {
                self.trip(word, TransitionReason::SlowCallRate { rate, calls });
            }
        }
    }

    #[cold]
    fn trip(&self, word: Word, reason: TransitionReason) {
        self.transition(word, Target::Open, self.now(), reason);
    }

    #[cold]
    fn transition(&self, from: Word, target: Target, now: u64, reason: TransitionReason) -> bool {
        let t = self
            .machine
            .transition(from.state(), from.gen(), target, now, |to| {
                self.on_enter(to)
            });
        match t {
            Some(t) => {
                self.announce(t, reason);
                true
            }
            None => false,
        }
    }

    #[cold]
    fn force(&self, target: Target, reason: TransitionReason) {
        let t = self
            .machine
            .force(target, self.now(), |to| self.on_enter(to));
        self.announce(t, reason);
    }

    fn on_enter(&self, to: State) {
        if matches!(to, State::Closed | State::Disabled) {
            self.window.clear();
            self.consecutive.store(0, Relaxed);
            self.eval_pending.store(false, Relaxed);
        }
    }

    fn announce(&self, t: Transition, reason: TransitionReason) {
        self.transitions[t.from.index()][t.to.index()].fetch_add(1, Relaxed);
        let open_for = t.open_for.map(Duration::from_nanos);
        match t.to {
            State::Open | State::ForcedOpen => tracing::warn!(
                breaker = %self.name,
                from = %t.from,
                to = %t.to,
                ?reason,
                ?open_for,
                "circuit breaker opened"
            ),
            _ => tracing::info!(
                breaker = %self.name,
                from = %t.from,
                to = %t.to,
                ?reason,
                "circuit breaker state changed"
            ),
        }
        self.events.send(BreakerEvent::StateTransition {
            name: self.name.clone(),
            from: t.from,
            to: t.to,
            reason,
            open_for,
        });
    }
}
