//! A bulkhead for Tower: a concurrency limit with a bounded, time-limited FIFO wait queue, shared
//! by every service it guards.
//!
//! A [`Bulkhead`] is a cheap `Clone` handle. At most `max_concurrent` calls through the services
//! it guards run at once; a call that finds every permit taken waits in a queue of at most
//! `max_queued` calls, served in arrival order, for at most `max_wait`. Past either bound it fails
//! with a typed error, [`BulkheadFull`] or [`BulkheadTimeout`], naming the bulkhead; both are
//! classified [`Rejected`](battlement_core::FailureKind::Rejected) by `battlement-core` (so a
//! breaker above does not count them as the downstream's failures, and the facade maps them to
//! HTTP 503).
//!
//! - Run-time resize: [`Bulkhead::set_max_concurrent`] (growing admits waiters at once, shrinking
//!   takes effect as running calls finish), and live reload of every setting with
//!   [`Bulkhead::reload`] (typed [`BulkheadEvent`]s through [`Bulkhead::subscribe`]).
//! - Metrics: [`Bulkhead::metrics`] (in flight, queued, limits, accepted, rejected by cause, wait
//!   time mean and max). The handle implements [`HealthSource`](battlement_core::HealthSource): state
//!   `saturated` with status `warn` while every permit is taken or calls wait, `available` and
//!   `pass` otherwise. The builder registers it with a health registry. Exporters read it
//!   through [`HealthSource::export`](battlement_core::HealthSource::export) (the families of
//!   [`FAMILIES`], pull-based), with an opt-in queue-wait histogram
//!   ([`histogram`](BulkheadBuilder::histogram)).
//! - An adaptive limit: [`BulkheadBuilder::adaptive`] builds an [`AdaptiveLimit`], a bulkhead
//!   whose limit an algorithm ([`Limit`]: AIMD, Vegas, Gradient2, as Netflix's
//!   concurrency-limits defines them) moves with the latency and failures of the calls it
//!   admits, through its own layer ([`AdaptiveLayer`]). Call timing uses the CPU's time-stamp
//!   counter; the `tokio-time` feature switches it to tokio's clock for paused-time tests.
//! - Load shedding with priority: a [`Priority`] per request (set by
//!   [`BulkheadLayer::priority_fn`] or [`AdaptiveLayer::priority_fn`]); once saturated, a
//!   sheddable call is refused while the queue is more than
//!   [`sheddable_queue_share`](BulkheadBuilder::sheddable_queue_share) full, and queued calls
//!   are served critical first, with no class passed over more than
//!   [`starvation_bound`](BulkheadBuilder::starvation_bound) times in a row. A free permit
//!   admits any call at once.
//! - Every rejection is a `tracing` debug event, every resize an info event, with the
//!   bulkhead's name.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_bulkhead::{Bulkhead, BulkheadFull, BulkheadTimeout};
//! use battlement_core::{error::failure_kind, FailureKind};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokio::sync::Notify;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let bulkhead = Bulkhead::builder("inventory")
//!     .max_concurrent(1)
//!     .max_queued(1)
//!     .max_wait(Duration::from_millis(100))
//!     .build()
//!     .unwrap();
//! let go = Arc::new(Notify::new());
//! let mut svc = ServiceBuilder::new().layer(bulkhead.layer()).service_fn({
//!     let go = go.clone();
//!     move |item: &'static str| {
//!         let go = go.clone();
//!         async move {
//!             go.notified().await;
//!             Ok::<_, std::io::Error>(item)
//!         }
//!     }
//! });
//!
//! let running = tokio::spawn(svc.ready().await.unwrap().call("a")); // takes the permit
//! let waiting = svc.ready().await.unwrap().call("b"); // queued
//! let err = svc.ready().await.unwrap().call("c").await.unwrap_err(); // queue full
//! assert!(err.downcast_ref::<BulkheadFull>().is_some());
//! assert_eq!(failure_kind(&*err), FailureKind::Rejected);
//!
//! // "b" waits 100 ms, then gives up.
//! let err = waiting.await.unwrap_err();
//! assert_eq!(err.downcast_ref::<BulkheadTimeout>().unwrap().waited(), Duration::from_millis(100));
//!
//! go.notify_one();
//! assert_eq!(running.await.unwrap().unwrap(), "a");
//! let m = bulkhead.metrics();
//! assert_eq!((m.accepted, m.rejected_full, m.rejected_timeout, m.in_flight), (1, 1, 1, 0));
//! # }
//! ```
//!
//! # How it differs from `tower::limit::ConcurrencyLimit`
//!
//! - Where the permit is taken. `ConcurrencyLimit` acquires it in `poll_ready` and keeps it in
//!   the service until `call`; a service that is ready but idle (a `tower::buffer` worker waiting
//!   for its next request, a clone readied and then set aside) holds a permit nobody uses. Here
//!   `poll_ready` is the inner service's and the permit is taken by `call` and held by the
//!   response future, so only calls that are actually running hold permits.
//! - What happens when it is full. `ConcurrencyLimit` applies backpressure: `poll_ready` stays
//!   pending, without bound in time or in the number of waiting callers. A bulkhead sheds load:
//!   the queue is bounded in length and in time, and the excess fails fast with a typed error.
//!   (Inside an axum router `poll_ready` is not where waiting can happen anyway.)
//! - Sharing and operation. One [`Bulkhead`] handle is shared by any number of services and
//!   layers (tower's equivalent is `GlobalConcurrencyLimitLayer`), can be resized at run time,
//!   counts what it does and reports to health.
//! - The cost. A call that finds a free permit takes it from its thread's stripe with one
//!   compare-and-swap and gives it back there with one `fetch_add`, reads the shared word once
//!   each time (see [below](#permits-striped-per-thread)), clones its thread's shard `Arc`, and
//!   makes a plain (not locked) increment of a per-thread counter stripe; it takes no lock,
//!   allocates nothing and writes no cache line that calls on another thread write. tokio's
//!   `Semaphore` (which `ConcurrencyLimit` uses) is the bulkhead's queue only: its release
//!   locks its wait list, so a permit goes through it only while calls are queued.
//!   `benches/per_call.rs` compares a call's cost with `ConcurrencyLimit`'s (figures in the
//!   README's Performance section). A queued call allocates two boxes
//!   (its wait; the service with the request) and clones the inner service, which is why
//!   `S: Clone` is required: the inner service is only called once the call holds a permit, so
//!   a queued call must carry a ready service of its own. Wrap a service that is not `Clone` in `tower::buffer::Buffer`.
//!
//! # Permits striped per thread
//!
//! Free permits are cached in per-thread stripes (one per core, each on cache lines of its
//! own) over a shared pool. A call takes a permit from its thread's stripe and gives it back
//! there; the permit also holds its thread's shard of the handle (an `Arc` of its own), so
//! neither the permit count nor a reference count is a line that two cores write. A stripe that
//! runs dry refills with a batch from the shared pool (`max_concurrent / (2 × stripes)`), or
//! else steals half of another stripe's permits; a call queues only when no permit is free
//! anywhere. The limit is exact: the permits are counted once, wherever they are, so at most
//! `max_concurrent` calls ever hold one.
//!
//! FIFO order for queued calls is kept by a hand-shake between the stripes and the shared
//! word, which counts the queued calls: a call that queues then empties every stripe into the
//! queue, and a call that takes or returns a permit in its stripe then reads the word and, if
//! calls are queued, hands its permit to the queue (so a call arriving after a queued one never
//! keeps a permit ahead of it). While calls are queued, every permit goes through the queue, as
//! before; while none is, the word is only read, so it stays in every core's cache.
//!
//! Why this design: with one permit word that every call writes (the design before), two
//! cores sharing a bulkhead served fewer calls per second than one (0.29× in
//! `benches/contention.rs`), about as badly as tower's `ConcurrencyLimit`, since the word's
//! cache line moved between cores on every call. Per-thread caches over the shared pool keep
//! that line read-only while permits are plentiful and fall back to the exact single-word
//! behaviour once they run out, where a bulkhead is about to queue anyway. Measured on two
//! cores, it serves about twice the calls per second with two tasks as with one (figures in
//! the README). Pure striped pools (the limit split between stripes up front, not measured
//! here) behave the same while permits are plentiful, but strand permits in the stripes of
//! idle threads, so a busy thread would steal on every call once its share is used up.
//!
//! What it costs: a call that finds its stripe empty pays a compare-and-swap on the shared
//! pool or on another stripe (with a limit smaller than the number of cores, that is often),
//! and the read-outs ([`Bulkhead::free_permits`], [`Bulkhead::in_flight`],
//! [`Bulkhead::is_saturated`] and the health snapshot built from them) sum the stripes one
//! after another: exact when no call starts or finishes during the read, otherwise off by at
//! most the calls that do.
//!
//! # Cancellation
//!
//! A response future dropped while it waits leaves the queue (counted neither as accepted nor
//! as rejected); dropped while it runs, it releases its permit. Permits are never leaked: a
//! seeded stress test cancels calls at random, and the release and resize paths are model
//! checked with loom (`RUSTFLAGS="--cfg loom" cargo test -p battlement-bulkhead --release --lib
//! loom`).

