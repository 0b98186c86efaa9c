//! A bulkhead in front of a slow axum handler, served on 127.0.0.1 and called over real HTTP.
//!
//! The bulkhead admits 2 calls at once and queues 2 more; 6 concurrent requests → 4 served (2 at
//! once, then the 2 queued, in order) and 2 rejected with `BulkheadFull`, which the test's own
//! error handler (axum's `HandleErrorLayer`) maps to 503. The handler does not sleep: it waits on
//! a gate the test opens, so the test is deterministic.

use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use battlement::bulkhead::{Bulkhead, BulkheadFull, BulkheadTimeout};
use battlement::core::BoxError;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tower::ServiceBuilder;

/// The slow handler's shared state: a gate it waits on, and what it has seen.
#[derive(Clone)]
struct Slow {
    gate: Arc<Semaphore>,
    arrived: mpsc::UnboundedSender<usize>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
}

async fn slow(axum::extract::State(s): axum::extract::State<Slow>) -> impl IntoResponse {
    let now = s.running.fetch_add(1, SeqCst) + 1;
    s.max_running.fetch_max(now, SeqCst);
    s.arrived.send(now).unwrap();
    s.gate.acquire().await.unwrap().forget();
    s.running.fetch_sub(1, SeqCst);
    "done"
}

/// The test's error handler: bulkhead rejections are 503, anything else 500.
async fn map_error(err: BoxError) -> (StatusCode, String) {
    if err.is::<BulkheadFull>() || err.is::<BulkheadTimeout>() {
        (StatusCode::SERVICE_UNAVAILABLE, err.to_string())
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
    }
}

#[tokio::test]
async fn six_concurrent_requests_four_served_two_rejected_with_503() {
    tokio::time::timeout(Duration::from_secs(30), run())
        .await
        .expect("the test finished");
}

async fn run() {
    let bulkhead = Bulkhead::builder("slow")
        .max_concurrent(2)
        .max_queued(2)
        .build()
        .unwrap();
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let state = Slow {
        gate: Arc::new(Semaphore::new(0)),
        arrived: arrived_tx,
        running: Arc::default(),
        max_running: Arc::default(),
    };
    let app = Router::new()
        .route("/slow", get(slow))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(map_error))
                .layer(bulkhead.layer()),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Six concurrent requests; each reports its status and body when its response arrives.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    for _ in 0..6 {
        let (client, done_tx) = (client.clone(), done_tx.clone());
        let uri: http::Uri = format!("http://{addr}/slow").parse().unwrap();
        tokio::spawn(async move {
            let res = client.get(uri).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            done_tx
                .send((status, String::from_utf8(body.to_vec()).unwrap()))
                .unwrap();
        });
    }

    // Two run, two wait: the first two answers are the two rejections.
    for _ in 0..2 {
        assert!(arrived.recv().await.unwrap() <= 2);
    }
    for _ in 0..2 {
        let (status, body) = done.recv().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "bulkhead `slow` is full");
    }
    let m = bulkhead.metrics();
    assert_eq!((m.in_flight, m.queued, m.rejected_full), (2, 2, 2), "{m:?}");
    assert!(
        arrived.try_recv().is_err(),
        "queued calls have not reached the handler"
    );

    // Let the four admitted calls finish: the queued two run as the first two finish.
    state.gate.add_permits(4);
    let mut served = 0;
    for _ in 0..4 {
        let (status, body) = done.recv().await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
        served += 1;
    }
    assert_eq!(served, 4);
    assert_eq!(
        state.max_running.load(SeqCst),
        2,
        "never more than 2 at once"
    );

    let m = bulkhead.metrics();
    assert_eq!(
        (
            m.accepted,
            m.rejected_full,
            m.rejected_timeout,
            m.in_flight,
            m.queued
        ),
        (4, 2, 0, 0, 0),
        "{m:?}"
    );
    assert_eq!(m.waited, 2);
}
