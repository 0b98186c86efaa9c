//! Registration with the health registry: components are identified by (kind, name). A second
//! component of the same kind and name is a `ConfigError` from the `build()` that registers it,
//! never a silent replacement that would hide the first (an open breaker vanishing from
//! readiness while it still rejects calls).

use battlement::breaker::CircuitBreaker;
use battlement::bulkhead::Bulkhead;
use battlement::core::{ComponentKind, HealthSink, HealthStatus};
use battlement::health::HealthRegistry;
use battlement::ResilienceStack;

#[tokio::test(start_paused = true)]
async fn a_second_breaker_of_the_same_name_is_refused_at_build_time() {
    let registry = HealthRegistry::new();
    let first = CircuitBreaker::builder("payments")
        .registry(&registry)
        .build()
        .unwrap();
    first.force_open("maintenance");
    assert_eq!(registry.status(), HealthStatus::Fail);

    let err = CircuitBreaker::builder("payments")
        .registry(&registry)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "name");
    assert_eq!(err.component(), "circuit breaker `payments`");
    // The open breaker is still what readiness reports.
    assert_eq!(registry.status(), HealthStatus::Fail);
    assert_eq!(registry.names(), ["payments"]);

    // Unregistering frees the (kind, name).
    assert!(registry.unregister_component(ComponentKind::CircuitBreaker, "payments"));
    CircuitBreaker::builder("payments")
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(registry.status(), HealthStatus::Pass);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_and_a_bulkhead_may_share_a_name_and_both_are_reported() {
    // The README's stack example names both "upstream".
    let registry = HealthRegistry::new();
    let breaker = CircuitBreaker::builder("upstream").build().unwrap();
    let bulkhead = Bulkhead::builder("upstream").build().unwrap();
    let _stack = ResilienceStack::new()
        .bulkhead(&bulkhead)
        .circuit_breaker(&breaker)
        .registry(&registry)
        .build()
        .unwrap();
    let report = registry.report();
    let kinds: Vec<_> = report
        .components
        .iter()
        .map(|c| (c.snapshot.kind, c.name().to_owned()))
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&(ComponentKind::CircuitBreaker, "upstream".into())));
    assert!(kinds.contains(&(ComponentKind::Bulkhead, "upstream".into())));

    breaker.force_open("test");
    assert_eq!(registry.status(), HealthStatus::Fail);
}

#[tokio::test(start_paused = true)]
async fn a_stack_whose_part_is_already_registered_fails_to_build_and_registers_nothing() {
    let registry = HealthRegistry::new();
    // Registered by its own builder...
    let breaker = CircuitBreaker::builder("upstream")
        .registry(&registry)
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("pool").build().unwrap();
    // ...and again by the stack: refused, and the bulkhead is not left half-registered.
    let err = ResilienceStack::new()
        .bulkhead(&bulkhead)
        .circuit_breaker(&breaker)
        .registry(&registry)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "name");
    assert_eq!(registry.names(), ["upstream"]);
}
