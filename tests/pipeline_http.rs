//! The standard pipelines against real HTTP servers on 127.0.0.1.
//!
//! The client tests run under tokio's paused clock, so the waits are exact and cost no real
//! time; the innermost test layer, [`HoldClock`], keeps a `spawn_blocking` task alive while an
//! attempt is on the wire, which suspends the paused clock's auto-advance (see
//! tests/retry_http.rs), so virtual time moves only during the retry's waits.

use axum::response::IntoResponse;
use battlement::breaker::{BreakerOpen, State};
use battlement::health::HealthRegistry;
use battlement::pipeline;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// An upstream whose first `failures` requests get a 503 with `Retry-After: 1`, then 200s;
/// it records each request's method and arrival.
#[derive(Clone, Default)]
struct Upstream {
    failures: usize,
    hits: Arc<Mutex<Vec<(Method, Instant)>>>,
}

impl Upstream {
    fn hits(&self) -> Vec<(Method, Instant)> {
        self.hits.lock().unwrap().clone()
    }
}

async fn serve(up: Upstream) -> std::net::SocketAddr {
    let handler = move |method: Method| {
        let up = up.clone();
        async move {
            let n = {
                let mut hits = up.hits.lock().unwrap();
                hits.push((method, Instant::now()));
                hits.len()
            };
            if n <= up.failures {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(http::header::RETRY_AFTER, "1")],
                    "busy",
                )
                    .into_response()
            } else {
                (StatusCode::OK, "42").into_response()
            }
        }
    };
    let app = axum::Router::new().route("/items", axum::routing::any(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Keeps the paused clock still while an attempt is on the wire (see the module docs).
#[derive(Clone)]
struct HoldClock<S>(S);

impl<S, Req> Service<Req> for HoldClock<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let (hold, released) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = released.recv();
        });
        let attempt = self.0.call(req);
        Box::pin(async move {
            let result = attempt.await;
            drop(hold);
            result
        })
    }
}

fn upstream_client(
) -> HoldClock<Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>> {
    HoldClock(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>())
}

fn request(method: Method, addr: std::net::SocketAddr) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}/items"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A GET answered 503 with `Retry-After: 1` is retried after one second (the header wins over
/// the 2 s backoff), until it succeeds.
#[tokio::test(start_paused = true)]
async fn the_client_pipeline_retries_a_get_honouring_retry_after() {
    let up = Upstream {
        failures: 2,
        ..Upstream::default()
    };
    let addr = serve(up.clone()).await;
    let github = pipeline::client("github").build().unwrap();
    let svc = github.stack.build().unwrap().layer(upstream_client());

    let start = Instant::now();
    let res = svc.oneshot(request(Method::GET, addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "42");
    let hits = up.hits();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[1].1 - hits[0].1, Duration::from_secs(1));
    assert_eq!(hits[2].1 - hits[1].1, Duration::from_secs(1));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(github.retry.metrics().retries, 2);
    assert_eq!(github.breaker.metrics().failures, 2);
}

/// A POST is not idempotent: its 503 comes back at once, sent once.
#[tokio::test(start_paused = true)]
async fn the_client_pipeline_does_not_retry_a_post() {
    let up = Upstream {
        failures: 2,
        ..Upstream::default()
    };
    let addr = serve(up.clone()).await;
    let github = pipeline::client("github").build().unwrap();
    let svc = github.stack.build().unwrap().layer(upstream_client());

    let start = Instant::now();
    let res = svc.oneshot(request(Method::POST, addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(up.hits().len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(github.retry.metrics().retries, 0);
}

/// Failing calls open the breaker (here with a minimum of 4 calls, overridden from code);
/// then a GET fails fast with `BreakerOpen`, is not retried, and never reaches the server.
#[tokio::test(start_paused = true)]
async fn the_client_pipeline_opens_its_breaker() {
    let up = Upstream {
        failures: usize::MAX,
        ..Upstream::default()
    };
    let addr = serve(up.clone()).await;
    let github = pipeline::client("github")
        .breaker(|b| b.minimum_calls(4).failure_rate_threshold(0.5))
        .build()
        .unwrap();
    let svc = github.stack.build().unwrap().layer(upstream_client());
    for _ in 0..4 {
        let res = svc
            .clone()
            .oneshot(request(Method::POST, addr))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(github.breaker.state(), State::Open);
    let err = svc.oneshot(request(Method::GET, addr)).await.unwrap_err();
    let open = err.downcast_ref::<BreakerOpen>().unwrap();
    assert_eq!(open.name(), "github");
    assert_eq!(
        up.hits().len(),
        4,
        "the open breaker kept the GET off the wire"
    );
}

/// The server pipeline in front of an axum app: refusals are HTTP answers (a halted kill
/// switch 503, load shed 503, a timeout 504), and the health endpoint reports the kill switch.
#[tokio::test]
async fn the_server_pipeline_maps_errors_and_reports_health() {
    let health = HealthRegistry::new();
    let api = pipeline::server("api")
        .shedding(|b| b.max_concurrent(1))
        .timeout(Duration::from_millis(200))
        .health(&health)
        .build::<axum::body::Body>()
        .unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let app = axum::Router::new()
        .route("/work", axum::routing::get(|| async { "done" }))
        .route(
            "/hold",
            axum::routing::get({
                let release = release.clone();
                move || async move {
                    release.notified().await;
                    "held"
                }
            }),
        )
        .route(
            "/stuck",
            axum::routing::get(std::future::pending::<&'static str>),
        )
        .layer(api.stack.build().unwrap())
        .nest_service("/health", health.service());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |path: &str| {
        let client = client.clone();
        let uri = format!("http://{addr}{path}");
        async move {
            let res = client
                .get(uri.parse().unwrap())
                .await
                .expect("the server answers");
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };

    assert_eq!(get("/work").await, (StatusCode::OK, "done".to_owned()));
    assert_eq!(get("/health/ready").await.0, StatusCode::OK);

    // The kill switch: 503 with the reason, and readiness fails.
    api.kill_switch.halt("maintenance window");
    let (status, body) = get("/work").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("maintenance window"), "{body}");
    let (status, body) = get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"fail\""), "{body}");
    api.kill_switch.resume();
    assert_eq!(get("/health/ready").await.0, StatusCode::OK);

    // Load shedding: with the one permit held, the next request is refused at once.
    let held = tokio::spawn(get("/hold"));
    while api.shedding.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(get("/work").await.0, StatusCode::SERVICE_UNAVAILABLE);
    release.notify_one();
    assert_eq!(held.await.unwrap(), (StatusCode::OK, "held".to_owned()));
    assert_eq!(api.shedding.metrics().rejected_full, 1);

    // The timeout: a stuck handler is answered 504.
    assert_eq!(get("/stuck").await.0, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(get("/work").await.0, StatusCode::OK);
}
