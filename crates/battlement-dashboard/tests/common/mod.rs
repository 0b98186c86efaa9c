//! What the HTTP and browser tests share: a gateway with a circuit breaker in front of an
//! upstream the test makes fail, and the dashboard nested under a prefix, served on
//! 127.0.0.1 by a server whose connections die with it (a restart, as a client sees it).

#![allow(dead_code)]

use axum::routing::get;
use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer, SlidingWindow};
use battlement_dashboard::Dashboard;
use battlement_health::HealthRegistry;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{service_fn, Layer, ServiceExt};

/// Where the dashboard is mounted.
pub(crate) const PREFIX: &str = "/ops/battlement";

pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) failing: Arc<AtomicBool>,
    pub(crate) dashboard: Dashboard,
    /// The accept loop and every connection: dropped, they all end.
    server: JoinSet<()>,
}

impl Gateway {
    /// A gateway on `addr` (`127.0.0.1:0` for a fresh port) whose breaker, `breaker_name`,
    /// opens at 50 % failures over 10 calls and waits `open_wait` before its trials.
    pub(crate) async fn start(addr: &str, breaker_name: &str, open_wait: Duration) -> Gateway {
        let registry = HealthRegistry::builder()
            .service_id("test-gateway")
            .build()
            .unwrap();
        let breaker = CircuitBreaker::builder(breaker_name)
            .registry(&registry)
            .sliding_window(SlidingWindow::Count(10))
            .minimum_calls(10)
            .failure_rate_threshold(0.5)
            .fixed_open_wait(open_wait)
            .half_open_calls(2, 2)
            .build()
            .unwrap();
        let dashboard = Dashboard::builder(&registry)
            .title("test gateway")
            .retry(Duration::from_millis(300))
            .breaker(&breaker)
            .build()
            .unwrap();
        let failing = Arc::new(AtomicBool::new(false));
        let upstream = {
            let failing = failing.clone();
            CircuitBreakerLayer::new(&breaker).layer(service_fn(move |_req: http::Request<()>| {
                let status = if failing.load(Ordering::Relaxed) {
                    500
                } else {
                    200
                };
                async move {
                    Ok::<_, Infallible>(http::Response::builder().status(status).body(()).unwrap())
                }
            }))
        };
        let app = axum::Router::new()
            .route(
                "/",
                get(move || {
                    let upstream = upstream.clone();
                    async move {
                        match upstream.oneshot(http::Request::new(())).await {
                            Ok(res) => res.status(),
                            Err(_) => http::StatusCode::SERVICE_UNAVAILABLE,
                        }
                    }
                }),
            )
            .nest_service(PREFIX, dashboard.clone());
        // A restart binds the address the stopped server had: should its socket linger a
        // moment, try again for a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    panic!("bind the gateway on {addr}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let addr = listener.local_addr().unwrap();
        let mut server = JoinSet::new();
        server.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let svc = TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Gateway {
            addr,
            breaker,
            failing,
            dashboard,
            server,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One request to the gateway's `/`; its status.
    pub(crate) async fn hit(&self) -> u16 {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let req = http::Request::get(self.url("/"))
            .body(http_body_util::Empty::new())
            .unwrap();
        client
            .request(req)
            .await
            .expect("gateway answers")
            .status()
            .as_u16()
    }

    /// Stops the server, and waits until its listener and every connection it had are closed.
    pub(crate) async fn stop(mut self) -> SocketAddr {
        self.server.abort_all();
        while self.server.join_next().await.is_some() {}
        self.addr
    }
}

/// Polls `check` every 50 ms until it holds or `within` has passed; whether it held.
pub(crate) async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
