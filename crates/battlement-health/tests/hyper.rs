//! hyper serves the health endpoint directly (no axum): a real HTTP/1 server on 127.0.0.1.

use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
use battlement_health::HealthRegistry;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
struct Switch(Arc<AtomicBool>);

impl HealthSource for Switch {
    fn name(&self) -> &str {
        "db"
    }
    fn snapshot(&self) -> HealthSnapshot {
        if self.0.load(Ordering::SeqCst) {
            HealthSnapshot::new("db", ComponentKind::Other, "down", HealthStatus::Fail)
        } else {
            HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass)
        }
    }
}

#[tokio::test]
async fn hyper_serves_the_health_service() {
    let registry = HealthRegistry::new();
    let db = Switch::default();
    registry.register(&db, true).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TowerToHyperService::new(registry.service());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let call = |method: Method, path: &str| {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(Empty::new())
            .unwrap();
        let client = client.clone();
        async move {
            let res = client.request(req).await.unwrap();
            let (parts, body) = res.into_parts();
            (parts, body.collect().await.unwrap().to_bytes())
        }
    };

    let (parts, body) = call(Method::GET, "/health/ready").await;
    assert_eq!(parts.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["checks"]["db:state"][0]["observedValue"], "up");

    db.0.store(true, Ordering::SeqCst);
    let (parts, body) = call(Method::GET, "/health").await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers["content-type"], "application/health+json");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "fail");

    let (parts, body) = call(Method::HEAD, "/health").await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.is_empty());
    assert!(
        parts.headers["content-length"]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );

    let (parts, _) = call(Method::GET, "/health/live").await;
    assert_eq!(parts.status, StatusCode::OK);
    let (parts, _) = call(Method::DELETE, "/health").await;
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
}
