//! The shared breaker handle: admission, recording, operator actions, metrics.

use crate::clock::HotClock;
use crate::config::{CircuitBreakerBuilder, SlidingWindow, Validated};
use crate::event::{BreakerEvent, TransitionReason};
use crate::state::{Machine, Target, Transition, Word, NO_END};
use crate::window::{Record, Window};
use crate::State;
use battlement_core::error::BreakerOpen;
use battlement_core::stripe::{self, stripe_count, CachePadded};
use battlement_core::{
    ComponentKind, FailureKind, HealthSnapshot, HealthSource, HealthStatus, Metric, Outcome,
};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
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
    shards: Arc<[Arc<CachePadded<Shard>>]>,
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
    name: Arc<str>,
    machine: Machine,
    window: Window,
    consecutive: CachePadded<AtomicU64>,
    eval_pending: CachePadded<AtomicBool>,
    minimum_calls: u64,
    failure_rate: Option<f64>,
    /// Slow-call limit (raw clock ticks) and rate threshold.
    slow: Option<(u64, f64)>,
    consecutive_limit: Option<u64>,
    max_half_open: Option<u64>,
    count_rejections: bool,
    timing: bool,
    origin: Instant,
    hot: HotClock,
    events: broadcast::Sender<BreakerEvent>,
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
            name: b.name.as_str().into(),
            machine: Machine::new(v.machine),
            window,
            consecutive: CachePadded::new(AtomicU64::new(0)),
            eval_pending: CachePadded::new(AtomicBool::new(false)),
            minimum_calls: b.minimum_calls,
            failure_rate: b.failure_rate,
            slow: v
                .slow_nanos
                .map(|limit| hot.nanos_to_ticks(limit))
                .zip(b.slow_call.map(|(_, r)| r)),
            consecutive_limit: b.consecutive_failures,
            max_half_open: v.max_half_open,
            count_rejections: b.count_rejections,
            timing: b.record_latency || b.slow_call.is_some(),
            origin: Instant::now(),
            hot,
            events: v.events,
        });
        let shards = (0..stripe_count())
            .map(|index| {
                Arc::new(CachePadded::new(Shard {
                    shared: shared.clone(),
                    index,
                }))
            })
            .collect();
        CircuitBreaker { shards }
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shards[0].shared
    }

    /// A reference for one call's future, from the calling thread's shard.
    #[inline]
    pub(crate) fn shard(&self) -> Arc<CachePadded<Shard>> {
        stripe::local(&self.shards).clone()
    }

    /// How many stripes the window records into.
    #[cfg(test)]
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
    /// [`trips`]: BreakerMetrics::trips
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

    /// Disables the breaker: every call passes and is recorded, but it never trips.
    pub fn disable(&self) {
        self.shared()
            .force(Target::Disabled, TransitionReason::Disabled);
    }

    /// Back to closed with an empty window and the open wait reset to its base.
    ///
    /// The window's figures ([`BreakerMetrics::window_calls`], `window_failures`,
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

    /// Counts, rates and latencies as plain data.
    pub fn metrics(&self) -> BreakerMetrics {
        self.shared().metrics()
    }
}

