//! The Grafana dashboard (`dashboards/battlement.json`) references only metric names that a
//! scrape of real components emits, and the README's metric table lists every family.

use battlement::breaker::CircuitBreaker;
use battlement::bulkhead::Bulkhead;
use battlement::health::HealthRegistry;
use battlement::metrics::{families, sample_names, Format, MetricsService};
use battlement::retry::RetryPolicy;
use battlement::timeout::TimeoutLayer;
use std::collections::BTreeSet;
use std::time::Duration;

/// Every string under `key` anywhere in `v`.
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

/// Every `battlement_…` identifier in `text`.
fn identifiers(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("battlement_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn dashboard_names() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/battlement.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    strings(&json, "expr", &mut queries);
    identifiers(&queries.join("\n"))
}

/// The sample names of a text-format scrape (`name{labels} value` lines).
fn scraped_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_metric_the_dashboard_references_is_emitted_by_real_components() {
    let health = HealthRegistry::new();
    let _breaker = CircuitBreaker::builder("payments")
        .histogram(true)
        .registry(&health)
        .build()
        .unwrap();
    let _bulkhead = Bulkhead::builder("payments")
        .histogram(true)
        .registry(&health)
        .build()
        .unwrap();
    let _retry = RetryPolicy::builder()
        .name("payments")
        .budget(0.1, 10)
        .registry(&health)
        .build()
        .unwrap();
    let _timeout = TimeoutLayer::builder("payments")
        .limit(Duration::from_secs(1))
        .registry(&health)
        .build()
        .unwrap();
    let text = MetricsService::new(&health).render(Format::Text).unwrap();
    let emitted = scraped_names(&text);

    let referenced = dashboard_names();
    assert!(referenced.len() >= 15, "{referenced:?}");
    let missing: Vec<_> = referenced.difference(&emitted).collect();
    assert!(
        missing.is_empty(),
        "the dashboard references {missing:?}, which no component emits; emitted: {emitted:?}"
    );
    for area in [
        "circuit_breaker",
        "bulkhead",
        "retry",
        "timeout",
        "health_status",
    ] {
        assert!(
            referenced.iter().any(|n| n.contains(area)),
            "the dashboard has no {area} panel"
        );
    }
}

#[test]
fn the_readme_metric_table_lists_every_family_and_nothing_else() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("| metric | type |")
        .expect("README has the metric table");
    let table: String = readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    let listed = identifiers(&table);
    let mut expected = BTreeSet::new();
    for family in families() {
        // the table names each family as Prometheus shows it (counters with `_total`,
        // histograms by their base name)
        let names = sample_names(family);
        let shown = names[0]
            .strip_suffix("_bucket")
            .unwrap_or(&names[0])
            .to_owned();
        expected.insert(shown);
    }
    let missing: Vec<_> = expected.difference(&listed).collect();
    let mut extra: Vec<_> = listed.difference(&expected).collect();
    // The configuration's family is in the table; its feature is not in `full`.
    if cfg!(not(feature = "config")) {
        extra.retain(|name| !name.starts_with("battlement_config_"));
    }
    // Likewise the fleet's (feature `fleet`).
    if cfg!(not(feature = "fleet")) {
        extra.retain(|name| !name.starts_with("battlement_fleet_"));
    }
    assert!(missing.is_empty(), "the README's table misses {missing:?}");
    assert!(
        extra.is_empty(),
        "the README's table lists {extra:?}, which no component reports"
    );
}
