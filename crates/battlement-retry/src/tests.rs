//! Unit tests of the policy driven through tower's `Retry` with a paused clock.

use crate::*;
use battlement_core::error::{BoxError, BreakerOpen, BulkheadFull, Elapsed};
use battlement_core::{classify_fn, FailureKind, Outcome};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a scripted upstream saw: when each attempt started, relative to the first.
#[derive(Clone, Default)]
struct Log {
    starts: Arc<Mutex<Vec<Instant>>>,
}

impl Log {
    fn record(&self) -> usize {
        let mut starts = self.starts.lock().unwrap();
        starts.push(Instant::now());
        starts.len() - 1
    }

    fn calls(&self) -> usize {
        self.starts.lock().unwrap().len()
    }

    /// The waits between attempts.
    fn gaps(&self) -> Vec<Duration> {
        let starts = self.starts.lock().unwrap();
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// The error a scripted attempt fails with: its number, so tests can tell which attempt's error
/// came back.
#[derive(Debug)]
struct AttemptError {
    attempt: usize,
    source: io::Error,
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "attempt {} failed", self.attempt)
    }
}

impl std::error::Error for AttemptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn reset(attempt: usize) -> BoxError {
    Box::new(AttemptError {
        attempt,
        source: io::Error::from(io::ErrorKind::ConnectionReset),
    })
}

/// An upstream that fails its first `failures` attempts with a connection reset, then answers
/// with the attempt number.
fn flaky(
    log: &Log,
    failures: usize,
) -> impl Service<
    &'static str,
    Response = usize,
    Error = BoxError,
    Future = impl Future<Output = Result<usize, BoxError>>,
> + Clone {
    let log = log.clone();
    tower::service_fn(move |_req: &'static str| {
        let n = log.record();
        async move {
            if n < failures {
                Err(reset(n))
            } else {
                Ok(n)
            }
        }
    })
}

async fn run_gaps(
    policy: RetryPolicy,
    failures: usize,
) -> (Vec<Duration>, Result<usize, BoxError>) {
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, failures));
    let result = svc.oneshot("req").await;
    (log.gaps(), result)
}

fn always_failing(n: u32) -> RetryPolicyBuilder {
    RetryPolicy::builder().max_attempts(n)
}

// ===== strategies, exact sequences through the policy =====

#[tokio::test(start_paused = true)]
async fn fixed_sequence() {
    let policy = always_failing(4)
        .backoff(Backoff::fixed(ms(250)))
        .build()
        .unwrap();
    let (gaps, result) = run_gaps(policy, usize::MAX).await;
    assert_eq!(gaps, [ms(250), ms(250), ms(250)]);
    assert!(result.is_err());
}

