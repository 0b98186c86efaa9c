//! Pull-based metrics export for Battlement: every component registered with a
//! [`HealthRegistry`](battlement_health::HealthRegistry) is read at collection time, through
//! [`HealthSource::export`](battlement_core::HealthSource::export), so export costs the call
//! paths nothing (they write their own striped counters; nothing else).
//!
//! - [`MetricsService`]: a `tower::Service` serving the Prometheus text format 0.0.4 or
//!   OpenMetrics (by `Accept`) at the path it is mounted on, built on `prometheus-client`
//!   ([`BattlementCollector`] walks the registry at each scrape).
//! - Feature `opentelemetry`: [`opentelemetry::register`] puts observable instruments on a
//!   user's `Meter`, read through callbacks at each collection.
//! - Feature `metrics`: [`facade::FacadeExporter`] sets the `metrics` crate's counters and
//!   gauges on a tick.
//!
//! Every exporter reports, for each component, [`HEALTH_STATUS`]
//! (`battlement_health_status{kind, name, status}`: 1 for its status, 0 for the others) and
//! whatever the component exports, adding the component's `name` label to each value. Family
//! names follow `battlement_<kind>_<what>`, counters carry no `_total` (the Prometheus encoders
//! add it) and durations are in seconds. The facade's `battlement::metrics::families()` lists every
//! family the components report, and the README's *Metrics* section tables them.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use battlement_core::export::{Family, MetricsVisitor};
//! use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
//! use battlement_health::HealthRegistry;
//! use battlement_metrics::{Format, MetricsService};
//!
//! static CALLS: Family = Family::counter("battlement_other_calls", "Calls, by outcome.", "calls");
//!
//! #[derive(Clone)]
//! struct Db;
//! impl HealthSource for Db {
//!     fn name(&self) -> &str { "db" }
//!     fn snapshot(&self) -> HealthSnapshot {
//!         HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass)
//!     }
//!     fn export(&self, out: &mut dyn MetricsVisitor) {
//!         out.counter(&CALLS, &[("outcome", "success")], 42);
//!     }
//! }
//!
//! let health = HealthRegistry::new();
//! health.register(&Db, true).unwrap();
//! let metrics = MetricsService::new(&health);
//! // axum: Router::new().route_service("/metrics", metrics.clone())
//! let text = metrics.render(Format::Text).unwrap();
//! assert!(text.contains("# TYPE battlement_other_calls_total counter\n"));
//! assert!(text.contains(r#"battlement_other_calls_total{name="db",outcome="success"} 42"#));
//! # }
//! ```

mod prometheus;
mod walk;

#[cfg(feature = "metrics")]
pub mod facade;
#[cfg(feature = "opentelemetry")]
pub mod opentelemetry;

pub use prometheus::{
    sample_names, BattlementCollector, Format, MetricsService, OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
};
pub use walk::HEALTH_STATUS;
