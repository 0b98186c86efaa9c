//! The JSON report matches the shape documented in the crate docs.

use crate::test_util::Fake;
use crate::{CheckResult, Detail, HealthCheck, HealthRegistry};
use battlement_core::{ComponentKind, HealthStatus, Metric};
use serde_json::{Map, Value};

/// The ```json block of the crate docs.
fn documented_example() -> Value {
    let src = include_str!("lib.rs");
    let mut lines = src
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l));
    let mut json = String::new();
    for line in lines.by_ref() {
        if line.trim() == "```json" {
            break;
        }
    }
    for line in lines {
        if line.trim() == "```" {
            break;
        }
        json.push_str(line);
        json.push('\n');
    }
    serde_json::from_str(&json).expect("the documented example is valid JSON")
}

/// The registry the documented example describes.
async fn example_registry() -> HealthRegistry {
    let registry = HealthRegistry::builder()
        .service_id("checkout")
        .description("checkout service")
        .build()
        .unwrap();
    let payments = Fake::new("payments", ComponentKind::CircuitBreaker);
    payments.set("open", HealthStatus::Fail);
    payments.set_metrics(vec![
        Metric::new("failure_rate", 0.62, "ratio"),
        Metric::new("calls_rejected", 12.0, "calls"),
    ]);
    registry.register(&payments, true).unwrap();
    let pool = Fake::new("db-pool", ComponentKind::Bulkhead);
    pool.set("saturated", HealthStatus::Warn);
    pool.set_metrics(vec![
        Metric::new("in_flight", 16.0, "calls"),
        Metric::new("queued", 4.0, "calls"),
        Metric::new("rejected_full", 2.0, "calls"),
    ]);
    pool.set_message("bulkhead `db-pool` is saturated: 16/16 calls in flight, 4/8 queued");
    registry.register(&pool, true).unwrap();
    registry
        .add_check(
            HealthCheck::builder("disk", || async {
                CheckResult::pass().with_value(0.42, "ratio")
            })
            .critical(false)
            .build()
            .unwrap(),
        )
        .unwrap();
    registry.run_checks().await;
    registry
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn keys(m: &Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = m.keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// An RFC 3339 UTC time with milliseconds, as the report writes it.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && s.ends_with('Z')
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

/// Checks the documented types of one `checks` entry.
fn assert_entry_types(key: &str, e: &Map<String, Value>) {
    let (component, measurement) = key.split_once(':').expect("keys are component:measurement");
    assert_eq!(e["componentId"], component, "{key}");
    assert_eq!(kind(&e["componentType"]), "string", "{key}");
    assert_eq!(kind(&e["critical"]), "boolean", "{key}");
    assert!(
        ["pass", "warn", "fail"].contains(&e["status"].as_str().unwrap()),
        "{key}"
    );
    let (value, unit) = (kind(&e["observedValue"]), kind(&e["observedUnit"]));
    if measurement == "state" {
        assert_eq!((value, unit), ("string", "null"), "{key}");
    } else {
        assert!(value == "number" || value == "null", "{key}");
        assert!(unit == "string" || unit == "null", "{key}");
    }
    assert!(is_rfc3339(e["time"].as_str().unwrap()), "{key}");
    if e["status"] == "pass" {
        assert!(e.get("output").is_none(), "{key}: no output when passing");
    } else {
        assert_eq!(kind(&e["output"]), "string", "{key}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_report_matches_the_documented_example() {
    let doc = documented_example();
    let registry = example_registry().await;
    let report = registry.report();
    let real: Value = serde_json::from_slice(&report.to_json(Detail::Full)).unwrap();

    let (doc, real) = (doc.as_object().unwrap(), real.as_object().unwrap());
    assert_eq!(keys(doc), keys(real), "top-level keys");
    for (k, v) in doc {
        assert_eq!(kind(v), kind(&real[k]), "type of `{k}`");
        if k != "time" && k != "checks" {
            assert_eq!(v, &real[k], "`{k}`");
        }
    }
    assert!(is_rfc3339(real["time"].as_str().unwrap()));

    let (doc_checks, real_checks) = (
        doc["checks"].as_object().unwrap(),
        real["checks"].as_object().unwrap(),
    );
    assert_eq!(keys(doc_checks), keys(real_checks), "checks keys");
    for (key, doc_entries) in doc_checks {
        let (d, r) = (
            doc_entries.as_array().unwrap(),
            real_checks[key].as_array().unwrap(),
        );
        assert_eq!((d.len(), r.len()), (1, 1), "{key}");
        let (d, r) = (d[0].as_object().unwrap(), r[0].as_object().unwrap());
        let mut documented = vec![
            "componentId",
            "componentType",
            "critical",
            "observedUnit",
            "observedValue",
            "status",
            "time",
        ];
        if d["status"] != "pass" {
            documented.push("output");
            documented.sort_unstable();
        }
        assert_eq!(keys(d), documented, "{key}: documented keys");
        assert_eq!(keys(d), keys(r), "{key}");
        assert_entry_types(key, d);
        assert_entry_types(key, r);
        for (field, value) in d {
            // Times and the measured duration differ from run to run.
            if field == "time" || key == "disk:mean_duration" && field == "observedValue" {
                continue;
            }
            assert_eq!(value, &r[field], "{key}.{field}");
        }
    }

    // Readiness: the same top level, only the `:state` entries.
    let ready: Value = serde_json::from_slice(&report.to_json(Detail::Components)).unwrap();
    let mut ready_keys = keys(ready["checks"].as_object().unwrap());
    ready_keys.sort_unstable();
    assert_eq!(
        ready_keys,
        ["db-pool:state", "disk:state", "payments:state"]
    );
    assert_eq!(
        keys(ready.as_object().unwrap()),
        keys(real),
        "readiness top level"
    );
}