#[tokio::test(start_paused = true)]
async fn zero_delay_retries_at_once() {
    let policy = always_failing(3)
        .backoff(Backoff::fixed(Duration::ZERO))
        .build()
        .unwrap();
    let (gaps, _) = run_gaps(policy, usize::MAX).await;
    assert_eq!(gaps, [Duration::ZERO, Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn linear_sequence() {
    let policy = always_failing(5)
        .backoff(Backoff::linear(ms(100), ms(50)))
        .build()
        .unwrap();
    let (gaps, _) = run_gaps(policy, usize::MAX).await;
    assert_eq!(gaps, [ms(100), ms(150), ms(200), ms(250)]);
}

#[tokio::test(start_paused = true)]
async fn exponential_sequence_with_cap() {
    let policy = always_failing(7)
        .backoff(Backoff::exponential(ms(100), 2.0).with_cap(ms(1000)))
        .build()
        .unwrap();
    let (gaps, _) = run_gaps(policy, usize::MAX).await;
    assert_eq!(
        gaps,
        [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
    );
}

#[tokio::test(start_paused = true)]
async fn default_backoff_is_exponential_from_100ms() {
    let (gaps, _) = run_gaps(always_failing(3).build().unwrap(), usize::MAX).await;
    assert_eq!(gaps, [ms(100), ms(200)]);
}

#[tokio::test(start_paused = true)]
async fn fibonacci_sequence() {
    let policy = always_failing(7)
        .backoff(Backoff::fibonacci(ms(100)))
        .build()
        .unwrap();
    let (gaps, _) = run_gaps(policy, usize::MAX).await;
    assert_eq!(gaps, [ms(100), ms(100), ms(200), ms(300), ms(500), ms(800)]);
}

/// The delays a seeded policy must produce for its `stream`-th random request.
fn expected_delays(
    backoff: Backoff,
    jitter: Jitter,
    seed: u64,
    stream: u64,
    retries: u32,
) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(stream));
    let mut prev = Duration::ZERO;
    (1..=retries)
        .map(|n| {
            prev = backoff.delay(n, prev, &mut rng);
            jitter.apply(prev, &mut rng)
        })
        .collect()
}

/// tokio's timer has millisecond resolution: a sleep ends on the next whole millisecond.
fn timer_resolution(delays: &[Duration]) -> Vec<Duration> {
    delays
        .iter()
        .map(|d| ms(d.as_nanos().div_ceil(1_000_000) as u64))
        .collect()
}

/// Sends one request through `svc` (an upstream that always fails) and returns the delays the
/// policy chose (from its events) and the waits the upstream saw.
async fn delays_of<S>(
    svc: &S,
    log: &Log,
    events: &mut tokio::sync::broadcast::Receiver<RetryEvent>,
) -> (Vec<Duration>, Vec<Duration>)
where
    S: Service<&'static str, Response = usize, Error = BoxError> + Clone,
{
    log.starts.lock().unwrap().clear();
    let _ = svc.clone().oneshot("x").await;
    let chosen = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| e.delay)
        .collect();
    (chosen, log.gaps())
}

#[tokio::test(start_paused = true)]
async fn decorrelated_jitter_sequence_is_exact_with_a_seed() {
    let backoff = Backoff::decorrelated_jitter(ms(100), ms(5000));
    let policy = always_failing(8).backoff(backoff).seed(7).build().unwrap();
    let mut events = policy.subscribe();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    let (first, waits) = delays_of(&svc, &log, &mut events).await;
    assert_eq!(first, expected_delays(backoff, Jitter::None, 7, 0, 7));
    assert_eq!(waits, timer_resolution(&first));
    for (i, d) in first.iter().enumerate() {
        assert!(*d >= ms(100) && *d <= ms(5000), "retry {i}: {d:?}");
    }
    // The second request draws from the next stream: another sequence.
    let (second, waits) = delays_of(&svc, &log, &mut events).await;
    assert_eq!(second, expected_delays(backoff, Jitter::None, 7, 1, 7));
    assert_eq!(waits, timer_resolution(&second));
    assert_ne!(second, first);
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_sequences_are_exact() {
    let backoff = Backoff::exponential(ms(100), 2.0);
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Proportional(25.0)] {
        let policy = always_failing(6)
            .backoff(backoff)
            .jitter(jitter)
            .seed(42)
            .build()
            .unwrap();
        let mut events = policy.subscribe();
        let log = Log::default();
        let svc = ServiceBuilder::new()
            .retry(policy)
            .service(flaky(&log, usize::MAX));
        let (first, waits) = delays_of(&svc, &log, &mut events).await;
        assert_eq!(
            first,
            expected_delays(backoff, jitter, 42, 0, 5),
            "{jitter:?}"
        );
        assert_eq!(waits, timer_resolution(&first));
        // A jittered delay stays in its range around the exponential one.
        for (i, d) in first.iter().enumerate() {
            let base = ms(100) * 2u32.pow(i as u32);
            let (lo, hi) = match jitter {
                Jitter::Full => (Duration::ZERO, base),
                Jitter::Equal => (base / 2, base),
                _ => (base * 3 / 4, base * 5 / 4),
            };
            assert!(*d >= lo && *d <= hi, "{jitter:?} retry {i}: {d:?}");
        }
        // The same service, a second request: the next stream.
        let (second, _) = delays_of(&svc, &log, &mut events).await;
        assert_eq!(second, expected_delays(backoff, jitter, 42, 1, 5));
    }
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_delays_other_seed_other_delays() {
    let run = |seed| async move {
        let policy = always_failing(6)
            .backoff(Backoff::fixed(ms(1000)))
            .jitter(Jitter::Full)
            .seed(seed)
            .build()
            .unwrap();
        run_gaps(policy, usize::MAX).await.0
    };
    assert_eq!(run(1).await, run(1).await);
    assert_ne!(run(1).await, run(2).await);
}

// ===== bounds =====

#[tokio::test(start_paused = true)]
async fn min_and_max_bound_every_delay() {
    let policy = always_failing(7)
        .backoff(Backoff::exponential(ms(10), 2.0))
        .min_delay(ms(50))
        .max_delay(ms(100))
        .build()
        .unwrap();
    let (gaps, _) = run_gaps(policy, usize::MAX).await;
    // 10, 20, 40, 80, 160, 320 bounded to 50..=100.
    assert_eq!(gaps, [ms(50), ms(50), ms(50), ms(80), ms(100), ms(100)]);
}

#[tokio::test(start_paused = true)]
async fn bounds_apply_after_jitter() {
    let policy = always_failing(40)
        .backoff(Backoff::fixed(ms(100)))
        .jitter(Jitter::Full)
        .min_delay(ms(60))
        .max_delay(ms(90))
        .seed(3)
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    let (chosen, waits) = delays_of(&svc, &log, &mut events).await;
    assert_eq!(chosen.len(), 39);
    assert!(
        chosen.iter().all(|d| *d >= ms(60) && *d <= ms(90)),
        "{chosen:?}"
    );
    let expected: Vec<_> = expected_delays(Backoff::fixed(ms(100)), Jitter::Full, 3, 0, 39)
        .into_iter()
        .map(|d| d.clamp(ms(60), ms(90)))
        .collect();
    // Some draws fell outside the bounds and were clamped.
    assert!(chosen.contains(&ms(60)) && chosen.contains(&ms(90)));
    assert_eq!(chosen, expected);
    assert_eq!(waits, timer_resolution(&expected));
}

// ===== attempts, time limit =====

#[tokio::test(start_paused = true)]
async fn attempt_limit_counts_the_first_attempt() {
    for n in [1u32, 2, 5] {
        let log = Log::default();
        let policy = always_failing(n)
            .backoff(Backoff::fixed(ms(10)))
            .build()
            .unwrap();
        let svc = ServiceBuilder::new()
            .retry(policy)
            .service(flaky(&log, usize::MAX));
        let err = svc.oneshot("x").await.unwrap_err();
        assert_eq!(log.calls(), n as usize);
        // The last attempt's own error, unchanged.
        let err = err.downcast_ref::<AttemptError>().unwrap();
        assert_eq!(err.attempt, n as usize - 1);
    }
}

#[tokio::test(start_paused = true)]
async fn success_stops_retrying() {
    let policy = always_failing(5)
        .backoff(Backoff::fixed(ms(10)))
        .build()
        .unwrap();
    let (gaps, result) = run_gaps(policy, 2).await;
    assert_eq!(result.unwrap(), 2);
    assert_eq!(gaps, [ms(10), ms(10)]);
}

#[tokio::test(start_paused = true)]
async fn every_request_gets_its_own_attempts() {
    let log = Log::default();
    let policy = always_failing(3)
        .backoff(Backoff::fixed(ms(10)))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    for round in 1..=3 {
        let _ = svc.clone().oneshot("x").await;
        assert_eq!(log.calls(), 3 * round);
    }
    // Concurrent requests do not share state either.
    let log = Log::default();
    let policy = always_failing(3)
        .backoff(Backoff::fixed(ms(10)))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    let (a, b) = tokio::join!(svc.clone().oneshot("a"), svc.oneshot("b"));
    assert!(a.is_err() && b.is_err());
    assert_eq!(log.calls(), 6);
}

#[tokio::test(start_paused = true)]
async fn time_limit_stops_new_attempts() {
    let policy = always_failing(10)
        .backoff(Backoff::fixed(ms(100)))
        .time_limit(ms(250))
        .build()
        .unwrap();
    let start = Instant::now();
    let (gaps, result) = run_gaps(policy, usize::MAX).await;
    // Attempts at 0, 100 and 200 ms; one at 300 ms would start past the limit.
    assert_eq!(gaps, [ms(100), ms(100)]);
    assert!(result.is_err());
    // Gave up at once, without waiting for a retry it would not make.
    assert_eq!(start.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn time_limit_counts_the_attempts_own_time() {
    let log = Log::default();
    let inner_log = log.clone();
    let slow = tower::service_fn(move |_: ()| {
        let n = inner_log.record();
        async move {
            tokio::time::sleep(ms(50)).await;
            Err::<(), BoxError>(reset(n))
        }
    });
    let policy = always_failing(10)
        .backoff(Backoff::fixed(ms(100)))
        .time_limit(ms(300))
        .build()
        .unwrap();
    let start = Instant::now();
    let svc = ServiceBuilder::new().retry(policy).service(slow);
    assert!(svc.oneshot(()).await.is_err());
    // Attempts start at 0 and 150 ms; the next would start at 300 ms: not before the limit.
    assert_eq!(log.gaps(), [ms(150)]);
    assert_eq!(start.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn time_limit_is_per_request() {
    let log = Log::default();
    let policy = always_failing(10)
        .backoff(Backoff::fixed(ms(100)))
        .time_limit(ms(250))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    let _ = svc.clone().oneshot("a").await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let _ = svc.oneshot("b").await;
    // Each request had its own 250 ms.
    assert_eq!(log.calls(), 6);
}

// ===== budget =====

#[tokio::test(start_paused = true)]
async fn budget_stops_retries_when_spent_and_resumes_as_it_refills() {
    // No per-request ratio; one retry per second, counted over a 1 s window.
    let policy = always_failing(5)
        .backoff(Backoff::fixed(Duration::ZERO))
        .budget(0.0, 1)
        .budget_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    let calls = |svc: &tower::retry::Retry<RetryPolicy, _>| {
        let svc = svc.clone();
        let log = log.clone();
        async move {
            let before = log.calls();
            let _ = svc.oneshot("x").await;
            log.calls() - before
        }
    };
    // One retry allowed, then the budget is spent.
    assert_eq!(calls(&svc).await, 2);
    assert_eq!(calls(&svc).await, 1);
    assert_eq!(calls(&svc).await, 1);
    // The window passes: the budget refills.
    tokio::time::advance(ms(1100)).await;
    assert_eq!(calls(&svc).await, 2);
    assert_eq!(calls(&svc).await, 1);
}

#[tokio::test(start_paused = true)]
async fn budget_ratio_earns_retries_from_requests() {
    // One retry per two requests, no reserve.
    let policy = always_failing(10)
        .backoff(Backoff::fixed(Duration::ZERO))
        .budget(0.5, 0)
        .build()
        .unwrap();
    let log = Log::default();
    let failing = ServiceBuilder::new()
        .retry(policy.clone())
        .service(flaky(&log, usize::MAX));
    let ok = ServiceBuilder::new()
        .retry(policy)
        .service(tower::service_fn(|_: &'static str| async {
            Ok::<_, BoxError>(0usize)
        }));
    // A lone failing request deposits 1: not enough for a retry (2 per retry).
    let _ = failing.clone().oneshot("x").await;
    assert_eq!(log.calls(), 1);
    // Three successful requests through the same policy deposit 3 more: 4 in all, 2 retries.
    for _ in 0..3 {
        ok.clone().oneshot("y").await.unwrap();
    }
    let _ = failing.oneshot("x").await;
    // This request deposited 1 more (5): two retries, then 1 left, not enough.
    assert_eq!(log.calls(), 1 + 3);
}

#[tokio::test(start_paused = true)]
async fn custom_shared_budget() {
    let budget = Arc::new(budget::TpsBudget::new(Duration::from_secs(1), 1, 0.0));
    let a = always_failing(5)
        .backoff(Backoff::fixed(Duration::ZERO))
        .custom_budget(budget.clone())
        .build()
        .unwrap();
    let b = always_failing(5)
        .backoff(Backoff::fixed(Duration::ZERO))
        .custom_budget(budget)
        .build()
        .unwrap();
    let log = Log::default();
    let _ = ServiceBuilder::new()
        .retry(a)
        .service(flaky(&log, usize::MAX))
        .oneshot("a")
        .await;
    assert_eq!(log.calls(), 2);
    // The other policy shares the spent budget.
    let _ = ServiceBuilder::new()
        .retry(b)
        .service(flaky(&log, usize::MAX))
        .oneshot("b")
        .await;
    assert_eq!(log.calls(), 3);
}

// ===== classification =====

async fn calls_for<K, P>(policy: RetryPolicy<K, P>, err: fn() -> BoxError) -> (usize, BoxError)
where
    RetryPolicy<K, P>: tower::retry::Policy<(), (), BoxError>,
{
    let log = Log::default();
    let inner = log.clone();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(tower::service_fn(move |_: ()| {
            inner.record();
            async move { Err::<(), BoxError>(err()) }
        }));
    let e = svc.oneshot(()).await.unwrap_err();
    (log.calls(), e)
}

#[tokio::test(start_paused = true)]
async fn default_kinds_are_retried_others_are_not() {
    let policy = || {
        always_failing(3)
            .backoff(Backoff::fixed(ms(1)))
            .build()
            .unwrap()
    };
    let timeout = || -> BoxError { Box::new(Elapsed::new("t".into(), ms(5))) };
    assert_eq!(calls_for(policy(), timeout).await.0, 3);
    let refused = || -> BoxError { Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)) };
    assert_eq!(calls_for(policy(), refused).await.0, 3);
    let other = || -> BoxError { "bad request".into() };
    assert_eq!(calls_for(policy(), other).await.0, 1);
    let full = || -> BoxError { Box::new(BulkheadFull::new("db".into())) };
    let (calls, err) = calls_for(policy(), full).await;
    assert_eq!(calls, 1);
    assert!(err.downcast_ref::<BulkheadFull>().is_some());
}

#[tokio::test(start_paused = true)]
async fn breaker_open_is_not_retried_by_default() {
    let open = || -> BoxError { Box::new(BreakerOpen::new("up".into(), Some(ms(700)))) };
    let policy = always_failing(3).build().unwrap();
    let (calls, err) = calls_for(policy, open).await;
    assert_eq!(calls, 1);
    assert_eq!(err.downcast_ref::<BreakerOpen>().unwrap().name(), "up");
}

#[tokio::test(start_paused = true)]
async fn breaker_open_retry_after_is_honoured_when_rejections_are_retried() {
    let policy = always_failing(3)
        .backoff(Backoff::fixed(ms(10)))
        .retry_rejected(true)
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let open = || -> BoxError { Box::new(BreakerOpen::new("up".into(), Some(ms(700)))) };
    let start = Instant::now();
    let (calls, err) = calls_for(policy, open).await;
    assert_eq!(calls, 3);
    assert!(err.downcast_ref::<BreakerOpen>().is_some());
    assert_eq!(start.elapsed(), ms(1400));
    let e = events.try_recv().unwrap();
    assert_eq!((e.delay, e.source), (ms(700), DelaySource::RetryAfter));
    assert_eq!(e.outcome, Outcome::Failure(FailureKind::Rejected));

    // Without a retry-after (forced open), the backoff decides.
    let policy = always_failing(2)
        .backoff(Backoff::fixed(ms(10)))
        .retry_rejected(true)
        .build()
        .unwrap();
    let forced = || -> BoxError { Box::new(BreakerOpen::forced("up".into(), "ops".into())) };
    let start = Instant::now();
    assert_eq!(calls_for(policy, forced).await.0, 2);
    assert_eq!(start.elapsed(), ms(10));
}

#[tokio::test(start_paused = true)]
async fn breaker_open_retry_after_beyond_the_ceiling_gives_up_at_once() {
    // A breaker open for two more minutes, a policy with no max_delay: the retry does not wait
    // two minutes (nor a capped part of them); it returns the breaker's error at once.
    let open = || -> BoxError {
        Box::new(BreakerOpen::new(
            "up".into(),
            Some(Duration::from_secs(120)),
        ))
    };
    let policy = always_failing(3)
        .backoff(Backoff::fixed(ms(10)))
        .retry_rejected(true)
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let start = Instant::now();
    let (calls, err) = calls_for(policy, open).await;
    assert_eq!(calls, 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(err.downcast_ref::<BreakerOpen>().is_some());
    assert!(events.try_recv().is_err(), "no retry was announced");
    // The default backoff has a 10 s cap; that does not shorten the breaker's wait either.
    let policy = always_failing(3).retry_rejected(true).build().unwrap();
    let start = Instant::now();
    assert_eq!(calls_for(policy, open).await.0, 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
    // A higher ceiling honours it.
    let policy = always_failing(2)
        .retry_rejected(true)
        .max_retry_after(Duration::from_secs(300))
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(calls_for(policy, open).await.0, 2);
    assert_eq!(start.elapsed(), Duration::from_secs(120));
}

#[tokio::test(start_paused = true)]
async fn kinds_can_be_added_and_removed() {
    let other = || -> BoxError { "odd".into() };
    let policy = always_failing(3)
        .retry_on(FailureKind::Other)
        .backoff(Backoff::fixed(ms(1)))
        .build()
        .unwrap();
    assert_eq!(calls_for(policy, other).await.0, 3);
    let refused = || -> BoxError { Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)) };
    let policy = always_failing(3)
        .dont_retry_on(FailureKind::Connection)
        .build()
        .unwrap();
    assert_eq!(calls_for(policy, refused).await.0, 1);
}

#[tokio::test(start_paused = true)]
async fn custom_classifier_decides_ok_results() {
    // An upstream that answers `Err`-like values in its `Ok` side.
    let classifier = classify_fn(|r: Result<&i32, &BoxError>| match r {
        Ok(n) if *n < 0 => Outcome::Failure(FailureKind::RateLimited),
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure(FailureKind::Other),
    });
    let policy = RetryPolicy::builder()
        .classifier(classifier)
        .max_attempts(5)
        .backoff(Backoff::fixed(ms(1)))
        .build()
        .unwrap();
    let log = Log::default();
    let inner = log.clone();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(tower::service_fn(move |_: ()| {
            let n = inner.record();
            async move { Ok::<i32, BoxError>(if n < 3 { -1 } else { 7 }) }
        }));
    assert_eq!(svc.oneshot(()).await.unwrap(), 7);
    assert_eq!(log.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn predicate_widens_and_narrows() {
    // Widen: retry an `Other` failure.
    let widen = always_failing(3)
        .backoff(Backoff::fixed(ms(1)))
        .retry_if(|cx: &RetryContext<'_, (), (), BoxError>| {
            cx.default_decision() || cx.outcome() == Outcome::Failure(FailureKind::Other)
        })
        .build()
        .unwrap();
    let other = || -> BoxError { "odd".into() };
    assert_eq!(calls_for(widen, other).await.0, 3);

    // Narrow: never retry after the second attempt, whatever the kind.
    let narrow = always_failing(5)
        .backoff(Backoff::fixed(ms(1)))
        .retry_if(|cx: &RetryContext<'_, (), (), BoxError>| {
            cx.default_decision() && cx.attempt() < 2
        })
        .build()
        .unwrap();
    let refused = || -> BoxError { Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)) };
    assert_eq!(calls_for(narrow, refused).await.0, 2);
}

#[tokio::test(start_paused = true)]
async fn predicate_sees_the_request() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::fixed(ms(1)))
        .retry_if(|cx: &RetryContext<'_, &'static str, usize, BoxError>| {
            *cx.request() != "once" && cx.default_decision()
        })
        .build()
        .unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    let _ = svc.clone().oneshot("once").await;
    assert_eq!(log.calls(), 1);
    let _ = svc.oneshot("again").await;
    assert_eq!(log.calls(), 4);
}

