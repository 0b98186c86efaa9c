//! A hyper-util client with a circuit breaker per upstream host (`battlement::keyed`): three
//! upstreams on 127.0.0.1, one of which answers 503. Only that host's breaker opens; the
//! others keep serving.
//!
//! Run with `cargo run --example many_hosts`.

use battlement::breaker::{BreakerOpen, CircuitBreaker, SlidingWindow, State};
use battlement::core::{BoxError, HealthSource};
use battlement::keyed::{Authority, KeyedCircuitBreaker};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tower::{Layer, ServiceExt};

/// An upstream that answers every request with `status`.
async fn upstream(status: StatusCode) -> SocketAddr {
    let app = axum::Router::new().fallback(move || async move { (status, "hello") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let hosts = [
        upstream(StatusCode::OK).await,
        upstream(StatusCode::SERVICE_UNAVAILABLE).await,
        upstream(StatusCode::OK).await,
    ];
    let bad = hosts[1].to_string();

    // One breaker per authority (`host:port`), each with these settings, named
    // `upstreams/<authority>`; at most 1000 hosts, idle ones dropped after 5 minutes.
    let breakers = KeyedCircuitBreaker::builder("upstreams")
        .template(|name| {
            CircuitBreaker::builder(name)
                .sliding_window(SlidingWindow::Count(10))
                .minimum_calls(4)
                .failure_rate_threshold(0.5)
                .fixed_open_wait(Duration::from_secs(30))
        })
        .max_keys(1000)
        .idle_timeout(Duration::from_secs(300))
        .build()?;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // The default classifier counts 5xx and 429 responses as failures.
    let svc = breakers.layer(Authority).layer(client);

    for round in 1..=6 {
        let mut line = format!("round {round}:");
        for addr in &hosts {
            let req = Request::get(format!("http://{addr}/")).body(Empty::new())?;
            let answer = match svc.clone().oneshot(req).await {
                Ok(res) => res.status().as_u16().to_string(),
                Err(e) if e.downcast_ref::<BreakerOpen>().is_some() => "open".to_owned(),
                Err(e) => return Err(e),
            };
            line.push_str(&format!("  {addr} -> {answer}"));
        }
        println!("{line}");
    }

    for (host, state) in breakers.states() {
        println!("breaker upstreams/{host}: {}", state.as_str());
    }
    println!(
        "health: {:?}",
        breakers.snapshot().message.unwrap_or_default()
    );

    assert_eq!(breakers.keys_in(State::Open), vec![bad.clone()]);
    for addr in [hosts[0], hosts[2]] {
        assert_eq!(
            breakers.state(addr.to_string().as_str()),
            Some(State::Closed)
        );
    }
    println!("only {bad}'s breaker opened");
    Ok(())
}
