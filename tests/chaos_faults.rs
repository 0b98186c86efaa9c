//! Injected faults through the retry policy and the circuit breaker: both read an
//! `InjectedFault` as the kind of failure it imitates, as they would the real failure.

use battlement::breaker::{CircuitBreaker, CircuitBreakerLayer};
use battlement::chaos::{Chaos, InjectedFault};
use battlement::core::FailureKind;
use battlement::retry::{Backoff, RetryPolicy};
use std::time::Duration;
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn chaos(kind: Option<FailureKind>) -> Chaos {
    let builder = Chaos::builder("upstream").enabled(true).error(1.0);
    match kind {
        Some(kind) => builder.error_kind(kind),
        None => builder,
    }
    .build()
    .unwrap()
}

/// Sends one call through retry → breaker → chaos → an upstream that answers; how many faults
/// were injected (one per attempt), and the breaker's failures of each kind.
async fn one_call(chaos: &Chaos) -> (u64, [(FailureKind, u64); 6]) {
    let breaker = CircuitBreaker::builder("upstream").build().unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::fixed(Duration::from_millis(10)))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .layer(CircuitBreakerLayer::new(&breaker))
        .layer(chaos.layer())
        .service(service_fn(
            |x: u32| async move { Ok::<_, std::io::Error>(x) },
        ));
    let err = svc.oneshot(1).await.unwrap_err();
    assert!(
        err.is::<InjectedFault>(),
        "the fault itself comes back: {err}"
    );
    (chaos.metrics().errors, breaker.metrics().failures_by_kind)
}

fn count(by_kind: &[(FailureKind, u64); 6], kind: FailureKind) -> u64 {
    by_kind.iter().find(|(k, _)| *k == kind).unwrap().1
}

#[tokio::test(start_paused = true)]
async fn an_injected_fault_is_retried_and_counted_as_a_connection_failure_by_default() {
    let (attempts, by_kind) = one_call(&chaos(None)).await;
    // Connection failures are retried by default: all three attempts were made.
    assert_eq!(attempts, 3);
    assert_eq!(count(&by_kind, FailureKind::Connection), 3);
    assert_eq!(count(&by_kind, FailureKind::Other), 0);
}

#[tokio::test(start_paused = true)]
async fn an_injected_fault_imitates_the_kind_it_is_given() {
    // A server error is not retried by default: one attempt, counted as a server error.
    let (attempts, by_kind) = one_call(&chaos(Some(FailureKind::ServerError))).await;
    assert_eq!(attempts, 1);
    assert_eq!(count(&by_kind, FailureKind::ServerError), 1);
    // A timeout is: three attempts, three timeouts.
    let (attempts, by_kind) = one_call(&chaos(Some(FailureKind::Timeout))).await;
    assert_eq!(attempts, 3);
    assert_eq!(count(&by_kind, FailureKind::Timeout), 3);
}
