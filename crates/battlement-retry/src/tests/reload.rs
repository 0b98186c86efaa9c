//! Live reload: new settings for every clone, from each request's next decision.

use super::*;

#[tokio::test(start_paused = true)]
async fn reload_changes_attempts_for_new_requests_and_for_the_next_decision_of_one_in_flight() {
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::fixed(ms(100)))
        .build()
        .unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, 99));

    // Before: two attempts.
    assert!(svc.clone().oneshot("x").await.is_err());
    assert_eq!(log.calls(), 2);

    // A request in flight (waiting before its second attempt) when the limit goes to 4: it
    // keeps its count and follows the new limit from its next decision.
    let in_flight = tokio::spawn(svc.clone().oneshot("x"));
    tokio::time::sleep(ms(50)).await;
    assert_eq!(log.calls(), 3, "its first attempt failed; it waits");
    policy
        .reload(
            &RetryPolicy::builder()
                .max_attempts(4)
                .backoff(Backoff::fixed(ms(100))),
        )
        .unwrap();
    assert!(in_flight.await.unwrap().is_err());
    assert_eq!(log.calls(), 2 + 4);

    // After: new requests make four attempts, through any clone.
    assert!(svc.oneshot("x").await.is_err());
    assert_eq!(log.calls(), 2 + 4 + 4);
    assert_eq!(policy.metrics().max_attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn reload_changes_the_backoff() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::fixed(ms(100)))
        .build()
        .unwrap();
    let (gaps, _) = run_gaps(policy.clone(), 9).await;
    assert_eq!(gaps, [ms(100), ms(100)]);
    policy
        .reload(
            &RetryPolicy::builder()
                .max_attempts(3)
                .backoff(Backoff::linear(ms(10), ms(5))),
        )
        .unwrap();
    let (gaps, _) = run_gaps(policy, 9).await;
    assert_eq!(gaps, [ms(10), ms(15)]);
}

#[tokio::test(start_paused = true)]
async fn invalid_reload_changes_nothing() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::fixed(ms(100)))
        .build()
        .unwrap();
    // Several settings changed, one of them invalid: none applies.
    let err = policy
        .reload(
            &RetryPolicy::builder()
                .max_attempts(9)
                .backoff(Backoff::fixed(ms(1)))
                .min_delay(ms(50))
                .max_delay(ms(10)),
        )
        .unwrap_err();
    assert_eq!(err.setting(), "max_delay");
    let err = policy
        .reload(&RetryPolicy::builder().max_attempts(9).budget(2000.0, 0))
        .unwrap_err();
    assert_eq!(err.setting(), "budget ratio");
    assert_eq!(policy.max_attempts(), 3);
    let (gaps, _) = run_gaps(policy, 9).await;
    assert_eq!(gaps, [ms(100), ms(100)]);
}

/// How many attempts one request through a clone of `svc` makes, as `log` counts them.
async fn attempts<S>(svc: &S, log: &Log) -> usize
where
    S: Service<&'static str> + Clone,
{
    let before = log.calls();
    let _ = svc.clone().oneshot("x").await;
    log.calls() - before
}

#[tokio::test(start_paused = true)]
async fn reload_turns_the_budget_on_and_off() {
    let policy = always_failing(5)
        .backoff(Backoff::fixed(Duration::ZERO))
        .build()
        .unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, usize::MAX));
    assert_eq!(attempts(&svc, &log).await, 5);
    // On, with no ratio and no reserve: nothing is ever allowed.
    let spent = always_failing(5)
        .backoff(Backoff::fixed(Duration::ZERO))
        .budget(0.0, 0);
    policy.reload(&spent).unwrap();
    assert_eq!(attempts(&svc, &log).await, 1);
    // Off again.
    policy
        .reload(&always_failing(5).backoff(Backoff::fixed(Duration::ZERO)))
        .unwrap();
    assert_eq!(attempts(&svc, &log).await, 5);
    // A reserve of one retry per second over a 1 s ttl.
    let one = always_failing(5)
        .backoff(Backoff::fixed(Duration::ZERO))
        .budget(0.0, 1)
        .budget_ttl(Duration::from_secs(1));
    policy.reload(&one).unwrap();
    assert_eq!(attempts(&svc, &log).await, 2);
    assert_eq!(attempts(&svc, &log).await, 1);
    tokio::time::advance(ms(1100)).await;
    assert_eq!(attempts(&svc, &log).await, 2);
}

/// A policy built with neither a budget nor a time limit skips both on a first attempt (one
/// flag says so); a reload that sets them sets the flag, so the requests after it deposit and
/// are timed, and one that clears them clears it.
#[tokio::test(start_paused = true)]
async fn reload_that_adds_a_time_limit_and_a_budget_reaches_first_attempts() {
    let plain = || always_failing(10).backoff(Backoff::fixed(ms(100)));
    let policy = plain().build().unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, usize::MAX));
    assert_eq!(attempts(&svc, &log).await, 10);
    // Attempts at 0, 100 and 200 ms; a fourth at 300 would pass the 250 ms limit.
    policy.reload(&plain().time_limit(ms(250))).unwrap();
    assert_eq!(
        attempts(&svc, &log).await,
        3,
        "timed from its first attempt"
    );
    // Each request deposits one retry (ratio 1, no reserve): its own first retry.
    policy.reload(&plain().budget(1.0, 0)).unwrap();
    assert_eq!(attempts(&svc, &log).await, 2, "its first attempt deposited");
    policy.reload(&plain()).unwrap();
    assert_eq!(attempts(&svc, &log).await, 10);
}

#[tokio::test(start_paused = true)]
async fn a_custom_budget_is_not_replaced_by_a_reload() {
    let budget = Arc::new(RetryBudget::new(Duration::from_secs(1), 1, 0.1).unwrap());
    let policy = always_failing(3)
        .custom_budget(budget.clone())
        .build()
        .unwrap();
    let err = policy
        .reload(&always_failing(4).budget(0.5, 1))
        .unwrap_err();
    assert_eq!(err.setting(), "budget");
    assert_eq!(policy.max_attempts(), 3);
    policy
        .reload(&always_failing(4).custom_budget(budget))
        .unwrap();
    assert_eq!(policy.max_attempts(), 4);
}
