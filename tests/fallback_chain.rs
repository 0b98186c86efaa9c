//! A fallback chain in an axum gateway, in front of two real upstream servers on 127.0.0.1.
//!
//! The gateway answers `GET /who` by asking a [`FallbackChain`] of two members, `primary` and
//! `backup`, each a hyper-util client bound to one upstream; `GET /chain` serves the chain's
//! snapshot as JSON, and `GET /health` the health registry's report, in which the chain is
//! registered. The test kills the primary (aborts its accept loop and every
//! connection task, so its sockets close), checks that answers come from the backup and that the
//! primary is marked unhealthy, brings the primary back on the same address, and checks that
//! traffic returns to it only after the cool-down, through a single trial call.
//!
//! # Time
//!
//! Real sockets, so real time: the cool-down is 200 ms, and every wait is bounded.

use axum::extract::State;
use axum::response::IntoResponse;
use battlement::core::{BoxError, HealthSource, HealthStatus, HttpClassifier};
use battlement::fallback::{ChainEvent, FallbackChain, MemberState};
use battlement::health::HealthRegistry;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, timeout, Instant};
use tower::{Service, ServiceExt};

const COOL_DOWN: Duration = Duration::from_millis(200);
/// The bound on every wait in this test.
const PATIENCE: Duration = Duration::from_secs(10);

// ----- upstream servers ------------------------------------------------------------------------

/// An upstream server that answers `GET /who` with its name. Its accept loop owns every
/// connection task, so aborting it closes every socket it holds.
struct Upstream {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// Connections open now.
    live: Arc<AtomicUsize>,
    /// Requests served.
    hits: Arc<AtomicUsize>,
}

/// Decrements a counter when dropped (a connection task ends or is aborted).
struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

fn start_upstream(name: &'static str, listener: TcpListener) -> Upstream {
    let addr = listener.local_addr().unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/who",
        axum::routing::get(move || {
            h.fetch_add(1, SeqCst);
            async move { name }
        }),
    );
    let l = live.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            l.fetch_add(1, SeqCst);
            let guard = Live(l.clone());
            let app = app.clone();
            connections.spawn(async move {
                let _guard = guard;
                let svc = hyper::service::service_fn(move |req| app.clone().oneshot(req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
            // Reap finished connections so the set does not grow.
            while connections.try_join_next().is_some() {}
        }
    });
    Upstream {
        addr,
        task,
        live,
        hits,
    }
}

impl Upstream {
    /// Stops the server: no listener, and every connection closed.
    async fn kill(self) -> SocketAddr {
        self.task.abort();
        let _ = self.task.await;
        // The connection tasks are aborted when their set is dropped; wait until they are gone.
        timeout(PATIENCE, async {
            while self.live.load(SeqCst) > 0 {
                sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the killed server's connections close");
        self.addr
    }
}

// ----- the chain's members: a hyper-util client bound to one upstream --------------------------

type Body = Full<Bytes>;

#[derive(Clone)]
struct Member {
    client: Client<HttpConnector, Body>,
    addr: SocketAddr,
}

impl Service<Request<Body>> for Member {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = format!("http://{}{path}", self.addr).parse().unwrap();
        let sent = self.client.request(Request::from_parts(parts, body));
        Box::pin(async move {
            // Each attempt is bounded, so a member that hangs fails instead of stalling the chain.
            let res = timeout(Duration::from_secs(2), sent).await??;
            let (parts, body) = res.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, bytes))
        })
    }
}

type Chain = FallbackChain<Member, HttpClassifier>;

// ----- the gateway -------------------------------------------------------------------------------

