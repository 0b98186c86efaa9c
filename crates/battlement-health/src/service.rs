//! The HTTP endpoint: a `tower::Service` serving the report as `application/health+json`, at
//! the paths probes are written for.

use crate::report::{ComponentReport, Detail, HealthReport};
use crate::time::rfc3339;
use crate::HealthRegistry;
use battlement_core::HealthStatus;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use std::time::SystemTime;
use tower_service::Service;

/// The media type of the report.
pub const HEALTH_JSON: &str = "application/health+json";

const TEXT: &str = "text/plain; charset=utf-8";

/// A view of the registry's health that [`HealthService`] serves.
///
/// ```
/// use battlement_health::View;
///
/// assert_eq!(View::Ready.probe_name(), "readyz");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum View {
    /// Everything: every measurement of every component (`/healthz`, `/health`).
    Full,
    /// Readiness: each component's state and the aggregate (`/readyz`, `/health/ready`).
    Ready,
    /// Liveness: the process and the health monitor only, never a dependency (`/livez`,
    /// `/health/live`).
    Live,
    /// Startup: whether every startup check has passed once (`/startupz`, `/health/startup`).
    Startup,
}

impl View {
    /// The view's kube-style name: `healthz`, `readyz`, `livez`, `startupz` (the last line of a
    /// `?verbose` answer says `<name> check passed` or `<name> check failed`).
    pub fn probe_name(self) -> &'static str {
        match self {
            View::Full => "healthz",
            View::Ready => "readyz",
            View::Live => "livez",
            View::Startup => "startupz",
        }
    }
}

/// Serves a [`HealthRegistry`] over HTTP: a `tower::Service<http::Request<B>>` (any body type,
/// `Clone`, `Error = Infallible`) that axum mounts with `Router::route_service` or
/// `nest_service` and hyper serves directly (through `hyper_util::service::TowerToHyperService`).
///
/// # Paths
///
/// [`HealthRegistry::service`] chooses the view by the request's path, and serves the paths
/// Kubernetes probes and load balancers are written for:
///
/// | path | view | body |
/// |---|---|---|
/// | `/livez`, `/health/live` | [`View::Live`]: the process answers and the monitor runs | `status` (and `output` when failing) |
/// | `/readyz`, `/health/ready` | [`View::Ready`]: the aggregate | `status`, `summary`, one `<component>:state` entry per component |
/// | `/readyz/<name>`, `/health/ready/<name>` | readiness of the components named `<name>` | as `/readyz`, for them only; 404 if there is none |
/// | `/healthz`, `/health` | [`View::Full`]: the full report | every measurement of every component |
/// | `/startupz`, `/health/startup` | [`View::Startup`]: every [startup check](crate::HealthCheckBuilder::startup) has passed once | `status`, one `<check>:state` entry per startup check |
///
/// Nested with axum's `nest_service("/health", …)`, which strips the prefix, the same views
/// answer at `/health` (the service sees `/`), `/health/live`, `/health/ready`,
/// `/health/ready/<name>` and `/health/startup`. A trailing slash is ignored. **Any other path
/// is 404**, so a probe pointed at a mistyped path fails at once instead of being served some
/// other view. To serve one view at a path of your own, name it:
/// [`view`](Self::view)`(View::Ready)` serves readiness at whatever path it is mounted on.
///
/// **Liveness never depends on a dependency**: it fails only when a [monitor was
/// started](HealthRegistry::spawn_monitor) and is no longer running. An open breaker or a
/// failing check fails readiness, never liveness, so a liveness probe does not restart pods
/// that are healthy but whose dependency is down.
///
/// # Query
///
/// - `?verbose`: plain text in the style of kube-apiserver, one line per component
///   (`[+]name ok`, `[+]name warn: …`, `[+]name failed (not critical): …`,
///   `[-]name failed: …`; `[+]ping ok` and `[±]monitor` for liveness), then `readyz check passed`
///   or `readyz check failed` (`livez`, `healthz`, `startupz` for the other views). The
///   status code is the same as without it. `?verbose=false` (or `0`) turns it off.
/// - `?exclude=name` (repeatable, or comma-separated): leaves the components of that name out
///   of the view and its status, as kube-apiserver does (liveness's own checks are `ping` and
///   `monitor`). A name that matches nothing is reported on a `warn:` line of the verbose
///   answer.
///
/// # Responses
///
/// Status codes: 200 for `pass` and `warn`, 503 for `fail`, 404 for an unknown path or
/// component. `GET` and `HEAD` (same headers, no body) are served; other methods get 405 with
/// `Allow: GET, HEAD`. Every response carries `Cache-Control: no-store`; views are
/// `application/health+json`, verbose answers and 404s `text/plain`. With
/// [`details(false)`](Self::details), every JSON body is the status only (`{"status":"pass"}`)
/// and verbose lines withhold the reasons, for endpoints exposed publicly.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_health::HealthRegistry;
/// use http::{Request, StatusCode};
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
///
/// let registry = HealthRegistry::new();
/// let health = registry.service();
///
/// let res = health.clone().oneshot(Request::get("/readyz").body(()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.headers()["content-type"], "application/health+json");
/// assert_eq!(res.headers()["cache-control"], "no-store");
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(json["status"], "pass");
///
/// let res = health.clone().oneshot(Request::get("/readyz?verbose").body(()).unwrap()).await.unwrap();
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "readyz check passed\n");
///
/// let res = health.clone().oneshot(Request::get("/raedyz").body(()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), StatusCode::NOT_FOUND);
///
/// let res = health.oneshot(Request::post("/health").body(()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
/// assert_eq!(res.headers()["allow"], "GET, HEAD");
/// # }
/// ```
///
/// Mounted in axum, at the conventional paths or nested:
///
/// ```
/// use battlement_health::{HealthRegistry, View};
///
/// let registry = HealthRegistry::new();
/// let health = registry.service();
/// let app: axum::Router = axum::Router::new()
///     .route_service("/livez", health.clone())
///     .route_service("/readyz", health.clone())
///     .route_service("/readyz/{component}", health.clone())
///     .route_service("/healthz", health.clone())
///     .nest_service("/health", health.clone()) // /health, /health/live, /health/ready, …
///     // One view at a path of your own:
///     .route_service("/internal/ready", health.view(View::Ready));
/// ```
#[derive(Debug, Clone)]
pub struct HealthService {
    registry: HealthRegistry,
    details: bool,
    fixed: Option<View>,
}

