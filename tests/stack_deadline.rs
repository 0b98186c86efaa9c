//! The stack's total timeout (outside the retry) and per-try timeout (inside), with paused
//! time: which fires, what its `Elapsed` says, and the validation between the two.

use battlement::breaker::CircuitBreaker;
use battlement::core::error::{Elapsed, TimeoutScope};
use battlement::core::BoxError;
use battlement::retry::{Backoff, RetryPolicy};
use battlement::ResilienceStack;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

fn retry(max_attempts: u32, backoff: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .backoff(Backoff::fixed(backoff))
        .build()
        .unwrap()
}

fn elapsed(err: &BoxError) -> (TimeoutScope, Duration) {
    let e = err
        .downcast_ref::<Elapsed>()
        .unwrap_or_else(|| panic!("not an Elapsed: {err}"));
    (e.scope(), e.limit())
}

/// Every attempt hangs: each is cut by the per-try timeout (a failure the breaker sees), the
/// retry waits, and the total timeout ends the whole call at its limit, mid-attempt.
#[tokio::test(start_paused = true)]
async fn the_total_timeout_bounds_all_attempts_and_their_waits() {
    let breaker = CircuitBreaker::builder("dep")
        .minimum_calls(100)
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let stack = ResilienceStack::new()
        .total_timeout(Duration::from_secs(5))
        .retry_policy(retry(10, Duration::from_millis(1500)))
        .circuit_breaker_with(&breaker, battlement::core::ResultClassifier)
        .timeout_per_try(Duration::from_secs(2))
        .build()
        .unwrap();
    let svc = stack.layer(service_fn({
        let attempts = attempts.clone();
        move |_: ()| {
            attempts.fetch_add(1, SeqCst);
            std::future::pending::<Result<(), BoxError>>()
        }
    }));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(elapsed(&err), (TimeoutScope::Total, Duration::from_secs(5)));
    assert_eq!(err.to_string(), "timeout `total`: all attempts exceeded 5s");
    // 0–2 s attempt 1, 2–3.5 s wait, 3.5–5 s attempt 2 (cut at 5 s by the total timeout).
    assert_eq!(attempts.load(SeqCst), 2);
    let m = breaker.metrics();
    assert_eq!(
        (m.failures, m.cancelled),
        (1, 1),
        "the per-try timeout is a failure; the attempt the total cut counts as nothing"
    );
}

/// When the attempts run out before the total, the error is the last attempt's timeout,
/// named as such.
#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_names_its_scope() {
    let stack = ResilienceStack::new()
        .total_timeout(Duration::from_secs(30))
        .retry_policy(retry(2, Duration::from_millis(100)))
        .timeout_per_try(Duration::from_secs(1))
        .build()
        .unwrap();
    let svc = stack.layer(service_fn(|_: ()| {
        std::future::pending::<Result<(), BoxError>>()
    }));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(
        elapsed(&err),
        (TimeoutScope::Attempt, Duration::from_secs(1))
    );
    assert_eq!(start.elapsed(), Duration::from_millis(2100));
}

/// The total timeout also cuts a retry's wait: a long backoff does not outlive the call's
/// deadline.
#[tokio::test(start_paused = true)]
async fn the_total_timeout_cuts_a_retry_wait() {
    let attempts = Arc::new(AtomicU32::new(0));
    let stack = ResilienceStack::new()
        .total_timeout(Duration::from_secs(3))
        .retry_policy(retry(5, Duration::from_secs(10)))
        .build()
        .unwrap();
    let svc = stack.layer(service_fn({
        let attempts = attempts.clone();
        move |_: ()| {
            attempts.fetch_add(1, SeqCst);
            async {
                Err::<(), BoxError>(
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
                )
            }
        }
    }));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(elapsed(&err).0, TimeoutScope::Total);
    assert_eq!(attempts.load(SeqCst), 1);
}

/// An attempt's timeout longer than the total is refused at build, as is a zero total; an
/// equal one is allowed.
#[test]
fn an_attempt_timeout_longer_than_the_total_is_a_config_error() {
    let err = ResilienceStack::new()
        .timeout_per_try(Duration::from_secs(11))
        .total_timeout(Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "timeout_per_try");
    assert!(err.reason().contains("total timeout"), "{err}");
    let err = ResilienceStack::new()
        .total_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "total_timeout");
    assert!(ResilienceStack::new()
        .timeout_per_try(Duration::from_secs(10))
        .total_timeout(Duration::from_secs(10))
        .build()
        .is_ok());
}

