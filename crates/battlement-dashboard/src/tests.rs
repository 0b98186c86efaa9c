use crate::sse;
use crate::{Action, Control, Dashboard, DashboardBody, Event, CONTROL_HEADER};
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use battlement_health::HealthRegistry;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

static CALLS: Family = Family::counter("battlement_other_calls", "Calls.", "calls");
static OTHER: Family = Family::counter("battlement_other_other", "Not calls.", "");

/// A breaker-like component whose state and call count the test sets.
#[derive(Clone, Default)]
struct Fake {
    open: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
}

impl HealthSource for Fake {
    fn name(&self) -> &str {
        "db"
    }
    fn kind(&self) -> ComponentKind {
        ComponentKind::CircuitBreaker
    }
    fn snapshot(&self) -> HealthSnapshot {
        let (state, status) = if self.open.load(Ordering::Relaxed) {
            ("open", HealthStatus::Fail)
        } else {
            ("closed", HealthStatus::Pass)
        };
        HealthSnapshot::new("db", ComponentKind::CircuitBreaker, state, status)
            .with_metric(Metric::ratio("failure_rate", 0.625))
            .with_message("<script>alert(1)</script>")
    }
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let n = self.calls.load(Ordering::Relaxed);
        // Two labels of the first counter family count; the next family does not.
        out.counter(&CALLS, &[("outcome", "success")], n);
        out.counter(&CALLS, &[("outcome", "rejected")], n);
        out.counter(&OTHER, &[], 1000);
    }
}

fn setup() -> (HealthRegistry, Fake) {
    let registry = HealthRegistry::new();
    let fake = Fake::default();
    registry.register(&fake, true).unwrap();
    (registry, fake)
}