// ===== events =====

#[tokio::test(start_paused = true)]
async fn events_and_callback_on_every_retry() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let policy = always_failing(3)
        .name("inventory")
        .backoff(Backoff::linear(ms(100), ms(100)))
        .on_retry(move |e: &RetryEvent| sink.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let (_, result) = run_gaps(policy, usize::MAX).await;
    assert!(result.is_err());
    let from_channel: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    let from_callback = seen.lock().unwrap().clone();
    assert_eq!(from_channel, from_callback);
    let summary: Vec<_> = from_channel
        .iter()
        .map(|e| (&*e.name, e.attempt, e.delay, e.source, e.outcome, e.status))
        .collect();
    let reset = Outcome::Failure(FailureKind::Connection);
    assert_eq!(
        summary,
        [
            ("inventory", 1, ms(100), DelaySource::Backoff, reset, None),
            ("inventory", 2, ms(200), DelaySource::Backoff, reset, None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_mid_wait_stops_everything() {
    let log = Log::default();
    let policy = always_failing(5)
        .backoff(Backoff::fixed(Duration::from_secs(1)))
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let mut svc = ServiceBuilder::new()
        .retry(policy)
        .service(flaky(&log, usize::MAX));
    let fut = svc.ready().await.unwrap().call("x");
    // Cancel while it waits for the first retry.
    assert!(tokio::time::timeout(ms(500), fut).await.is_err());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(log.calls(), 1);
    assert_eq!(events.try_recv().unwrap().attempt, 1);
    assert!(events.try_recv().is_err());
}

// ===== layer =====

#[tokio::test(start_paused = true)]
async fn into_layer_is_the_same_as_service_builder_retry() {
    let policy = always_failing(3)
        .backoff(Backoff::fixed(ms(5)))
        .build()
        .unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(policy.into_layer())
        .service(flaky(&log, 2));
    assert_eq!(svc.oneshot("x").await.unwrap(), 2);
    assert_eq!(log.gaps(), [ms(5), ms(5)]);
}

// ===== builder validation =====

#[test]
fn builder_validation() {
    let setting = |b: Result<RetryPolicy, ConfigError>| b.unwrap_err().setting();
    assert_eq!(
        setting(RetryPolicy::builder().max_attempts(0).build()),
        "max_attempts"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .backoff(Backoff::exponential(ms(10), 0.9))
                .build()
        ),
        "backoff multiplier"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .backoff(Backoff::exponential(ms(10), 2.0).with_cap(ms(5)))
                .build()
        ),
        "backoff cap"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .jitter(Jitter::Proportional(150.0))
                .build()
        ),
        "jitter percent"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .min_delay(ms(10))
                .max_delay(ms(5))
                .build()
        ),
        "max_delay"
    );
    assert_eq!(
        setting(RetryPolicy::builder().time_limit(Duration::ZERO).build()),
        "time_limit"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .max_retry_after(Duration::ZERO)
                .build()
        ),
        "max_retry_after"
    );
    assert_eq!(
        setting(RetryPolicy::builder().budget(-0.1, 1).build()),
        "budget ratio"
    );
    assert_eq!(
        setting(RetryPolicy::builder().budget(f32::NAN, 1).build()),
        "budget ratio"
    );
    assert_eq!(
        setting(RetryPolicy::builder().budget(1001.0, 1).build()),
        "budget ratio"
    );
    assert_eq!(
        setting(RetryPolicy::builder().budget(0.1, u32::MAX).build()),
        "budget min_per_sec"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .budget_ttl(Duration::from_millis(500))
                .build()
        ),
        "budget ttl"
    );
    assert_eq!(
        setting(RetryPolicy::builder().event_capacity(0).build()),
        "event_capacity"
    );
    // Above core's limit (the channel allocates every slot up front).
    for huge in [battlement_core::event::MAX_EVENT_CAPACITY + 1, usize::MAX] {
        assert_eq!(
            setting(RetryPolicy::builder().event_capacity(huge).build()),
            "event_capacity"
        );
    }
    let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
    assert_eq!(err.component(), "retry policy");
    assert!(RetryPolicy::builder()
        .budget(1000.0, 0)
        .budget_ttl(Duration::from_secs(60))
        .build()
        .is_ok());
}

