//! An outbound hyper-util client wrapped in battlement's layers: retry (honouring
//! `Retry-After`), circuit breaker and a per-try timeout, against a local server that asks the
//! client to come back later twice before it answers.
//!
//! Run with `cargo run --example hyper_client` (it waits about 2 s: the server's `Retry-After`).

use battlement::prelude::*;
use battlement::retry::{Backoff, RetryPolicy};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

/// A server whose first two answers are `503` with `Retry-After: 1`.
async fn flaky_server() -> std::net::SocketAddr {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/stock/{item}",
        axum::routing::get(
            move |axum::extract::Path(item): axum::extract::Path<String>| {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(http::header::RETRY_AFTER, "1")],
                            "busy".to_owned(),
                        )
                    } else {
                        (
                            StatusCode::OK,
                            [(http::header::CACHE_CONTROL, "no-cache")],
                            format!("{item}: 3 in stock"),
                        )
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let addr = flaky_server().await;

    let breaker = CircuitBreaker::builder("inventory")
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .build()?;
    // Retries 429/502/503/504 and transport failures of idempotent requests; a `Retry-After`
    // header sets the next wait (up to 60 s; a longer one ends the retries at once).
    let retry = RetryPolicy::http_builder()
        .name("inventory")
        .max_attempts(4)
        .backoff(
            Backoff::exponential(Duration::from_millis(100), 2.0).with_cap(Duration::from_secs(5)),
        )
        .budget(0.2, 10)
        .on_retry(|event| println!("  retry: {event:?}"))
        .build()?;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = ServiceBuilder::new()
        .retry_policy(retry)
        .circuit_breaker_with(&breaker, HttpClassifier::new())
        .timeout_per_try(Duration::from_secs(2))
        .service(client);

    let started = Instant::now();
    let req = Request::get(format!("http://{addr}/stock/widget")).body(Empty::new())?;
    let res = svc.oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "{status} {:?} after {:.1}s",
        String::from_utf8_lossy(&body),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the client waited as asked"
    );
    Ok(())
}
