//! Client-side adaptive throttling for Tower (outbound), after Google's SRE book ("Handling
//! Overload"): while a dependency refuses calls, the client rejects some calls itself, before
//! they are sent, instead of spending the dependency's capacity on refusals.
//!
//! A [`Throttle`] counts, over a sliding window, the calls made (`requests`, the ones it
//! rejected included) and the calls the dependency accepted (`accepts`), and rejects each new
//! call locally with probability
//!
//! ```text
//! max(0, (requests − K × accepts) / (requests + 1))
//! ```
//!
//! with the typed error [`Throttled`] (classified
//! [`Rejected`](battlement_core::FailureKind::Rejected); the facade answers it with HTTP 503 or
//! gRPC `UNAVAILABLE`). A dependency that accepts every call is never throttled; one that
//! refuses more than `1 − 1/K` of them is sent about `K` times what it accepts; one that
//! recovers gets its traffic back as the window forgets its refusals.
//!
//! - What "accepted" means is a classifier ([`Classify`](battlement_core::Classify)), taken as
//!   the breaker takes one: by default [`ResponseClassifier`](battlement_core::ResponseClassifier)
//!   (a 5xx or 429 `http::Response`, a gRPC error status or an error is a refusal);
//!   [`ThrottleLayer::classifier`] for another. A call rejected by a layer inside the throttle
//!   (an open breaker) never reached the dependency and leaves the count, as does a cancelled
//!   call ([`Recorder`]).
//! - Settings: `K` ([`k`](ThrottleBuilder::k), default 2, at least 1), the window's length and
//!   buckets ([`window`](ThrottleBuilder::window), [`buckets`](ThrottleBuilder::buckets)), a
//!   seed for the random draws ([`seed`](ThrottleBuilder::seed)); bad ones are
//!   [`ConfigError`]s.
//! - Observability: [`Throttle::metrics`], a health snapshot (state `throttling`, status
//!   `warn`, while the probability is above zero), metric families ([`FAMILIES`]), typed events
//!   ([`ThrottleEvent`]: started, stopped) and `tracing` events; the builder registers the
//!   throttle with health registries (non-critical by default).
//!
//! # Where it goes
//!
//! On the client, per attempt: inside the retry and the hedge (each attempt is a request the
//! dependency sees; a throttled attempt fails with a `Rejected` error, which the retry policy
//! does not retry by default), outside the circuit breaker (whose rejections are local and
//! must not count as the dependency's; a throttled call must not trip the breaker) and outside
//! the per-try timeout (a timeout is a refusal the throttle must see). The facade's
//! `ResilienceStack` puts it there.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_throttle::{Throttle, Throttled};
//! use std::time::Duration;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! let throttle = Throttle::builder("search")
//!     .window(Duration::from_secs(10))
//!     .buckets(10)
//!     .seed(1)
//!     .build()
//!     .unwrap();
//! // A dependency that answers 503 to everything.
//! let svc = throttle.layer().layer(service_fn(|_: ()| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::builder().status(503).body(()).unwrap())
//! }));
//! for _ in 0..50 {
//!     svc.clone().oneshot(()).await.unwrap(); // sent, refused
//! }
//! tokio::time::advance(Duration::from_secs(1)).await;
//! // 50 requests, 0 accepts: most calls are now rejected locally, never sent.
//! let mut throttled = 0;
//! for _ in 0..100 {
//!     if let Err(err) = svc.clone().oneshot(()).await {
//!         assert_eq!(err.downcast_ref::<Throttled>().unwrap().name(), "search");
//!         throttled += 1;
//!     }
//! }
//! assert!(throttled > 90, "{throttled}");
//! assert_eq!(throttle.metrics().throttled, throttled);
//! # }
//! ```
//!
//! # Cost
//!
//! A call reads the clock and two shared words (the window's bucket and the rejection
//! probability), writes the calling thread's own cell of counts (a plain store), clones that
//! cell's `Arc` (a count no other core writes) and, when the probability is above zero, draws
//! from the cell's random state: no lock, no allocation. The first call of each bucket sums
//! the cells and recomputes the probability ([`throttle`](crate::Throttle)'s window).

mod config;
mod event;
mod future;
mod layer;
mod metrics;
mod service;
mod throttle;

pub use battlement_core::error::Throttled;
pub use battlement_core::ConfigError;
pub use config::{
    ThrottleBuilder, DEFAULT_BUCKETS, DEFAULT_K, DEFAULT_WINDOW, MAX_BUCKETS, MIN_BUCKET,
};
pub use event::ThrottleEvent;
pub use future::{Recorder, ResponseFuture};
pub use layer::ThrottleLayer;
pub use metrics::{ThrottleMetrics, FAMILIES};
pub use service::ThrottleService;
pub use throttle::{probability, Throttle};

#[cfg(test)]
mod tests;
