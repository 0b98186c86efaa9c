//! Health for Tower services: a registry of components and custom checks, a background monitor,
//! a passive probe layer, aggregation, and an `application/health+json` HTTP endpoint.
//!
//! - [`HealthRegistry`] (cheap `Clone`) holds components identified by (kind, name), each
//!   critical or not. Breakers, bulkheads and probes register themselves when their builder is
//!   given the registry (it implements [`battlement_core::HealthSink`]), or with
//!   [`HealthRegistry::register`]; the registry reads them through
//!   [`battlement_core::HealthSource`] and depends on no pattern crate. A second component of the
//!   same kind and name is a [`ConfigError`](battlement_core::ConfigError) from the `build()`
//!   that registers it, never a silent replacement; a breaker and a bulkhead may share a name.
//! - [`HealthCheck`]: an async function returning a [`CheckResult`], with an interval, a
//!   timeout (a run that hangs past it fails with a timeout message), a `critical` flag and a
//!   `startup` flag (the startup view waits for it to pass once). A panicking check fails; it
//!   does not stop the monitor.
//! - [`HealthRegistry::spawn_monitor`] runs each check on its interval, concurrently, keeps a
//!   bounded [history](HealthRegistry::history) and [counters](HealthRegistry::check_metrics) per
//!   component, re-reads breakers and bulkheads every refresh interval, and optionally
//!   [persists](HealthRegistryBuilder::persist_to) the report to a file atomically. The
//!   [`MonitorHandle`] stops it on drop or [`shutdown`](MonitorHandle::shutdown).
//! - [`HealthProbeLayer`] records the outcomes of any service (classified by a
//!   [`battlement_core::Classify`]r) into a [`HealthProbe`]: success rate and latency over a
//!   sliding time window; it fails below a success-rate threshold once enough calls were seen.
//!   Its call path is lock-free and allocates nothing.
//! - Aggregation: `fail` if a critical component fails (a critical check failing, a critical
//!   breaker open or forced open); `warn` if a non-critical component fails or any component
//!   warns (a half-open breaker, a saturated or rejecting bulkhead); `pass` otherwise, with
//!   [`StatusCounts`]; [`HealthRegistry::subscribe`] is a `tokio::sync::watch` of the
//!   [`Aggregate`] (each component's [`ComponentStatus`]), and [`HealthRegistry::report`] the full
//!   [`HealthReport`] (each component's snapshot, a [`ComponentReport`]).
//! - [`HealthService`]: a `tower::Service<http::Request<B>>` (`Clone`, `Error = Infallible`)
//!   serving the paths probes expect: `/livez` (liveness: the process and the monitor only,
//!   never a dependency), `/readyz` and `/readyz/<component>`, `/healthz`, `/startupz`, and the
//!   same views at `/health/live`, `/health/ready`, `/health`, `/health/startup`; kube-style
//!   `?verbose` and `?exclude=`; 404 for any other path. axum mounts it with
//!   `Router::route_service` or `nest_service`, hyper serves it directly; [`View`] names one
//!   view to serve at a path of your own.
//! - Feature `grpc`: [`grpc::GrpcHealthBridge`] drives `tonic-health`'s `HealthReporter`
//!   (SERVING / NOT_SERVING, overall and per component).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use battlement_health::{CheckResult, HealthCheck, HealthProbe, HealthRegistry};
//! use http::{Request, StatusCode};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let registry = HealthRegistry::builder().service_id("checkout").build()?;
//!
//! // Passive health of a dependency without a breaker: the outcomes of the calls made to it.
//! let probe = HealthProbe::builder("geo-api")
//!     .minimum_calls(3)
//!     .fail_below(0.5)
//!     .registry(&registry) // critical by default
//!     .build()?;
//! let geo = ServiceBuilder::new()
//!     .layer(probe.layer())
//!     .service_fn(|city: &'static str| async move {
//!         match city {
//!             "atlantis" => Err(std::io::Error::other("no such city")),
//!             _ => Ok((48.86, 2.35)),
//!         }
//!     });
//!
//! // A custom check, not critical: when it fails the service is degraded, not down.
//! registry.add_check(
//!     HealthCheck::builder("disk", || async { CheckResult::pass().with_value(0.42, "ratio") })
//!         .interval(Duration::from_secs(30))
//!         .timeout(Duration::from_secs(2))
//!         .critical(false)
//!         .build()?,
//! ).unwrap();
//! let monitor = registry.spawn_monitor();
//!
//! geo.clone().oneshot("paris").await?;
//! assert!(geo.clone().oneshot("atlantis").await.is_err());
//! assert!(geo.oneshot("atlantis").await.is_err());
//!
//! // One success in three: the critical probe fails, so readiness answers 503.
//! let health = registry.service();
//! let res = health.oneshot(Request::get("/readyz").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(res.headers()["content-type"], "application/health+json");
//! monitor.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # The JSON report
//!
//! [`HealthService`] (and [`HealthReport::to_json`]) render the report in the
//! `application/health+json` shape (draft-inadarei-api-health-check):
//!
//! - `status`: `"pass"`, `"warn"` or `"fail"`, the aggregate. HTTP 200 for pass and warn, 503
//!   for fail.
//! - `serviceId`, `description` (strings): when set on the [builder](HealthRegistryBuilder).
//! - `output` (string): which components fail and warn; only when the status is not `pass`.
//! - `time` (string, RFC 3339): when the report was made.
//! - `summary` (object of numbers): `total`, `pass`, `warn`, `fail`, counting each component's
//!   own status.
//! - `checks` (object): keyed `<component>:<measurement>`; each value is an array of one object
//!   with:
//!   - `componentId` (string): the component's name;
//!   - `componentType` (string): `circuit_breaker`, `bulkhead`, `probe`, `check`, …;
//!   - `critical` (boolean);
//!   - `status` (string): the component's own status;
//!   - `observedValue`: a string for the `<component>:state` entry (the breaker's `open`, the
//!     bulkhead's `saturated`, a check's `passing` / `failing` / `timed_out` / `panicked` /
//!     `pending`), a number for every metric (`null` if not finite);
//!   - `observedUnit` (string or `null`): `ratio`, `ms`, `calls`, `count`, …; `null` for the
//!     state;
//!   - `time` (string, RFC 3339): when the value was observed (a check's last run);
//!   - `output` (string): only when the component does not pass (omitted for `pass`, as the
//!     format asks): its message, else ``<kind> `<name>` is <state>``.
//!
//!   Components of different kinds may share a name (a breaker and a bulkhead both called
//!   `upstream`): their entries share the key's array, one object per component, told apart by
//!   `componentType`.
//!
//! `/healthz` (`/health`) has every metric of every component (a breaker's rates and counts, a
//! bulkhead's in-flight, queued and rejected calls and free permits, a check's observed value
//! and run counters); `/readyz` (`/health/ready`) only the `<component>:state` entries;
//! `/livez` (`/health/live`) only `status` (and `output` when failing); `/startupz`
//! (`/health/startup`) `status`, `output` naming the startup checks still waiting, `time`, and
//! one `<check>:state` entry per startup check (`observedValue` `started`, else the check's
//! state). With [`HealthService::details`]`(false)` every body is `{"status":"…"}`.
//!
//! An example `/health` response (HTTP 503: the critical breaker is open):
//!
//! ```json
//! {
//!   "status": "fail",
//!   "serviceId": "checkout",
//!   "description": "checkout service",
//!   "output": "failing: payments; warning: db-pool",
//!   "time": "2024-05-01T12:00:00.250Z",
//!   "summary": { "total": 3, "pass": 1, "warn": 1, "fail": 1 },
//!   "checks": {
//!     "payments:state": [{ "componentId": "payments", "componentType": "circuit_breaker", "critical": true, "status": "fail", "observedValue": "open", "observedUnit": null, "time": "2024-05-01T12:00:00.250Z", "output": "circuit breaker `payments` is open" }],
//!     "payments:failure_rate": [{ "componentId": "payments", "componentType": "circuit_breaker", "critical": true, "status": "fail", "observedValue": 0.62, "observedUnit": "ratio", "time": "2024-05-01T12:00:00.250Z", "output": "circuit breaker `payments` is open" }],
//!     "payments:calls_rejected": [{ "componentId": "payments", "componentType": "circuit_breaker", "critical": true, "status": "fail", "observedValue": 12, "observedUnit": "calls", "time": "2024-05-01T12:00:00.250Z", "output": "circuit breaker `payments` is open" }],
//!     "db-pool:state": [{ "componentId": "db-pool", "componentType": "bulkhead", "critical": true, "status": "warn", "observedValue": "saturated", "observedUnit": null, "time": "2024-05-01T12:00:00.250Z", "output": "bulkhead `db-pool` is saturated: 16/16 calls in flight, 4/8 queued" }],
//!     "db-pool:in_flight": [{ "componentId": "db-pool", "componentType": "bulkhead", "critical": true, "status": "warn", "observedValue": 16, "observedUnit": "calls", "time": "2024-05-01T12:00:00.250Z", "output": "bulkhead `db-pool` is saturated: 16/16 calls in flight, 4/8 queued" }],
//!     "db-pool:queued": [{ "componentId": "db-pool", "componentType": "bulkhead", "critical": true, "status": "warn", "observedValue": 4, "observedUnit": "calls", "time": "2024-05-01T12:00:00.250Z", "output": "bulkhead `db-pool` is saturated: 16/16 calls in flight, 4/8 queued" }],
//!     "db-pool:rejected_full": [{ "componentId": "db-pool", "componentType": "bulkhead", "critical": true, "status": "warn", "observedValue": 2, "observedUnit": "calls", "time": "2024-05-01T12:00:00.250Z", "output": "bulkhead `db-pool` is saturated: 16/16 calls in flight, 4/8 queued" }],
//!     "disk:state": [{ "componentId": "disk", "componentType": "check", "critical": false, "status": "pass", "observedValue": "passing", "observedUnit": null, "time": "2024-05-01T11:59:58.000Z" }],
//!     "disk:value": [{ "componentId": "disk", "componentType": "check", "critical": false, "status": "pass", "observedValue": 0.42, "observedUnit": "ratio", "time": "2024-05-01T11:59:58.000Z" }],
//!     "disk:runs": [{ "componentId": "disk", "componentType": "check", "critical": false, "status": "pass", "observedValue": 1, "observedUnit": "count", "time": "2024-05-01T11:59:58.000Z" }],
//!     "disk:failures": [{ "componentId": "disk", "componentType": "check", "critical": false, "status": "pass", "observedValue": 0, "observedUnit": "count", "time": "2024-05-01T11:59:58.000Z" }],
//!     "disk:consecutive_failures": [{ "componentId": "disk", "componentType": "check", "critical": false, "status": "pass", "observedValue": 0, "observedUnit": "count", "time": "2024-05-01T11:59:58.000Z" }],
//!     "disk:mean_duration": [{ "componentId": "disk", "componentType": "check", "critical": false, "status": "pass", "observedValue": 1.5, "observedUnit": "ms", "time": "2024-05-01T11:59:58.000Z" }]
//!   }
//! }
//! ```
//!
//! (`/readyz` for the same state has the same top level and only the three `:state`
//! entries.) The example above is checked against a real report by the crate's tests.

mod check;
mod component;
mod config;
#[cfg(feature = "grpc")]
pub mod grpc;
mod monitor;
mod persist;
mod probe;
mod registry;
mod report;
mod service;
mod time;
mod window;

pub use check::{
    CheckResult, CheckRun, HealthCheck, HealthCheckBuilder, DEFAULT_INTERVAL, DEFAULT_TIMEOUT,
};
pub use component::{CheckMetrics, HistoryEntry};
pub use config::{HealthProbeBuilder, HealthRegistryBuilder, MAX_PROBE_BUCKETS};
pub use monitor::MonitorHandle;
pub use probe::{
    HealthProbe, HealthProbeLayer, HealthProbeMetrics, HealthProbeService, ProbeRecord,
    ResponseFuture, FAMILIES,
};
pub use registry::{Aggregate, ComponentStatus, HealthRegistry, RegisteredComponent, StatusCounts};
pub use report::{ComponentReport, Detail, HealthReport};
pub use service::{HealthService, View, HEALTH_JSON};

#[cfg(test)]
mod shape_tests;
#[cfg(test)]
mod test_util;
