//! The retry policy in a real hyper client stack (retry → circuit breaker → per-try timeout →
//! hyper-util's client) against a real HTTP server on 127.0.0.1.
//!
//! # Time
//!
//! The tests run under tokio's paused clock, so the waits are measured exactly and cost no real
//! time. A paused clock auto-advances to the next timer whenever the runtime is idle, and with
//! real sockets the runtime is briefly idle while bytes cross the loopback: the clock could then
//! jump to the per-try timeout's deadline and fail an attempt that was about to succeed. The
//! innermost test layer, [`HoldClock`], keeps a `spawn_blocking` task alive while an attempt is on
//! the wire, which tokio documents as suspending auto-advance ("Preventing auto-advance" in
//! `tokio::time::pause`). So virtual time moves only while no attempt is in flight: exactly the
//! retry policy's waits.

use axum::response::IntoResponse;
use battlement::breaker::{BreakerOpen, CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
use battlement::core::{FailureKind, HttpClassifier, Outcome};
use battlement::retry::{Backoff, DelaySource, RetryEvent, RetryPolicy};
use battlement::timeout::TimeoutLayer;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// A server that answers its first `failures` requests with 503 and `Retry-After: 1` (or
/// another value), then 200, and records when each request arrived.
#[derive(Clone)]
struct Upstream {
    failures: usize,
    retry_after: &'static str,
    hits: Arc<Mutex<Vec<Instant>>>,
}

impl Upstream {
    fn new(failures: usize) -> Self {
        Upstream {
            failures,
            retry_after: "1",
            hits: Arc::default(),
        }
    }

    fn with_retry_after(mut self, value: &'static str) -> Self {
        self.retry_after = value;
        self
    }

    fn hits(&self) -> Vec<Instant> {
        self.hits.lock().unwrap().clone()
    }

    /// The time between consecutive requests.
    fn gaps(&self) -> Vec<Duration> {
        self.hits().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

async fn serve(up: Upstream) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/stock",
        axum::routing::get(move || {
            let up = up.clone();
            async move {
                let n = {
                    let mut hits = up.hits.lock().unwrap();
                    hits.push(Instant::now());
                    hits.len()
                };
                if n <= up.failures {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(http::header::RETRY_AFTER, up.retry_after)],
                        "busy",
                    )
                        .into_response()
                } else {
                    (StatusCode::OK, "42").into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Keeps the paused clock still while an attempt is on the wire (see the module docs).
#[derive(Clone, Copy)]
struct HoldClockLayer;

impl<S> Layer<S> for HoldClockLayer {
    type Service = HoldClock<S>;

    fn layer(&self, inner: S) -> HoldClock<S> {
        HoldClock(inner)
    }
}

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
        // A blocking task inhibits auto-advance from the moment it is spawned until it ends,
        // which is when the attempt finishes (or is dropped) and `hold` goes with it.
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

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

fn drain(events: &mut tokio::sync::broadcast::Receiver<RetryEvent>) -> Vec<RetryEvent> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

#[tokio::test(start_paused = true)]
async fn retry_honours_retry_after_through_breaker_and_timeout() {
    let up = Upstream::new(2);
    let addr = serve(up.clone()).await;

    // Generous limits: two 503s must not open the breaker.
    let breaker = CircuitBreaker::builder("stock")
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .build()
        .unwrap();
    // The backoff alone would wait 50 ms; the server's `Retry-After: 1` must win.
    let policy = RetryPolicy::http_builder()
        .name("stock")
        .max_attempts(4)
        .backoff(Backoff::fixed(Duration::from_millis(50)))
        .max_delay(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .layer(HoldClockLayer)
        .service(client());

    let start = Instant::now();
    let req = Request::get(format!("http://{addr}/stock"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();

    // The call succeeds, after exactly three requests.
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "42");
    assert_eq!(up.hits().len(), 3, "the server saw exactly three requests");

    // The waits honoured the header: one second before each retry, not the 50 ms backoff.
    assert_eq!(up.gaps(), [Duration::from_secs(1), Duration::from_secs(1)]);
    assert_eq!(up.hits()[0], start, "the first attempt went out at once");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let events: Vec<_> = drain(&mut events)
        .into_iter()
        .map(|e| (e.attempt, e.delay, e.source, e.status, e.outcome))
        .collect();
    let (busy, header, second) = (
        Outcome::Failure(FailureKind::ServerError),
        DelaySource::RetryAfter,
        Duration::from_secs(1),
    );
    assert_eq!(
        events,
        [
            (1, second, header, Some(503), busy),
            (2, second, header, Some(503), busy),
        ]
    );

    // The breaker saw every attempt (two failures, one success) and stayed closed.
    let m = breaker.metrics();
    assert_eq!((m.failures, m.successes), (2, 1));
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn open_breaker_is_not_retried_by_default() {
    let up = Upstream::new(0);
    let addr = serve(up.clone()).await;
    let breaker = CircuitBreaker::builder("stock").build().unwrap();
    breaker.force_open("maintenance");
    let policy = RetryPolicy::http_builder().max_attempts(5).build().unwrap();
    let mut events = policy.subscribe();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .layer(HoldClockLayer)
        .service(client());

    let start = Instant::now();
    let req = Request::get(format!("http://{addr}/stock"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();

    // The breaker's own error, unchanged, at once; nothing reached the server.
    let open = err.downcast_ref::<BreakerOpen>().expect("BreakerOpen");
    assert_eq!(open.forced_reason(), Some("maintenance"));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(up.hits().is_empty());
    assert!(drain(&mut events).is_empty());
    assert_eq!(breaker.metrics().calls_rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn retrying_rejections_waits_out_the_open_breaker() {
    // Two 503s open the breaker for 3 s; the retry waits out the rest of that and the trial
    // call succeeds.
    let up = Upstream::new(2);
    let addr = serve(up.clone()).await;
    let breaker = CircuitBreaker::builder("stock")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(2)
        .failure_rate_threshold(0.5)
        .fixed_open_wait(Duration::from_secs(3))
        .build()
        .unwrap();
    let policy = RetryPolicy::http_builder()
        .max_attempts(5)
        .backoff(Backoff::fixed(Duration::from_millis(50)))
        .retry_rejected(true)
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .layer(HoldClockLayer)
        .service(client());

    let start = Instant::now();
    let req = Request::get(format!("http://{addr}/stock"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // 503 at 0 s, 503 at 1 s (the breaker opens until 4 s), rejected at 2 s, trial at 4 s.
    assert_eq!(up.gaps(), [Duration::from_secs(1), Duration::from_secs(3)]);
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    let events: Vec<_> = drain(&mut events)
        .into_iter()
        .map(|e| (e.attempt, e.delay, e.source, e.outcome))
        .collect();
    let busy = Outcome::Failure(FailureKind::ServerError);
    assert_eq!(
        events,
        [
            (1, Duration::from_secs(1), DelaySource::RetryAfter, busy),
            (2, Duration::from_secs(1), DelaySource::RetryAfter, busy),
            (
                3,
                Duration::from_secs(2),
                DelaySource::RetryAfter,
                Outcome::Failure(FailureKind::Rejected)
            ),
        ]
    );
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().trips, 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_years_is_not_waited_for() {
    // The server asks for 99999999 s (three years); the policy has a fixed backoff and no
    // max_delay. The 503 comes back at once, after one request, instead of a three-year wait.
    let up = Upstream::new(1).with_retry_after("99999999");
    let addr = serve(up.clone()).await;
    let policy = RetryPolicy::http_builder()
        .max_attempts(4)
        .backoff(Backoff::fixed(Duration::from_millis(50)))
        .build()
        .unwrap();
    let mut events = policy.subscribe();
    let svc = ServiceBuilder::new()
        .retry(policy)
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .layer(HoldClockLayer)
        .service(client());

    let start = Instant::now();
    let req = Request::get(format!("http://{addr}/stock"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[http::header::RETRY_AFTER], "99999999");
    assert_eq!(up.hits().len(), 1, "the server saw one request");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the answer came back at once"
    );
    assert!(drain(&mut events).is_empty(), "no retry was announced");
}
