//! The Prometheus/OpenMetrics endpoint against components written here.

mod support;

use battlement_core::HealthStatus;
use battlement_health::HealthRegistry;
use battlement_metrics::{Format, MetricsService};
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;
use support::{promtool_check, Fake};
use tower::ServiceExt;

fn registry() -> (HealthRegistry, Fake, Fake) {
    let health = HealthRegistry::new();
    let (db, cache) = (Fake::new("db"), Fake::new("cache"));
    health.register(&db, true).unwrap();
    health.register(&cache, false).unwrap();
    for _ in 0..3 {
        db.call(true, Duration::from_millis(3));
    }
    db.call(false, Duration::from_millis(40));
    cache
        .in_flight
        .store(2, std::sync::atomic::Ordering::Relaxed);
    *cache.status.lock().unwrap() = HealthStatus::Fail;
    (health, db, cache)
}

#[test]
fn text_format_has_every_value_with_the_name_label_and_health_status() {
    let (health, _db, _cache) = registry();
    let text = MetricsService::new(&health).render(Format::Text).unwrap();
    for line in [
        "# TYPE battlement_other_calls_total counter",
        r#"battlement_other_calls_total{name="db",outcome="success"} 3"#,
        r#"battlement_other_calls_total{name="db",outcome="failure"} 1"#,
        r#"battlement_other_calls_total{name="cache",outcome="success"} 0"#,
        "# TYPE battlement_other_in_flight gauge",
        r#"battlement_other_in_flight{name="cache"} 2"#,
        "# TYPE battlement_other_latency_seconds histogram",
        r#"battlement_other_latency_seconds_count{name="db"} 4"#,
        r#"battlement_other_latency_seconds_bucket{name="db",le="+Inf"} 4"#,
        "# TYPE battlement_health_status gauge",
        r#"battlement_health_status{name="db",kind="other",status="pass"} 1"#,
        r#"battlement_health_status{name="db",kind="other",status="fail"} 0"#,
        r#"battlement_health_status{name="cache",kind="other",status="pass"} 0"#,
        r#"battlement_health_status{name="cache",kind="other",status="fail"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} missing from\n{text}"
        );
    }
    // Cumulative buckets: 3 ms falls under the 2^22 ns (~4.19 ms) bound, 40 ms does not.
    assert!(
        text.contains(r#"battlement_other_latency_seconds_bucket{name="db",le="0.004194304"} 3"#),
        "{text}"
    );
    // Each family once, though two components report it.
    assert_eq!(
        text.matches("# TYPE battlement_other_calls_total").count(),
        1
    );
    assert!(!text.contains("# EOF"), "text 0.0.4 has no EOF");
}

#[test]
fn openmetrics_has_units_eof_and_counters_total() {
    let (health, _db, _cache) = registry();
    let text = MetricsService::new(&health)
        .render(Format::OpenMetrics)
        .unwrap();
    assert!(
        text.contains("# TYPE battlement_other_calls counter\n"),
        "{text}"
    );
    assert!(text.contains(r#"battlement_other_calls_total{name="db",outcome="success"} 3"#));
    assert!(
        text.contains("# UNIT battlement_other_latency_seconds seconds\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

/// `promtool check metrics` reads the text format 0.0.4 (the Debian package's 2.42 has no
/// OpenMetrics parser), so that is the format it checks.
#[test]
fn the_text_format_passes_promtool() {
    let (health, _db, _cache) = registry();
    let text = MetricsService::new(&health).render(Format::Text).unwrap();
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{out}\n{text}");
    assert!(
        out.trim().is_empty(),
        "promtool's lint found problems:\n{out}"
    );
}

#[test]
fn the_text_format_parses_with_prometheus_parse() {
    let (health, _db, _cache) = registry();
    let text = MetricsService::new(&health).render(Format::Text).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let failures = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "battlement_other_calls_total"
                && s.labels.get("name") == Some("db")
                && s.labels.get("outcome") == Some("failure")
        })
        .expect("the db's failures");
    assert!(matches!(failures.value, prometheus_parse::Value::Counter(v) if v == 1.0));
}

async fn get(
    service: &MetricsService,
    method: Method,
    accept: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::builder().method(method).uri("/anything");
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let res = service
        .clone()
        .oneshot(req.body(()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_service_negotiates_the_format_by_accept() {
    let (health, _db, _cache) = registry();
    let service = MetricsService::new(&health);

    let (status, headers, body) = get(&service, Method::GET, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(body.contains("battlement_other_calls_total"));

    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (_, headers, body) = get(&service, Method::GET, Some(prometheus)).await;
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"));

    // text/plain preferred over OpenMetrics
    let (_, headers, _) = get(
        &service,
        Method::GET,
        Some("application/openmetrics-text;q=0.2, text/plain"),
    )
    .await;
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );

    let (status, headers, body) = get(&service, Method::HEAD, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );

    let (status, headers, _) = get(&service, Method::POST, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD");
}

#[test]
fn values_are_read_at_each_scrape() {
    let (health, db, _cache) = registry();
    let service = MetricsService::new(&health);
    let before = service.render(Format::Text).unwrap();
    assert!(before.contains(r#"battlement_other_calls_total{name="db",outcome="success"} 3"#));
    db.call(true, Duration::from_millis(1));
    let after = service.render(Format::Text).unwrap();
    assert!(after.contains(r#"battlement_other_calls_total{name="db",outcome="success"} 4"#));
    // A component unregistered is gone from the next scrape.
    health.unregister("db");
    let gone = service.render(Format::Text).unwrap();
    assert!(!gone.contains(r#"name="db""#), "{gone}");
}
