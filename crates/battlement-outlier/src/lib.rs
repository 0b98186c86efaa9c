//! Outlier detection for Tower endpoint pools, after Envoy's: endpoints of a pool balanced by
//! `tower::balance` (power-of-two-choices over a `tower::discover::Discover`) that fail are
//! ejected — the balancer stops choosing them — and readmitted once their ejection time has
//! passed.
//!
//! # The rules (Envoy's)
//!
//! - **Consecutive 5xx** ([`consecutive_5xx`](OutlierDetectorBuilder::consecutive_5xx),
//!   default 5): an endpoint that fails that many calls in a row is ejected. A failure is a
//!   5xx response, or an error that reached the endpoint (a refused or reset connection, a
//!   timeout), as Envoy counts locally originated errors by default.
//! - **Consecutive gateway failures**
//!   ([`consecutive_gateway_failures`](OutlierDetectorBuilder::consecutive_gateway_failures),
//!   off by default as in Envoy): 502, 503, 504, connection errors and timeouts in a row.
//! - **Success rate** ([`success_rate`](OutlierDetectorBuilder::success_rate), on): every
//!   [`interval`](OutlierDetectorBuilder::interval) (10 s), if at least
//!   [`success_rate_minimum_hosts`](OutlierDetectorBuilder::success_rate_minimum_hosts) (5)
//!   endpoints had at least
//!   [`success_rate_request_volume`](OutlierDetectorBuilder::success_rate_request_volume)
//!   (100) calls in the interval, those whose success rate is below `mean − stdev ×`
//!   [`success_rate_stdev_factor`](OutlierDetectorBuilder::success_rate_stdev_factor) (1.9)
//!   are ejected.
//! - **Ejection time**: [`base_ejection_time`](OutlierDetectorBuilder::base_ejection_time)
//!   (30 s) × the endpoint's ejection multiplier, at most
//!   [`max_ejection_time`](OutlierDetectorBuilder::max_ejection_time) (300 s). The multiplier
//!   grows by one with each ejection, so an endpoint that fails again soon after it is back is
//!   ejected for longer; it shrinks by one at each interval once the endpoint has been back for
//!   a base ejection time without being ejected again.
//! - **Maximum ejected** ([`max_ejection_percent`](OutlierDetectorBuilder::max_ejection_percent),
//!   10 %): a rule that would eject more is refused (counted as `overflow`), except that one
//!   endpoint may always be ejected
//!   ([`always_eject_one_host`](OutlierDetectorBuilder::always_eject_one_host), on by default,
//!   as Envoy long behaved); never the last one in service (see the builder).
//! - **Readmission**: an ejected endpoint is back the moment its ejection time has passed (a
//!   timer wakes the balancer's task), not at the next interval as in Envoy; its runs of
//!   failures start again from zero.
//!
//! What counts as a failure is a [`Verdict`] from a classifier ([`ClassifyEndpoint`]): by
//! default [`EndpointClassifier`] (an `http::Response` by status, errors by the kind
//! battlement-core reads from their source chain); [`Outcomes`] adapts any battlement-core
//! `Classify`.
//!
//! # How ejection reaches the balancer (and why this way)
//!
//! Each endpoint's service is wrapped in an [`OutlierService`] whose `poll_ready` is
//! *pending* while the endpoint is ejected. tower 0.5's `Balance` keeps its endpoints in a
//! ready cache: power-of-two-choices picks only among ready services, checks the one it picked
//! again right before the call (a service that became pending moves back to the pending set and
//! another is picked), and polls pending services in the background with the balancer's task's
//! waker. So an ejected endpoint is never chosen, the wrapper's timer wakes the balancer when
//! the ejection ends, and the endpoint is back without any change to the `Discover`.
//!
//! The alternatives were worse: emitting `Change::Remove`/`Change::Insert` from a `Discover`
//! wrapper would need the detector to take the service away from the balancer (which owns it)
//! and hand it back later, losing its in-flight state; and a `Load` of "maximum" would still
//! let power-of-two-choices pick an ejected endpoint whenever both of its two random choices
//! were ejected.
//!
//! [`OutlierLayer`] is a layer over the `Discover`: its [`OutlierDiscover`] wraps each
//! inserted endpoint (labelled with its key, by `Display`); [`OutlierDetector::endpoint`]
//! wraps one service by hand. `Load` passes through, so `tower::load`'s `PendingRequests` or
//! `PeakEwma` go on either side.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_outlier::OutlierDetector;
//! use std::time::Duration;
//! use tower::balance::p2c::Balance;
//! use tower::discover::ServiceList;
//! use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! let detector = OutlierDetector::builder("backends")
//!     .consecutive_5xx(3)
//!     .max_ejection_percent(50)
//!     .build()
//!     .unwrap();
//! // Four endpoints; endpoint 0 answers 503 to everything.
//! let endpoints = (0..4).map(|i| {
//!     service_fn(move |_: ()| async move {
//!         let status = if i == 0 { 503 } else { 200 };
//!         Ok::<_, std::io::Error>(http::Response::builder().status(status).body(i).unwrap())
//!     })
//! });
//! let discover = detector.layer().layer(ServiceList::new(endpoints));
//! let mut pool = Balance::new(PendingRequestsDiscover::new(discover, CompleteOnResponse::default()));
//!
//! let mut failed = 0;
//! for _ in 0..100 {
//!     let res = pool.ready().await.unwrap().call(()).await.unwrap();
//!     failed += usize::from(res.status() == 503);
//! }
//! assert!(failed <= 3, "three failures eject the endpoint; then it is never chosen");
//! assert!(detector.is_ejected("0"));
//! assert_eq!(detector.metrics().ejected, 1);
//!
//! // After its ejection time (30 s, the default base) it is back in the pool.
//! tokio::time::advance(Duration::from_secs(30)).await;
//! pool.ready().await.unwrap();
//! assert!(!detector.is_ejected("0"));
//! # }
//! ```
//!
//! # Observability
//!
//! [`OutlierDetector::metrics`] and [`OutlierDetector::endpoints`]; a health snapshot (state
//! `ejecting`, status `warn`, while an endpoint is ejected, naming each with its reason,
//! ejection count and time left; never `fail`, since the pool still serves); metric families
//! ([`FAMILIES`]: endpoints, ejected, ejections by reason, refused ejections, readmissions);
//! typed events ([`OutlierEvent`]) and `tracing` events. The builder registers the detector
//! with health registries (non-critical by default).

mod classify;
mod config;
mod detector;
mod event;
mod future;
mod layer;
mod metrics;
mod service;

pub use battlement_core::ConfigError;
pub use classify::{
    status_verdict, verdict_fn, verdict_of, ClassifyEndpoint, EndpointClassifier, EndpointResponse,
    Outcomes, Verdict, VerdictFn,
};
pub use config::{
    OutlierDetectorBuilder, DEFAULT_BASE_EJECTION_TIME, DEFAULT_CONSECUTIVE_5XX, DEFAULT_INTERVAL,
    DEFAULT_MAX_EJECTION_PERCENT, DEFAULT_MAX_EJECTION_TIME, DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS,
    DEFAULT_SUCCESS_RATE_REQUEST_VOLUME, DEFAULT_SUCCESS_RATE_STDEV_FACTOR,
};
pub use detector::{EndpointMetrics, OutlierDetector, Reason};
pub use event::OutlierEvent;
pub use future::ResponseFuture;
pub use layer::{OutlierDiscover, OutlierLayer};
pub use metrics::{OutlierMetrics, FAMILIES};
pub use service::OutlierService;

#[cfg(test)]
mod tests;