#[cfg(feature = "http")]
mod http_rules {
    use super::*;
    use ::http::{Method, Request, Response, StatusCode};
    use battlement_core::StatusSet;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;
    use std::time::SystemTime;

    /// An upstream answering with the scripted statuses (then 200), recording bodies.
    fn upstream<B>(
        log: &Log,
        bodies: &Arc<Mutex<Vec<Bytes>>>,
        script: Vec<(u16, Option<&'static str>)>,
    ) -> impl Service<
        Request<B>,
        Response = Response<String>,
        Error = BoxError,
        Future = impl Future<Output = Result<Response<String>, BoxError>>,
    > + Clone
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: std::fmt::Debug,
    {
        let log = log.clone();
        let bodies = bodies.clone();
        let script = Arc::new(script);
        tower::service_fn(move |req: Request<B>| {
            let n = log.record();
            let bodies = bodies.clone();
            let (status, after) = script.get(n).copied().unwrap_or((200, None));
            async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                bodies.lock().unwrap().push(body);
                let mut res = Response::builder().status(status);
                if let Some(after) = after {
                    res = res.header("retry-after", after);
                }
                Ok(res.body(String::new()).unwrap())
            }
        })
    }

    fn http_policy() -> RetryPolicyBuilder<HttpRules> {
        RetryPolicy::http_builder()
            .max_attempts(4)
            .backoff(Backoff::fixed(ms(100)))
    }

