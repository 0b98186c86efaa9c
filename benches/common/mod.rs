//! Shared setup for the benches: the trivial inner service, and each breaker configured the same
//! way for ours and the peers.
//!
//! One configuration, said once (see each builder for what a peer cannot match):
//! - count window of 100 calls, failure-rate threshold 50 %, minimum 10 calls before the rate is
//!   judged, 5 s open wait, one half-open trial;
//! - time window: 10 s (ours in 10 buckets of 1 s);
//! - slow-call detection: a call slower than 1 s is slow; 50 % slow calls trip;
//! - bulkhead: 1024 permits (never exhausted here), waiting allowed (ours: a queue of 1024 for at
//!   most 10 s; tower's `ConcurrencyLimit` and tower-resilience's waits have no bound);
//! - timeout: 10 s (never reached);
//! - retry: at most 3 attempts, no backoff; the stacks add a retry budget (ours: 20 % of calls +
//!   10/s, `RetryBudget`, which keeps tower's `TpsBudget` arithmetic without its lock;
//!   tower-resilience: its token bucket, 10 tokens/s, 100 max — a
//!   different rule with the same purpose, and like ours it is touched by every call).
//!
//! Every call in the benches succeeds, so the breakers stay closed: this measures the closed path.
#![allow(dead_code)] // each bench binary uses a different subset

pub(crate) mod callgrind;

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::time::Duration;
use tower::Service;

/// Window size for count windows.
pub(crate) const WINDOW: usize = 100;
/// Calls the window must hold before a rate is judged (recloser cannot set it).
pub(crate) const MIN_CALLS: usize = 10;
/// Failure-rate threshold.
pub(crate) const FAILURE_RATE: f64 = 0.5;
/// Open wait.
pub(crate) const OPEN_WAIT: Duration = Duration::from_secs(5);
/// Time-window length.
pub(crate) const TIME_WINDOW: Duration = Duration::from_secs(10);
/// Slow-call duration.
pub(crate) const SLOW: Duration = Duration::from_secs(1);
/// Bulkhead permits: never exhausted by the benches (at most 8 calls are in flight).
pub(crate) const PERMITS: usize = 1024;
/// Timeout: never reached (the inner service answers at once).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// The trivial inner service: always ready, answers at once with a `Ready` future.
pub(crate) fn bare(
) -> impl Service<(), Response = (), Error = Infallible, Future = Ready<Result<(), Infallible>>>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_: ()| ready(Ok::<_, Infallible>(())))
}

/// An inner service whose response future is pending on its first poll (it wakes itself at
/// once) and ready on the second: a call that does not finish on the spot, so a timeout layer
/// must arm its timer.
pub(crate) fn pending_once(
) -> impl Service<(), Response = (), Error = Infallible, Future = YieldOnce>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_: ()| YieldOnce(false))
}

/// The future of [`pending_once`].
pub(crate) struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = Result<(), Infallible>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.0 {
            return std::task::Poll::Ready(Ok(()));
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Which breaker configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// Count window of [`WINDOW`] calls, slow-call detection off.
    Count,
    /// Time window of [`TIME_WINDOW`], slow-call detection off.
    Time,
    /// Count window with slow-call detection on (every call is timed).
    Slow,
}

/// Ours.
pub(crate) fn ours_breaker(window: Window) -> battlement_breaker::CircuitBreaker {
    ours_breaker_with(window, |b| b)
}

/// [`ours_breaker`] with more settings (a registry, a histogram), given by `more`.
pub(crate) fn ours_breaker_with(
    window: Window,
    more: impl FnOnce(
        battlement_breaker::CircuitBreakerBuilder,
    ) -> battlement_breaker::CircuitBreakerBuilder,
) -> battlement_breaker::CircuitBreaker {
    use battlement_breaker::{CircuitBreaker, SlidingWindow};
    let b = CircuitBreaker::builder("bench")
        .minimum_calls(MIN_CALLS as u64)
        .failure_rate_threshold(FAILURE_RATE)
        .fixed_open_wait(OPEN_WAIT)
        .half_open_calls(1, 1);
    let b = match window {
        Window::Count => b.sliding_window(SlidingWindow::Count(WINDOW as u64)),
        Window::Time => b.sliding_window(SlidingWindow::Time {
            length: TIME_WINDOW,
            buckets: 10,
        }),
        Window::Slow => b
            .sliding_window(SlidingWindow::Count(WINDOW as u64))
            .slow_call(SLOW, FAILURE_RATE),
    };
    more(b).build().expect("valid breaker config")
}

