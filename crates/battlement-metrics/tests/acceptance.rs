//! Acceptance: a real axum server on 127.0.0.1 serves `/metrics` from a registry holding a real
//! circuit breaker under load; the breaker opens, and the scrape shows what the breaker itself
//! reports, passes `promtool check metrics` and parses with `prometheus-parse`.

mod support;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use battlement_breaker::{CircuitBreaker, State};
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricType, MetricsVisitor};
use battlement_core::HealthSource;
use battlement_health::HealthRegistry;
use battlement_metrics::MetricsService;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::promtool_check;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

#[derive(Clone)]
struct App {
    breaker: CircuitBreaker,
    upstream_down: Arc<AtomicBool>,
}

async fn pay(AxumState(app): AxumState<App>) -> (StatusCode, &'static str) {
    let down = app.upstream_down.clone();
    let mut svc = ServiceBuilder::new()
        .layer(app.breaker.layer())
        .service_fn(move |()| {
            let down = down.load(Ordering::Relaxed);
            async move {
                if down {
                    Err::<&'static str, BoxError>("upstream down".into())
                } else {
                    Ok("paid")
                }
            }
        });
    match svc.ready().await {
        Ok(svc) => match svc.call(()).await {
            Ok(body) => (StatusCode::OK, body),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        },
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

async fn fetch(client: &HttpClient, addr: SocketAddr, path: &str) -> (u16, String) {
    let res = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .expect("the server answers");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// What a component reports to an exporter, keyed as a scrape shows it: (sample name, labels).
#[derive(Default)]
struct Reported(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Reported {
    fn put(&mut self, family: &'static Family, labels: Labels<'_>, value: f64) {
        let sample = battlement_metrics::sample_names(family).remove(0);
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.push(("name".to_owned(), "payments".to_owned()));
        labels.sort();
        self.0.insert((sample, labels), value);
    }
}

impl MetricsVisitor for Reported {
    fn counter(&mut self, family: &'static Family, labels: Labels<'_>, value: u64) {
        self.put(family, labels, value as f64);
    }
    fn gauge(&mut self, family: &'static Family, labels: Labels<'_>, value: f64) {
        self.put(family, labels, value);
    }
    fn histogram(&mut self, family: &'static Family, _: Labels<'_>, _: &HistogramSnapshot) {
        assert_eq!(family.kind, MetricType::Histogram);
    }
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("prometheus-parse reads the scrape")
}

fn value(v: &prometheus_parse::Value) -> Option<f64> {
    match v {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => Some(*v),
        _ => None,
    }
}

fn find(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| value(&s.value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_under_load_shows_the_open_breaker_and_passes_promtool() {
    let health = HealthRegistry::new();
    let breaker = CircuitBreaker::builder("payments")
        .minimum_calls(20)
        .failure_rate_threshold(0.5)
        .fixed_open_wait(Duration::from_secs(600))
        .registry(&health)
        .build()
        .unwrap();
    let app = App {
        breaker: breaker.clone(),
        upstream_down: Arc::new(AtomicBool::new(false)),
    };
    let router = Router::new()
        .route("/pay", get(pay))
        .with_state(app.clone())
        .route_service("/metrics", MetricsService::new(&health));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Load: 8 clients, 40 requests each; the upstream goes down halfway through.
    let load = |n: usize| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut codes = Vec::with_capacity(n);
            for _ in 0..n {
                codes.push(fetch(&client, addr, "/pay").await.0);
            }
            codes
        })
    };
    let first: Vec<_> = (0..8).map(|_| load(20)).collect();
    // Scrapes while the load runs are well-formed too.
    let (status, during) = fetch(&client, addr, "/metrics").await;
    assert_eq!(status, 200);
    let (ok, out) = promtool_check(&during);
    assert!(ok, "promtool, mid-load:\n{out}\n{during}");
    for task in first {
        assert!(task.await.unwrap().iter().all(|&c| c == 200));
    }
    app.upstream_down.store(true, Ordering::Relaxed);
    let second: Vec<_> = (0..8).map(|_| load(20)).collect();
    let mid = fetch(&client, addr, "/metrics").await.1;
    parse(&mid);
    for task in second {
        assert!(task.await.unwrap().iter().all(|&c| c == 503));
    }

    // The load is over: the breaker is open and has rejected calls.
    let m = breaker.metrics();
    assert_eq!(breaker.state(), State::Open);
    assert!(m.calls_rejected > 0, "{m:?}");
    let (status, text) = fetch(&client, addr, "/metrics").await;
    assert_eq!(status, 200);

    // 1. promtool accepts the scrape, lint included.
    let (ok, out) = promtool_check(&text);
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}\n{text}"
    );

    // 2. A second, independent parser reads it.
    let scrape = parse(&text);

    // 3. The health status follows the breaker's own snapshot: open is `fail`.
    assert_eq!(breaker.snapshot().status.as_str(), "fail");
    let status_of = |s: &str| {
        find(
            &scrape,
            "battlement_health_status",
            &[
                ("name", "payments"),
                ("kind", "circuit_breaker"),
                ("status", s),
            ],
        )
    };
    assert_eq!(status_of("fail"), Some(1.0), "{text}");
    assert_eq!(status_of("pass"), Some(0.0));
    assert_eq!(status_of("warn"), Some(0.0));

    // 4. Every counter and gauge the breaker reports shows in the scrape with its value (the
    //    load is over and the breaker stays open, so they do not move between the two reads).
    let mut reported = Reported::default();
    HealthSource::export(&breaker, &mut reported);
    for ((sample, labels), expected) in &reported.0 {
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            find(&scrape, sample, &labels),
            Some(*expected),
            "{sample}{labels:?} in\n{text}"
        );
    }
    // The breaker is open in the scrape, and its rejections are the breaker's own.
    let rejected = find(
        &scrape,
        "battlement_circuit_breaker_calls_total",
        &[("name", "payments"), ("outcome", "rejected")],
    );
    assert_eq!(rejected, Some(m.calls_rejected as f64), "{text}");
    assert!(m.calls_rejected > 0);
    let open = find(
        &scrape,
        "battlement_circuit_breaker_state",
        &[("name", "payments"), ("state", "open")],
    );
    assert_eq!(open, Some(1.0), "{text}");

    server.abort();
}
