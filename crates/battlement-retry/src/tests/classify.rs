//! Classification: which failures are retried (kinds, an open breaker and its retry-after,
//! custom classifiers, predicates).

use super::*;

async fn calls_for<K, P>(policy: RetryPolicy<K, P>, err: fn() -> BoxError) -> (usize, BoxError)
where
    K: RetryRules<(), (), BoxError> + 'static,
    P: RetryPredicate<(), (), BoxError> + 'static,
{
    let log = Log::default();
    let inner = log.clone();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy))
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
        .layer(crate::RetryLayer::new(policy))
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
        .layer(crate::RetryLayer::new(policy))
        .service(flaky(&log, usize::MAX));
    let _ = svc.clone().oneshot("once").await;
    assert_eq!(log.calls(), 1);
    let _ = svc.oneshot("again").await;
    assert_eq!(log.calls(), 4);
}
