//! Request hedging for Tower: cut tail latency by asking twice.
//!
//! A [`HedgeLayer`] sends a call's request to the inner service; if no answer has come after a
//! delay, it sends the request again (a *hedge*), up to `max_attempts` in all, and answers with
//! the first attempt to succeed. The losers' futures are dropped at once, which cancels them
//! (a hyper client, for one, closes the losing requests' connections or streams).
//!
//! - **When**: the delay is fixed ([`delay`](HedgeBuilder::delay)) or follows recent latency
//!   ([`latency_percentile`](HedgeBuilder::latency_percentile), e.g. p95 over the last 1000
//!   successful calls, with an initial delay until enough were seen and min/max bounds).
//! - **What**: only requests the [`HedgePolicy`] accepts, which must be idempotent. The default
//!   [`Always`] trusts the caller; [`hedge_if`](HedgeBuilder::hedge_if) takes a predicate;
//!   [`HedgeLayer::http_builder`] (feature `http`) hedges GET, HEAD, OPTIONS, PUT, DELETE and
//!   TRACE only.
//! - **How much**: an optional [`budget`](HedgeBuilder::budget) caps hedges as a fraction of
//!   requests (a token bucket with a bounded burst).
//! - **Failures**: an attempt that fails while others are in flight waits for them; when all
//!   fail, the call fails with the last error (unchanged, boxed, downcastable). A hedge is
//!   never sent after every attempt in flight failed: hedging is not retrying (stack a retry
//!   policy for that).
//! - **Metrics**: requests, hedges sent, hedges won, hedges the budget refused, through a
//!   [`HedgeHandle`] that implements [`HealthSource`](battlement_core::HealthSource) and registers with
//!   a health registry ([`registry`](HedgeBuilder::registry)); exporters read the families of
//!   [`FAMILIES`] through [`HealthSource::export`](battlement_core::HealthSource::export).
//! - **Reload**: [`HedgeLayer::reload`] applies a builder's delay, attempts and budget to the
//!   live layer, for new requests, all or nothing ([`HedgeBuilder::validate`]).
//!
//! # Requirements
//!
//! A hedged call sends the same request more than once, to clones of the inner service: the
//! [`Hedge`] service needs `Req: Clone` and `S: Clone`. For HTTP, a request is `Clone` when its
//! body is (`Full<Bytes>`, `String`, …). A streaming body (axum's `Body`, hyper's `Incoming`)
//! is not, until wrapped in battlement-retry's `ReplayBody` by its `ReplayBodyLayer` outside
//! the hedge: a hedge then replays what the first attempt read (waiting, if the first is still
//! reading the body, until it has read it all). Each hedge awaits its service
//! clone's readiness. Put the hedge outside a per-attempt timeout and inside (or instead of)
//! a retry.
//!
//! # Why not `tower::hedge`
//!
//! tower 0.5 ships a hedging middleware (feature `hedge`), which was read and not reused: it
//! sends at most one hedge; its delay is only a latency percentile (no fixed delay) from a
//! rotating `hdrhistogram` behind a `Mutex` locked on every call; it answers with the first
//! attempt to *finish*, so a fast error beats a slower success; and it has no budget and no
//! metrics. Here: N attempts, fixed or percentile delay, first *success* wins, a budget, and
//! counters; a call reads the delay with one atomic load, and the latency window is striped
//! per thread (see `latency.rs`).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_hedge::HedgeLayer;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokio::time::{sleep, Instant};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let hedging = HedgeLayer::builder()
//!     .name("search")
//!     .delay(Duration::from_millis(20))
//!     .max_attempts(3)
//!     .hedge_if(|q: &String| !q.starts_with("write:"))
//!     .build()
//!     .unwrap();
//! let metrics = hedging.handle();
//!
//! // A replica set where every second request is stuck behind a slow disk for a second.
//! let n = Arc::new(AtomicUsize::new(0));
//! let svc = ServiceBuilder::new()
//!     .layer(hedging)
//!     .service_fn(move |q: String| {
//!         let slow = n.fetch_add(1, Ordering::SeqCst) % 2 == 0;
//!         async move {
//!             sleep(Duration::from_millis(if slow { 1000 } else { 5 })).await;
//!             Ok::<_, std::io::Error>(format!("results for {q}"))
//!         }
//!     });
//!
//! let start = Instant::now();
//! assert_eq!(svc.oneshot("rust".to_string()).await.unwrap(), "results for rust");
//! assert_eq!(start.elapsed(), Duration::from_millis(25)); // 20 ms delay + 5 ms hedge
//! let m = metrics.metrics();
//! assert_eq!((m.requests, m.hedges_sent, m.hedges_won), (1, 1, 1));
//! # }
//! ```

mod budget;
mod config;
mod future;
mod handle;
mod latency;
mod layer;
mod metrics;
mod policy;
mod service;

pub use battlement_core::{BoxError, ConfigError};
pub use config::HedgeBuilder;
pub use future::ResponseFuture;
pub use handle::HedgeHandle;
pub use layer::HedgeLayer;
pub use metrics::{HedgeMetrics, FAMILIES};
#[cfg(feature = "http")]
pub use policy::{is_idempotent, IdempotentMethods};
pub use policy::{Always, HedgePolicy, PredicateFn};
pub use service::Hedge;

#[cfg(test)]
mod tests;