/// What a request asks for.
struct Query<'a> {
    verbose: bool,
    exclude: Vec<Cow<'a, str>>,
}

impl<'a> Query<'a> {
    fn parse(query: Option<&'a str>) -> Self {
        let mut q = Query {
            verbose: false,
            exclude: Vec::new(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match &*percent_decode(key) {
                "verbose" => q.verbose = !matches!(value, "false" | "0"),
                "exclude" => q.exclude.extend(
                    value
                        .split(',')
                        .filter(|v| !v.is_empty())
                        .map(percent_decode),
                ),
                _ => {}
            }
        }
        q
    }

    fn excludes(&self, name: &str) -> bool {
        self.exclude.iter().any(|e| e == name)
    }
}

/// Decodes `%XX` escapes (and `+` as a space, as in a query); leaves malformed escapes as
/// they are.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The view a path asks for, and the component for `/readyz/<name>`; `None`: not a path the
/// service knows.
fn route(path: &str) -> Option<(View, Option<Cow<'_, str>>)> {
    let path = match path.strip_suffix('/') {
        Some("") | None => path,
        Some(trimmed) => trimmed,
    };
    let view = match path {
        "/livez" | "/health/live" | "/live" => View::Live,
        "/readyz" | "/health/ready" | "/ready" => View::Ready,
        "/healthz" | "/health" | "/" => View::Full,
        "/startupz" | "/health/startup" | "/startup" => View::Startup,
        _ => {
            return ["/readyz/", "/health/ready/", "/ready/"]
                .iter()
                .find_map(|prefix| path.strip_prefix(prefix))
                .filter(|name| !name.is_empty())
                .map(|name| (View::Ready, Some(percent_decode(name))));
        }
    };
    Some((view, None))
}

/// A view's answer, before it is rendered.
enum Body {
    /// `?verbose`: the lines.
    Lines(Vec<Line>),
    /// The JSON document.
    Json(Vec<u8>),
}

/// One line of a verbose answer.
struct Line {
    name: String,
    ok: bool,
    text: Cow<'static, str>,
    reason: Option<String>,
}

impl HealthService {
    /// Serves `registry`, with details, choosing the view by the path (see [Paths](#paths)).
    pub fn new(registry: &HealthRegistry) -> Self {
        HealthService {
            registry: registry.clone(),
            details: true,
            fixed: None,
        }
    }

