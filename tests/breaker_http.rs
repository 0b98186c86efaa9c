//! The circuit breaker in front of a real HTTP server on 127.0.0.1 that starts failing.

use battlement::breaker::{BreakerOpen, CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
use battlement::core::HttpClassifier;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};

#[derive(Clone, Default)]
struct Upstream {
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

async fn serve(up: Upstream) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let up = up.clone();
            async move {
                up.hits.fetch_add(1, SeqCst);
                if up.failing.load(SeqCst) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_probes_and_closes_against_a_real_server() {
    let up = Upstream::default();
    let addr = serve(up.clone()).await;
    let breaker = CircuitBreaker::builder("upstream")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(5)
        .failure_rate_threshold(0.5)
        .fixed_open_wait(Duration::from_secs(30))
        .build()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
        .service(client);
    let uri = format!("http://{addr}/");
    let get = || Request::get(&uri).body(Empty::<Bytes>::new()).unwrap();

    // Healthy.
    for _ in 0..5 {
        let res = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(breaker.state(), State::Closed);

    // The server starts answering 503: 5 failures of the last 10 calls trip the breaker.
    up.failing.store(true, SeqCst);
    let mut seen_503 = 0;
    while breaker.state() == State::Closed {
        let res = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        seen_503 += 1;
        assert!(seen_503 <= 5, "should trip at 5 of 10");
    }
    assert_eq!(seen_503, 5);
    assert_eq!(breaker.state(), State::Open);

    // Open: rejected without touching the server.
    let hits = up.hits.load(SeqCst);
    for _ in 0..20 {
        let err = svc.clone().oneshot(get()).await.unwrap_err();
        let open = err.downcast_ref::<BreakerOpen>().expect("BreakerOpen");
        assert!(open.retry_after().unwrap() <= Duration::from_secs(30));
    }
    assert_eq!(
        up.hits.load(SeqCst),
        hits,
        "open breaker must not reach the server"
    );

    // After the wait, one trial goes through; the server is still failing: reopen.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    let res = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(up.hits.load(SeqCst), hits + 1, "exactly one probe");
    assert_eq!(breaker.state(), State::Open);

    // The server recovers; after the next wait the probe succeeds and the breaker closes.
    up.failing.store(false, SeqCst);
    tokio::time::advance(Duration::from_secs(30)).await;
    let res = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(breaker.state(), State::Closed);
    for _ in 0..5 {
        let res = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let m = breaker.metrics();
    assert_eq!(m.trips, 2);
    assert_eq!(m.calls_rejected, 20);
    assert_eq!(up.hits.load(SeqCst), hits + 7);
}
