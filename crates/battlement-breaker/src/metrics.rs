//! The breaker's read-outs: [`CircuitBreakerMetrics`], the health snapshot it gives the
//! registry ([`HealthSource`]) and the metric families it exports.
//!
//! # Exported metrics
//!
//! [`HealthSource::export`] reads the breaker's counters at collection time (the call path
//! writes only its own thread's stripe, as it does without an exporter). Every family is in
//! [`FAMILIES`]; the exporter adds the breaker's `name` label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_circuit_breaker_calls` | counter | `outcome` | Calls by outcome: `success`, `failure`, `ignored` (the classifier ignored it, or a rejection from a layer below when rejections do not count), `rejected` (by this breaker), `cancelled` (dropped before it finished), `stale` (finished after the state it started in had ended, so not counted). Every outcome is reported; their sum is every call that reached the breaker and finished or was rejected. |
//! | `battlement_circuit_breaker_slow_calls` | counter | | Calls at least as slow as the slow-call duration. A slow call is also a `success` or a `failure` in `calls`, so slowness is a family of its own and `sum(calls)` stays the number of calls. |
//! | `battlement_circuit_breaker_failures` | counter | `kind` | Failed calls by failure kind (`timeout`, `connection`, `server_error`, `rate_limited`, `rejected`, `other`: every [`FailureKind`], all reported); they sum to `calls{outcome="failure"}`. |
//! | `battlement_circuit_breaker_state` | gauge | `state` | 1 for the state the breaker is in, 0 for every other state (all five are reported). |
//! | `battlement_circuit_breaker_transitions` | counter | `from`, `to` | State transitions, every (from, to) pair of states reported; a transition to the state the breaker is already in (a [`reset`](CircuitBreaker::reset) of a closed breaker, a second force) counts too. |
//! | `battlement_circuit_breaker_failure_rate` | gauge | | Failure rate over the current window, 0 to 1 (0 when the window is empty). |
//! | `battlement_circuit_breaker_slow_call_rate` | gauge | | Slow-call rate over the current window, 0 to 1. |
//! | `battlement_circuit_breaker_window_calls` | gauge | | Calls in the current window (what the rates are over). |
//! | `battlement_circuit_breaker_call_duration_seconds` | histogram | | Duration of the calls counted as `success` or `failure`; only with [`histogram(true)`](crate::CircuitBreakerBuilder::histogram). |

use crate::breaker::Shared;
use crate::{CircuitBreaker, State};
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{
    ComponentKind, FailureKind, HealthSnapshot, HealthSource, HealthStatus, Metric,
};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// `battlement_circuit_breaker_calls{outcome}`: calls by outcome.
static CALLS: Family = Family::counter(
    "battlement_circuit_breaker_calls",
    "Calls through the circuit breaker, by outcome.",
    "calls",
);
/// `battlement_circuit_breaker_slow_calls`: calls slower than the slow-call duration.
static SLOW_CALLS: Family = Family::counter(
    "battlement_circuit_breaker_slow_calls",
    "Calls at least as slow as the slow-call duration (also counted as success or failure).",
    "calls",
);
/// `battlement_circuit_breaker_failures{kind}`: failed calls by failure kind.
static FAILURES: Family = Family::counter(
    "battlement_circuit_breaker_failures",
    "Failed calls, by failure kind.",
    "",
);
/// `battlement_circuit_breaker_state{state}`: 1 for the current state, 0 for the others.
static STATE: Family = Family::gauge(
    "battlement_circuit_breaker_state",
    "1 for the state the circuit breaker is in, 0 for the others.",
    "",
);
/// `battlement_circuit_breaker_transitions{from,to}`: state transitions.
static TRANSITIONS: Family = Family::counter(
    "battlement_circuit_breaker_transitions",
    "State transitions, by the state left and the state entered.",
    "",
);
/// `battlement_circuit_breaker_failure_rate`: failure rate over the window.
static FAILURE_RATE: Family = Family::gauge(
    "battlement_circuit_breaker_failure_rate",
    "Failure rate over the current window (0 to 1).",
    "",
);
/// `battlement_circuit_breaker_slow_call_rate`: slow-call rate over the window.
static SLOW_CALL_RATE: Family = Family::gauge(
    "battlement_circuit_breaker_slow_call_rate",
    "Slow-call rate over the current window (0 to 1).",
    "",
);
/// `battlement_circuit_breaker_window_calls`: calls in the window.
static WINDOW_CALLS: Family = Family::gauge(
    "battlement_circuit_breaker_window_calls",
    "Calls in the current window.",
    "calls",
);
/// `battlement_circuit_breaker_call_duration_seconds`: call durations (opt-in).
static CALL_DURATION: Family = Family::histogram(
    "battlement_circuit_breaker_call_duration_seconds",
    "Duration of calls counted as success or failure.",
    "seconds",
);

/// Every family a [`CircuitBreaker`] exports (the table in this module's docs).
///
/// ```
/// assert!(battlement_breaker::FAMILIES
///     .iter()
///     .any(|f| f.name == "battlement_circuit_breaker_calls"));
/// ```
pub static FAMILIES: &[&Family] = &[
    &CALLS,
    &SLOW_CALLS,
    &FAILURES,
    &STATE,
    &TRANSITIONS,
    &FAILURE_RATE,
    &SLOW_CALL_RATE,
    &WINDOW_CALLS,
    &CALL_DURATION,
];

