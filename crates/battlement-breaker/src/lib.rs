//! A circuit breaker for Tower.
//!
//! A [`CircuitBreaker`] watches the outcomes of calls to a dependency and, when too many fail (or
//! are too slow), *opens*: calls are rejected at once with a typed [`BreakerOpen`] error instead
//! of piling onto a struggling service. After a wait it goes *half-open* and lets a few trial
//! calls through; their outcomes close it again or reopen it, with a longer wait.
//!
//! - Trip rules: failure rate over a sliding window (count- or time-based) with a minimum number
//!   of calls; slow-call rate; consecutive failures.
//! - Open wait grows with repeated trips (base × multiplier, capped) and resets on a close.
//! - Manual states: [`force_open`](CircuitBreaker::force_open) with a reason (or
//!   [`force_open_for`](CircuitBreaker::force_open_for) a time, then half-open),
//!   [`disable`](CircuitBreaker::disable), [`reset`](CircuitBreaker::reset).
//! - Outcomes come from a [`battlement_core::Classify`]r: a 503 can fail while a 404 is
//!   [ignored](battlement_core::Outcome::Ignored); see [Classification](#classification).
//! - Live reload: [`CircuitBreaker::reload`] applies new settings from the next decision, keeping
//!   the state and the calls in flight ([`CircuitBreakerBuilder::validate`] checks them first).
//! - Calls that started in an earlier state (generation) do not count toward the current one; a
//!   call whose future is dropped, or whose inner service panics in `call`, counts as nothing
//!   and returns its half-open permit.
//! - Metrics ([`CircuitBreaker::metrics`]), `tracing` events, typed [`BreakerEvent`]s through
//!   [`CircuitBreaker::subscribe`], and a [`HealthSnapshot`](battlement_core::HealthSnapshot) for the health
//!   registry ([`battlement_core::HealthSource`]), and metrics for exporters through
//!   [`HealthSource::export`](battlement_core::HealthSource::export): the families of
//!   [`FAMILIES`], pull-based, with an opt-in call-duration histogram
//!   ([`histogram`](CircuitBreakerBuilder::histogram)).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use battlement_breaker::{BreakerOpen, CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
//! use battlement_core::HttpClassifier;
//! use http::{Request, Response, StatusCode};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let breaker = CircuitBreaker::builder("inventory")
//!     .sliding_window(SlidingWindow::Count(20))
//!     .minimum_calls(4)
//!     .failure_rate_threshold(0.5)
//!     .fixed_open_wait(Duration::from_secs(10))
//!     .build()?;
//!
//! // An upstream that answers 503: the HTTP classifier counts 5xx and 429 as failures.
//! let svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(
//!             Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(()).unwrap(),
//!         )
//!     });
//!
//! for _ in 0..4 {
//!     let res = svc.clone().oneshot(Request::new(())).await?;
//!     assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! // Now calls fail fast, without reaching the upstream.
//! let err = svc.oneshot(Request::new(())).await.unwrap_err();
//! let open = err.downcast_ref::<BreakerOpen>().unwrap();
//! assert_eq!(open.name(), "inventory");
//! assert!(open.retry_after().unwrap() <= Duration::from_secs(10));
//! # Ok(())
//! # }
//! ```
//!
//! # Classification
//!
//! Which calls count as failures is decided by the layer's classifier:
//!
//! - **By default** ([`CircuitBreakerLayer::new`], [`CircuitBreaker::layer`], and the facade's
//!   `circuit_breaker(&breaker)`), the
//!   [`ResponseClassifier`](battlement_core::ResponseClassifier): an `Err` fails with the kind
//!   read from its source chain, and a response that arrived counts as its type says through
//!   [`ResponseOutcome`](battlement_core::ResponseOutcome). An `http::Response` fails for 5xx
//!   and 429 (other statuses succeed), and a gRPC trailers-only error (a `grpc-status` in the
//!   head, tonic's way of answering an error) by its code, so an axum handler that answers 500
//!   trips the breaker without naming a classifier. Std types count as successes. A response type
//!   that implements neither is a compile error naming `ResponseOutcome`: implement it
//!   (`impl ResponseOutcome for MyReply {}`) or pass a classifier.
//! - **gRPC statuses in trailers** (a stream that fails after sending messages) arrive after the
//!   response has been handed on, so the default path cannot see them. Pass
//!   `GrpcClassifier` (core feature `grpc`;
//!   `circuit_breaker_with(&breaker, GrpcClassifier)`): the response's body becomes a
//!   `GrpcBody` that holds the call ([`CallGuard`]) until the
//!   trailers, then records their `grpc-status`; a stream that ends without one counts as
//!   `UNKNOWN` (a failure), and a body dropped before its end counts as nothing.
//! - **Other rules** with [`CircuitBreakerLayer::classifier`]:
//!   `HttpClassifier` with other status sets, closures
//!   ([`classify_fn`](battlement_core::classify_fn)), or
//!   [`ResultClassifier`](battlement_core::ResultClassifier) (every `Ok` succeeds) for a foreign
//!   response type you cannot implement `ResponseOutcome` for. A classifier type of your own
//!   implements [`Classify`](battlement_core::Classify) and the marker
//!   [`AtOnce`](battlement_core::AtOnce).
//!
//! # Cost
//!
//! A closed breaker's call path takes no lock and allocates nothing: it reads the state word,
//! clones a reference from the calling thread's shard and, when the call ends, writes to that
//! thread's stripe of the window. Stripes and shards are cache-line padded, so calls on different
//! cores do not contend. The state machine is model-checked with loom:
//! `RUSTFLAGS="--cfg loom" cargo test -p battlement-breaker --release loom`.

mod breaker;
mod clock;
mod config;
mod direct;
mod event;
mod future;
mod guard;
mod layer;
mod metrics;
mod service;
mod state;
mod window;

pub use battlement_core::error::BreakerOpen;
pub use battlement_core::{CallError, ConfigError};
pub use breaker::CircuitBreaker;
pub use config::{CircuitBreakerBuilder, SlidingWindow, MAX_COUNT_WINDOW, MAX_TIME_BUCKETS};
pub use event::{BreakerEvent, TransitionReason};
pub use future::ResponseFuture;
pub use guard::CallGuard;
pub use layer::CircuitBreakerLayer;
pub use metrics::{CircuitBreakerMetrics, FAMILIES};
pub use service::CircuitBreakerService;
pub use state::State;

#[cfg(all(test, not(loom)))]
mod tests;
