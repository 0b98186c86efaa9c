//! Live reload under load: a real server on 127.0.0.1 built from a configuration file through
//! `Resilience` and `ResilienceStack::from_config`, eight clients sending thousands of
//! requests, and the file rewritten and reloaded while they run:
//!
//! - the bulkhead of `pool` grows from 4 to 8: no request fails, calls in flight never pass 4
//!   before and reach past 4 after, and a scrape shows `max_concurrent` 8;
//! - the breaker of `guard` goes from 20 consecutive failures to 3, and then opens at the 3rd;
//! - the retry of `flaky` goes from 2 attempts to 4, counted at the upstream;
//! - then an invalid file is refused with both its problems, and nothing changes (scrape and
//!   behaviour).
#![cfg(all(feature = "config", feature = "metrics", feature = "http"))]

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use battlement::config::{Loader, Resilience};
use battlement::core::BoxError;
use battlement::health::HealthRegistry;
use battlement::metrics::MetricsService;
use battlement::ResilienceStack;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

fn file(pool: usize, consecutive: u32, attempts: u32) -> String {
    format!(
        r#"
[instances.pool.bulkhead]
max_concurrent = {pool}
max_queued = 100

[instances.guard.breaker]
consecutive_failures = {consecutive}
open_wait = "1m"

[instances.flaky.retry]
max_attempts = {attempts}
backoff = "fixed"
backoff_base = "1ms"
jitter = "none"
"#
    )
}

/// Both problems of this file are reported.
const BAD: &str = r#"
[instances.pool.bulkhead]
max_concurrent = 0

[instances.guard.breaker]
consecutive_failures = 3
failure_rate = 1.5

[instances.flaky.retry]
max_attempts = 4
"#;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("battlement-reload-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, text: &str) {
        std::fs::write(self.0.join("battlement.toml"), text).unwrap();
    }
    fn loader(&self) -> Loader {
        Loader::new().dir(&self.0).no_env_overrides()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the upstream saw.
#[derive(Default)]
struct Upstream {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    /// Attempts per `flaky` request id.
    attempts: Mutex<HashMap<u64, usize>>,
}

#[derive(Debug, Clone)]
enum Work {
    Ok,
    Pass,
    Fail,
    Flaky(u64),
}

type Svc = BoxCloneSyncService<Work, String, BoxError>;

#[derive(Clone)]
struct App {
    pool: Svc,
    guard: Svc,
    flaky: Svc,
}

fn stack(resilience: &Resilience, name: &str, upstream: Arc<Upstream>) -> Svc {
    let layer = ResilienceStack::from_config(resilience, name)
        .unwrap()
        .build()
        .unwrap();
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |work: Work| {
                let upstream = upstream.clone();
                async move {
                    match work {
                        Work::Ok => {
                            let now = upstream.in_flight.fetch_add(1, SeqCst) + 1;
                            upstream.peak.fetch_max(now, SeqCst);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            upstream.in_flight.fetch_sub(1, SeqCst);
                            Ok("ok".to_owned())
                        }
                        Work::Pass => Ok("ok".to_owned()),
                        Work::Fail => Err::<String, BoxError>("upstream failed".into()),
                        Work::Flaky(id) => {
                            *upstream.attempts.lock().unwrap().entry(id).or_default() += 1;
                            // A connection error: a kind retry policies retry by default.
                            Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
                        }
                    }
                }
            }),
    )
}