impl CircuitBreaker {
    /// Counts, rates and latencies as plain data.
    pub fn metrics(&self) -> CircuitBreakerMetrics {
        self.shared().metrics()
    }
}

impl Shared {
    fn metrics(&self) -> CircuitBreakerMetrics {
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
        CircuitBreakerMetrics {
            state,
            time_in_state: Duration::from_nanos(now.saturating_sub(facts.entered_at)),
            trips: facts.trips,
            reloads: self.reloads(),
            retry_after: self.retry_after(state),
            forced_reason: facts.forced_reason.map(|r| r.to_string()),
            calls_permitted: c.recorded + c.ignored + c.cancelled + c.stale,
            calls_rejected: c.rejected,
            successes: c.successes,
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
            mean_latency: (self.timing() && totals.calls > 0).then(|| {
                Duration::from_nanos(self.hot.ticks_to_nanos(totals.lat_sum / totals.calls))
            }),
            max_latency: (self.timing() && totals.calls > 0)
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
pub struct CircuitBreakerMetrics {
    /// The state now.
    pub state: State,
    /// How long it has been in that state.
    pub time_in_state: Duration,
    /// How many times it opened on its own (not forced).
    pub trips: u64,
    /// Settings applied with [`reload`](CircuitBreaker::reload) since it was built.
    pub reloads: u64,
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
        .with_metric(Metric::ratio("failure_rate", m.failure_rate))
        .with_metric(Metric::ratio("slow_call_rate", m.slow_call_rate))
        .with_metric(Metric::calls("window_calls", m.window_calls))
        .with_metric(Metric::calls("window_failures", m.window_failures))
        .with_metric(Metric::calls("window_slow_calls", m.window_slow_calls))
        .with_metric(Metric::calls("calls_permitted", m.calls_permitted))
        .with_metric(Metric::calls("calls_rejected", m.calls_rejected))
        .with_metric(Metric::calls("successes", m.successes))
        .with_metric(Metric::calls("failures", m.failures))
        .with_metric(Metric::calls("slow_calls", m.slow_calls))
        .with_metric(Metric::calls("ignored", m.ignored))
        .with_metric(Metric::new("trips", m.trips as f64, "count"))
        .with_metric(Metric::millis("time_in_state", m.time_in_state));
        for (kind, n) in m.failures_by_kind {
            if n > 0 {
                snap = snap.with_metric(Metric::calls(format!("failures_{}", kind.as_str()), n));
            }
        }
        if let Some(lat) = m.mean_latency {
            snap = snap.with_metric(Metric::millis("mean_latency", lat));
        }
        if let Some(lat) = m.max_latency {
            snap = snap.with_metric(Metric::millis("max_latency", lat));
        }
        if let Some(left) = m.trial_permits_left {
            snap = snap.with_metric(Metric::calls("trial_permits_left", left));
        }
        if let Some(after) = m.retry_after {
            snap = snap.with_metric(Metric::millis("retry_after", after));
        }
        if let Some(reason) = m.forced_reason {
            snap = snap.with_message(format!("forced open: {reason}"));
        }
        snap
    }

    /// Reports the families of [`FAMILIES`] from the breaker's own counters (the figures of
    /// [`metrics`](CircuitBreaker::metrics)), plus its transitions and, when enabled, the
    /// call-duration histogram.
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        let shared = self.shared();
        for (outcome, n) in [
            ("success", m.successes),
            ("failure", m.failures),
            ("ignored", m.ignored),
            ("rejected", m.calls_rejected),
            ("cancelled", m.cancelled),
            ("stale", m.stale),
        ] {
            out.counter(&CALLS, &[("outcome", outcome)], n);
        }
        out.counter(&SLOW_CALLS, &[], m.slow_calls);
        for (kind, n) in m.failures_by_kind {
            out.counter(&FAILURES, &[("kind", kind.as_str())], n);
        }
        for state in State::ALL {
            let on = if state == m.state { 1.0 } else { 0.0 };
            out.gauge(&STATE, &[("state", state.as_str())], on);
        }
        for from in State::ALL {
            for to in State::ALL {
                let n = shared.transitions[from.index()][to.index()].load(Relaxed);
                out.counter(
                    &TRANSITIONS,
                    &[("from", from.as_str()), ("to", to.as_str())],
                    n,
                );
            }
        }
        out.gauge(&FAILURE_RATE, &[], m.failure_rate);
        out.gauge(&SLOW_CALL_RATE, &[], m.slow_call_rate);
        out.gauge(&WINDOW_CALLS, &[], m.window_calls as f64);
        if let Some(h) = &shared.histogram {
            out.histogram(&CALL_DURATION, &[], &h.snapshot());
        }
    }
}

impl CircuitBreaker {
    /// How many transitions from `from` to `to` the breaker has made since it was built
    /// (exported as `battlement_circuit_breaker_transitions`).
    ///
    /// ```
    /// use battlement_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder("db").build().unwrap();
    /// breaker.force_open("maintenance");
    /// breaker.reset();
    /// assert_eq!(breaker.transitions(State::Closed, State::ForcedOpen), 1);
    /// assert_eq!(breaker.transitions(State::ForcedOpen, State::Closed), 1);
    /// ```
    pub fn transitions(&self, from: State, to: State) -> u64 {
        self.shared().transitions[from.index()][to.index()].load(Relaxed)
    }
}