/// tower-resilience-circuitbreaker: configured equivalently in every mode (it always times
/// calls, with `std::time::Instant`, whether slow-call detection is on or not).
pub(crate) fn tr_breaker(window: Window) -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    use tower_resilience_circuitbreaker::{CircuitBreakerLayer, SlidingWindowType};
    let b = CircuitBreakerLayer::builder()
        .name("bench")
        .failure_rate_threshold(FAILURE_RATE)
        .minimum_number_of_calls(MIN_CALLS)
        .wait_duration_in_open(OPEN_WAIT)
        .permitted_calls_in_half_open(1);
    let b = match window {
        Window::Count => b
            .sliding_window_type(SlidingWindowType::CountBased)
            .sliding_window_size(WINDOW),
        Window::Time => b
            .sliding_window_type(SlidingWindowType::TimeBased)
            .sliding_window_duration(TIME_WINDOW),
        Window::Slow => b
            .sliding_window_type(SlidingWindowType::CountBased)
            .sliding_window_size(WINDOW)
            .slow_call_duration_threshold(SLOW)
            .slow_call_rate_threshold(FAILURE_RATE),
    };
    b.build().expect("valid tower-resilience breaker config")
}

/// failsafe's futures breaker. It has no count window and no slow-call detection: its closest
/// policy is a success rate (an exponentially weighted moving average) over a time window with
/// a minimum request count, so it stands in for both the count and the time rows with the same
/// policy: success rate ≥ 50 % over [`TIME_WINDOW`], at least [`MIN_CALLS`] requests, constant
/// [`OPEN_WAIT`] backoff.
pub(crate) fn failsafe_breaker(
) -> impl failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static {
    use failsafe::{backoff, failure_policy, Config};
    let policy = failure_policy::success_rate_over_time_window(
        1.0 - FAILURE_RATE,
        MIN_CALLS as u32,
        TIME_WINDOW,
        backoff::constant(OPEN_WAIT),
    );
    Config::new().failure_policy(policy).build()
}

/// failsafe is not a Tower layer: its `call(future)` API wrapped in a `service_fn` around the
/// same inner service.
pub(crate) fn failsafe_service<B>(
    breaker: B,
) -> impl Service<
    (),
    Response = (),
    Error = failsafe::Error<Infallible>,
    Future = impl Future<Output = Result<(), failsafe::Error<Infallible>>> + Send,
> + Clone
       + Send
       + 'static
where
    B: failsafe::futures::CircuitBreaker + Clone + Send + 'static,
{
    let mut inner = bare();
    tower::service_fn(move |req: ()| breaker.call(inner.call(req)))
}

/// recloser's lock-free breaker (a ring of the last [`WINDOW`] outcomes), 50 % error rate, 5 s
/// open wait. It has no minimum-calls setting (it judges once the ring is full), no time window
/// and no slow-call detection, so it appears in the count row only.
pub(crate) fn recloser_breaker() -> recloser::AsyncRecloser {
    recloser::Recloser::custom()
        .error_rate(FAILURE_RATE as f32)
        .closed_len(WINDOW)
        .half_open_len(1)
        .open_wait(OPEN_WAIT)
        .build()
        .into()
}

/// recloser is not a Tower layer: its async `call(future)` API wrapped in a `service_fn`.
pub(crate) fn recloser_service(
    breaker: recloser::AsyncRecloser,
) -> impl Service<
    (),
    Response = (),
    Error = recloser::Error<Infallible>,
    Future = impl Future<Output = Result<(), recloser::Error<Infallible>>> + Send,
