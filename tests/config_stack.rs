//! `ResilienceStack::from_config`: an instance's patterns as one stack, sharing the registry's
//! components.
#![cfg(feature = "config")]

use battlement::config::{Configuration, Resilience, ResilienceError};
use battlement::core::error::BulkheadFull;
use battlement::core::BoxError;
use battlement::health::HealthRegistry;
use battlement::ResilienceStack;
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};

fn resilience(health: &HealthRegistry) -> Resilience {
    let config = Configuration::from_toml(
        r#"
[instances.payments]
breaker = { failure_rate = 0.5, minimum_calls = 2, window = 2 }
bulkhead = { max_concurrent = 1 }
timeout = { limit = "100ms" }
[instances.search]
bulkhead = { max_concurrent = 1 }
"#,
    )
    .unwrap();
    Resilience::builder(config).registry(health).build()
}

#[tokio::test(start_paused = true)]
async fn the_stack_uses_the_registrys_components() {
    let health = HealthRegistry::new();
    let resilience = resilience(&health);
    let stack = ResilienceStack::from_config(&resilience, "payments")
        .unwrap()
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(stack)
        .service_fn(|slow: bool| async move {
            if slow {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok::<_, BoxError>(())
        });
    // Two timeouts (the instance's 100 ms limit) open the registry's breaker.
    svc.clone().oneshot(true).await.unwrap_err();
    svc.clone().oneshot(true).await.unwrap_err();
    let breaker = resilience.breaker("payments").unwrap();
    assert_eq!(breaker.metrics().failures, 2);
    assert!(svc
        .oneshot(false)
        .await
        .unwrap_err()
        .is::<battlement::core::error::BreakerOpen>());
    // Registered once, by the registry: a breaker, a bulkhead and a timeout, beside the
    // registry's reload counts.
    let mut kinds: Vec<String> = health
        .report()
        .components
        .iter()
        .map(|c| format!("{:?} {}", c.snapshot.kind, c.name()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Bulkhead payments",
            "CircuitBreaker payments",
            "Other config",
            "Timeout payments"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn missing_patterns_pass_calls_through() {
    let health = HealthRegistry::new();
    let resilience = resilience(&health);
    let stack = ResilienceStack::from_config(&resilience, "search")
        .unwrap()
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(stack)
        .service_fn(|_: ()| async {
            tokio::time::sleep(Duration::from_secs(5)).await; // no timeout in `search`
            Ok::<_, BoxError>(())
        });
    let held = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await;
    // Its bulkhead of one is the registry's: full while the first call runs.
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert!(err.is::<BulkheadFull>(), "{err}");
    held.await.unwrap().unwrap();
    assert!(
        resilience.breaker("search").is_ok(),
        "a breaker from defaults on request"
    );
}

#[test]
fn an_unknown_instance_is_an_error() {
    let resilience = resilience(&HealthRegistry::new());
    assert!(matches!(
        ResilienceStack::from_config(&resilience, "nope"),
        Err(ResilienceError::UnknownInstance { kind: None, .. })
    ));
}

/// The admission controls of an instance come from the registry and go into the stack's slots
/// (`from_config` stacks the other patterns: each optional slot doubles the stack's type).
#[tokio::test(start_paused = true)]
async fn rate_limits_and_adaptive_limits_come_from_the_file() {
    let config = Configuration::from_toml(
        r#"
[instances.api]
rate_limit = { quota = 2, window = "1s" }
adaptive_limit = { algorithm = "aimd", initial_limit = 1, min_limit = 1, max_limit = 4 }
throttle = { k = 2.0 }
"#,
    )
    .unwrap();
    let resilience = Resilience::new(config);
    let stack = ResilienceStack::from_config(&resilience, "api")
        .unwrap()
        .rate_limit(&resilience.rate_limit("api").unwrap())
        .throttle(&resilience.throttle("api").unwrap())
        .adaptive_limit(&resilience.adaptive_limit("api").unwrap())
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(stack)
        .service_fn(|_: ()| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, BoxError>(())
        });
    // The adaptive limit of one: a second call at once is refused by it...
    let held = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await;
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert!(err.is::<BulkheadFull>(), "{err}");
    held.await.unwrap().unwrap();
    // ...and the rate limiter (two a second, both spent) refuses the third.
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert!(err.is::<battlement::core::error::RateLimited>(), "{err}");
    assert_eq!(
        resilience
            .adaptive_limit("api")
            .unwrap()
            .metrics()
            .bulkhead
            .rejected(),
        1
    );
    assert_eq!(resilience.rate_limit("api").unwrap().metrics().rejected, 1);
    assert_eq!(
        resilience
            .throttle("api")
            .unwrap()
            .metrics()
            .window_requests,
        0
    );
}
