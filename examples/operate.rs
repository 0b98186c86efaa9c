//! A gateway operators can see and tune without a rebuild: built from `examples/battlement.toml`
//! through `battlement::config::Resilience`, it serves
//!
//! - `GET /payments` (a demo upstream behind instance `payments`' stack: breaker, bulkhead,
//!   retry, timeout; `?fail` makes the upstream fail, `?slow` makes it take 2 s),
//! - `GET /metrics` (Prometheus text; `battlement_config_reloads_total` counts reloads),
//! - `GET /health`, `/health/ready`, `/livez`, `/readyz` (the health endpoint),
//!
//! and reloads when the configuration files change: edit `examples/battlement.toml` (say
//! `max_concurrent = 10` of `[instances.payments.bulkhead]`) while it runs and the new settings
//! apply to the live components; a bad edit is refused, logged, and the old settings keep
//! serving.
//!
//! ```text
//! cargo run --example operate --features config            # a free port, printed
//! cargo run --example operate --features config -- 8080    # port 8080
//! cargo run --example operate --features config -- --once  # serve, call itself, exit
//! ```
//!
//! `--dir DIR` reads `DIR/battlement.toml` instead (and `BATTLEMENT_ENV` its overlay, as the
//! loader always does).

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
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::path::PathBuf;
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

/// A call to the demo upstream.
#[derive(Debug, Clone)]
struct Charge {
    fail: bool,
    slow: bool,
}

/// The upstream: a card network that answers in 5 ms, or fails, or is slow when told.
async fn card_network(charge: Charge) -> Result<String, BoxError> {
    let delay = if charge.slow { 2000 } else { 5 };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    if charge.fail {
        return Err("card network unavailable".into());
    }
    Ok("charged\n".to_owned())
}

type Payments = BoxCloneSyncService<Charge, String, BoxError>;

async fn pay(State(payments): State<Payments>, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let charge = Charge {
        fail: query.split('&').any(|p| p == "fail"),
        slow: query.split('&').any(|p| p == "slow"),
    };
    match payments.oneshot(charge).await {
        Ok(body) => body.into_response(),
        // An open breaker is a 503 with Retry-After, a full bulkhead a 503, a timeout a 504.
        Err(err) => battlement::http_error::error_response::<axum::body::Body>(err),
    }
}

struct Args {
    port: u16,
    dir: PathBuf,
    once: bool,
}

fn args() -> Result<Args, BoxError> {
    let mut parsed = Args {
        port: 0,
        dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")),
        once: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--once" => parsed.once = true,
            "--dir" => parsed.dir = args.next().ok_or("--dir needs a directory")?.into(),
            port => parsed.port = port.parse().map_err(|_| format!("not a port: {port}"))?,
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let loader = Loader::new().dir(&args.dir);
    let config = loader.load()?;
    let health = HealthRegistry::builder()
        .service_id("gateway")
        .refresh_interval(Duration::from_secs(1))
        .build()?;
    // Every component the registry builds registers with `health`: the health endpoint and
    // the metrics see them, and reloads reach them.
    let resilience = Resilience::builder(config).registry(&health).build();
    let stack = ResilienceStack::from_config(&resilience, "payments")?.build()?;
    let payments: Payments =
        BoxCloneSyncService::new(ServiceBuilder::new().layer(stack).service_fn(card_network));
    let _monitor = health.spawn_monitor();

    // Reload when the files change; print each outcome.
    let watcher = resilience.watch(loader)?;
    let mut outcomes = watcher.outcomes();
    tokio::spawn(async move {
        while outcomes.changed().await.is_ok() {
            match &*outcomes.borrow_and_update() {
                Some(Ok(report)) => println!("configuration reloaded: {report:?}"),
                Some(Err(err)) => println!("{err}"),
                None => {}
            }
        }
    });

    let app = Router::new()
        .route("/payments", get(pay))
        .with_state(payments)
        .route_service("/metrics", MetricsService::new(&health))
        .route_service("/livez", health.service())
        .route_service("/readyz", health.service())
        .nest_service("/health", health.service());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    println!(
        "gateway on http://{addr} (/payments, /metrics, /health), configuration {}",
        args.dir.join("battlement.toml").display()
    );
    if !args.once {
        axum::serve(listener, app).await?;
        return Ok(());
    }

    // --once: call the gateway as a client would, then stop.
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for path in ["/payments", "/payments?fail", "/metrics", "/health"] {
        let res = client.get(format!("http://{addr}{path}").parse()?).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body);
        match path {
            // The lines of the instance's components and of the reload counts.
            "/metrics" => {
                println!("GET {path} -> {status}");
                for line in body.lines().filter(|l| {
                    l.starts_with("battlement_config_reloads")
                        || l.starts_with("battlement_bulkhead_max_concurrent")
                        || l.starts_with("battlement_retry_max_attempts")
                }) {
                    println!("  {line}");
                }
            }
            "/health" => println!(
                "GET {path} -> {status} {}…",
                body.chars().take(100).collect::<String>()
            ),
            _ => println!("GET {path} -> {status} {}", body.trim()),
        }
        if path != "/payments?fail" {
            assert!(status.is_success(), "{path}: {status}");
        }
    }
    drop(watcher);
    Ok(())
}
