//! The demo's logic, shared by `cargo run --example demo` and the test that runs it briefly.

#[path = "load.rs"]
pub(crate) mod load;
#[path = "upstream.rs"]
pub(crate) mod upstream;

use battlement::breaker::{BreakerEvent, CircuitBreaker, SlidingWindow, State};
use battlement::bulkhead::Bulkhead;
use battlement::core::{BoxError, HttpClassifier};
use battlement::dashboard::Dashboard;
use battlement::health::{CheckResult, HealthCheck, HealthRegistry, HealthService};
use battlement::http_error::ErrorMapping;
use battlement::retry::{Backoff, RetryPolicy};
use battlement::ServiceBuilderExt;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use load::{Counters, Counts, OUTCOME_HEADER};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

/// How to run the demo.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How long the load runs.
    pub(crate) duration: Duration,
    /// Requests per second, in total.
    pub(crate) rate: u32,
    /// Concurrent workers.
    pub(crate) concurrency: usize,
    /// Whether to draw a live line (on a terminal) instead of plain lines.
    pub(crate) live: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(15),
            rate: 200,
            concurrency: 16,
            live: false,
        }
    }
}

/// What the run showed.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Every breaker transition, in order.
    pub(crate) transitions: Vec<(State, State)>,
    /// The final counts.
    pub(crate) counts: Counts,
    /// The final `/health` body.
    pub(crate) health_json: String,
    /// The final `/health` status code.
    pub(crate) health_status: u16,
    /// Requests the upstream saw.
    pub(crate) upstream_hits: u64,
    /// The live dashboard's address.
    pub(crate) dashboard_url: String,
    /// The dashboard's `/snapshot` at the end (JSON).
    pub(crate) dashboard_json: String,
    /// The events the dashboard listed, oldest first (`what: detail`).
    pub(crate) dashboard_events: Vec<String>,
}

type Upstream = BoxCloneSyncService<
    http::Request<Empty<Bytes>>,
    http::Response<hyper::body::Incoming>,
    BoxError,
>;