async fn who(State(chain): State<Chain>) -> axum::response::Response {
    let req = Request::get("/who").body(Full::new(Bytes::new())).unwrap();
    match chain.oneshot(req).await {
        Ok(res) => res.map(axum::body::Body::from),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn chain_status(State(chain): State<Chain>) -> axum::response::Response {
    let json = serde_json::to_string(&chain.handle().snapshot()).unwrap();
    ([(http::header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn start_gateway(chain: Chain, registry: &HealthRegistry) -> SocketAddr {
    let app = axum::Router::new()
        .route("/who", axum::routing::get(who))
        .route("/chain", axum::routing::get(chain_status))
        .route_service("/health", registry.service())
        .with_state(chain);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Caller {
    client: Client<HttpConnector, Body>,
    gateway: SocketAddr,
}

impl Caller {
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let req = Request::get(format!("http://{}{path}", self.gateway))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = timeout(PATIENCE, self.client.request(req))
            .await
            .expect("the gateway answers in time")
            .expect("the gateway answers");
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn who(&self) -> String {
        let (status, body) = self.get("/who").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn chain(&self) -> serde_json::Value {
        let (status, body) = self.get("/chain").await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_str(&body).unwrap()
    }

    /// The health endpoint's overall status and the chain's `state` entry.
    async fn health(&self) -> (StatusCode, String, serde_json::Value) {
        let (status, body) = self.get("/health").await;
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        let state = report["checks"]["upstreams:state"][0].clone();
        (status, report["status"].as_str().unwrap().to_owned(), state)
    }
}

async fn bind_again(addr: SocketAddr) -> TcpListener {
    // tokio's listener sets SO_REUSEADDR, so the old port is free at once; retry briefly anyway.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}; retrying");
                sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_fails_over_to_the_backup_and_returns_to_the_primary_after_the_cool_down() {
    let primary = start_upstream("primary", TcpListener::bind("127.0.0.1:0").await.unwrap());
    let backup = start_upstream("backup", TcpListener::bind("127.0.0.1:0").await.unwrap());
    let registry = HealthRegistry::builder().build().unwrap();
    let upstream_client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let member = |addr| Member {
        client: upstream_client.clone(),
        addr,
    };
    let chain: Chain = FallbackChain::builder("upstreams")
        .member("primary", member(primary.addr))
        .member("backup", member(backup.addr))
        .classifier(HttpClassifier::new())
        .window(4)
        .min_calls(2)
        .min_success_rate(0.5)
        .cool_down(COOL_DOWN)
        .registry(&registry)
        .build()
        .unwrap();
    let handle = chain.handle();
    let mut events = handle.subscribe();
    let caller = Caller {
        client: Client::builder(TokioExecutor::new()).build_http::<Body>(),
        gateway: start_gateway(chain, &registry).await,
    };

    // 1. Healthy: the primary answers everything; the backup sees nothing.
    for _ in 0..5 {
        assert_eq!(caller.who().await, "primary");
    }
    assert_eq!(primary.hits.load(SeqCst), 5);
    assert_eq!(backup.hits.load(SeqCst), 0);
    let snap = caller.chain().await;
    assert_eq!(snap["state"], "primary");
    assert_eq!(snap["status"], "pass");
    assert_eq!(snap["kind"], "fallback");
    let (http_status, status, state) = caller.health().await;
    assert_eq!((http_status, status.as_str()), (StatusCode::OK, "pass"));
    assert_eq!(state["componentType"], "fallback");
    assert_eq!(state["observedValue"], "primary");

    // 2. Kill the primary: its listener and pooled connections are gone.
    let primary_addr = primary.kill().await;

    // Every call is answered by the backup; the first ones try the primary first and fail, then
    // the primary is unhealthy and skipped.
    for i in 0..6 {
        assert_eq!(caller.who().await, "backup", "call {i} after the kill");
    }
    assert_eq!(backup.hits.load(SeqCst), 6);
    loop {
        match timeout(PATIENCE, events.recv()).await.unwrap().unwrap() {
            ChainEvent::MemberUnhealthy { member, .. } if &*member == "primary" => break,
            _ => {}
        }
    }
    let now = Instant::now();
    let members = handle.members();
    assert_eq!(members[0].state, MemberState::Unhealthy);
    assert!(members[0].failures >= 2);
    // No trial before this instant (`now` was read before the member's remaining cool-down).
    let trial_not_before = now
        + members[0]
            .trial_in
            .expect("an unhealthy member's cool-down");
    assert_eq!(handle.serving().as_deref(), Some("backup"));
    let snap = caller.chain().await;
    assert_eq!(snap["state"], "degraded");
    assert_eq!(snap["status"], "warn");
    assert_eq!(snap["message"], "serving from `backup`; unhealthy: primary");
    assert_eq!(handle.snapshot().status, HealthStatus::Warn);
    // The health endpoint shows the chain degraded, and which member is serving.
    let (http_status, status, state) = caller.health().await;
    assert_eq!((http_status, status.as_str()), (StatusCode::OK, "warn"));
    assert_eq!(state["observedValue"], "degraded");
    assert_eq!(state["status"], "warn");
    assert_eq!(state["output"], "serving from `backup`; unhealthy: primary");

    // 3. Bring the primary back on its old address.
    let primary = start_upstream("primary", bind_again(primary_addr).await);
    assert_eq!(primary.addr, primary_addr);

    // Calls keep going to the backup until the cool-down has passed; then one trial call
    // reaches the primary, succeeds, and traffic is back on the primary.
    let deadline = Instant::now() + PATIENCE;
    let mut backup_answers_while_primary_up = 0;
    let first_primary_answer = loop {
        assert!(
            Instant::now() < deadline,
            "traffic never returned to the primary"
        );
        let from = caller.who().await;
        if from == "primary" {
            break Instant::now();
        }
        backup_answers_while_primary_up += 1;
        assert_eq!(from, "backup");
        assert_eq!(
            primary.hits.load(SeqCst),
            0,
            "the primary is skipped during its cool-down"
        );
        sleep(Duration::from_millis(20)).await;
    };
    assert!(
        first_primary_answer >= trial_not_before,
        "the trial waited for the cool-down"
    );
    eprintln!(
        "{backup_answers_while_primary_up} answers from the backup while the primary was back \
         but cooling down"
    );
    assert_eq!(
        primary.hits.load(SeqCst),
        1,
        "a single trial call brought it back"
    );
    for _ in 0..5 {
        assert_eq!(caller.who().await, "primary");
    }
    assert_eq!(primary.hits.load(SeqCst), 6);
    assert_eq!(handle.members()[0].state, MemberState::Healthy);
    assert_eq!(handle.serving().as_deref(), Some("primary"));
    let snap = caller.chain().await;
    assert_eq!(snap["state"], "primary");
    assert_eq!(snap["status"], "pass");
    assert_eq!(snap["message"], "serving from `primary`");
    let (http_status, status, state) = caller.health().await;
    assert_eq!((http_status, status.as_str()), (StatusCode::OK, "pass"));
    assert_eq!(state["observedValue"], "primary");
    // A passing entry carries no `output` (application/health+json).
    assert!(state.get("output").is_none(), "{state}");

    let rest: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            ChainEvent::TrialStarted { member, .. } => Some(format!("trial {member}")),
            ChainEvent::MemberRecovered { member, .. } => Some(format!("recovered {member}")),
            _ => None,
        })
        .collect();
    assert_eq!(rest.last().map(String::as_str), Some("recovered primary"));
    assert!(rest.contains(&"trial primary".to_owned()));
}