mod adaptive;
mod adaptive_service;
mod bulkhead;
mod clock;
mod config;
mod direct;
mod event;
mod future;
mod layer;
mod limit;
mod metrics;
mod permit;
mod priority;
mod queue;
mod semaphore;
mod service;

pub use adaptive::{
    AdaptiveBuilder, AdaptiveLimit, AdaptiveMetrics, DEFAULT_MAX_WINDOW, DEFAULT_MIN_RTT,
    DEFAULT_MIN_WINDOW, DEFAULT_WINDOW_SAMPLES,
};
pub use adaptive_service::{AdaptiveLayer, AdaptiveResponseFuture, AdaptiveService};
pub use battlement_core::error::{BulkheadFull, BulkheadTimeout};
pub use battlement_core::{CallError, ConfigError};
pub use bulkhead::{Bulkhead, BulkheadAdmission};
pub use config::{
    BulkheadBuilder, DEFAULT_REJECTION_WINDOW, DEFAULT_SHEDDABLE_QUEUE_SHARE,
    DEFAULT_STARVATION_BOUND,
};
pub use direct::BulkheadRejection;
pub use event::BulkheadEvent;
pub use future::ResponseFuture;
pub use layer::BulkheadLayer;
pub use limit::{Aimd, Gradient2, Limit, Vegas};
pub use metrics::{BulkheadMetrics, FAMILIES};
pub use priority::{Prioritize, Priority, PriorityFn};
pub use service::BulkheadService;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;
