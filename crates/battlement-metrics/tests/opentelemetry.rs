//! OpenTelemetry: observable instruments read through callbacks at collection, checked with the
//! SDK's in-memory exporter.
#![cfg(feature = "opentelemetry")]

mod support;

use battlement_core::export::Family;
use battlement_core::HealthStatus;
use battlement_health::HealthRegistry;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use std::time::Duration;
use support::{Fake, CALLS, IN_FLIGHT, LATENCY};

/// (instrument, sorted attributes) -> value, from the last collection.
fn collect(
    provider: &SdkMeterProvider,
    exporter: &InMemoryMetricExporter,
) -> Vec<(String, Vec<(String, String)>, f64)> {
    provider.force_flush().unwrap();
    let all = exporter.get_finished_metrics().unwrap();
    let last = all.last().expect("a collection");
    let mut out = Vec::new();
    for m in last.scope_metrics().flat_map(|s| s.metrics()) {
        let name = m.name().to_owned();
        let mut push = |attrs: Vec<(String, String)>, v: f64| {
            let mut attrs = attrs;
            attrs.sort();
            out.push((name.clone(), attrs, v));
        };
        let kv = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
            it.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect::<Vec<_>>()
        };
        match m.data() {
            AggregatedMetrics::U64(MetricData::Sum(s)) => {
                for p in s.data_points() {
                    push(kv(&mut p.attributes()), p.value() as f64);
                }
            }
            AggregatedMetrics::F64(MetricData::Sum(s)) => {
                for p in s.data_points() {
                    push(kv(&mut p.attributes()), p.value());
                }
            }
            AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                for p in g.data_points() {
                    push(kv(&mut p.attributes()), p.value());
                }
            }
            other => panic!("unexpected data for {name}: {other:?}"),
        }
    }
    out
}

fn get(
    values: &[(String, Vec<(String, String)>, f64)],
    name: &str,
    attrs: &[(&str, &str)],
) -> Option<f64> {
    let mut want: Vec<(String, String)> = attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    values
        .iter()
        .find(|(n, a, _)| n == name && *a == want)
        .map(|v| v.2)
}

#[test]
fn instruments_read_the_components_at_each_collection() {
    let health = HealthRegistry::new();
    let db = Fake::new("db");
    health.register(&db, true).unwrap();
    db.call(true, Duration::from_millis(3));
    db.call(false, Duration::from_millis(5));
    db.in_flight.store(4, std::sync::atomic::Ordering::Relaxed);

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let families: [&'static Family; 3] = [&CALLS, &IN_FLIGHT, &LATENCY];
    let instruments =
        battlement_metrics::opentelemetry::register(&provider.meter("test"), &health, &families);
    assert_eq!(
        instruments.names(),
        [
            "battlement_health_status",
            "battlement_other_calls",
            "battlement_other_in_flight",
            "battlement_other_latency_seconds_count",
            "battlement_other_latency_seconds_sum",
        ]
    );

    let v = collect(&provider, &exporter);
    assert_eq!(
        get(
            &v,
            "battlement_other_calls",
            &[("name", "db"), ("outcome", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            &v,
            "battlement_other_calls",
            &[("name", "db"), ("outcome", "failure")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(&v, "battlement_other_in_flight", &[("name", "db")]),
        Some(4.0)
    );
    assert_eq!(
        get(
            &v,
            "battlement_other_latency_seconds_count",
            &[("name", "db")]
        ),
        Some(2.0)
    );
    let sum = get(
        &v,
        "battlement_other_latency_seconds_sum",
        &[("name", "db")],
    )
    .unwrap();
    assert!((sum - 0.008).abs() < 1e-9, "{sum}");
    let status = |v: &[_], s: &str| {
        get(
            v,
            "battlement_health_status",
            &[("name", "db"), ("kind", "other"), ("status", s)],
        )
    };
    assert_eq!(status(&v, "pass"), Some(1.0));
    assert_eq!(status(&v, "fail"), Some(0.0));

    // The next collection reads the components again.
    db.call(true, Duration::from_millis(1));
    *db.status.lock().unwrap() = HealthStatus::Fail;
    let v = collect(&provider, &exporter);
    assert_eq!(
        get(
            &v,
            "battlement_other_calls",
            &[("name", "db"), ("outcome", "success")]
        ),
        Some(2.0)
    );
    assert_eq!(status(&v, "pass"), Some(0.0));
    assert_eq!(status(&v, "fail"), Some(1.0));
}

#[test]
fn a_family_listed_twice_builds_its_instruments_once() {
    static CALLS: Family = Family::counter("battlement_other_calls", "Calls.", "calls");
    static WAIT: Family = Family::histogram("battlement_other_wait_seconds", "Waits.", "seconds");
    let health = HealthRegistry::new();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
        .build();
    let families: Vec<&'static Family> = vec![&CALLS, &WAIT, &CALLS, &WAIT];
    let instruments =
        battlement_metrics::opentelemetry::register(&provider.meter("t"), &health, &families);
    let mut names = instruments.names().to_vec();
    names.sort();
    // the health status, the counter, and the histogram's count and sum: each once
    assert_eq!(
        names,
        [
            "battlement_health_status",
            "battlement_other_calls",
            "battlement_other_wait_seconds_count",
            "battlement_other_wait_seconds_sum"
        ]
    );
}