    /// Whether bodies carry details (default `true`); `false` serves the status only, and
    /// verbose answers withhold the reasons.
    pub fn details(mut self, details: bool) -> Self {
        self.details = details;
        self
    }

    /// Serves `view` at any path, instead of choosing the view by the path: for mounting one
    /// view at a path of your own (`route_service("/internal/ready", health.view(View::Ready))`).
    /// `?verbose` and `?exclude=` still apply.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_health::{HealthRegistry, View};
    /// use http::{Request, StatusCode};
    /// use tower::ServiceExt;
    ///
    /// let ready = HealthRegistry::new().service().view(View::Ready);
    /// let res = ready.oneshot(Request::get("/anything/at/all").body(()).unwrap()).await.unwrap();
    /// assert_eq!(res.status(), StatusCode::OK);
    /// # }
    /// ```
    pub fn view(mut self, view: View) -> Self {
        self.fixed = Some(view);
        self
    }

    /// The registry served.
    pub fn registry(&self) -> &HealthRegistry {
        &self.registry
    }

    fn respond(&self, method: &Method, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
        let routed = match self.fixed {
            Some(view) => Some((view, None)),
            None => route(path),
        };
        let head = *method == Method::HEAD;
        let Some((view, component)) = routed else {
            return plain(
                StatusCode::NOT_FOUND,
                format!(
                    "no health view at `{path}`: try /livez, /readyz, /readyz/<component>, \
                     /healthz, /startupz (or /health, /health/live, /health/ready, \
                     /health/startup)\n"
                ),
                head,
            );
        };
        match *method {
            Method::GET | Method::HEAD => {}
            _ => {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                let h = res.headers_mut();
                h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return res;
            }
        }
        let query = Query::parse(query);
        let (status, body) = match view {
            View::Live => self.live(&query),
            View::Startup => self.startup(&query),
            View::Ready | View::Full => {
                let mut report = self.registry.report();
                match &component {
                    Some(name) => {
                        report.retain(|c| c.name() == name);
                        if report.components.is_empty() {
                            return plain(
                                StatusCode::NOT_FOUND,
                                format!("no component named `{name}`\n"),
                                head,
                            );
                        }
                    }
                    None => report.retain(|c| !query.excludes(c.name())),
                }
                let detail = match (self.details, view) {
                    (false, _) => Detail::Status,
                    (true, View::Ready) => Detail::Components,
                    (true, _) => Detail::Full,
                };
                let body = if query.verbose {
                    Body::Lines(self.report_lines(&report))
                } else {
                    Body::Json(report.to_json(detail))
                };
                (report.status, body)
            }
        };
        let code = match status {
            HealthStatus::Fail => StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::Pass | HealthStatus::Warn => StatusCode::OK,
        };
        match body {
            Body::Lines(lines) => {
                let unmatched: Vec<&str> = if component.is_none() {
                    let names = self.view_names(view);
                    query
                        .exclude
                        .iter()
                        .filter(|e| !names.iter().any(|n| n == &***e))
                        .map(|e| &**e)
                        .collect()
                } else {
                    Vec::new()
                };
                plain(code, verbose(view, status, &lines, &unmatched), head)
            }
            Body::Json(json) => respond(code, HEALTH_JSON, json, head),
        }
    }

    /// The names a view's `exclude` may match.
    fn view_names(&self, view: View) -> Vec<String> {
        match view {
            View::Live => vec!["ping".to_owned(), "monitor".to_owned()],
            View::Startup => self
                .registry
                .components()
                .iter()
                .filter(|c| c.check().is_some_and(|k| k.startup))
                .map(|c| c.name.to_string())
                .collect(),
            View::Ready | View::Full => self.registry.names(),
        }
    }

    fn live(&self, query: &Query<'_>) -> (HealthStatus, Body) {
        let monitor_started = self
            .registry
            .inner
            .monitors_started
            .load(std::sync::atomic::Ordering::Acquire)
            > 0;
        let liveness = self.registry.liveness();
        let status = if query.excludes("monitor") {
            HealthStatus::Pass
        } else {
            liveness
        };
        const DOWN: &str = "the health monitor is not running";
        if query.verbose {
            let mut lines = Vec::new();
            if !query.excludes("ping") {
                lines.push(Line {
                    name: "ping".into(),
                    ok: true,
                    text: "ok".into(),
                    reason: None,
                });
            }
            if monitor_started && !query.excludes("monitor") {
                let ok = liveness == HealthStatus::Pass;
                lines.push(Line {
                    name: "monitor".into(),
                    ok,
                    text: if ok { "ok" } else { "failed" }.into(),
                    reason: (!ok).then(|| DOWN.to_owned()),
                });
            }
            return (status, Body::Lines(lines));
        }
        let mut json = serde_json::json!({ "status": status });
        if self.details && status != HealthStatus::Pass {
            json["output"] = DOWN.into();
        }
        (
            status,
            Body::Json(serde_json::to_vec(&json).unwrap_or_default()),
        )
    }

