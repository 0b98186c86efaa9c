//! The README's axum quick start, exactly as written, in front of a handler that answers 500:
//! the obvious path judges HTTP responses by status, so the breaker opens and the next request
//! is answered 503 with `Retry-After`. Also: the health probe and the stack builder on the same
//! default path, and a gRPC trailers-only error counted as a failure. Real servers on
//! 127.0.0.1:0 and a real HTTP client; real time (the stack's per-try timeout and the bulkhead's
//! wait must not be advanced by a paused clock while a real socket is read), no sleeps.

use axum::{routing::get, Router};
use battlement::prelude::*;
use battlement::ResilienceStack;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>()
}

async fn get_status(
    client: &Client<HttpConnector, Empty<Bytes>>,
    uri: &str,
) -> http::Response<Bytes> {
    let res = client
        .request(Request::get(uri).body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// The README's axum quick start (same layers, same builder settings); only the handler differs:
/// it answers 500, and counts its calls.
fn readme_app(hits: Arc<AtomicUsize>) -> Result<(Router, CircuitBreaker), BoxError> {
    let registry = HealthRegistry::builder().service_id("catalog").build()?;
    let breaker = CircuitBreaker::builder("catalog-db")
        .failure_rate_threshold(0.5)
        .registry(&registry) // critical: an open breaker fails readiness
        .build()?;
    let bulkhead = Bulkhead::builder("catalog-db-pool")
        .max_concurrent(32)
        .max_queued(64)
        .max_wait(Duration::from_millis(50))
        .registry(&registry)
        .build()?;

    let app: Router = Router::new()
        .route(
            "/items",
            get(move || {
                hits.fetch_add(1, SeqCst);
                async { (StatusCode::INTERNAL_SERVER_ERROR, "database is down") }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HttpErrorLayer::new()) // BreakerOpen → 503 + Retry-After, Elapsed → 504
                .circuit_breaker(&breaker)
                .bulkhead(&bulkhead)
                .timeout_per_try(Duration::from_secs(2)),
        )
        // Liveness is the process only, never a dependency: an open breaker fails /readyz, not /livez.
        .route_service("/livez", registry.service())
        .route_service("/readyz", registry.service()) // ?verbose for kube-style text
        .nest_service("/health", registry.service()); // /health, /health/{live,ready,startup}
    Ok((app, breaker))
}

#[tokio::test]
async fn readme_axum_stack_opens_on_500s_and_answers_503_with_retry_after() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (app, breaker) = readme_app(hits.clone()).unwrap();
    let addr = serve(app).await;
    let client = client();
    let items = format!("http://{addr}/items");

    // The breaker's defaults: it decides once it has seen 10 calls (its minimum).
    let mut answered_500 = 0;
    while breaker.state() == State::Closed {
        let res = get_status(&client, &items).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        answered_500 += 1;
        assert!(answered_500 <= 10, "500s must open the breaker");
    }
    assert_eq!(answered_500, 10);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.metrics().failures, 10);

    // Open: answered 503 with Retry-After by the HttpErrorLayer, without reaching the handler.
    let res = get_status(&client, &items).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = res.headers()[http::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(hits.load(SeqCst), 10);

    // And readiness fails: the breaker is critical.
    let ready = get_status(&client, &format!("http://{addr}/health/ready")).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = get_status(&client, &format!("http://{addr}/readyz")).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The open breaker is a dependency: liveness stays up.
    let live = get_status(&client, &format!("http://{addr}/livez")).await;
    assert_eq!(live.status(), StatusCode::OK);
}

/// The health probe (facade `health_probe`) on an HTTP service with default classification
/// records 500s and 429s as failures, 200s and 404s as successes.
#[tokio::test]
async fn health_probe_on_http_records_5xx_as_failures() {
    let probe = HealthProbe::builder("catalog").build().unwrap();
    let app: Router = Router::new()
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/slow-down",
            get(|| async { StatusCode::TOO_MANY_REQUESTS }),
        )
        .route("/ok", get(|| async { "fine" }))
        .layer(ServiceBuilder::new().health_probe(&probe));
    let addr = serve(app).await;
    let client = client();
    for path in ["fail", "fail", "slow-down", "ok", "missing"] {
        get_status(&client, &format!("http://{addr}/{path}")).await;
    }
    let stats = probe.metrics();
    assert_eq!((stats.failures, stats.successes), (3, 2));
}

/// The stack builder's `circuit_breaker` takes the same default.
#[tokio::test]
async fn resilience_stack_breaker_opens_on_500s() {
    let breaker = CircuitBreaker::builder("stacked")
        .minimum_calls(4)
        .build()
        .unwrap();
    let stack = ResilienceStack::new()
        .circuit_breaker(&breaker)
        .build()
        .unwrap();
    let app: Router = Router::new()
        .route("/", get(|| async { StatusCode::BAD_GATEWAY }))
        .layer(
            ServiceBuilder::new()
                .layer(HttpErrorLayer::new())
                .layer(stack),
        );
    let addr = serve(app).await;
    let client = client();
    for _ in 0..4 {
        let res = get_status(&client, &format!("http://{addr}/")).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(breaker.state(), State::Open);
    let res = get_status(&client, &format!("http://{addr}/")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key(http::header::RETRY_AFTER));
}

/// A gRPC trailers-only error (HTTP 200 with `grpc-status` in the head, as tonic answers an
/// error) counts as a failure on the default path; `NOT_FOUND` is ignored.
#[tokio::test]
async fn grpc_trailers_only_error_fails_on_the_default_path() {
    let breaker = CircuitBreaker::builder("greeter")
        .minimum_calls(4)
        .build()
        .unwrap();
    let grpc = |code: &'static str| {
        move || async move {
            (
                [("content-type", "application/grpc"), ("grpc-status", code)],
                (),
            )
        }
    };
    let app: Router = Router::new()
        .route("/unavailable", get(grpc("14")))
        .route("/not-found", get(grpc("5")))
        .layer(
            ServiceBuilder::new()
                .layer(HttpErrorLayer::new())
                .circuit_breaker(&breaker),
        );
    let addr = serve(app).await;
    let client = client();
    for _ in 0..3 {
        let res = get_status(&client, &format!("http://{addr}/not-found")).await;
        assert_eq!(res.headers()["grpc-status"], "5");
    }
    assert_eq!(breaker.metrics().ignored, 3);
    for _ in 0..4 {
        let res = get_status(&client, &format!("http://{addr}/unavailable")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "14");
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.metrics().failures, 4);
}
