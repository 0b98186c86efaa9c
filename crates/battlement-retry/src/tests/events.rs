//! Retry events and the callback; dropping the response future mid-wait.

use super::*;

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
        .layer(crate::RetryLayer::new(policy))
        .service(flaky(&log, usize::MAX));
    let fut = svc.ready().await.unwrap().call("x");
    // Cancel while it waits for the first retry.
    assert!(tokio::time::timeout(ms(500), fut).await.is_err());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(log.calls(), 1);
    assert_eq!(events.try_recv().unwrap().attempt, 1);
    assert!(events.try_recv().is_err());
}
