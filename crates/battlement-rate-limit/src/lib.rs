//! A rate limiter for Tower: GCRA through [`governor`], one limit for every call or one per
//! client, rejecting the excess at once or letting it wait a bounded time.
//!
//! A [`RateLimit`] is a cheap `Clone` handle shared by any number of [`RateLimitLayer`]s. Its
//! rate is `n` calls per period with a burst (governor's `Quota`): calls are spaced evenly,
//! one every `period / n`, and up to `burst` may pass at once after a quiet spell. A call over
//! the rate fails with a typed [`RateLimited`] error naming the limiter and saying when to try
//! again (`retry_after`); `battlement-core` classifies it
//! [`Rejected`](battlement_core::FailureKind::Rejected), and the facade answers it with HTTP 429
//! (`Retry-After`, `RateLimit-Policy`, `RateLimit`) or gRPC `RESOURCE_EXHAUSTED`.
//!
//! - Keyed limits: [`keyed`](RateLimitBuilder::keyed) with a key extractor — the client's
//!   address ([`ClientIp`]: axum's `ConnectInfo`, or a `SocketAddr` extension), the forwarded
//!   client address ([`ForwardedFor`]: `X-Forwarded-For`, `Forwarded`), a header
//!   ([`Header`]), a request extension ([`Extension`]) (these with the feature `http`), or a
//!   closure ([`key_fn`]). Key memory is bounded: at most
//!   [`max_keys`](RateLimitBuilder::max_keys) keys, idle keys evicted as new keys arrive, and
//!   new keys over the bound rejected or admitted ([`KeysFull`]).
//! - Waiting: [`max_delay`](RateLimitBuilder::max_delay) lets a call over the rate wait for its
//!   turn (with `tokio::time`), up to that long; dropping it cancels it.
//! - Observability: [`RateLimit::metrics`], a health snapshot (state `limiting`, status `warn`,
//!   for a while after a rejection), metric families ([`FAMILIES`]), typed events
//!   ([`RateLimitEvent`]) and `tracing` events; the builder registers the limiter with health
//!   registries.
//!
//! Time is `tokio::time` (governor is given a clock over it), so tests with
//! `tokio::time::pause()` drive the limiter without sleeping.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_rate_limit::{key_fn, RateLimit, RateLimited};
//! use battlement_core::{error::failure_kind, FailureKind};
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! // Each user may make 1 call a second.
//! let limit = RateLimit::builder("per-user")
//!     .rate(1, Duration::from_secs(1))
//!     .keyed(key_fn(|req: &(&'static str, u32)| Some(req.0)))
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(limit.layer())
//!     .service(service_fn(|req: (&'static str, u32)| async move { Ok::<_, std::io::Error>(req.1) }));
//!
//! assert_eq!(svc.clone().oneshot(("ann", 1)).await.unwrap(), 1);
//! assert_eq!(svc.clone().oneshot(("bob", 2)).await.unwrap(), 2); // another key
//! let err = svc.clone().oneshot(("ann", 3)).await.unwrap_err();
//! assert_eq!(err.downcast_ref::<RateLimited>().unwrap().retry_after(), Duration::from_secs(1));
//! assert_eq!(failure_kind(&*err), FailureKind::Rejected);
//! assert_eq!(limit.metrics().keys_tracked, 2);
//! # }
//! ```
//!
//! # Cost
//!
//! An unkeyed call within the rate reads the clock and compare-and-swaps governor's one state
//! word, and increments a per-thread counter stripe: no lock, no allocation. A keyed call adds
//! the key's extraction and a `DashMap` shard read lock; a key's first call inserts it (and
//! allocates).

mod config;
mod event;
mod future;
pub mod key;
mod keys;
mod layer;
mod limit;
mod metrics;
mod service;

pub use battlement_core::error::RateLimited;
pub use battlement_core::ConfigError;
pub use config::{
    RateLimitBuilder, DEFAULT_EVICTION_INTERVAL, DEFAULT_MAX_KEYS, DEFAULT_REJECTION_WINDOW,
};
pub use event::RateLimitEvent;
pub use future::ResponseFuture;
pub use key::{key_fn, ExtractKey, KeyExtractor, KeyFn, Unkeyed};
#[cfg(feature = "http")]
pub use key::{ClientIp, Extension, ForwardedFor, Header};
pub use keys::KeysFull;
pub use layer::RateLimitLayer;
pub use limit::RateLimit;
pub use metrics::{RateLimitMetrics, FAMILIES};
pub use service::RateLimitService;

#[cfg(test)]
mod tests;
