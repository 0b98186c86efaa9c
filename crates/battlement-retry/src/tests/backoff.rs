//! Backoff strategies (exact sequences through the policy), seeded jitter, and the delay bounds.

use super::*;

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
        .layer(crate::RetryLayer::new(policy))
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
            .layer(crate::RetryLayer::new(policy))
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
        .layer(crate::RetryLayer::new(policy))
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
