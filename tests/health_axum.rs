//! The health endpoint in a real axum server: a gateway on 127.0.0.1 calls a real upstream
//! through a circuit breaker (critical) and a bulkhead, with a custom check, all registered with
//! one health registry. The upstream fails, the breaker opens, and `/health/ready` follows it:
//! 200 → 503 → 200 (half-open, warn) → 200 (closed), while `/health/live` stays 200.
//!
//! The service is mounted both ways axum offers: `route_service` at the kube-style paths
//! (`/livez`, `/readyz`, `/readyz/{component}`, `/healthz`, `/startupz`) and
//! `nest_service("/health", …)` (`/health`, `/health/live`, `/health/ready`, …).

use battlement::breaker::{CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
use battlement::bulkhead::Bulkhead;
use battlement::core::{HealthStatus, HttpClassifier};
use battlement::health::{CheckResult, HealthCheck, HealthRegistry, View};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::{ServiceBuilder, ServiceExt};

/// Longer than anything the test does between its own `advance`s, so the breaker only goes
/// half-open when the test says so (the paused clock also auto-advances to the monitor's next
/// tick while the runtime waits for sockets).
const OPEN_WAIT: Duration = Duration::from_secs(3600);

#[derive(Clone)]
struct Upstream {
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    /// While `hold` is set, each request waits for a permit of `gate`.
    hold: Arc<AtomicBool>,
    gate: Arc<Semaphore>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            failing: Arc::default(),
            hits: Arc::default(),
            hold: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

async fn bind(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn serve_upstream(up: Upstream) -> SocketAddr {
    bind(axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let up = up.clone();
            async move {
                up.hits.fetch_add(1, SeqCst);
                if up.hold.load(SeqCst) {
                    up.gate.acquire().await.unwrap().forget();
                }
                if up.failing.load(SeqCst) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    ))
    .await
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>()
}

async fn fetch(client: &HttpClient, method: Method, url: &str) -> (StatusCode, HeaderMap, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn get_json(client: &HttpClient, url: &str) -> (StatusCode, Value) {
    let (status, headers, body) = fetch(client, Method::GET, url).await;
    assert_eq!(headers["content-type"], "application/health+json");
    assert_eq!(headers["cache-control"], "no-store");
    (status, serde_json::from_slice(&body).unwrap())
}

/// The `observedValue` of `<component>:state` in a report.
fn state(json: &Value, component: &str) -> String {
    json["checks"][format!("{component}:state")][0]["observedValue"]
        .as_str()
        .unwrap_or_else(|| panic!("no {component}:state in {json}"))
        .to_owned()
}

fn entry_status(json: &Value, component: &str) -> String {
    json["checks"][format!("{component}:state")][0]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

struct Setup {
    registry: HealthRegistry,
    breaker: CircuitBreaker,
    bulkhead: Bulkhead,
    up: Upstream,
    gateway: SocketAddr,
    client: HttpClient,
}

async fn setup() -> Setup {
    let registry = HealthRegistry::builder()
        .service_id("gateway")
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder("upstream")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(5)
        .failure_rate_threshold(0.5)
        .fixed_open_wait(OPEN_WAIT)
        .registry(&registry)
        .critical(true)
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("upstream-pool")
        .max_concurrent(2)
        .max_queued(2)
        .max_wait(OPEN_WAIT)
        .registry(&registry)
        .critical(false)
        .build()
        .unwrap();
    let config_loaded = Arc::new(AtomicBool::new(true));
    registry
        .add_check(
            HealthCheck::builder("config", move || {
                let loaded = config_loaded.load(SeqCst);
                async move {
                    if loaded {
                        CheckResult::pass().with_value(3.0, "files")
                    } else {
                        CheckResult::fail("configuration not loaded")
                    }
                }
            })
            .interval(Duration::from_secs(10))
            .timeout(Duration::from_secs(1))
            .startup(true)
            .build()
            .unwrap(),
        )
        .unwrap();

    let up = Upstream::default();
    let upstream = serve_upstream(up.clone()).await;
    let guarded = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
        .layer(bulkhead.layer())
        .service(client());
    let upstream_url = format!("http://{upstream}/");
    let api = axum::routing::get(move || {
        let (guarded, url) = (guarded.clone(), upstream_url.clone());
        async move {
            let req = Request::get(&url).body(Empty::<Bytes>::new()).unwrap();
            match guarded.oneshot(req).await {
                Ok(res) if res.status().is_success() => StatusCode::OK,
                Ok(_) => StatusCode::BAD_GATEWAY,
                Err(_) => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
    });
    let health = registry.service();
    let app = axum::Router::new()
        .route("/api", api)
        .route_service("/livez", health.clone())
        .route_service("/readyz", health.clone())
        .route_service("/readyz/{component}", health.clone())
        .route_service("/healthz", health.clone())
        .route_service("/startupz", health.clone())
        .nest_service("/health", health.clone())
        .route_service("/internal/ready", health.view(View::Ready));
    let gateway = bind(app).await;
    Setup {
        registry,
        breaker,
        bulkhead,
        up,
        gateway,
        client: client(),
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_the_breaker_through_a_real_server() {
    let s = setup().await;
    let _monitor = s.registry.spawn_monitor();
    let url = |path: &str| format!("http://{}{path}", s.gateway);
    let live = || async {
        let (status, json) = get_json(&s.client, &url("/health/live")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json, serde_json::json!({ "status": "pass" }));
    };

    // The monitor runs the check at once; wait for its first result.
    let mut rx = s.registry.subscribe();
    while rx.borrow_and_update().status != HealthStatus::Pass {
        rx.changed().await.unwrap();
    }

    // Healthy: ready, everything passes.
    for _ in 0..5 {
        let (status, _, _) = fetch(&s.client, Method::GET, &url("/api")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, json) = get_json(&s.client, &url("/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "pass");
    assert_eq!(state(&json, "upstream"), "closed");
    assert_eq!(state(&json, "upstream-pool"), "available");
    assert_eq!(state(&json, "config"), "passing");
    assert_eq!(
        json["summary"],
        serde_json::json!({"total": 3, "pass": 3, "warn": 0, "fail": 0})
    );
    live().await;

    // The upstream fails: 5 failures of the last 10 calls open the breaker.
    s.up.failing.store(true, SeqCst);
    let mut failed = 0;
    while s.breaker.state() == State::Closed {
        let (status, _, _) = fetch(&s.client, Method::GET, &url("/api")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        failed += 1;
        assert!(failed <= 5);
    }
    assert_eq!(s.breaker.state(), State::Open);
    // Calls are now rejected by the breaker without reaching the upstream.
    let hits = s.up.hits.load(SeqCst);
    for _ in 0..3 {
        let (status, _, _) = fetch(&s.client, Method::GET, &url("/api")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(s.up.hits.load(SeqCst), hits);

    // Not ready: the critical breaker is open.
    let (status, json) = get_json(&s.client, &url("/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["status"], "fail");
    assert_eq!(state(&json, "upstream"), "open");
    assert_eq!(entry_status(&json, "upstream"), "fail");
    assert_eq!(json["output"], "failing: upstream");
    // The full report carries the breaker's rates and counts.
    let (status, full) = get_json(&s.client, &url("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        full["checks"]["upstream:failure_rate"][0]["observedValue"],
        0.5
    );
    assert_eq!(
        full["checks"]["upstream:calls_rejected"][0]["observedValue"],
        3
    );
    assert_eq!(
        full["checks"]["upstream-pool:in_flight"][0]["observedValue"],
        0
    );
    live().await;
    // The monitor also publishes it, without anyone asking for a report.
    assert_eq!(rx.borrow_and_update().status, HealthStatus::Fail);

    // After the open wait the breaker is half-open: degraded, but ready again.
    tokio::time::advance(OPEN_WAIT).await;
    assert_eq!(s.breaker.state(), State::HalfOpen);
    let (status, json) = get_json(&s.client, &url("/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "warn");
    assert_eq!(state(&json, "upstream"), "half_open");
    assert_eq!(entry_status(&json, "upstream"), "warn");
    live().await;

    // The upstream recovers; the trial call succeeds and the breaker closes.
    s.up.failing.store(false, SeqCst);
    let (status, _, _) = fetch(&s.client, Method::GET, &url("/api")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.breaker.state(), State::Closed);
    let (status, json) = get_json(&s.client, &url("/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "pass");
    assert_eq!(state(&json, "upstream"), "closed");
    live().await;

    // The history recorded each state the breaker was seen in.
    let seen: Vec<_> = s
        .registry
        .history("upstream")
        .unwrap()
        .into_iter()
        .map(|h| h.state.into_owned())
        .collect();
    assert_eq!(seen, ["closed", "open", "half_open", "closed"]);
    assert_eq!(s.bulkhead.in_flight(), 0);
}

/// Every key the crate docs name is present in a real server's report, with the right type.
#[tokio::test(start_paused = true)]
async fn the_served_json_has_the_documented_shape() {
    let s = setup().await;
    s.registry.run_checks().await;
    s.breaker.force_open("maintenance");
    let url = |path: &str| format!("http://{}{path}", s.gateway);

    let (status, json) = get_json(&s.client, &url("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let top = json.as_object().unwrap();
    assert_eq!(top["status"], "fail");
    assert_eq!(top["serviceId"], "gateway");
    assert!(top["output"].is_string());
    assert!(top["time"].is_string());
    for k in ["total", "pass", "warn", "fail"] {
        assert!(top["summary"][k].is_u64(), "summary.{k}");
    }
    let checks = top["checks"].as_object().unwrap();
    for component in ["upstream", "upstream-pool", "config"] {
        assert!(
            checks.contains_key(&format!("{component}:state")),
            "{component}"
        );
    }
    for measurement in [
        "upstream:failure_rate",
        "upstream:calls_rejected",
        "upstream-pool:in_flight",
        "upstream-pool:queued",
        "upstream-pool:rejected_full",
        "config:value",
        "config:runs",
    ] {
        assert!(checks.contains_key(measurement), "{measurement}");
    }
    for (key, entries) in checks {
        let entries = entries.as_array().unwrap();
        assert_eq!(entries.len(), 1, "{key}");
        let e = entries[0].as_object().unwrap();
        let (component, measurement) = key.split_once(':').unwrap();
        assert_eq!(e["componentId"], component, "{key}");
        assert!(e["componentType"].is_string(), "{key}");
        assert!(e["critical"].is_boolean(), "{key}");
        assert!(
            ["pass", "warn", "fail"].contains(&e["status"].as_str().unwrap()),
            "{key}"
        );
        if measurement == "state" {
            assert!(e["observedValue"].is_string(), "{key}");
            assert!(e["observedUnit"].is_null(), "{key}");
        } else {
            assert!(
                e["observedValue"].is_number() || e["observedValue"].is_null(),
                "{key}"
            );
            assert!(
                e["observedUnit"].is_string() || e["observedUnit"].is_null(),
                "{key}"
            );
        }
        let time = e["time"].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T",
            "{key}"
        );
        // `output` only when the entry does not pass.
        assert_eq!(e.contains_key("output"), e["status"] != "pass", "{key}");
        if e["status"] != "pass" {
            assert!(e["output"].is_string(), "{key}");
        }
    }
    assert_eq!(checks["upstream:state"][0]["observedValue"], "forced_open");
    assert_eq!(
        checks["upstream:state"][0]["componentType"],
        "circuit_breaker"
    );
    assert_eq!(checks["upstream:state"][0]["critical"], true);
    assert_eq!(
        checks["upstream-pool:state"][0]["componentType"],
        "bulkhead"
    );
    assert_eq!(checks["upstream-pool:state"][0]["critical"], false);
    assert_eq!(checks["config:value"][0]["observedValue"], 3);
    assert_eq!(checks["config:value"][0]["observedUnit"], "files");

    // HEAD: same status and headers, no body.
    let (_, _, get_body) = fetch(&s.client, Method::GET, &url("/health/ready")).await;
    let (status, headers, body) = fetch(&s.client, Method::HEAD, &url("/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.is_empty());
    assert_eq!(headers["content-type"], "application/health+json");
    assert_eq!(
        headers["content-length"],
        get_body.len().to_string().as_str()
    );
    // Other methods: 405 with Allow.
    let (status, headers, _) = fetch(&s.client, Method::POST, &url("/health")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
}

/// A bulkhead with every permit taken degrades readiness to `warn` (still 200), and the JSON
/// shows it saturated with its in-flight count.
#[tokio::test(start_paused = true)]
async fn a_saturated_bulkhead_degrades_readiness() {
    let s = setup().await;
    s.registry.run_checks().await;
    let url = |path: &str| format!("http://{}{path}", s.gateway);
    let (status, json) = get_json(&s.client, &url("/health/ready")).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (StatusCode::OK, Some("pass"))
    );

    // Two calls hang in the upstream: both bulkhead permits are taken.
    s.up.hold.store(true, SeqCst);
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (s.client.clone(), url("/api"));
            tokio::spawn(async move { fetch(&client, Method::GET, &url).await.0 })
        })
        .collect();
    while s.up.hits.load(SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(s.bulkhead.in_flight(), 2);

    let (status, json) = get_json(&s.client, &url("/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "warn");
    assert_eq!(state(&json, "upstream-pool"), "saturated");
    assert_eq!(entry_status(&json, "upstream-pool"), "warn");
    assert_eq!(state(&json, "upstream"), "closed");
    let (_, full) = get_json(&s.client, &url("/health")).await;
    assert_eq!(
        full["checks"]["upstream-pool:in_flight"][0]["observedValue"],
        2
    );
    assert!(full["checks"]["upstream-pool:state"][0]["output"]
        .as_str()
        .unwrap()
        .contains("saturated"));

    // Released: the calls finish and the bulkhead is available again.
    s.up.gate.add_permits(2);
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    let (status, json) = get_json(&s.client, &url("/health/ready")).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (StatusCode::OK, Some("pass"))
    );
    assert_eq!(state(&json, "upstream-pool"), "available");
}

async fn get_text(client: &HttpClient, url: &str) -> (StatusCode, String) {
    let (status, headers, body) = fetch(client, Method::GET, url).await;
    assert_eq!(
        headers["content-type"], "text/plain; charset=utf-8",
        "{url}"
    );
    assert_eq!(headers["cache-control"], "no-store", "{url}");
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The paths probes are written for, served by a real axum server mounted with `route_service`
/// at exact paths and with `nest_service("/health", …)`: liveness never follows a dependency,
/// readiness does, an unknown path is 404, and `?verbose`, `?exclude=`, `/readyz/<component>`
/// and the startup view work through both.
#[tokio::test(start_paused = true)]
async fn probe_paths_through_route_service_and_nest_service() {
    let s = setup().await;
    let url = |path: &str| format!("http://{}{path}", s.gateway);

    // Before any check has run, the startup check has not passed: startup fails.
    for path in ["/startupz", "/health/startup"] {
        let (status, json) = get_json(&s.client, &url(path)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(json["output"], "waiting for: config", "{path}");
    }
    s.registry.run_checks().await;
    for path in ["/startupz", "/health/startup"] {
        let (status, _) = get_json(&s.client, &url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // The critical breaker opens.
    s.breaker.force_open("maintenance");
    for path in ["/livez", "/health/live"] {
        let (status, json) = get_json(&s.client, &url(path)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: liveness ignores dependencies"
        );
        assert_eq!(json, serde_json::json!({ "status": "pass" }), "{path}");
    }
    for path in [
        "/readyz",
        "/health/ready",
        "/internal/ready",
        "/readyz/upstream",
        "/health/ready/upstream",
    ] {
        let (status, json) = get_json(&s.client, &url(path)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(state(&json, "upstream"), "forced_open", "{path}");
        assert!(
            json["checks"].get("upstream:failure_rate").is_none(),
            "{path}"
        );
    }
    for path in ["/healthz", "/health"] {
        let (status, json) = get_json(&s.client, &url(path)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            json["checks"].get("upstream:failure_rate").is_some(),
            "{path}"
        );
    }
    // One component: the bulkhead is fine, the breaker is not.
    for path in ["/readyz/upstream-pool", "/health/ready/upstream-pool"] {
        let (status, json) = get_json(&s.client, &url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(json["summary"]["total"], 1, "{path}");
    }
    // Exclusions.
    for path in [
        "/readyz?exclude=upstream",
        "/health/ready?exclude=upstream&exclude=config",
    ] {
        let (status, json) = get_json(&s.client, &url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(json["checks"].get("upstream:state").is_none(), "{path}");
    }
    // Verbose, kube-style.
    for path in ["/readyz?verbose", "/health/ready?verbose"] {
        let (status, text) = get_text(&s.client, &url(path)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(
            text,
            "[-]upstream failed: forced open: maintenance\n[+]upstream-pool ok\n[+]config ok\nreadyz check failed\n",
            "{path}"
        );
    }
    let (status, text) = get_text(&s.client, &url("/livez?verbose")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "[+]ping ok\nlivez check passed\n");

    // Typos are 404 (the nested service sees them too), never some other view.
    for path in [
        "/health/raedy",
        "/health/livez/x",
        "/readyz/nope",
        "/health/ready/nope",
    ] {
        let (status, _, _) = fetch(&s.client, Method::GET, &url(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}
