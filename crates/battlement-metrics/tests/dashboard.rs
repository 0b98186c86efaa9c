//! The Grafana dashboard references only metric names the exporter emits.

mod support;

use battlement_breaker::CircuitBreaker;
use battlement_core::ComponentKind;
use battlement_health::HealthRegistry;
use battlement_metrics::{Format, MetricsService, CONVENTION};
use std::collections::BTreeSet;
use std::sync::Arc;
use support::{sample_names, EveryFamily};

fn strings(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match v {
                    serde_json::Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings(v, key, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, key, out)),
        _ => {}
    }
}

/// Every `battlement_…` identifier in the dashboard's queries.
fn referenced() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dashboards/battlement.json"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    strings(&json, "expr", &mut queries);
    strings(&json, "query", &mut queries);
    let mut names = BTreeSet::new();
    for q in &queries {
        let mut rest = q.as_str();
        while let Some(i) = rest.find("battlement_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

#[test]
fn every_metric_the_dashboard_references_is_emitted() {
    let health = HealthRegistry::new();
    // A real breaker (its own families, whatever it exports) and, for the names of the
    // convention table, components that report every family of it.
    CircuitBreaker::builder("payments")
        .registry(&health)
        .build()
        .unwrap();
    for (name, kind) in [
        ("payments", ComponentKind::Bulkhead),
        ("payments", ComponentKind::Retry),
        ("payments", ComponentKind::Timeout),
    ] {
        use battlement_core::HealthSink;
        health
            .register_component(
                Arc::new(EveryFamily {
                    name,
                    kind,
                    families: CONVENTION,
                }),
                false,
            )
            .unwrap();
    }
    let emitted = sample_names(&MetricsService::new(&health).render(Format::Text).unwrap());

    let referenced = referenced();
    assert!(referenced.len() >= 15, "{referenced:?}");
    let missing: Vec<_> = referenced.difference(&emitted).collect();
    assert!(
        missing.is_empty(),
        "the dashboard references {missing:?}, not emitted; emitted: {emitted:?}"
    );

    // And every panel area is there: breaker, bulkhead, retry, timeout, health.
    for area in [
        "circuit_breaker",
        "bulkhead",
        "retry",
        "timeout",
        "health_status",
    ] {
        assert!(
            referenced.iter().any(|n| n.contains(area)),
            "no {area} panel"
        );
    }
}
