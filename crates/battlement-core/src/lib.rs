//! The shared vocabulary of battlement, resilience middleware for Tower.
//!
//! Every battlement layer speaks the same small language, defined here:
//!
//! - [`Outcome`] and [`FailureKind`]: how a finished call counts.
//! - [`Classify`]: maps a call's `Result<&Res, &E>` to an [`Outcome`], so "a 503 is a failure, a
//!   404 is not" is said once for the breaker, the retry policy and the health probe. Built-ins:
//!   [`ResponseClassifier`], [`ResultClassifier`], [`HttpClassifier`] (feature `http`),
//!   [`GrpcClassifier`] (feature `grpc`), [`TowerHttpClassifier`] (feature `tower-http`), and
//!   closures ([`classify_fn`]).
//! - [`ResponseOutcome`]: how a response that arrived counts, implemented by the response type
//!   (`http::Response` by status, a gRPC trailers-only response by its `grpc-status`, std types
//!   as successes). [`ResponseClassifier`] reads it; it is the breaker's and the health probe's
//!   default, so an HTTP service's 500s are failures without naming a classifier.
//! - [`Settle`], [`AtOnce`], [`Finish`]: how the breaker and the probe apply a classifier — at
//!   once, or (with [`GrpcClassifier`] on an HTTP response) at the end of the body, from the
//!   trailers' `grpc-status`.
//! - [`error`]: the typed, downcastable errors layers return ([`BreakerOpen`](error::BreakerOpen),
//!   [`BulkheadFull`](error::BulkheadFull), [`BulkheadTimeout`](error::BulkheadTimeout),
//!   [`Elapsed`](error::Elapsed), [`Halted`](error::Halted), [`RateLimited`](error::RateLimited),
//!   [`Throttled`](error::Throttled))
//!   and [`ConfigError`], which every
//!   builder returns for a bad setting.
//! - [`HealthSource`] and [`HealthSnapshot`]: what stateful components report to the health registry.
//! - [`Registration`]: a component's (kind, name), the health registries it joins and whether
//!   it is critical there (one default per kind, [`ComponentKind::critical_by_default`]); every
//!   builder keeps one, and scopes its [`ConfigError`]s with it.
//! - [`event`]: the bounded channel ([`EventChannel`](event::EventChannel)) components publish
//!   typed events on, whose capacity it checks into a [`ConfigError`].
//! - Classification reads an error's source chain ([`failure_kind`](error::failure_kind)), never
//!   its text.
//! - [`stripe`]: per-thread, cache-line-padded cells for state every call writes (thread index,
//!   stripe count and cap, [`StripedCounter`](stripe::StripedCounter)), with the atomics of
//!   [`sync`], which are loom's under `--cfg loom`.
//!
//! # Time
//!
//! Components measure durations (waits, timeouts, windows, latencies) with
//! `tokio::time::Instant`, so tests drive them with `tokio::time::pause()` and never sleep for
//! real; timestamps meant for people (health report times, a kill switch's `since`, an HTTP-date
//! `Retry-After`) are wall-clock `SystemTime`. The one exception, chosen for speed: on its call
//! path the circuit breaker reads the CPU's time-stamp counter (through `quanta`) for call
//! latencies (slow calls, latency metrics) and time-window buckets, which paused tokio time does
//! not move. Its feature `tokio-time` switches that clock to tokio's; the facade `battlement`
//! exposes it as the feature `test-util`, for tests with paused time. The breaker's open wait
//! and half-open limit always use tokio's clock.
//!
//! # Example
//!
//! ```
//! use battlement_core::{error::{BoxError, BreakerOpen}, Classify, ResultClassifier, FailureKind, Outcome};
//!
//! let err: BoxError = Box::new(BreakerOpen::new("upstream".into(), None));
//! let outcome = ResultClassifier.classify(Err::<&(), _>(&err));
//! assert_eq!(outcome, Outcome::Failure(FailureKind::Rejected));
//! // The error keeps its type: callers downcast it.
//! assert!(err.downcast_ref::<BreakerOpen>().is_some());
//! ```

mod classify;
mod direct;
pub mod error;
pub mod event;
pub mod export;
#[cfg(feature = "grpc")]
mod grpc;
pub mod handle;
#[cfg(feature = "http")]
mod http;
pub mod observe;
mod outcome;
mod registration;
mod response;
mod settle;
pub mod stripe;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tower-http")]
mod tower_http;

pub use classify::{
    classify_fn, classify_ok, status_failure_kind, Classify, FnClassifier, OkClassifier,
    ResultClassifier,
};
pub use direct::CallError;
pub use error::{AsDynError, BoxError, ConfigError};
#[cfg(feature = "grpc")]
pub use grpc::{code_outcome as grpc_code_outcome, GrpcBody, GrpcClassifier};
#[cfg(feature = "http")]
pub use http::{is_idempotent, HttpClassifier, StatusSet};
pub use observe::{
    kind_of, register_all_with, register_with, ComponentKind, HealthSink, HealthSnapshot,
    HealthSource, HealthStatus, Metric,
};
pub use outcome::{FailureKind, Outcome};
pub use registration::Registration;
pub use response::{ResponseClassifier, ResponseOutcome};
pub use settle::{AtOnce, Finish, Settle};
#[cfg(feature = "tower-http")]
pub use tower_http::TowerHttpClassifier;

/// Defines `get_ref`, `get_mut` and `into_inner` for a service whose wrapped service is the
/// field `inner` of type `S` (tower-http's idiom). Used inside an `impl<S, ..> XService<S, ..>`.
#[doc(hidden)]
#[macro_export]
macro_rules! define_inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes this service, returning the wrapped one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
