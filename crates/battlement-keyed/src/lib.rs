//! Isolation per key for Tower: a circuit breaker or a bulkhead per host, tenant or agent.
//!
//! An outbound client that calls many hosts, a gateway that serves many tenants, or a process
//! that hosts many agents needs a breaker per host, tenant or agent, not one for everything: one
//! bad host must not open the circuit for the healthy ones. A [`Keyed`] table holds one
//! component per key, built on the key's first call from a template (the component's builder
//! settings, named `<name>/<key>`); a [`KeyedLayer`] reads each request's key with an extractor
//! ([`Authority`] for clients, [`Header`], [`Extension`], a closure with [`key_fn`]) and sends
//! the call through that key's component, on the component's own call path.
//!
//! - One mechanism for both kinds: [`KeyedCircuitBreaker`] and [`KeyedBulkhead`] are
//!   `Keyed<CircuitBreaker>` and `Keyed<Bulkhead>`, over the [`Component`] trait.
//! - Bounded memory: at most [`max_keys`](KeyedBuilder::max_keys) keys, idle keys expire, and a
//!   component is dropped only when no call holds it (see [`Keyed`] for the eviction order).
//! - Per-key operations: [`state`](Keyed::state), [`metrics`](Keyed::metrics),
//!   [`force_open`](Keyed::force_open) and [`reset`](Keyed::reset) of one key,
//!   [`keys_in`](Keyed::keys_in) a state, [`get`](Keyed::get) a key's component.
//! - Health and metrics as a group with bounded cardinality: the table is one
//!   [`HealthSource`](battlement_core::HealthSource) (counts per state, the worst keys in its
//!   message) exporting the families of [`FAMILIES`]; per-key metrics only with
//!   [`per_key_metrics`](KeyedBuilder::per_key_metrics) and a limit.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use battlement_breaker::{CircuitBreaker, State};
//! use battlement_core::error::BreakerOpen;
//! use battlement_keyed::{Authority, KeyedCircuitBreaker};
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! let hosts = KeyedCircuitBreaker::builder("upstreams")
//!     .template(|name| CircuitBreaker::builder(name).minimum_calls(3))
//!     .build()?;
//! // An "upstream" where one host answers 503.
//! let client = hosts.layer(Authority).layer(service_fn(|req: Request<()>| async move {
//!     let status = if req.uri().host() == Some("bad.example") {
//!         StatusCode::SERVICE_UNAVAILABLE
//!     } else {
//!         StatusCode::OK
//!     };
//!     Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
//! }));
//!
//! for _ in 0..3 {
//!     client.clone().oneshot(Request::get("http://bad.example/").body(())?).await?;
//!     client.clone().oneshot(Request::get("http://good.example/").body(())?).await?;
//! }
//! assert_eq!(hosts.state("bad.example"), Some(State::Open));
//! assert_eq!(hosts.state("good.example"), Some(State::Closed));
//!
//! let err = client.clone().oneshot(Request::get("http://bad.example/").body(())?).await.unwrap_err();
//! assert_eq!(err.downcast_ref::<BreakerOpen>().unwrap().name(), "upstreams/bad.example");
//! let ok = client.oneshot(Request::get("http://good.example/").body(())?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! # Concurrency
//!
//! The table is a `DashMap`. Eviction removes a key under its shard's write lock and only when
//! its component reports that nothing else holds it ([`Component::held`]: the handle's and its
//! call references' counts), so a call, which takes its reference under the shard's read lock,
//! either holds the component before the eviction looks or finds the key gone and creates a
//! fresh one; no atomics of the table's own take part in that race (a stress test covers it,
//! and a loom model checks it: `RUSTFLAGS="--cfg loom" cargo test -p battlement-keyed --release
//! --lib loom`, with loom's lock in the place of `DashMap`'s, see `handoff.rs`).

mod component;
mod config;
mod future;
mod handoff;
mod key;
mod keyed;
mod layer;
mod metrics;
mod service;

pub use component::{BulkheadState, Component, Guard};
pub use config::{KeyedBuilder, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_KEYS, MAX_KEYS};
pub use future::ResponseFuture;
pub use key::{key_fn, Authority, Extension, ExtractKey, Header, KeyFn};
pub use keyed::Keyed;
pub use layer::{KeyedBulkheadLayer, KeyedCircuitBreakerLayer, KeyedLayer};
pub use metrics::{KeyedMetrics, WorstKey, FAMILIES};
pub use service::KeyedService;

/// A circuit breaker per key.
pub type KeyedCircuitBreaker<K = String> = Keyed<battlement_breaker::CircuitBreaker, K>;
/// A bulkhead per key.
pub type KeyedBulkhead<K = String> = Keyed<battlement_bulkhead::Bulkhead, K>;

#[cfg(test)]
mod tests;