    fn startup(&self, query: &Query<'_>) -> (HealthStatus, Body) {
        let now = SystemTime::now();
        let checks: Vec<_> = self
            .registry
            .components()
            .into_iter()
            .filter(|c| c.check().is_some_and(|k| k.startup) && !query.excludes(&c.name))
            .map(|c| {
                let (snap, time) = c.snapshot();
                let started = c.has_started();
                (snap, time.unwrap_or(now), started)
            })
            .collect();
        let waiting: Vec<&str> = checks
            .iter()
            .filter(|(_, _, started)| !started)
            .map(|(s, _, _)| &*s.name)
            .collect();
        let status = if waiting.is_empty() {
            HealthStatus::Pass
        } else {
            HealthStatus::Fail
        };
        let reason = |snap: &battlement_core::HealthSnapshot| {
            snap.message
                .clone()
                .unwrap_or_else(|| format!("check `{}` has not passed yet", snap.name))
        };
        if query.verbose {
            let lines = checks
                .iter()
                .map(|(snap, _, started)| Line {
                    name: snap.name.clone(),
                    ok: *started,
                    text: if *started { "ok" } else { "failed" }.into(),
                    reason: (!started).then(|| reason(snap)),
                })
                .collect();
            return (status, Body::Lines(lines));
        }
        if !self.details {
            let json = serde_json::json!({ "status": status });
            return (
                status,
                Body::Json(serde_json::to_vec(&json).unwrap_or_default()),
            );
        }
        let mut entries = serde_json::Map::new();
        for (snap, time, started) in &checks {
            let mut entry = serde_json::json!({
                "componentId": snap.name,
                "componentType": snap.kind.as_str(),
                "status": if *started { HealthStatus::Pass } else { HealthStatus::Fail },
                "observedValue": if *started { "started" } else { &*snap.state },
                "observedUnit": null,
                "time": rfc3339(*time),
            });
            if !started {
                entry["output"] = reason(snap).into();
            }
            entries.insert(format!("{}:state", snap.name), serde_json::json!([entry]));
        }
        let mut json = serde_json::json!({ "status": status });
        if !waiting.is_empty() {
            json["output"] = format!("waiting for: {}", waiting.join(", ")).into();
        }
        json["time"] = rfc3339(now).into();
        json["checks"] = entries.into();
        (
            status,
            Body::Json(serde_json::to_vec(&json).unwrap_or_default()),
        )
    }

    fn report_lines(&self, report: &HealthReport) -> Vec<Line> {
        let shared = |c: &ComponentReport| {
            report
                .components
                .iter()
                .filter(|o| o.name() == c.name())
                .count()
                > 1
        };
        report
            .components
            .iter()
            .map(|c| {
                let name = if shared(c) {
                    format!("{} ({})", c.name(), c.snapshot.kind.describe())
                } else {
                    c.name().to_owned()
                };
                let (ok, text) = match (c.snapshot.status, c.effective) {
                    (HealthStatus::Pass, _) => (true, "ok"),
                    (HealthStatus::Warn, _) => (true, "warn"),
                    (HealthStatus::Fail, HealthStatus::Fail) => (false, "failed"),
                    (HealthStatus::Fail, _) => (true, "failed (not critical)"),
                };
                Line {
                    name,
                    ok,
                    text: text.into(),
                    reason: (c.snapshot.status != HealthStatus::Pass)
                        .then(|| c.output().into_owned()),
                }
            })
            .map(|mut line| {
                if !self.details {
                    line.reason = (!line.ok).then(|| "reason withheld".to_owned());
                }
                line
            })
            .collect()
    }
}

/// The kube-style text answer.
fn verbose(view: View, status: HealthStatus, lines: &[Line], unmatched: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        let _ = write!(
            out,
            "[{}]{} {}",
            if line.ok { '+' } else { '-' },
            line.name,
            line.text
        );
        if let Some(reason) = &line.reason {
            let _ = write!(out, ": {reason}");
        }
        out.push('\n');
    }
    if !unmatched.is_empty() {
        let quoted: Vec<String> = unmatched.iter().map(|n| format!("{n:?}")).collect();
        let _ = writeln!(
            out,
            "warn: some health checks cannot be excluded: no matches for {}",
            quoted.join(", ")
        );
    }
    let verdict = if status == HealthStatus::Fail {
        "failed"
    } else {
        "passed"
    };
    let _ = writeln!(out, "{} check {verdict}", view.probe_name());
    out
}