/// From a configuration file: `total_timeout` gives `ResilienceStack::from_config` its total
/// timeout and overrides the client pipeline's.
#[tokio::test(start_paused = true)]
async fn the_total_timeout_comes_from_the_configuration() {
    use battlement::config::{Configuration, Resilience};
    let config = Configuration::from_toml(
        r#"
        [instances.search]
        retry = { max_attempts = 10, backoff = "fixed", backoff_base = "100ms" }
        timeout = { limit = "1s" }
        total_timeout = { limit = "3s" }
        "#,
    )
    .unwrap();
    let hang = || {
        service_fn(|_: http::Request<()>| {
            std::future::pending::<Result<http::Response<()>, BoxError>>()
        })
    };

    let resilience = Resilience::new(config.clone());
    let stack = ResilienceStack::from_config(&resilience, "search")
        .unwrap()
        .build()
        .unwrap();
    let start = Instant::now();
    let err = stack
        .layer(hang())
        .oneshot(http::Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(elapsed(&err), (TimeoutScope::Total, Duration::from_secs(3)));
    assert_eq!(start.elapsed(), Duration::from_secs(3));

    let search = battlement::pipeline::client("search")
        .settings(config.instance("search").unwrap())
        .build()
        .unwrap();
    let start = Instant::now();
    let err = search
        .stack
        .build()
        .unwrap()
        .layer(service_fn(
            |_: http::Request<http_body_util::Empty<bytes::Bytes>>| {
                std::future::pending::<Result<http::Response<()>, BoxError>>()
            },
        ))
        .oneshot(http::Request::new(http_body_util::Empty::new()))
        .await
        .unwrap_err();
    assert_eq!(elapsed(&err), (TimeoutScope::Total, Duration::from_secs(3)));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

/// A configuration whose attempt timeout is longer than its total timeout is refused when it
/// is loaded, naming the attempt timeout's key.
#[test]
fn a_configured_attempt_timeout_longer_than_the_total_is_refused() {
    let err = battlement::config::Configuration::from_toml(
        r#"
        [instances.search]
        timeout = { limit = "5s" }
        total_timeout = { limit = "2s" }
        "#,
    )
    .unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.key(), "instances.search.timeout.limit");
    assert!(problem.to_string().contains("total timeout"), "{problem}");
}

/// A reload changes the total timeout of a stack built with `from_config`: the stack's layer is
/// the registry's `total_timeout`, and the reload reports it under its own name.
#[tokio::test(start_paused = true)]
async fn a_reload_changes_the_configured_total_timeout() {
    use battlement::config::{Configuration, Resilience};
    use battlement::core::ComponentKind;
    let config = |total: &str| {
        Configuration::from_toml(&format!(
            r#"
            [instances.search]
            retry = {{ max_attempts = 10, backoff = "fixed", backoff_base = "100ms" }}
            timeout = {{ limit = "1s" }}
            total_timeout = {{ limit = "{total}" }}
            "#
        ))
        .unwrap()
    };
    let health = battlement::health::HealthRegistry::new();
    let resilience = Resilience::builder(config("3s")).registry(&health).build();
    // What health reports as the total timeout's limit, in milliseconds.
    let reported = || {
        let report = health.report();
        let total = report
            .components
            .iter()
            .find(|c| c.snapshot.name == "search-total")
            .expect("the total timeout is registered");
        total.snapshot.metric("limit")
    };
    let svc = ResilienceStack::from_config(&resilience, "search")
        .unwrap()
        .build()
        .unwrap()
        .layer(service_fn(|_: http::Request<()>| {
            std::future::pending::<Result<http::Response<()>, BoxError>>()
        }));
    let total = resilience.total_timeout("search").unwrap();
    assert_eq!(total.limit(), Duration::from_secs(3));
    assert_eq!(reported(), Some(3000.0));

    let report = resilience.reload(config("5s")).unwrap();
    assert!(
        report
            .applied
            .contains(&(ComponentKind::Timeout, "search-total".to_owned())),
        "{report:?}"
    );
    assert_eq!(total.limit(), Duration::from_secs(5));
    assert_eq!(
        reported(),
        Some(5000.0),
        "health reports the reloaded limit"
    );
    let start = Instant::now();
    let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    assert_eq!(elapsed(&err), (TimeoutScope::Total, Duration::from_secs(5)));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}
