//! The retry budget: spent, refilled, earned from requests, shared.

use super::*;

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
        .layer(crate::RetryLayer::new(policy))
        .service(flaky(&log, usize::MAX));
    let calls = |svc: &crate::Retry<_>| {
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
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, usize::MAX));
    let ok = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy))
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
    let budget = Arc::new(crate::budget::TpsBudget::new(
        Duration::from_secs(1),
        1,
        0.0,
    ));
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
        .layer(crate::RetryLayer::new(a))
        .service(flaky(&log, usize::MAX))
        .oneshot("a")
        .await;
    assert_eq!(log.calls(), 2);
    // The other policy shares the spent budget.
    let _ = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(b))
        .service(flaky(&log, usize::MAX))
        .oneshot("b")
        .await;
    assert_eq!(log.calls(), 3);
}
