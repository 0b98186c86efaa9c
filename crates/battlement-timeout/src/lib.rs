//! A per-call timeout layer for Tower.
//!
//! [`TimeoutLayer`] limits each call to a duration and fails it with battlement's typed
//! [`Elapsed`] error, which names the layer and the limit, is downcastable, and is classified as
//! `FailureKind::Timeout` by `battlement-core`'s default classifier (so a circuit breaker above it
//! counts timeouts as failures, and the facade maps it to HTTP 504).
//!
//! Per-request limits: a [`TimeoutPolicy`] picks each call's limit. With the `http` feature (on
//! by default), [`HttpTimeouts`] reads a [`Timeout`] or [`Deadline`] request extension set by an
//! outer layer or a handler and, as an option, the gRPC `grpc-timeout` header; it can also write
//! `grpc-timeout` on outbound requests from the limit chosen.
//!
//! Safe by default: the layer's limit is a ceiling. A per-request limit (a client's
//! `grpc-timeout`, an extension that middleware may have set from a header) can shorten it, never
//! lengthen it, unless [`HttpTimeouts::allow_extension`] names how far. A malformed or huge
//! `grpc-timeout` never panics: it is ignored (with a warning) or held to the ceiling.
//!
//! Operate it: [`TimeoutLayer::builder`] names a layer and registers it with health registries
//! (where it exports the [`FAMILIES`]); [`TimeoutLayer::metrics`] reads its counters; and
//! [`TimeoutLayer::reload`] changes the limit of every clone for calls that start after it.
//!
//! # Why not `tower::timeout`?
//!
//! `tower::timeout::Timeout` has a fixed limit and returns tower's untyped `Elapsed`, which names
//! neither the layer nor the limit. This layer adds those two things and changes how the timer
//! is kept:
//!
//! - **It arms its timer only when the inner call is still pending after its first poll.** A
//!   call that answers at once (a cache hit, a handler that needs no I/O) reads no clock and
//!   touches no timer. The limit therefore counts from the response future's first poll rather
//!   than from `call`, which is the same instant whenever the future is awaited as soon as it
//!   is made.
//! - **An armed timer is an entry in a timer shard of the calling thread**, not a
//!   `tokio::time::Sleep` per call. Tokio's timer wheel sits behind one mutex for the whole
//!   runtime, taken when a `Sleep` is first polled and again when it is dropped before firing,
//!   so on a multi-threaded server every call that waits on I/O takes it twice, on every worker.
//!   A shard's lock is its own thread's. Each shard has a driver task that sleeps (on one tokio
//!   `Sleep`) until the shard's earliest deadline. Deadlines follow tokio's clock, so
//!   `tokio::time::pause()` drives these timers like tokio's own. A shard keeps up to 16 distinct
//!   limits waiting at once; a call with yet another one (per-request `grpc-timeout`s can make
//!   many) falls back to tokio's `Sleep`. Each thread that arms a timer under a runtime adds
//!   one driver task to it, which runtime metrics and tokio-console show; it ends with its
//!   thread.
//!
//! Either way the future is the inner future and its timer in one struct, no boxing, no
//! allocation per call (a shard's storage grows to the most calls it has held at once and is
//! then reused). What each saves is in the README's Performance section. [`HttpTimeouts`] adds
//! its extension and header lookups.
//!
//! # Testing with a paused clock
//!
//! Under `tokio::time::pause()` these timers fire at the same instants as
//! tokio's. One difference: a shard's driver does not cancel its own sleep when the calls it
//! was timing end early, so an idle paused runtime may auto-advance its clock once more, to the
//! deadline of a call that has already ended. A test that waits on something other than a
//! timer (a socket, another thread) after its timed calls have ended can see that jump; with
//! calls still armed, tokio's own timers make the same jump to theirs.
//!
//! # Example
//!
//! (With the default feature `http`.)
//!
//! ```
//! # #[cfg(not(feature = "http"))] fn main() {}
//! # #[cfg(feature = "http")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_timeout::{Elapsed, HttpTimeouts, Timeout, TimeoutLayer};
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(
//!         TimeoutLayer::new(Duration::from_millis(200))
//!             .name("search")
//!             .policy(HttpTimeouts::new().grpc(true).allow_extension(Duration::from_secs(5))),
//!     )
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         tokio::time::sleep(Duration::from_millis(300)).await;
//!         Ok::<_, std::convert::Infallible>("results")
//!     }));
//!
//! // The default 200 ms is too short for this 300 ms call ...
//! let err = svc.clone().oneshot(http::Request::new(())).await.unwrap_err();
//! assert_eq!(err.downcast_ref::<Elapsed>().unwrap().limit(), Duration::from_millis(200));
//!
//! // ... but a handler may grant one request more time (up to the 5 s allowed).
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(Timeout(Duration::from_secs(1)));
//! assert_eq!(svc.oneshot(req).await.unwrap(), "results");
//! # }
//! ```

mod config;
mod future;
#[cfg(feature = "http")]
mod http;
mod layer;
mod metrics;
mod policy;
mod service;
mod timer;

pub use battlement_core::error::{Elapsed, TimeoutScope};
pub use battlement_core::ConfigError;
pub use config::TimeoutBuilder;
pub use future::ResponseFuture;
#[cfg(feature = "http")]
pub use http::{
    format_grpc_timeout, parse_grpc_timeout, Deadline, HttpTimeouts, Timeout, GRPC_TIMEOUT,
};
pub use layer::TimeoutLayer;
pub use metrics::{TimeoutMetrics, CALLS, ELAPSED, FAMILIES, LIMIT};
pub use policy::{DefaultOnly, TimeoutPolicy};
pub use service::TimeoutService;

#[cfg(test)]
mod tests;
