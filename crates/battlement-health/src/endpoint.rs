//! The HTTP endpoint: a `tower::Service` serving the report as `application/health+json`.

use crate::report::Detail;
use crate::HealthRegistry;
use battlement_core::HealthStatus;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use tower_service::Service;

/// The media type of the report.
pub const HEALTH_JSON: &str = "application/health+json";

/// Serves a [`HealthRegistry`] over HTTP: a `tower::Service<http::Request<B>>` (any body type,
/// `Clone`, `Error = Infallible`) that axum mounts with `Router::route_service` (or
/// `nest_service`) and hyper serves directly (through `hyper_util::service::TowerToHyperService`).
///
/// The view is chosen by the last segment of the path, so the service works wherever it is
/// mounted or nested:
///
/// | path ends with | view | body |
/// |---|---|---|
/// | `/ready` | readiness: the aggregate | `status`, `summary`, one `<component>:state` entry per component |
/// | `/live` | liveness: the process and the monitor run | `status` (and `output` when failing) |
/// | anything else (`/health`) | the full report | every measurement of every component |
///
/// Status codes: 200 for `pass` and `warn`, 503 for `fail`. `GET` and `HEAD` (same headers, no
/// body) are served; other methods get 405 with `Allow: GET, HEAD`. Every response carries
/// `Content-Type: application/health+json` (except the 405) and `Cache-Control: no-store`.
/// With [`details(false)`](Self::details), every view's body is the status only
/// (`{"status":"pass"}`), for endpoints exposed publicly.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_health::{HealthRegistry, HealthService};
/// use http::{Request, StatusCode};
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
///
/// let registry = HealthRegistry::new();
/// let health = HealthService::new(&registry);
///
/// let res = health.clone().oneshot(Request::get("/health/ready").body(()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.headers()["content-type"], "application/health+json");
/// assert_eq!(res.headers()["cache-control"], "no-store");
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(json["status"], "pass");
///
/// let res = health.oneshot(Request::post("/health").body(()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
/// assert_eq!(res.headers()["allow"], "GET, HEAD");
/// # }
/// ```
///
/// Mounted in axum:
///
/// ```
/// use battlement_health::HealthRegistry;
///
/// let registry = HealthRegistry::new();
/// let health = registry.service();
/// let app: axum::Router = axum::Router::new()
///     .route_service("/health", health.clone())
///     .route_service("/health/ready", health.clone())
///     .route_service("/health/live", health);
/// ```
#[derive(Debug, Clone)]
pub struct HealthService {
    registry: HealthRegistry,
    details: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Full,
    Ready,
    Live,
}

impl HealthService {
    /// Serves `registry`, with details.
    pub fn new(registry: &HealthRegistry) -> Self {
        HealthService {
            registry: registry.clone(),
            details: true,
        }
    }

    /// Whether bodies carry details (default `true`); `false` serves the status only.
    pub fn details(mut self, details: bool) -> Self {
        self.details = details;
        self
    }

    /// The registry served.
    pub fn registry(&self) -> &HealthRegistry {
        &self.registry
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let head = match *method {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                let h = res.headers_mut();
                h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return res;
            }
        };
        let view = match path.trim_end_matches('/').rsplit('/').next() {
            Some("ready") => View::Ready,
            Some("live") => View::Live,
            _ => View::Full,
        };
        let (status, body) = match view {
            View::Live => {
                let status = self.registry.liveness();
                let mut json = serde_json::json!({ "status": status });
                if self.details && status != HealthStatus::Pass {
                    json["output"] = "the health monitor is not running".into();
                }
                (status, serde_json::to_vec(&json).unwrap_or_default())
            }
            View::Ready | View::Full => {
                let report = self.registry.report();
                let detail = match (self.details, view) {
                    (false, _) => Detail::Status,
                    (true, View::Ready) => Detail::Components,
                    (true, _) => Detail::Full,
                };
                (report.status, report.to_json(detail))
            }
        };
        let len = body.len();
        let mut res = Response::new(Full::new(if head {
            Bytes::new()
        } else {
            Bytes::from(body)
        }));
        *res.status_mut() = match status {
            HealthStatus::Fail => StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::Pass | HealthStatus::Warn => StatusCode::OK,
        };
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        res
    }
}

