//! Custom health checks with their own intervals, timeouts and critical flags, and the
//! `application/health+json` they produce.
//!
//! Run with `cargo run --example custom_checks`.

use battlement::health::{CheckResult, HealthCheck, HealthRegistry};
use http::Request;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let registry = HealthRegistry::builder()
        .service_id("orders")
        .description("order service")
        .history_len(5)
        .build()?;

    // A critical dependency that answers: pass, with an observed value.
    registry.add_check(
        HealthCheck::builder("database", || async {
            CheckResult::pass().with_value(3.0, "ms")
        })
        .interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(50))
        .critical(true)
        .build()?,
    )?;
    // A non-critical one that is degraded: warn.
    registry.add_check(
        HealthCheck::builder("disk", || async {
            CheckResult::warn("82% used").with_value(0.82, "ratio")
        })
        .interval(Duration::from_millis(200))
        .critical(false)
        .build()?,
    )?;
    // A non-critical one that hangs past its timeout: it fails with a timeout message, and
    // since it is not critical the aggregate only warns.
    registry.add_check(
        HealthCheck::builder("search-index", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            CheckResult::pass()
        })
        .interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(30))
        .critical(false)
        .build()?,
    )?;
    // A check that fails every other run and then recovers: its history shows both.
    let runs = Arc::new(AtomicU32::new(0));
    registry.add_check(
        HealthCheck::builder("cache", move || {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            async move {
                if n % 2 == 1 {
                    CheckResult::fail("connection reset")
                } else {
                    CheckResult::pass()
                }
            }
        })
        .interval(Duration::from_millis(100))
        .critical(false)
        .build()?,
    )?;

    let monitor = registry.spawn_monitor();
    tokio::time::sleep(Duration::from_millis(450)).await;

    let res = registry
        .service()
        .oneshot(Request::get("/health").body(())?)
        .await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    println!("GET /health -> HTTP {status}");
    println!("{}", serde_json::to_string_pretty(&json)?);
    for name in ["database", "disk", "search-index", "cache"] {
        let stats = registry.check_metrics(name).expect("registered");
        println!("{name}: {stats:?}");
    }
    println!("cache history: {:?}", registry.history("cache"));
    assert_eq!(json["status"], "warn", "non-critical failures only warn");
    assert_eq!(status, 200);
    monitor.shutdown().await;
    Ok(())
}
