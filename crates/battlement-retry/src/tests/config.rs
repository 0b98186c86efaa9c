//! The builder's validation, and its layer.

use super::*;

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
