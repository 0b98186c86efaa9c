//! Per-key circuit breakers in front of five real upstream servers on 127.0.0.1, one of which
//! fails: only its breaker opens, its calls then fail fast without reaching it, and the other
//! four keep serving every call.

use battlement::breaker::{BreakerOpen, CircuitBreaker, SlidingWindow, State};
use battlement::core::{BoxError, HealthSource, HealthStatus};
use battlement::keyed::{Authority, KeyedCircuitBreaker};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, ServiceExt};

/// An upstream answering `status`, counting the requests that reach it.
async fn upstream(status: StatusCode) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { (status, "hello") }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an upstream on 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

#[tokio::test]
async fn one_failing_upstream_opens_only_its_own_breaker() -> Result<(), BoxError> {
    let mut upstreams = Vec::new();
    for i in 0..5 {
        let status = if i == 2 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        upstreams.push(upstream(status).await);
    }
    let bad = upstreams[2].0.to_string();

    let breakers = KeyedCircuitBreaker::builder("upstreams")
        .template(|name| {
            CircuitBreaker::builder(name)
                .sliding_window(SlidingWindow::Count(10))
                .minimum_calls(5)
                .failure_rate_threshold(0.5)
                .fixed_open_wait(Duration::from_secs(600))
        })
        .build()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = breakers.layer(Authority).layer(client);

    let (mut served, mut failed, mut rejected) = (0, 0, 0);
    for _ in 0..20 {
        for (addr, _) in &upstreams {
            let req = Request::get(format!("http://{addr}/")).body(Empty::new())?;
            match svc.clone().oneshot(req).await {
                Ok(res) if res.status() == StatusCode::OK => served += 1,
                Ok(res) => {
                    assert_eq!(addr.to_string(), bad, "a healthy upstream failed");
                    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
                    failed += 1;
                }
                Err(e) => {
                    let open = e.downcast_ref::<BreakerOpen>().expect("only rejections");
                    assert_eq!(open.name(), format!("upstreams/{bad}"));
                    rejected += 1;
                }
            }
        }
    }
    // Every call to the four healthy upstreams was served.
    assert_eq!(served, 4 * 20);
    // The bad one was called until its breaker opened (after `minimum_calls`), then not at all.
    assert_eq!((failed, rejected), (5, 15));
    assert_eq!(upstreams[2].1.load(Ordering::SeqCst), 5);
    for (i, (addr, hits)) in upstreams.iter().enumerate() {
        let state = breakers.state(addr.to_string().as_str());
        if i == 2 {
            assert_eq!(state, Some(State::Open));
        } else {
            assert_eq!(state, Some(State::Closed));
            assert_eq!(hits.load(Ordering::SeqCst), 20);
        }
    }
    assert_eq!(breakers.keys_in(State::Open), vec![bad.clone()]);

    // The group warns (one host of five is down) and names the bad host.
    let snap = breakers.snapshot();
    assert_eq!(snap.status, HealthStatus::Warn);
    assert_eq!(snap.metric("keys_open"), Some(1.0));
    assert_eq!(snap.metric("keys_closed"), Some(4.0));
    assert!(snap.message.unwrap().contains(&bad));

    // The operator's reset of that one key lets its calls through again.
    assert!(breakers.reset(bad.as_str()));
    let req = Request::get(format!("http://{bad}/")).body(Empty::new())?;
    let res = svc.oneshot(req).await?;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(upstreams[2].1.load(Ordering::SeqCst), 6);
    Ok(())
}
