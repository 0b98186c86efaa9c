//! The breaker's read-outs: [`CircuitBreakerMetrics`] and the health snapshot it gives the
//! registry ([`HealthSource`]).

use crate::breaker::Shared;
use crate::{CircuitBreaker, State};
use battlement_core::{
    ComponentKind, FailureKind, HealthSnapshot, HealthSource, HealthStatus, Metric,
};
use std::time::Duration;

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
}