fn plain(code: StatusCode, body: String, head: bool) -> Response<Full<Bytes>> {
    respond(code, TEXT, body.into_bytes(), head)
}

fn respond(
    code: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    head: bool,
) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut res = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    *res.status_mut() = code;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    res
}

impl<B> Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let uri = req.uri();
        ready(Ok(self.respond(req.method(), uri.path(), uri.query())))
    }
}

impl HealthRegistry {
    /// The HTTP endpoint serving this registry, with details, choosing the view by the path
    /// (`/livez`, `/readyz`, `/healthz`, `/startupz`, `/health/…`; see [`HealthService`]):
    /// `HealthService::new(self)`.
    pub fn service(&self) -> HealthService {
        HealthService::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Fake;
    use crate::{CheckResult, HealthCheck};
    use battlement_core::ComponentKind;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tower::ServiceExt;

    async fn get(svc: &HealthService, path: &str) -> (StatusCode, String) {
        let (code, headers, body) = call(svc, Method::GET, path).await;
        if code != StatusCode::NOT_FOUND && path.contains("verbose") {
            assert_eq!(headers[CONTENT_TYPE], TEXT, "{path}");
        }
        (code, String::from_utf8(body).unwrap())
    }

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
        for path in ["/health", "/health/ready", "/readyz", "/healthz/", "/"] {
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

    /// A registry with a critical breaker, a bulkhead and two checks.
    async fn fixture() -> (HealthRegistry, Fake, Fake) {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        let pool = Fake::new("pool", ComponentKind::Bulkhead);
        registry.register(&breaker, true).unwrap();
        registry.register(&pool, false).unwrap();
        registry
            .add_check(
                HealthCheck::builder("search", || async { CheckResult::fail("index missing") })
                    .critical(false)
                    .build()
                    .unwrap(),
            )
            .unwrap();
        registry.run_checks().await;
        (registry, breaker, pool)
    }

    #[tokio::test(start_paused = true)]
    async fn livez_is_liveness_and_never_follows_a_dependency() {
        let (registry, breaker, _pool) = fixture().await;
        breaker.set("open", HealthStatus::Fail);
        let svc = registry.service();
        // Before: `/livez` ended in neither `live` nor `ready`, so it served the full report
        // and answered 503: a liveness probe there would restart a healthy pod.
        for path in ["/livez", "/health/live", "/live", "/livez/"] {
            let (code, _, body) = call(&svc, Method::GET, path).await;
            assert_eq!(code, StatusCode::OK, "{path}");
            assert_eq!(json(&body), json!({"status": "pass"}), "{path}");
        }
        for path in ["/readyz", "/healthz", "/health/ready", "/health"] {
            let (code, _, _) = call(&svc, Method::GET, path).await;
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
        // `/healthz` is the full report, `/readyz` the states only.
        let (_, _, body) = call(&svc, Method::GET, "/healthz").await;
        assert!(json(&body)["checks"].get("search:runs").is_some());
        let (_, _, body) = call(&svc, Method::GET, "/readyz").await;
        assert!(json(&body)["checks"].get("search:runs").is_none());
        assert!(json(&body)["checks"].get("search:state").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_path_is_404_not_the_full_report() {
        let (registry, _breaker, _pool) = fixture().await;
        let svc = registry.service();
        for path in [
            "/raedyz",
            "/health/redy",
            "/api/v1/health/ready",
            "/metrics",
            "/livez/extra",
            "/readyz/",
        ] {
            let (code, headers, body) = call(&svc, Method::GET, path).await;
            if path == "/readyz/" {
                // A trailing slash is not a typo.
                assert_eq!(code, StatusCode::OK, "{path}");
                continue;
            }
            assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(headers[CONTENT_TYPE], TEXT);
            assert_eq!(headers[CACHE_CONTROL], "no-store");
            let body = String::from_utf8(body).unwrap();
            assert!(body.contains(path) && body.contains("/readyz"), "{body}");
        }
        // Even for a method it would refuse: the path is what is wrong.
        let (code, _, _) = call(&svc, Method::POST, "/raedyz").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }

    #[tokio::test(start_paused = true)]
    async fn verbose_prints_one_line_per_component_and_a_verdict() {
        let (registry, breaker, pool) = fixture().await;
        pool.set("saturated", HealthStatus::Warn);
        let svc = registry.service();
        let (code, body) = get(&svc, "/readyz?verbose").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body,
            "[+]payments ok\n\
             [+]pool warn: bulkhead `pool` is saturated\n\
             [+]search failed (not critical): index missing\n\
             readyz check passed\n"
        );
        breaker.set("open", HealthStatus::Fail);
        let (code, body) = get(&svc, "/healthz?verbose=true").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("[-]payments failed: circuit breaker `payments` is open\n"),
            "{body}"
        );
        assert!(body.ends_with("\nhealthz check failed\n"), "{body}");
        // HEAD: the same code, no body.
        let (code, headers, bytes) = call(&svc, Method::HEAD, "/readyz?verbose").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(bytes.is_empty());
        assert_eq!(headers[CONTENT_TYPE], TEXT);
        // Public: the reasons are withheld.
        let (_, body) = get(&svc.clone().details(false), "/readyz?verbose").await;
        assert_eq!(
            body,
            "[-]payments failed: reason withheld\n\
             [+]pool warn\n\
             [+]search failed (not critical)\n\
             readyz check failed\n"
        );
        // `verbose=false` is JSON.
        let (_, headers, _) = call(&svc, Method::GET, "/readyz?verbose=false").await;
        assert_eq!(headers[CONTENT_TYPE], HEALTH_JSON);
        // Liveness: the process and the monitor.
        let (code, body) = get(&svc, "/livez?verbose").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, "[+]ping ok\nlivez check passed\n");
        let monitor = registry.spawn_monitor();
        monitor.shutdown().await;
        let (code, body) = get(&svc, "/livez?verbose").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "[+]ping ok\n[-]monitor failed: the health monitor is not running\nlivez check failed\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exclude_leaves_components_out_of_the_view_and_its_status() {
        let (registry, breaker, _pool) = fixture().await;
        breaker.set("open", HealthStatus::Fail);
        let svc = registry.service();
        let (code, _, body) = call(&svc, Method::GET, "/readyz?exclude=payments").await;
        assert_eq!(code, StatusCode::OK);
        let ready = json(&body);
        assert_eq!(ready["status"], "warn");
        assert_eq!(ready["summary"]["total"], 2);
        assert!(ready["checks"].get("payments:state").is_none());
        // Repeatable, or comma-separated; percent-encoded names are decoded.
        for query in [
            "exclude=payments&exclude=search",
            "exclude=payments,search",
            "exclude=pay%6Dents&exclude=search",
        ] {
            let (code, _, body) = call(&svc, Method::GET, &format!("/readyz?{query}")).await;
            assert_eq!(code, StatusCode::OK, "{query}");
            assert_eq!(json(&body)["status"], "pass", "{query}");
        }
        let (code, body) = get(&svc, "/healthz?verbose&exclude=payments&exclude=nope").await;
        assert_eq!(code, StatusCode::OK);
        assert!(!body.contains("payments"), "{body}");
        assert!(
            body.ends_with(
                "warn: some health checks cannot be excluded: no matches for \"nope\"\nhealthz check passed\n"
            ),
            "{body}"
        );
        // Liveness's own checks can be excluded too.
        let monitor = registry.spawn_monitor();
        monitor.shutdown().await;
        let (code, _, _) = call(&svc, Method::GET, "/livez").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let (code, _, _) = call(&svc, Method::GET, "/livez?exclude=monitor").await;
        assert_eq!(code, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn one_component_at_readyz_slash_name() {
        let (registry, breaker, _pool) = fixture().await;
        breaker.set("open", HealthStatus::Fail);
        let shared = Fake::new("payments", ComponentKind::Bulkhead);
        registry.register(&shared, false).unwrap();
        let spaced = Fake::new("db pool", ComponentKind::Bulkhead);
        registry.register(&spaced, false).unwrap();
        let svc = registry.service();
        for path in [
            "/readyz/payments",
            "/health/ready/payments",
            "/ready/payments/",
        ] {
            let (code, _, body) = call(&svc, Method::GET, path).await;
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            let ready = json(&body);
            // Both components named `payments`, nothing else.
            assert_eq!(ready["summary"]["total"], 2, "{path}");
            assert_eq!(ready["checks"].as_object().unwrap().len(), 1, "{path}");
            assert_eq!(
                ready["checks"]["payments:state"].as_array().unwrap().len(),
                2
            );
        }
        let (code, _, body) = call(&svc, Method::GET, "/readyz/pool").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(json(&body)["summary"]["total"], 1);
        let (code, _, _) = call(&svc, Method::GET, "/readyz/db%20pool").await;
        assert_eq!(code, StatusCode::OK);
        let (code, body) = get(&svc, "/readyz/payments?verbose").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "[-]payments (circuit breaker) failed: circuit breaker `payments` is open\n\
             [+]payments (bulkhead) ok\n\
             readyz check failed\n"
        );
        let (code, _, body) = call(&svc, Method::GET, "/readyz/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body, b"no component named `nope`\n");
    }

    #[tokio::test(start_paused = true)]
    async fn startup_fails_until_every_startup_check_has_passed_once() {
        let registry = HealthRegistry::new();
        let ready = Arc::new(AtomicBool::new(false));
        let flag = ready.clone();
        registry
            .add_check(
                HealthCheck::builder("cache-warm", move || {
                    let ok = flag.load(Ordering::SeqCst);
                    async move {
                        if ok {
                            CheckResult::pass()
                        } else {
                            CheckResult::fail("cold")
                        }
                    }
                })
                .startup(true)
                .build()
                .unwrap(),
            )
            .unwrap();
        // Not a startup check: the startup view ignores it.
        registry
            .add_check(
                HealthCheck::builder("search", || async { CheckResult::fail("down") })
                    .build()
                    .unwrap(),
            )
            .unwrap();
        let svc = registry.service();

        // Never run: waiting.
        let (code, _, body) = call(&svc, Method::GET, "/startupz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let startup = json(&body);
        assert_eq!(startup["output"], "waiting for: cache-warm");
        assert_eq!(
            startup["checks"]["cache-warm:state"][0]["observedValue"],
            "pending"
        );
        assert!(startup["checks"].get("search:state").is_none());

        // Failing: still waiting.
        registry.run_checks().await;
        let (code, body) = get(&svc, "/health/startup?verbose").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "[-]cache-warm failed: cold\nstartupz check failed\n");

        // Passed once: started, for good.
        ready.store(true, Ordering::SeqCst);
        registry.run_checks().await;
        let (code, _, body) = call(&svc, Method::GET, "/startup").await;
        assert_eq!(code, StatusCode::OK);
        let startup = json(&body);
        assert_eq!(startup["status"], "pass");
        assert_eq!(
            startup["checks"]["cache-warm:state"][0]["observedValue"],
            "started"
        );
        assert!(startup["checks"]["cache-warm:state"][0]
            .get("output")
            .is_none());
        ready.store(false, Ordering::SeqCst);
        registry.run_checks().await;
        let (code, _, _) = call(&svc, Method::GET, "/startupz").await;
        assert_eq!(
            code,
            StatusCode::OK,
            "latched: readiness follows later runs"
        );
        let (code, _, _) = call(&svc, Method::GET, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let (_, _, body) = call(&svc.clone().details(false), Method::GET, "/startupz").await;
        assert_eq!(json(&body), json!({"status": "pass"}));
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_view_serves_at_any_path() {
        let (registry, breaker, _pool) = fixture().await;
        breaker.set("open", HealthStatus::Fail);
        let ready = registry.service().view(View::Ready);
        let (code, _, body) = call(&ready, Method::GET, "/internal/is-it-ready").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(json(&body)["checks"].get("search:runs").is_none());
        let live = registry.service().view(View::Live);
        let (code, _, body) = call(&live, Method::GET, "/readyz").await;
        assert_eq!(
            code,
            StatusCode::OK,
            "the named view, not the path, decides"
        );
        assert_eq!(json(&body), json!({"status": "pass"}));
        let (_, body) = get(&ready, "/x?verbose&exclude=payments").await;
        assert!(body.ends_with("readyz check passed\n"), "{body}");
    }
}
