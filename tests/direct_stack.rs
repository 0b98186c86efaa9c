//! The whole stack around a closure (`ResilienceStack::build_direct`), with paused time: each
//! attempt a fresh future, the stack's order and shared components, typed errors.

use battlement::breaker::{BreakerOpen, CircuitBreaker, State};
use battlement::core::error::{Elapsed, TimeoutScope};
use battlement::core::{BoxError, ResultClassifier};
use battlement::retry::{Backoff, RetryPolicy};
use battlement::ResilienceStack;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

fn reset() -> BoxError {
    std::io::Error::from(std::io::ErrorKind::ConnectionReset).into()
}

/// The retry calls the closure again for each attempt (a fresh future, after the backoff);
/// the breaker inside sees every attempt; once it opens, a direct call is refused at once and
/// so is a call through the same breaker's Tower layer.
#[tokio::test(start_paused = true)]
async fn a_direct_stack_retries_fresh_futures_and_shares_its_breaker() {
    let breaker = CircuitBreaker::builder("redis")
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .fixed_open_wait(Duration::from_secs(30))
        .build()
        .unwrap();
    let redis = ResilienceStack::new()
        .retry_policy(
            RetryPolicy::builder()
                .max_attempts(3)
                .backoff(Backoff::fixed(Duration::from_millis(100)))
                .build()
                .unwrap(),
        )
        .circuit_breaker_with(&breaker, ResultClassifier)
        .build_direct()
        .unwrap();

    let made = AtomicU32::new(0);
    let start = Instant::now();
    let value = redis
        .call(|| {
            let n = made.fetch_add(1, SeqCst);
            async move {
                if n < 2 {
                    Err(reset())
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!((value, made.load(SeqCst)), (2, 3));
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    let m = breaker.metrics();
    assert_eq!((m.failures, m.successes), (2, 1));

    // Three more failing attempts open it (5 of 6 failed); the call ends with the rejection.
    let err = redis
        .call(|| async { Err::<u32, _>(reset()) })
        .await
        .unwrap_err();
    assert!(err.is::<BreakerOpen>(), "{err}");
    assert_eq!(breaker.state(), State::Open);

    made.store(0, SeqCst);
    let err = redis
        .call(|| {
            made.fetch_add(1, SeqCst);
            async { Ok::<u32, BoxError>(1) }
        })
        .await
        .unwrap_err();
    assert!(err.is::<BreakerOpen>());
    assert_eq!(
        made.load(SeqCst),
        0,
        "an open breaker never runs the closure"
    );
    let layered = breaker
        .layer()
        .classifier(ResultClassifier)
        .layer(service_fn(|_: ()| async { Ok::<_, BoxError>(()) }));
    assert!(layered.oneshot(()).await.unwrap_err().is::<BreakerOpen>());
}

/// A direct stack's total timeout ends a hanging call with an `Elapsed` of scope `Total`.
#[tokio::test(start_paused = true)]
async fn a_direct_stack_honours_its_total_timeout() {
    let stack = ResilienceStack::new()
        .total_timeout(Duration::from_secs(3))
        .retry_policy(RetryPolicy::builder().max_attempts(5).build().unwrap())
        .timeout_per_try(Duration::from_secs(1))
        .build_direct()
        .unwrap();
    let start = Instant::now();
    let err = stack
        .call(std::future::pending::<Result<(), BoxError>>)
        .await
        .unwrap_err();
    let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.scope(), TimeoutScope::Total);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

/// An empty stack runs the closure and passes its error on, boxed.
#[tokio::test]
async fn an_empty_direct_stack_passes_the_call_through() {
    let stack = ResilienceStack::new().build_direct().unwrap();
    assert_eq!(
        stack
            .call(|| async { Ok::<_, std::io::Error>("ok") })
            .await
            .unwrap(),
        "ok"
    );
    let err = stack
        .call(|| async { Err::<(), _>(std::io::Error::other("boom")) })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "boom");
}