    async fn send<B>(
        policy: RetryPolicy<HttpRules>,
        req: Request<B>,
        script: Vec<(u16, Option<&'static str>)>,
    ) -> (Log, Vec<Bytes>, StatusCode)
    where
        B: CloneBody + http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: std::fmt::Debug,
    {
        let log = Log::default();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let svc = ServiceBuilder::new()
            .retry(policy)
            .service(upstream::<B>(&log, &bodies, script));
        let res = svc.oneshot(req).await.unwrap();
        let bodies = bodies.lock().unwrap().clone();
        (log, bodies, res.status())
    }

    fn get() -> Request<Full<Bytes>> {
        Request::get("http://up/x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_seconds_sets_the_delay() {
        let (log, _, status) = send(
            http_policy().build().unwrap(),
            get(),
            vec![(503, Some("3")), (429, Some("1")), (503, None)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(log.gaps(), [ms(3000), ms(1000), ms(100)]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_http_date_sets_the_delay() {
        fn now() -> SystemTime {
            // Wed, 21 Oct 2015 07:28:00 GMT
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
        }
        let policy = http_policy().wall_clock(now).build().unwrap();
        let (log, _, status) = send(
            policy,
            get(),
            vec![(503, Some("Wed, 21 Oct 2015 07:28:02 GMT"))],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(log.gaps(), [ms(2000)]);
    }

    /// Sends a GET through `policy` to an upstream answering `script`; what came back, how many
    /// attempts the upstream saw, and how long it all took.
    async fn outcome(
        policy: RetryPolicy<HttpRules>,
        script: Vec<(u16, Option<&'static str>)>,
    ) -> (StatusCode, Log, Duration) {
        let start = Instant::now();
        let (log, _, status) = send(policy, get(), script).await;
        (status, log, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_beyond_the_ceiling_gives_up_at_once() {
        // A fixed backoff and no max_delay: nothing but the ceiling stands between the header
        // and a three-year wait.
        let (status, log, took) = outcome(
            http_policy().build().unwrap(),
            vec![(503, Some("99999999"))],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "the 503 comes back"
        );
        assert_eq!(log.calls(), 1, "no retry");
        assert_eq!(took, Duration::ZERO, "at once");
        // A delta that does not fit in u64 seconds, the same.
        let (status, log, took) = outcome(
            http_policy().build().unwrap(),
            vec![(429, Some("999999999999999999999999999"))],
        )
        .await;
        assert_eq!(
            (status, log.calls(), took),
            (StatusCode::TOO_MANY_REQUESTS, 1, Duration::ZERO)
        );
        // Just over the default 60 s.
        let (status, log, _) =
            outcome(http_policy().build().unwrap(), vec![(503, Some("61"))]).await;
        assert_eq!((status, log.calls()), (StatusCode::SERVICE_UNAVAILABLE, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_within_the_ceiling_is_honoured_exactly() {
        // The default ceiling, at its edge; max_delay bounds the backoff, not the server's
        // delay, so the wait is neither cut to 1 s nor given up.
        let policy = http_policy().max_delay(ms(1000)).build().unwrap();
        let (status, log, _) = outcome(policy, vec![(503, Some("60")), (503, None)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(log.gaps(), [Duration::from_secs(60), ms(100)]);
        // Nor by the backoff's cap.
        let policy = RetryPolicy::http_builder()
            .backoff(Backoff::exponential(ms(100), 2.0).with_cap(ms(800)))
            .build()
            .unwrap();
        let (_, log, _) = outcome(policy, vec![(429, Some("30"))]).await;
        assert_eq!(log.gaps(), [Duration::from_secs(30)]);
        // Raised to min_delay.
        let policy = http_policy().min_delay(ms(250)).build().unwrap();
        let (_, log, _) = outcome(policy, vec![(503, Some("0"))]).await;
        assert_eq!(log.gaps(), [ms(250)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ceiling_is_a_setting() {
        let policy = || {
            http_policy()
                .max_retry_after(Duration::from_secs(10))
                .build()
                .unwrap()
        };
        let (_, log, _) = outcome(policy(), vec![(503, Some("10"))]).await;
        assert_eq!(log.gaps(), [Duration::from_secs(10)]);
        let (status, log, took) = outcome(policy(), vec![(503, Some("11"))]).await;
        assert_eq!(
            (status, log.calls(), took),
            (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO)
        );
        // Raised above the default.
        let policy = http_policy()
            .max_retry_after(Duration::from_secs(3600))
            .build()
            .unwrap();
        let (_, log, _) = outcome(policy, vec![(503, Some("3600"))]).await;
        assert_eq!(log.gaps(), [Duration::from_secs(3600)]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_dates_and_garbage() {
        fn now() -> SystemTime {
            // Wed, 21 Oct 2015 07:28:00 GMT
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
        }
        let policy = || http_policy().wall_clock(now).build().unwrap();
        // A date far in the future: beyond the ceiling, so no retry.
        let (status, log, took) =
            outcome(policy(), vec![(503, Some("Fri, 31 Dec 9999 23:59:59 GMT"))]).await;
        assert_eq!(
            (status, log.calls(), took),
            (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO)
        );
        // A date a minute and a second ahead: also beyond.
        let (_, log, _) =
            outcome(policy(), vec![(503, Some("Wed, 21 Oct 2015 07:29:01 GMT"))]).await;
        assert_eq!(log.calls(), 1);
        // A date in the past: retry at once.
        let (status, log, _) =
            outcome(policy(), vec![(503, Some("Thu, 01 Jan 1970 00:00:00 GMT"))]).await;
        assert_eq!((status, log.gaps()), (StatusCode::OK, vec![Duration::ZERO]));
        // Negative numbers and garbage are ignored: the backoff decides.
        for garbage in [
            "-5",
            "soon",
            "1.5",
            "",
            "12 34",
            "Wed, 99 Oct 2015 07:28:00 GMT",
        ] {
            let (status, log, _) = outcome(policy(), vec![(503, Some(garbage))]).await;
            assert_eq!(
                (status, log.gaps()),
                (StatusCode::OK, vec![ms(100)]),
                "{garbage:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn time_limit_bounds_a_retry_after_wait() {
        // Within the ceiling, but the wait would end past the time limit: not taken, and not
        // shortened either.
        let policy = http_policy()
            .time_limit(Duration::from_secs(5))
            .build()
            .unwrap();
        let (status, log, took) = outcome(policy, vec![(503, Some("30"))]).await;
        assert_eq!(
            (status, log.calls(), took),
            (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO)
        );
        // One that ends before the limit is waited for.
        let policy = http_policy()
            .time_limit(Duration::from_secs(5))
            .build()
            .unwrap();
        let (status, log, _) = outcome(policy, vec![(503, Some("4"))]).await;
        assert_eq!(
            (status, log.gaps()),
            (StatusCode::OK, vec![Duration::from_secs(4)])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_can_be_ignored() {
        let policy = http_policy().honour_retry_after(false).build().unwrap();
        let (log, _, _) = send(policy, get(), vec![(503, Some("3"))]).await;
        assert_eq!(log.gaps(), [ms(100)]);
    }

    #[tokio::test(start_paused = true)]
    async fn statuses_retried() {
        let (log, _, status) = send(
            http_policy().build().unwrap(),
            get(),
            vec![(502, None), (504, None), (503, None)],
        )
        .await;
        assert_eq!((log.calls(), status), (4, StatusCode::OK));
        // 500 and 4xx are answers, not retried.
        for code in [500u16, 400, 404, 408] {
            let (log, _, status) =
                send(http_policy().build().unwrap(), get(), vec![(code, None)]).await;
            assert_eq!(log.calls(), 1, "{code}");
            assert_eq!(status.as_u16(), code);
        }
        // Unless configured.
        let policy = http_policy()
            .retry_statuses(StatusSet::of([500, 409]).unwrap())
            .build()
            .unwrap();
        let (log, _, _) = send(policy, get(), vec![(500, None), (409, None), (503, None)]).await;
        assert_eq!(log.calls(), 3);
        let err = http_policy()
            .retry_statuses(StatusSet::of([200]).unwrap())
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "retry_statuses");
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_retries_return_the_last_response() {
        let (log, _, status) = send(
            http_policy().max_attempts(2).build().unwrap(),
            get(),
            vec![(503, None), (502, None), (200, None)],
        )
        .await;
        assert_eq!(log.calls(), 2);
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }

    #[tokio::test(start_paused = true)]
    async fn idempotent_methods_only_unless_opted_in() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ] {
            let req = Request::builder()
                .method(method.clone())
                .uri("http://up/")
                .body(String::new())
                .unwrap();
            let (log, _, _) = send(http_policy().build().unwrap(), req, vec![(503, None)]).await;
            assert_eq!(log.calls(), 2, "{method}");
        }
        for method in [Method::POST, Method::PATCH] {
            let req = Request::builder()
                .method(method.clone())
                .uri("http://up/")
                .body(String::new())
                .unwrap();
            let (log, _, status) =
                send(http_policy().build().unwrap(), req, vec![(503, None)]).await;
            assert_eq!(log.calls(), 1, "{method}");
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
        let req = Request::post("http://up/")
            .body(String::from("order"))
            .unwrap();
        let policy = http_policy().retry_non_idempotent(true).build().unwrap();
        let (log, bodies, _) = send(policy, req, vec![(503, None)]).await;
        assert_eq!(log.calls(), 2);
        assert_eq!(bodies, [Bytes::from("order"), Bytes::from("order")]);
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_are_cloned_for_every_attempt() {
        let script = || vec![(503, None), (503, None)];
        let payload = Bytes::from_static(b"{\"qty\":3}");
        let (_, bodies, _) = send(
            http_policy().build().unwrap(),
            Request::put("http://up/")
                .body(Full::new(payload.clone()))
                .unwrap(),
            script(),
        )
        .await;
        assert_eq!(bodies, [payload.clone(), payload.clone(), payload.clone()]);
        // A `Bytes` body (not an `http_body::Body`, but a common client request type).
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let svc =
            ServiceBuilder::new()
                .retry(http_policy().build().unwrap())
                .service(tower::service_fn(move |req: Request<Bytes>| {
                    let mut seen = sink.lock().unwrap();
                    seen.push(req.into_body());
                    let status = if seen.len() < 3 { 503 } else { 200 };
                    async move {
                        Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
                    }
                }));
        let res = svc
            .oneshot(Request::put("http://up/").body(payload.clone()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            *seen.lock().unwrap(),
            [payload.clone(), payload.clone(), payload.clone()]
        );
        let (log, _, _) = send(
            http_policy().build().unwrap(),
            Request::put("http://up/")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
            script(),
        )
        .await;
        assert_eq!(log.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn unclonable_body_is_sent_once() {
        let body = Full::new(Bytes::from_static(b"stream"))
            .map_err(|never: Infallible| match never {})
            .boxed();
        let req = Request::put("http://up/").body(body).unwrap();
        let (log, bodies, status) =
            send(http_policy().build().unwrap(), req, vec![(503, None)]).await;
        assert_eq!(log.calls(), 1);
        assert_eq!(bodies, [Bytes::from_static(b"stream")]);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test(start_paused = true)]
    async fn unit_body_requests_and_transport_errors() {
        let log = Log::default();
        let inner = log.clone();
        let svc = ServiceBuilder::new()
            .retry(http_policy().build().unwrap())
            .service(tower::service_fn(move |_req: Request<()>| {
                let n = inner.record();
                async move {
                    if n == 0 {
                        Err::<Response<()>, BoxError>(Box::new(io::Error::from(
                            io::ErrorKind::ConnectionRefused,
                        )))
                    } else {
                        Ok(Response::new(()))
                    }
                }
            }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(log.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn http_events_carry_status_and_source() {
        let policy = http_policy().build().unwrap();
        let mut events = policy.subscribe();
        let _ = send(policy, get(), vec![(429, Some("2")), (502, None)]).await;
        let a = events.try_recv().unwrap();
        let b = events.try_recv().unwrap();
        assert_eq!(
            (a.status, a.delay, a.source),
            (Some(429), ms(2000), DelaySource::RetryAfter)
        );
        assert_eq!(a.outcome, Outcome::Failure(FailureKind::RateLimited));
        assert_eq!(
            (b.status, b.delay, b.source),
            (Some(502), ms(100), DelaySource::Backoff)
        );
        assert_eq!(b.outcome, Outcome::Failure(FailureKind::ServerError));
    }

    #[tokio::test(start_paused = true)]
    async fn http_predicate_over_request_and_response() {
        // Also retry 500 for GETs on /idempotent-report.
        let policy = http_policy()
            .retry_if(
                |cx: &RetryContext<'_, Request<Full<Bytes>>, Response<String>, BoxError>| {
                    cx.default_decision()
                        || (cx.request().uri().path() == "/report"
                            && matches!(cx.result(), Ok(r) if r.status() == 500))
                },
            )
            .build()
            .unwrap();
        let log = Log::default();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let svc = ServiceBuilder::new()
            .retry(policy)
            .service(upstream::<Full<Bytes>>(&log, &bodies, vec![(500, None)]));
        let req = Request::get("http://up/report")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
        assert_eq!(log.calls(), 2);
    }
}
