//! The attempt limit and the time limit.

use super::*;

#[tokio::test(start_paused = true)]
async fn attempt_limit_counts_the_first_attempt() {
    for n in [1u32, 2, 5] {
        let log = Log::default();
        let policy = always_failing(n)
            .backoff(Backoff::fixed(ms(10)))
            .build()
            .unwrap();
        let svc = ServiceBuilder::new()
            .layer(crate::RetryLayer::new(policy))
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
        .layer(crate::RetryLayer::new(policy))
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
        .layer(crate::RetryLayer::new(policy))
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
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy))
        .service(slow);
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
        .layer(crate::RetryLayer::new(policy))
        .service(flaky(&log, usize::MAX));
    let _ = svc.clone().oneshot("a").await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let _ = svc.oneshot("b").await;
    // Each request had its own 250 ms.
    assert_eq!(log.calls(), 6);
}