impl<B> Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(req.method(), req.uri().path())))
    }
}

impl HealthRegistry {
    /// The HTTP endpoint serving this registry, with details: `HealthService::new(self)`.
    pub fn service(&self) -> HealthService {
        HealthService::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Fake;
    use battlement_core::ComponentKind;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    async fn call(
        svc: &HealthService,
        method: Method,
        path: &str,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn views_codes_and_headers() {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        let cache = Fake::new("cache", ComponentKind::Bulkhead);
        registry.register(&breaker, true).unwrap();
        registry.register(&cache, false).unwrap();
        let svc = registry.service();

        let (code, headers, body) = call(&svc, Method::GET, "/health").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], HEALTH_JSON);
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert_eq!(headers[CONTENT_LENGTH], body.len().to_string().as_str());
        assert_eq!(json(&body)["status"], "pass");

        // A non-critical failure: warn, still 200.
        cache.set("saturated", HealthStatus::Fail);
        let (code, _, body) = call(&svc, Method::GET, "/health/ready").await;
        assert_eq!(code, StatusCode::OK);
        let ready = json(&body);
        assert_eq!(ready["status"], "warn");
        assert_eq!(
            ready["checks"]["cache:state"][0]["observedValue"],
            "saturated"
        );

        // A critical failure: 503 on /health and /health/ready, live stays 200.
        breaker.set("open", HealthStatus::Fail);
        for path in ["/health", "/health/ready", "/api/v1/health/ready/", "/"] {
            let (code, _, body) = call(&svc, Method::GET, path).await;
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(json(&body)["status"], "fail");
        }
        let (code, _, body) = call(&svc, Method::GET, "/health/live").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(json(&body), json!({"status": "pass"}));
        // Nested: axum's `nest_service` strips the prefix.
        let (code, _, _) = call(&svc, Method::GET, "/live").await;
        assert_eq!(code, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn head_other_methods_and_status_only() {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        breaker.set("open", HealthStatus::Fail);
        registry.register(&breaker, true).unwrap();
        let svc = registry.service();

        let (_, _, get_body) = call(&svc, Method::GET, "/health").await;
        let (code, headers, body) = call(&svc, Method::HEAD, "/health").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.is_empty());
        assert_eq!(headers[CONTENT_TYPE], HEALTH_JSON);
        // HEAD announces the length GET would send (the time stamps keep a fixed width).
        assert_eq!(headers[CONTENT_LENGTH], get_body.len().to_string().as_str());

        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let (code, headers, body) = call(&svc, method.clone(), "/health").await;
            assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(headers[ALLOW], "GET, HEAD");
            assert_eq!(headers[CACHE_CONTROL], "no-store");
            assert!(body.is_empty());
        }

        let public = svc.clone().details(false);
        for path in ["/health", "/health/ready"] {
            let (code, _, body) = call(&public, Method::GET, path).await;
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(json(&body), json!({"status": "fail"}));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_follows_the_monitor() {
        let registry = HealthRegistry::new();
        let svc = registry.service();
        let monitor = registry.spawn_monitor();
        let (code, _, _) = call(&svc, Method::GET, "/health/live").await;
        assert_eq!(code, StatusCode::OK);
        monitor.shutdown().await;
        let (code, _, body) = call(&svc, Method::GET, "/health/live").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            json(&body),
            json!({"status": "fail", "output": "the health monitor is not running"})
        );
        // Readiness does not depend on the monitor.
        let (code, _, _) = call(&svc, Method::GET, "/health/ready").await;
        assert_eq!(code, StatusCode::OK);
        let (_, _, body) = call(&svc.clone().details(false), Method::GET, "/health/live").await;
        assert_eq!(json(&body), json!({"status": "fail"}));
    }
}
