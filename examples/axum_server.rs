//! A server-side resilience stack on an axum router: battlement's errors become HTTP responses
//! (no `HandleErrorLayer` needed), and the health endpoint is mounted at `/livez`, `/readyz` and
//! under `/health`.
//!
//! The program starts the server on 127.0.0.1, calls it, forces the breaker open (as an operator
//! would during an incident), shows the 503 with `Retry-After` and the failing readiness, then
//! resets it. Run with `cargo run --example axum_server`.

use axum::{routing::get, Router};
use battlement::prelude::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::time::Duration;
use tower::ServiceBuilder;

async fn items() -> &'static str {
    r#"[{"id":1,"name":"widget"}]"#
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let registry = HealthRegistry::builder()
        .service_id("catalog")
        .refresh_interval(Duration::from_millis(50))
        .build()?;
    let breaker = CircuitBreaker::builder("catalog-db")
        .failure_rate_threshold(0.5)
        .registry(&registry)
        .build()?;
    let bulkhead = Bulkhead::builder("catalog-db-pool")
        .max_concurrent(32)
        .max_queued(64)
        .max_wait(Duration::from_millis(50))
        .registry(&registry)
        .build()?;
    let _monitor = registry.spawn_monitor();

    let app = Router::new()
        .route("/items", get(items))
        .layer(
            ServiceBuilder::new()
                .layer(HttpErrorLayer::new())
                .circuit_breaker(&breaker)
                .bulkhead(&bulkhead)
                .timeout_per_try(Duration::from_secs(2)),
        )
        // Liveness never follows a dependency; readiness does.
        .route_service("/livez", registry.service())
        .route_service("/readyz", registry.service())
        .nest_service("/health", registry.service()); // /health, /health/{live,ready,startup}

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}");

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |path: &str| {
        let client = client.clone();
        let uri = format!("http://{addr}{path}");
        async move {
            let res = client.get(uri.parse()?).await?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap_or("?").to_owned());
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((
                status,
                retry_after,
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
    };

    let (status, _, body) = get("/items").await?;
    println!("GET /items -> {status} {body}");
    assert_eq!(status, 200);
    let (status, _, _) = get("/health/ready").await?;
    println!("GET /health/ready -> {status}");
    assert_eq!(status, 200);

    breaker.force_open("database failover in progress");
    let (status, retry_after, body) = get("/items").await?;
    println!("breaker forced open: GET /items -> {status} (Retry-After: {retry_after:?}) {body}");
    assert_eq!(status, 503);
    tokio::time::sleep(Duration::from_millis(150)).await; // one monitor refresh
    let (status, _, body) = get("/health/ready").await?;
    println!("GET /health/ready -> {status} {body}");
    assert_eq!(status, 503);
    let (status, _, _) = get("/health/live").await?;
    println!("GET /health/live -> {status}");
    assert_eq!(
        status, 200,
        "the process is alive even though it is not ready"
    );

    breaker.reset();
    let (status, _, _) = get("/items").await?;
    println!("breaker reset: GET /items -> {status}");
    assert_eq!(status, 200);
    Ok(())
}