/// Runs the demo, printing to stdout, and returns what happened.
pub(crate) async fn run(opts: Options) -> Result<Report, BoxError> {
    let secs = opts.duration.as_secs_f64();
    // Scale the breaker's waits with the run so every phase shows in short runs too.
    let open_wait = Duration::from_secs_f64((secs / 15.0).clamp(0.2, 2.0));
    let per_try = Duration::from_millis(100);

    let schedule = upstream::Schedule::new(opts.duration);
    let (upstream_addr, upstream_hits) =
        upstream::start(schedule.clone(), per_try * 4 / 5, per_try * 3).await;

    // Health: the breaker registers itself (critical: an open breaker fails readiness), and a
    // custom check pings the upstream directly (not critical: it only degrades to warn).
    let registry = HealthRegistry::builder()
        .service_id("demo-gateway")
        .description("battlement demo gateway")
        .refresh_interval(Duration::from_millis(100))
        .build()?;
    registry.add_check(
        HealthCheck::builder("upstream-ping", move || async move {
            match fetch(upstream_addr, "/").await {
                Ok((200, _)) => CheckResult::pass(),
                Ok((status, _)) => CheckResult::fail(format!("upstream answered {status}")),
                Err(e) => CheckResult::fail(format!("upstream unreachable: {e}")),
            }
        })
        .interval(Duration::from_millis(500))
        .timeout(per_try * 2)
        .critical(false)
        .build()?,
    )?;
    let _monitor = registry.spawn_monitor();

    let breaker = CircuitBreaker::builder("upstream")
        .registry(&registry)
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(0.5)
        .open_wait(open_wait, 2.0, open_wait * 2)
        .half_open_calls(3, 2)
        .build()?;

    let out = Output::new(opts.live, opts.duration);
    // At most 8 calls in flight to the upstream, 8 more may wait up to 50 ms.
    let bulkhead = Bulkhead::builder("upstream-pool")
        .max_concurrent(8)
        .max_queued(8)
        .max_wait(Duration::from_millis(50))
        .registry(&registry)
        .build()?;

    let transitions = Arc::new(Mutex::new(Vec::new()));
    {
        let out = out.clone();
        let mut events = breaker.subscribe();
        let transitions = transitions.clone();
        let schedule = schedule.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if let BreakerEvent::StateTransition {
                    from, to, reason, ..
                } = event
                {
                    out.line(format!(
                        "  [{:>5.1}s] breaker: {from} -> {to} ({reason:?})",
                        schedule.elapsed().as_secs_f64()
                    ));
                    transitions.lock().unwrap().push((from, to));
                }
            }
        });
    }

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // Retry outside the breaker (an open breaker fails a retry fast), the per-try timeout
    // inside it (each attempt has its own deadline; a timeout is a failure the breaker sees).
    let retry = RetryPolicy::http_builder()
        .name("upstream")
        .max_attempts(2)
        .backoff(Backoff::fixed(Duration::from_millis(20)))
        .budget(0.2, 5)
        .registry(&registry)
        .build()?;
    let stack: Upstream = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .retry_policy(retry)
            .circuit_breaker_with(&breaker, HttpClassifier::new())
            .bulkhead(&bulkhead)
            .timeout_per_try(per_try)
            .service(client),
    );

    // The live page: every registered component, the breaker's transitions and the bulkhead's
    // reloads as they happen. Its controls (force open, reset) answer only requests from this
    // machine: the peer address comes from axum's `ConnectInfo`.
    let dashboard = Dashboard::builder(&registry)
        .title("battlement demo gateway")
        .breaker(&breaker)
        .bulkhead(&bulkhead)
        .controls(|req| {
            req.extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .is_some_and(|peer| peer.0.ip().is_loopback())
        })
        .build()?;
    let gateway_addr = gateway(stack, upstream_addr, registry.service(), dashboard.clone()).await;
    let dashboard_url = format!("http://{gateway_addr}/battlement/");
    out.line(format!("dashboard: {dashboard_url}"));
    out.line(format!(
        "upstream on {upstream_addr}, gateway on {gateway_addr}; {} req/s from {} workers for {:.0}s",
        opts.rate, opts.concurrency, secs
    ));
    out.line(format!(
        "{:>6} {:<10} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}  {:<10} {:>9} {:<6}",
        "t",
        "phase",
        "sent",
        "ok",
        "failed",
        "breaker",
        "bulkhead",
        "timeout",
        "state",
        "in flight",
        "health"
    ));

    let counters = Arc::new(Counters::default());
    let driver = tokio::spawn(load::drive(
        gateway_addr,
        opts.duration,
        opts.rate,
        opts.concurrency,
        counters.clone(),
    ));
    let mut last = Counts::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !driver.is_finished() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => { continue; }
        }
        let now = counters.read();
        let d = now - last;
        last = now;
        out.tick(format!(
            "{:>5.1}s {:<10} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}  {:<10} {:>9} {:<6}",
            schedule.elapsed().as_secs_f64(),
            schedule.phase().as_str(),
            d.sent,
            d.ok,
            d.failed,
            d.breaker,
            d.bulkhead,
            d.timed_out,
            breaker.state().as_str(),
            bulkhead.in_flight(),
            registry.status().as_str(),
        ));
    }
    driver.await?;
    out.finish();

    let (health_status, health_json) = fetch(gateway_addr, "/health").await?;
    let (_, dashboard_json) = fetch(gateway_addr, "/battlement/snapshot").await?;
    let dashboard_events = dashboard
        .recent_events()
        .iter()
        .map(|e| format!("{}: {}", e.what, e.detail))
        .collect();
    let pretty = serde_json::from_str::<serde_json::Value>(&health_json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| health_json.clone());
    println!("\nfinal /health (HTTP {health_status}):\n{pretty}");
    let counts = counters.read();
    let transitions = transitions.lock().unwrap().clone();
    println!(
        "\nsummary: sent {} ok {} failed {} rejected by breaker {} by bulkhead {} timed out {}; \
         upstream saw {} requests; breaker transitions: {}",
        counts.sent,
        counts.ok,
        counts.failed,
        counts.breaker,
        counts.bulkhead,
        counts.timed_out,
        upstream_hits.load(std::sync::atomic::Ordering::Relaxed),
        transitions
            .iter()
            .map(|(f, t)| format!("{f}->{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Report {
        transitions,
        counts,
        health_json,
        health_status,
        upstream_hits: upstream_hits.load(std::sync::atomic::Ordering::Relaxed),
        dashboard_url,
        dashboard_json,
        dashboard_events,
    })
}