async fn handle(State(app): State<App>, uri: Uri) -> Response {
    let (svc, work) = match (uri.path(), uri.query()) {
        ("/pool", _) => (app.pool, Work::Ok),
        ("/guard", Some("fail")) => (app.guard, Work::Fail),
        ("/guard", _) => (app.guard, Work::Pass),
        (_, id) => (
            app.flaky,
            Work::Flaky(id.and_then(|id| id.parse().ok()).unwrap_or(0)),
        ),
    };
    match svc.oneshot(work).await {
        Ok(body) => body.into_response(),
        Err(err) => battlement::http_error::error_response::<axum::body::Body>(err),
    }
}

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Server {
    async fn get(&self, path: &str) -> Result<(u16, String), BoxError> {
        let res = self
            .client
            .get(format!("http://{}{path}", self.addr).parse()?)
            .await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A sample's value in a scrape of `/metrics`.
    async fn scrape(&self, sample: &str) -> f64 {
        let (status, text) = self.get("/metrics").await.unwrap();
        assert_eq!(status, 200);
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloading_under_load_fails_no_request_and_applies_the_new_settings() {
    let dir = TempDir::new();
    dir.write(&file(4, 20, 2));
    let health = HealthRegistry::new();
    let resilience = Resilience::builder(dir.loader().load().unwrap())
        .registry(&health)
        .build();
    let upstream = Arc::new(Upstream::default());
    let app = App {
        pool: stack(&resilience, "pool", upstream.clone()),
        guard: stack(&resilience, "guard", upstream.clone()),
        flaky: stack(&resilience, "flaky", upstream.clone()),
    };
    let router = Router::new()
        .route("/pool", get(handle))
        .route("/guard", get(handle))
        .route("/flaky", get(handle))
        .with_state(app)
        .route_service("/metrics", MetricsService::new(&health));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let server = Arc::new(Server {
        addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });

    // Eight clients on /pool until told to stop; every answer but a 200 is a failure.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let (done, mut served) = watch::channel(0usize);
    let done = Arc::new(done);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (server, stop, failures, done) =
                (server.clone(), stop.clone(), failures.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    match server.get("/pool").await {
                        Ok((200, _)) => {}
                        Ok((status, body)) => {
                            failures.lock().unwrap().push(format!("{status} {body}"))
                        }
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                    done.send_modify(|n| *n += 1);
                }
            })
        })
        .collect();
    let wait_for = |n: usize| {
        let mut served = served.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(60), served.wait_for(|d| *d >= n))
                .await
                .expect("the clients make progress")
                .unwrap();
        }
    };

    // Before: the old settings.
    wait_for(1000).await;
    assert!(upstream.peak.load(SeqCst) <= 4, "the bulkhead holds 4");
    for _ in 0..3 {
        assert_eq!(server.get("/guard?fail").await.unwrap().0, 500);
    }
    assert_eq!(
        server.get("/guard").await.unwrap().0,
        200,
        "3 of 20: closed"
    );
    assert_ne!(server.get("/flaky?1").await.unwrap().0, 200);
    assert_eq!(upstream.attempts.lock().unwrap()[&1], 2);
    assert_eq!(
        server
            .scrape("battlement_bulkhead_max_concurrent{name=\"pool\"}")
            .await,
        4.0
    );

    // Reload while the clients run.
    dir.write(&file(8, 3, 4));
    let report = resilience.reload_from(&dir.loader()).unwrap();
    assert_eq!(report.applied.len(), 3, "{report:?}");
    upstream.peak.store(0, SeqCst);
    let at_reload = *served.borrow();
    wait_for(at_reload + 2500).await;

    // The new bulkhead size: more than 4 calls at once, never more than 8; in the scrape too.
    let peak = upstream.peak.load(SeqCst);
    assert!((5..=8).contains(&peak), "peak {peak}");
    assert_eq!(
        server
            .scrape("battlement_bulkhead_max_concurrent{name=\"pool\"}")
            .await,
        8.0
    );
    assert_eq!(
        server
            .scrape("battlement_config_reloads_total{name=\"config\",outcome=\"applied\"}")
            .await,
        1.0
    );
    // The breaker opens at the 3rd consecutive failure now.
    assert_eq!(server.get("/guard?fail").await.unwrap().0, 500);
    assert_eq!(server.get("/guard?fail").await.unwrap().0, 500);
    assert_eq!(server.get("/guard").await.unwrap().0, 200, "still closed");
    for _ in 0..2 {
        assert_eq!(server.get("/guard?fail").await.unwrap().0, 500);
    }
    assert_eq!(
        server.get("/guard?fail").await.unwrap().0,
        500,
        "the 3rd opens it"
    );
    assert_eq!(server.get("/guard").await.unwrap().0, 503, "open: rejected");
    assert_eq!(
        server
            .scrape("battlement_circuit_breaker_state{name=\"guard\",state=\"open\"}")
            .await,
        1.0
    );
    // Four attempts per request now.
    assert_ne!(server.get("/flaky?2").await.unwrap().0, 200);
    assert_eq!(upstream.attempts.lock().unwrap()[&2], 4);

    // An invalid file: refused with both problems; nothing changes.
    dir.write(BAD);
    let err = resilience.reload_from(&dir.loader()).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key()).collect();
    assert_eq!(
        keys,
        [
            "instances.guard.breaker.failure_rate",
            "instances.pool.bulkhead.max_concurrent"
        ],
        "{err}"
    );
    let at_refusal = *served.borrow();
    wait_for(at_refusal + 1000).await;
    assert_eq!(
        server
            .scrape("battlement_bulkhead_max_concurrent{name=\"pool\"}")
            .await,
        8.0
    );
    assert_eq!(
        server
            .scrape("battlement_config_reloads_total{name=\"config\",outcome=\"refused\"}")
            .await,
        1.0
    );
    assert_eq!(resilience.breaker("guard").unwrap().metrics().reloads, 1);
    assert_ne!(server.get("/flaky?3").await.unwrap().0, 200);
    assert_eq!(upstream.attempts.lock().unwrap()[&3], 4, "still four");

    stop.store(true, SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let total = *served.borrow_and_update();
    assert!(total >= 4500, "thousands of requests: {total}");
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
