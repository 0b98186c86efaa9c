//! Fallbacks for Tower: graceful degradation when a call fails.
//!
//! - [`FallbackLayer`] wraps a service: when a call's outcome is a failure (per a
//!   [`Classify`](battlement_core::Classify)r, by default
//!   [`ResultClassifier`](battlement_core::ResultClassifier), under which a rejection by a
//!   breaker, bulkhead or kill switch is a `Rejected` failure too), the answer comes from a
//!   fallback source instead:
//!   - a value ([`FallbackLayer::value`], cloned per fallback),
//!   - a function of the failure ([`FallbackLayer::from_fn`]), given a [`FallbackInput`]: the
//!     error, or the response the classifier counted as a failure (an HTTP 503) and its kind,
//!   - another service with the same request type ([`FallbackLayer::service`]; the request is
//!     cloned before the first call, so only this source needs `Req: Clone`),
//!   - or any [`FallbackSource`] of your own.
//! - [`FallbackChain`] is a service over an ordered list of members (primary, backup, last
//!   resort) with passive health per member: success rate over a window, a minimum number of
//!   calls, a threshold, a cool-down and a single trial call to come back. It reports which
//!   member is serving through [`HealthSource`](battlement_core::HealthSource) ([`ChainHandle`]),
//!   exports per-member metrics (the families of [`FAMILIES`]), publishes
//!   [`ChainEvent`]s, and fails with a typed [`AllFailed`] carrying every member's error.
//!
//! In the recommended stack the fallback layer sits outside the retry (see the project's
//! design): `probe → fallback → retry → breaker → bulkhead → timeout → service`, so it answers
//! only once the retries are spent or the breaker rejects.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use battlement_core::error::{BoxError, BreakerOpen};
//! use battlement_fallback::{FallbackInput, FallbackLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! // An inner stack whose breaker is open rejects at once with `BreakerOpen`.
//! let svc = ServiceBuilder::new()
//!     .layer(FallbackLayer::from_fn(|input: FallbackInput<String>| {
//!         match input.error().and_then(|e| e.downcast_ref::<BreakerOpen>()) {
//!             Some(open) => Ok(format!("recommendations paused ({})", open.name())),
//!             None => input.into_result(),
//!         }
//!     }).name("recommendations"))
//!     .service(service_fn(|_user: u64| async {
//!         Err::<String, BoxError>(Box::new(BreakerOpen::new("recs-api".into(), None)))
//!     }));
//!
//! assert_eq!(svc.oneshot(42).await.unwrap(), "recommendations paused (recs-api)");
//! # }
//! ```
//!
//! # Cost
//!
//! A call through [`FallbackService`] clones one `Arc` (and, for [`FallbackTo`], the request and
//! the fallback service); its future is the inner future in an enum. A call through a
//! [`FallbackChain`] reads one atomic state word per member it considers, takes a short
//! per-member lock when an attempt finishes (to update that member's window; no allocation),
//! and allocates only when a member fails (the error list).

mod chain;
mod config;
pub mod error;
mod event;
mod future;
mod health;
mod layer;
mod metrics;
mod service;
mod source;

pub use battlement_core::BoxError;
pub use battlement_core::ConfigError;
pub use chain::FallbackChain;
pub use config::FallbackChainBuilder;
pub use error::{AllFailed, FailedResponse, MemberUnavailable};
pub use event::ChainEvent;
pub use future::{ChainFuture, ResponseFuture};
pub use health::MemberState;
pub use layer::FallbackLayer;
pub use metrics::{ChainHandle, MemberStatus, FAMILIES};
pub use service::FallbackService;
pub use source::{
    FallbackFn, FallbackInput, FallbackSource, FallbackTo, FallbackValue, PendingFallback,
    PendingFn, PendingService, ServiceFallbackFuture,
};

#[cfg(test)]
mod tests;