impl Shared {
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.origin))
    }

    /// A reading of the call-path clock when calls are timed, else [`UNTIMED`].
    #[inline]
    pub(crate) fn start_timer(&self) -> u64 {
        if self.timing {
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

    /// Decides whether a call may start.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Admission, BreakerOpen> {
        let mut word = self.machine.current();
        if word.admits_all() {
            return Ok(Admission::new(word.gen(), false));
        }
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
                    if let Some(max) = self.max_half_open {
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
    fn retry_after(&self, state: State) -> Option<Duration> {
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
            Outcome::Failure(FailureKind::Rejected) if !self.count_rejections => {
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
        let slow = match (self.slow, latency) {
            (Some((limit, _)), Some(lat)) => lat >= limit,
            _ => false,
        };
        // Window time is the call-path clock's, as in `metrics` (only time windows read it).
        let now = if self.window.needs_time() {
            self.hot.now()
        } else {
            0
        };
        self.window.record(
            stripe,
            Record {
                failure,
                slow,
                latency,
            },
            now,
        );
        if word.is_closed() {
            self.judge(word, failure, slow, now);
        } else if adm.trial() {
            self.record_trial(word, adm, failure.is_none() && !slow);
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

    /// Applies the trip rules after a call finished in the closed state.
    #[inline]
    fn judge(&self, word: Word, failure: Option<FailureKind>, slow: bool, now: u64) {
        if let Some(limit) = self.consecutive_limit {
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
        if self.failure_rate.is_none() && self.slow.is_none() {
            return;
        }
        let bad = failure.is_some() || slow;
        // Successes only lower the rates; they need a look only when a failure was seen before
        // the window held enough calls.
        if !bad && !self.eval_pending.load(Relaxed) {
            return;
        }
        self.evaluate(word, bad, now);
    }

    #[cold]
    fn evaluate(&self, word: Word, bad: bool, now: u64) {
        let totals = self.window.totals(now);
        if totals.calls < self.minimum_calls {
            if bad && !self.eval_pending.load(Relaxed) {
                self.eval_pending.store(true, Relaxed);
            }
            return;
        }
        if self.eval_pending.load(Relaxed) {
            self.eval_pending.store(false, Relaxed);
        }
        let calls = totals.calls;
        if let Some(threshold) = self.failure_rate {
            let rate = totals.failures as f64 / calls as f64;
            if rate >= threshold {
                self.trip(word, TransitionReason::FailureRate { rate, calls });
                return;
            }
        }
        if let Some((_, threshold)) = self.slow {
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
        // No subscriber is not an error.
        let _ = self.events.send(BreakerEvent::StateTransition {
            name: self.name.clone(),
            from: t.from,
            to: t.to,
            reason,
            open_for,
        });
    }

    fn metrics(&self) -> BreakerMetrics {
        let word = self.machine.current();
        let now = self.now();
        let facts = self.machine.facts();
        let totals = self.window.totals(self.hot.now());
        let c = self.window.cumulative();
        let failures: u64 = c.failures.iter().sum();
        let rate = |n: u64| {
            if totals.calls == 0 {
                0.0
            } else {
                n as f64 / totals.calls as f64
            }
        };
        let state = word.state();
        BreakerMetrics {
            state,
            time_in_state: Duration::from_nanos(now.saturating_sub(facts.entered_at)),
            trips: facts.trips,
            retry_after: self.retry_after(state),
            forced_reason: facts.forced_reason.map(|r| r.to_string()),
            calls_permitted: c.recorded + c.ignored + c.cancelled + c.stale,
            calls_rejected: c.rejected,
            successes: c.recorded - failures.min(c.recorded),
            failures,
            failures_by_kind: std::array::from_fn(|i| (FailureKind::ALL[i], c.failures[i])),
            slow_calls: c.slow,
            ignored: c.ignored,
            cancelled: c.cancelled,
            stale: c.stale,
            trial_permits_left: (state == State::HalfOpen).then(|| word.permits()),
            window_calls: totals.calls,
            window_failures: totals.failures,
            window_slow_calls: totals.slow,
            failure_rate: rate(totals.failures),
            slow_call_rate: rate(totals.slow),
            mean_latency: (self.timing && totals.calls > 0).then(|| {
                Duration::from_nanos(self.hot.ticks_to_nanos(totals.lat_sum / totals.calls))
            }),
            max_latency: (self.timing && totals.calls > 0)
                .then(|| Duration::from_nanos(self.hot.ticks_to_nanos(totals.lat_max))),
        }
    }
}

/// A breaker's counts, rates and latencies, as plain data.
///
/// Counts are cumulative since the breaker was built, across [`reset`](CircuitBreaker::reset)
/// too (they only grow, as Prometheus counters must); the `window_*` figures, rates and latencies
/// are over the current window, which empties when the breaker closes (a reset included).
///
/// ```
/// use battlement_breaker::{CircuitBreaker, State};
///
/// let m = CircuitBreaker::builder("db").build().unwrap().metrics();
/// assert_eq!(m.state, State::Closed);
/// assert_eq!(m.calls_permitted, 0);
/// assert_eq!(m.failure_rate, 0.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The state now.
    pub state: State,
    /// How long it has been in that state.
    pub time_in_state: Duration,
    /// How many times it opened on its own (not forced).
    pub trips: u64,
    /// While open, or forced open for a time: how long until a trial call is admitted.
    pub retry_after: Option<Duration>,
    /// While forced open: the operator's reason.
    pub forced_reason: Option<String>,
    /// Calls let through that have finished (or were cancelled).
    pub calls_permitted: u64,
    /// Calls rejected.
    pub calls_rejected: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Failures by kind.
    pub failures_by_kind: [(FailureKind, u64); 6],
    /// Calls slower than the slow-call duration.
    pub slow_calls: u64,
    /// Calls whose outcome was ignored.
    pub ignored: u64,
    /// Calls whose future was dropped before they finished.
    pub cancelled: u64,
    /// Calls that finished after the state they started in had ended (not counted).
    pub stale: u64,
    /// While half-open: trial permits not yet taken (calls that may still start as trials).
    pub trial_permits_left: Option<u64>,
    /// Calls in the window.
    pub window_calls: u64,
    /// Failures in the window.
    pub window_failures: u64,
    /// Slow calls in the window.
    pub window_slow_calls: u64,
    /// Failure rate over the window (0 when it is empty).
    pub failure_rate: f64,
    /// Slow-call rate over the window.
    pub slow_call_rate: f64,
    /// Mean latency over the window (when calls are timed).
    pub mean_latency: Option<Duration>,
    /// Largest latency in the window (when calls are timed).
    pub max_latency: Option<Duration>,
}

impl HealthSource for CircuitBreaker {
    fn name(&self) -> &str {
        self.name()
    }

    fn snapshot(&self) -> HealthSnapshot {
        let state = self.state();
        let m = self.metrics();
        let status = match state {
            State::Closed | State::Disabled => HealthStatus::Pass,
            State::HalfOpen => HealthStatus::Warn,
            State::Open | State::ForcedOpen => HealthStatus::Fail,
        };
        let mut snap = HealthSnapshot::new(
            self.name(),
            ComponentKind::CircuitBreaker,
            state.as_str(),
            status,
        )
        .with_metric(Metric::new("failure_rate", m.failure_rate, "ratio"))
        .with_metric(Metric::new("slow_call_rate", m.slow_call_rate, "ratio"))
        .with_metric(Metric::new("window_calls", m.window_calls as f64, "calls"))
        .with_metric(Metric::new(
            "window_failures",
            m.window_failures as f64,
            "calls",
        ))
        .with_metric(Metric::new(
            "window_slow_calls",
            m.window_slow_calls as f64,
            "calls",
        ))
        .with_metric(Metric::new(
            "calls_permitted",
            m.calls_permitted as f64,
            "calls",
        ))
        .with_metric(Metric::new(
            "calls_rejected",
            m.calls_rejected as f64,
            "calls",
        ))
        .with_metric(Metric::new("successes", m.successes as f64, "calls"))
        .with_metric(Metric::new("failures", m.failures as f64, "calls"))
        .with_metric(Metric::new("slow_calls", m.slow_calls as f64, "calls"))
        .with_metric(Metric::new("ignored", m.ignored as f64, "calls"))
        .with_metric(Metric::new("trips", m.trips as f64, "count"))
        .with_metric(Metric::new(
            "time_in_state",
            m.time_in_state.as_secs_f64() * 1e3,
            "ms",
        ));
        for (kind, n) in m.failures_by_kind {
            if n > 0 {
                snap = snap.with_metric(Metric::new(
                    format!("failures_{}", kind.as_str()),
                    n as f64,
                    "calls",
                ));
            }
        }
        if let Some(lat) = m.mean_latency {
            snap = snap.with_metric(Metric::new("mean_latency", lat.as_secs_f64() * 1e3, "ms"));
        }
        if let Some(lat) = m.max_latency {
            snap = snap.with_metric(Metric::new("max_latency", lat.as_secs_f64() * 1e3, "ms"));
        }
        if let Some(left) = m.trial_permits_left {
            snap = snap.with_metric(Metric::new("trial_permits_left", left as f64, "calls"));
        }
        if let Some(after) = m.retry_after {
            snap = snap.with_metric(Metric::new("retry_after", after.as_secs_f64() * 1e3, "ms"));
        }
        if let Some(reason) = m.forced_reason {
            snap = snap.with_message(format!("forced open: {reason}"));
        }
        snap
    }
}