async fn get(d: &Dashboard, method: http::Method, uri: &str) -> http::Response<DashboardBody> {
    d.clone()
        .oneshot(
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn text(res: http::Response<DashboardBody>) -> String {
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn next_frame(body: &mut DashboardBody) -> Option<Bytes> {
    body.frame().await.map(|f| f.unwrap().into_data().unwrap())
}

#[test]
fn sse_framing_one_data_line_per_line_and_a_blank_line_to_end() {
    assert_eq!(
        sse::message("snapshot", r#"{"a":1}"#),
        "event: snapshot\ndata: {\"a\":1}\n\n"
    );
    // Every kind of line break starts a new data line: a payload cannot end the message early
    // nor forge a field.
    assert_eq!(
        sse::message("event", "a\nb\r\nc\rd\n\nevent: evil"),
        "event: event\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: event: evil\n\n"
    );
    assert_eq!(
        sse::message("ev\nil", "x"),
        "event: ev\ndata: x\n\n",
        "the event name stays on its line"
    );
    assert_eq!(sse::comment("heartbeat"), ": heartbeat\n\n");
    assert_eq!(sse::retry(2000), "retry: 2000\n\n");
}

#[tokio::test(start_paused = true)]
async fn snapshot_json_has_every_field_the_page_reads_and_rates_per_second() {
    let (registry, fake) = setup();
    let dashboard = Dashboard::builder(&registry)
        .control(Control::new(
            ComponentKind::CircuitBreaker,
            "db",
            [Action::ForceOpen, Action::Reset],
            |_| {},
        ))
        .build()
        .unwrap();
    // The sampler's first sample is at once: 0 calls.
    tokio::time::sleep(Duration::from_millis(10)).await;
    fake.calls.store(5, Ordering::Relaxed); // 10 calls across both labels
    fake.open.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let json: serde_json::Value = serde_json::to_value(dashboard.snapshot()).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["counts"]["total"], 1);
    assert_eq!(json["counts"]["fail"], 1);
    let c = &json["components"][0];
    assert_eq!(c["kind"], "circuit_breaker");
    assert_eq!(c["name"], "db");
    assert_eq!(c["state"], "open");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["effective"], "fail");
    assert_eq!(c["critical"], true);
    assert_eq!(c["message"], "<script>alert(1)</script>");
    assert_eq!(c["metrics"]["failure_rate"], 0.625);
    assert_eq!(c["rate"], 10.0, "{c}");
    assert_eq!(c["spark"], serde_json::json!([0.0, 10.0]));
    assert_eq!(c["actions"], serde_json::json!(["force_open", "reset"]));
    assert!(json["time_ms"].as_u64().unwrap() > 0);
    assert_eq!(json["interval_ms"], 1000);

    // The same document at /snapshot.
    let res = get(&dashboard, http::Method::GET, "/snapshot").await;
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(served["components"][0]["state"], "open");
}

#[tokio::test(start_paused = true)]
async fn sparkline_keeps_sixty_samples() {
    let (registry, fake) = setup();
    let dashboard = Dashboard::builder(&registry).build().unwrap();
    for i in 0..70u64 {
        fake.calls.store(i, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let view = &dashboard.snapshot().components[0];
    assert_eq!(view.spark.len(), crate::SPARK_SAMPLES);
    assert_eq!(view.spark.last(), Some(&2.0));
}

#[tokio::test(start_paused = true)]
async fn a_stream_starts_with_retry_the_last_events_and_the_snapshot_then_follows() {
    let (registry, _fake) = setup();
    let dashboard = Dashboard::builder(&registry)
        .retry(Duration::from_millis(1500))
        .build()
        .unwrap();
    dashboard.publish(Event::new(ComponentKind::Other, "cfg", "reloaded", "v2"));
    let res = get(&dashboard, http::Method::GET, "/events").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let mut body = res.into_body();
    assert!(body.is_stream());
    let first = String::from_utf8(next_frame(&mut body).await.unwrap().to_vec()).unwrap();
    assert!(first.starts_with("retry: 1500\n\n"), "{first}");
    let event_at = first.find("event: event\ndata: {").unwrap();
    let snapshot_at = first.find("event: snapshot\ndata: {").unwrap();
    assert!(event_at < snapshot_at, "{first}");
    assert!(first.ends_with("\n\n"));

    // An event as it happens.
    dashboard.publish(Event::new(ComponentKind::Other, "cfg", "reloaded", "v3"));
    let live = loop {
        let f = String::from_utf8(next_frame(&mut body).await.unwrap().to_vec()).unwrap();
        if f.starts_with("event: event") {
            break f;
        }
    };
    assert!(live.contains(r#""detail":"v3""#), "{live}");
    // Snapshots keep coming, one per interval.
    let f = String::from_utf8(next_frame(&mut body).await.unwrap().to_vec()).unwrap();
    assert!(f.starts_with("event: snapshot\n"), "{f}");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_are_comments() {
    let (registry, _fake) = setup();
    let dashboard = Dashboard::builder(&registry)
        .heartbeat(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut body = get(&dashboard, http::Method::GET, "/events")
        .await
        .into_body();
    let mut saw = false;
    for _ in 0..8 {
        if next_frame(&mut body).await.unwrap() == ": heartbeat\n\n" {
            saw = true;
            break;
        }
    }
    assert!(saw);
}

#[tokio::test(start_paused = true)]
async fn a_disconnected_clients_stream_is_dropped_and_no_longer_fed() {
    let (registry, _fake) = setup();
    let dashboard = Dashboard::builder(&registry).build().unwrap();
    let body = get(&dashboard, http::Method::GET, "/events")
        .await
        .into_body();
    assert_eq!(dashboard.clients(), 1);
    assert_eq!(dashboard.shared.streams.load(Ordering::Relaxed), 1);
    // The server drops the body when the client goes away.
    drop(body);
    assert_eq!(dashboard.shared.streams.load(Ordering::Relaxed), 0);
    assert_eq!(dashboard.clients(), 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(dashboard.clients(), 0);
    assert_eq!(dashboard.slow_clients_dropped(), 0, "gone, not slow");
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_is_dropped_after_its_buffer_and_its_stream_ends() {
    let (registry, _fake) = setup();
    let dashboard = Dashboard::builder(&registry)
        .client_buffer(4)
        .build()
        .unwrap();
    let mut body = get(&dashboard, http::Method::GET, "/events")
        .await
        .into_body();
    let mut fast = get(&dashboard, http::Method::GET, "/events")
        .await
        .into_body();
    assert_eq!(dashboard.clients(), 2);
    // The slow one reads nothing while 6 snapshots are sent; the fast one keeps up.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        while let Some(Some(_)) = ready_now(&mut fast).await {}
    }
    assert_eq!(dashboard.clients(), 1, "the slow client was dropped");
    assert_eq!(dashboard.slow_clients_dropped(), 1);
    // Its stream ends after what it was sent: the prelude and 3 snapshots.
    let mut frames = 0;
    while next_frame(&mut body).await.is_some() {
        frames += 1;
    }
    assert_eq!(frames, 4);
    // The fast one is still fed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(next_frame(&mut fast).await.is_some());
}

/// A frame if one is ready now.
async fn ready_now(body: &mut DashboardBody) -> Option<Option<Bytes>> {
    use http_body::Body;
    use std::task::Poll;
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *body).poll_frame(cx) {
        Poll::Ready(f) => Poll::Ready(Some(f.map(|f| f.unwrap().into_data().unwrap()))),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn dropping_the_dashboard_ends_the_streams() {
    let (registry, _fake) = setup();
    let dashboard = Dashboard::builder(&registry).build().unwrap();
    let mut body = get(&dashboard, http::Method::GET, "/events")
        .await
        .into_body();
    drop(dashboard);
    assert!(next_frame(&mut body).await.is_some(), "the prelude");
    // The sampler holds no strong handle: with the dashboard gone, the client's sender is
    // dropped and the stream ends (maybe after a snapshot already queued).
    let mut rest = 0;
    while next_frame(&mut body).await.is_some() {
        rest += 1;
        assert!(rest < 3);
    }
}

#[tokio::test]
async fn the_page_is_self_contained_and_read_only_by_default() {
    let (registry, _fake) = setup();
    let dashboard = Dashboard::builder(&registry)
        .title("gate <1>")
        .build()
        .unwrap();
    let res = get(&dashboard, http::Method::GET, "/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"));
    let page = text(res).await;
    // Nothing to fetch: no external script, style, font or image.
    for banned in [
        " src=",
        " href=",
        "@import",
        "url(",
        "https://",
        "@font-face",
    ] {
        assert!(!page.contains(banned), "{banned} in the page");
    }
    assert!(page.contains("<title>gate &lt;1&gt;</title>"));
    assert!(page.contains(r#"data-controls="false""#));
    // The embedded snapshot cannot close its script element.
    assert!(!page.contains("<script>alert(1)"));
    assert!(page.contains(r"\u003cscript>alert(1)"));
    // Relative to the page: works under any prefix.
    assert!(page.contains(r#"base + "events""#));

    for path in ["/", "/index.html"] {
        assert_eq!(get(&dashboard, http::Method::GET, path).await.status(), 200);
    }
    let head = get(&dashboard, http::Method::HEAD, "/").await;
    assert_eq!(head.status(), 200);
    assert_eq!(text(head).await, "");
    assert_eq!(
        get(&dashboard, http::Method::GET, "/nope").await.status(),
        404
    );
    let res = get(&dashboard, http::Method::DELETE, "/events").await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET");

    let res = post(
        &dashboard,
        "/control?kind=circuit_breaker&name=db&action=reset",
        true,
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(text(res).await, "controls are disabled\n");
}

async fn post(d: &Dashboard, uri: &str, marked: bool) -> http::Response<DashboardBody> {
    let mut req = http::Request::post(uri).header("x-operator", "yes");
    if marked {
        req = req.header(CONTROL_HEADER, "1");
    }
    d.clone().oneshot(req.body(()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn controls_act_only_for_authorized_requests_that_carry_the_header() {
    let (registry, _fake) = setup();
    let forced = Arc::new(AtomicU64::new(0));
    let seen = forced.clone();
    let dashboard = Dashboard::builder(&registry)
        .controls(|req| req.headers.get("x-operator").is_some_and(|v| v == "yes"))
        .control(Control::new(
            ComponentKind::CircuitBreaker,
            "db main",
            [Action::ForceOpen],
            move |a| {
                assert_eq!(a, Action::ForceOpen);
                seen.fetch_add(1, Ordering::Relaxed);
            },
        ))
        .build()
        .unwrap();
    let uri = "/control?kind=circuit_breaker&name=db%20main&action=force_open";

    // Not marked with the header: refused (a cross-site form cannot add it).
    assert_eq!(post(&dashboard, uri, false).await.status(), 403);
    // Not authorized.
    let req = http::Request::post(uri)
        .header(CONTROL_HEADER, "1")
        .body(())
        .unwrap();
    assert_eq!(dashboard.clone().oneshot(req).await.unwrap().status(), 403);
    assert_eq!(forced.load(Ordering::Relaxed), 0);

    // Authorized and marked: applied, and listed as an operator's event.
    assert_eq!(post(&dashboard, uri, true).await.status(), 204);
    assert_eq!(forced.load(Ordering::Relaxed), 1);
    let events = dashboard.recent_events();
    assert_eq!(events.last().unwrap().what, "operator");
    assert_eq!(events.last().unwrap().name, "db main");

    let bad = [
        (
            "/control?kind=circuit_breaker&name=db%20main&action=reset",
            400,
        ),
        (
            "/control?kind=circuit_breaker&name=db%20main&action=boom",
            400,
        ),
        (
            "/control?kind=bulkhead&name=db%20main&action=force_open",
            404,
        ),
        (
            "/control?kind=circuit_breaker&name=db%ZZ&action=force_open",
            400,
        ),
        ("/control?name=db", 400),
    ];
    for (uri, status) in bad {
        assert_eq!(post(&dashboard, uri, true).await.status(), status, "{uri}");
    }
    assert_eq!(forced.load(Ordering::Relaxed), 1);
    let res = get(&dashboard, http::Method::GET, "/control").await;
    assert_eq!(res.status(), 405);

    // The page shows the buttons to whom the check accepts.
    let req = http::Request::get("/")
        .header("x-operator", "yes")
        .body(())
        .unwrap();
    let page = text(dashboard.clone().oneshot(req).await.unwrap()).await;
    assert!(page.contains(r#"data-controls="true""#));
    let page = text(get(&dashboard, http::Method::GET, "/").await).await;
    assert!(page.contains(r#"data-controls="false""#));
}

#[test]
fn settings_out_of_range_are_config_errors() {
    let registry = HealthRegistry::new();
    let b = || Dashboard::builder(&registry);
    let setting = |r: Result<Dashboard, battlement_core::ConfigError>| r.unwrap_err().setting();
    assert_eq!(setting(b().interval(Duration::ZERO).build()), "interval");
    assert_eq!(setting(b().heartbeat(Duration::ZERO).build()), "heartbeat");
    assert_eq!(
        setting(b().retry(Duration::from_secs(7200)).build()),
        "retry"
    );
    assert_eq!(setting(b().client_buffer(0).build()), "client_buffer");
    assert_eq!(setting(b().recent_events(5000).build()), "recent_events");
    let c = || Control::new(ComponentKind::KillSwitch, "k", [Action::Halt], |_| {});
    assert_eq!(setting(b().control(c()).control(c()).build()), "control");
    // Outside a runtime it builds, and starting does nothing (no panic); its tasks start at
    // the first request inside one.
    let d = b().build().unwrap();
    d.start();
    assert!(!d.shared.started.load(Ordering::Relaxed));
    assert!(d.snapshot().components.is_empty());
}

#[test]
fn percent_decoding() {
    use crate::service::percent_decode;
    assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
    assert_eq!(percent_decode("%E2%86%92").as_deref(), Some("→"));
    assert_eq!(percent_decode("%2"), None);
    assert_eq!(percent_decode("%FF"), None);
}

#[cfg(all(feature = "breaker", feature = "kill-switch"))]
#[tokio::test(start_paused = true)]
async fn watched_breaker_and_kill_switch_events_are_listed_with_their_state() {
    use battlement_breaker::CircuitBreaker;
    use battlement_kill_switch::KillSwitch;
    let registry = HealthRegistry::new();
    let breaker = CircuitBreaker::builder("payments")
        .registry(&registry)
        .build()
        .unwrap();
    let switch = KillSwitch::builder("orders")
        .registry(&registry)
        .build()
        .unwrap();
    let dashboard = Dashboard::builder(&registry)
        .breaker(&breaker)
        .kill_switch(&switch)
        .controls(|_| true)
        .build()
        .unwrap();
    let force = "/control?kind=circuit_breaker&name=payments&action=force_open";
    assert_eq!(post(&dashboard, force, true).await.status(), 204);
    assert_eq!(breaker.state(), battlement_breaker::State::ForcedOpen);
    let halt = "/control?kind=kill_switch&name=orders&action=halt";
    assert_eq!(post(&dashboard, halt, true).await.status(), 204);
    assert!(switch.is_halted());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let events = dashboard.recent_events();
    let transition = events.iter().find(|e| e.what == "transition").unwrap();
    assert_eq!(transition.name, "payments");
    assert_eq!(transition.state.as_deref(), Some("forced_open"));
    assert!(
        transition.detail.contains("closed → forced_open"),
        "{transition:?}"
    );
    let halted = events.iter().find(|e| e.what == "halted").unwrap();
    assert_eq!(halted.state.as_deref(), Some("halted"));
    // A state change brings a fresh snapshot at once, not at the next sample (paused time has
    // not reached it).
    let snap = dashboard.snapshot();
    assert_eq!(snap.components[0].state, "forced_open");
    assert_eq!(snap.components[1].state, "halted");
    assert_eq!(snap.status, HealthStatus::Fail);
    let actions: Vec<_> = snap.components.iter().map(|c| c.actions.clone()).collect();
    assert_eq!(
        actions,
        [
            vec![Action::ForceOpen, Action::Reset],
            vec![Action::Halt, Action::Resume]
        ]
    );
}