/// Starts the gateway: `/` calls the upstream through the resilience stack; the health endpoint
/// and the live dashboard (`/battlement/`) beside it.
async fn gateway(
    stack: Upstream,
    upstream: std::net::SocketAddr,
    health: HealthService,
    dashboard: Dashboard,
) -> std::net::SocketAddr {
    let uri: http::Uri = format!("http://{upstream}/").parse().expect("upstream uri");
    let mapping = ErrorMapping::new();
    let handler = move || {
        let stack = stack.clone();
        let uri = uri.clone();
        async move {
            let req = http::Request::get(uri).body(Empty::new()).expect("request");
            match stack.oneshot(req).await {
                Ok(res) => {
                    let status = res.status();
                    let body = res
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut out = axum::response::Response::new(axum::body::Body::from(body));
                    *out.status_mut() = status;
                    out
                }
                Err(err) => {
                    let outcome = if err.is::<battlement::core::error::BreakerOpen>() {
                        "breaker"
                    } else if err.is::<battlement::core::error::BulkheadFull>()
                        || err.is::<battlement::core::error::BulkheadTimeout>()
                    {
                        "bulkhead"
                    } else if battlement::core::error::failure_kind(&*err)
                        == battlement::core::FailureKind::Timeout
                    {
                        "timeout"
                    } else {
                        "error"
                    };
                    let mut res: axum::response::Response =
                        mapping.response(&*err).unwrap_or_else(|| {
                            let mut r = axum::response::Response::new(axum::body::Body::from(
                                err.to_string(),
                            ));
                            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                            r
                        });
                    res.headers_mut()
                        .insert(OUTCOME_HEADER, http::HeaderValue::from_static(outcome));
                    res
                }
            }
        }
    };
    let app = axum::Router::new()
        .route("/", axum::routing::get(handler))
        .route_service("/livez", health.clone())
        .route_service("/readyz", health.clone())
        .nest_service("/health", health)
        .nest_service("/battlement", dashboard);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind gateway");
    let addr = listener.local_addr().expect("gateway address");
    tokio::spawn(async move {
        // With the peer's address (`ConnectInfo`), which the dashboard's controls check.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn fetch(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let res = client
        .request(http::Request::get(format!("http://{addr}{path}")).body(Empty::new())?)
        .await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Where the per-second lines go: a live line under a progress bar on a terminal, plain lines
/// otherwise.
#[derive(Clone)]
struct Output {
    bar: Option<indicatif::ProgressBar>,
}

impl Output {
    fn new(live: bool, duration: Duration) -> Self {
        let bar = live.then(|| {
            let bar = indicatif::ProgressBar::new(duration.as_secs().max(1));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:20.cyan/blue} {msg}")
                    .expect("progress template"),
            );
            bar
        });
        Output { bar }
    }

    /// A line that stays (events, headers).
    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// The once-a-second status: the live line on a terminal, a plain line otherwise.
    fn tick(&self, text: String) {
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(&text);
                bar.set_message(text);
            }
            None => println!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