> + Clone
       + Send
       + 'static {
    let mut inner = bare();
    tower::service_fn(move |req: ()| breaker.call(inner.call(req)))
}

/// tower's retry with a trivial policy: retry an error up to twice, at once.
#[derive(Clone, Copy)]
pub(crate) struct TrivialPolicy {
    pub(crate) left: u8,
}

impl<Res, E> tower::retry::Policy<(), Res, E> for TrivialPolicy {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut (), result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.left > 0 => {
                self.left -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &()) -> Option<()> {
        let () = req;
        Some(())
    }
}

/// Ours: a bulkhead with [`PERMITS`] permits and a queue.
pub(crate) fn ours_bulkhead() -> battlement_bulkhead::Bulkhead {
    ours_bulkhead_with(|b| b)
}

/// [`ours_bulkhead`] with more settings (a registry, a histogram), given by `more`.
pub(crate) fn ours_bulkhead_with(
    more: impl FnOnce(battlement_bulkhead::BulkheadBuilder) -> battlement_bulkhead::BulkheadBuilder,
) -> battlement_bulkhead::Bulkhead {
    let b = battlement_bulkhead::Bulkhead::builder("bench")
        .max_concurrent(PERMITS)
        .max_queued(PERMITS)
        .max_wait(TIMEOUT);
    more(b).build().expect("valid bulkhead config")
}

/// tower-resilience's bulkhead: [`PERMITS`] permits, callers wait for one without a bound.
pub(crate) fn tr_bulkhead() -> tower_resilience_bulkhead::BulkheadLayer {
    tower_resilience_bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(PERMITS)
        .build()
        .expect("valid bulkhead config")
}

/// Ours: the retry policy, optionally with a budget.
pub(crate) fn ours_retry(budget: bool) -> battlement_retry::RetryPolicy {
    let b = battlement_retry::RetryPolicy::builder()
        .max_attempts(3)
        .backoff(battlement_retry::Backoff::fixed(Duration::ZERO));
    let b = if budget { b.budget(0.2, 10) } else { b };
    b.build().expect("valid retry policy")
}

/// tower-resilience's retry, optionally with its token-bucket budget.
pub(crate) fn tr_retry<E>(budget: bool) -> tower_resilience_retry::RetryLayer<(), (), E> {
    let b = tower_resilience_retry::RetryLayer::<(), (), E>::builder()
        .max_attempts(3)
        .fixed_backoff(Duration::ZERO);
    let b = if budget {
        b.budget(
            tower_resilience_retry::RetryBudgetBuilder::new()
                .token_bucket()
                .tokens_per_second(10.0)
                .max_tokens(100)
                .build()
                .expect("valid budget"),
        )
    } else {
        b
    };
    b.build()
}

/// tower-resilience's time limiter: [`TIMEOUT`].
pub(crate) fn tr_timeout() -> tower_resilience_timelimiter::TimeLimiterLayer {
    tower_resilience_timelimiter::TimeLimiterLayer::builder()
        .timeout_duration(TIMEOUT)
        .build()
}

/// Ours: the full recommended stack (retry with budget → breaker → bulkhead → timeout), composed
/// by the facade's `ResilienceStack`, from fresh shared parts.
pub(crate) fn ours_stack() -> battlement::ResilienceLayer<
    tower::layer::util::Identity,
    tower::layer::util::Identity,
    tower::layer::util::Identity,
    tower::layer::util::Identity,
    tower::layer::util::Identity,
    battlement_retry::RetryLayer,
    tower::layer::util::Identity,
    tower::layer::util::Identity,
    battlement_breaker::CircuitBreakerLayer,
    battlement_bulkhead::BulkheadLayer,
    battlement_timeout::TimeoutLayer,
    tower::layer::util::Identity,
> {
    battlement::ResilienceStack::new()
        .retry_policy(ours_retry(true))
        .circuit_breaker(&ours_breaker(Window::Count))
        .bulkhead(&ours_bulkhead())
        .timeout_per_try(TIMEOUT)
        .build()
        .expect("no registry, nothing to refuse")
}
