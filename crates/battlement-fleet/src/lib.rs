//! Fleet coordination on Redis (or Valkey): what the replicas of one service share.
//!
//! A rate limit per replica is not the limit an upstream agreed to, an operator's kill switch
//! must reach every replica at once, a deploy must not forget that a dependency is down, and
//! one replica's bad network must not open the circuit for all. The parts, all built on one
//! [`Fleet`] connection:
//!
//! - [`GlobalRateLimit`]: GCRA evaluated atomically in Redis by a Lua script run by its SHA,
//!   one round trip, keyed like battlement-rate-limit's limiter; [`Mode::Exact`] or
//!   [`Mode::Leased`] (overshoot at most `batch × replicas`). Rejections are core's
//!   [`RateLimited`].
//! - [`FleetKillSwitch`]: a halt (reason, who, time) in a Redis key, announced on pub/sub;
//!   every replica's [`KillSwitch`](battlement_kill_switch::KillSwitch) follows, and re-reads
//!   the key on start and on reconnection.
//! - [`PersistedBreaker`] with a [`StateStore`] ([`FileStore`], [`RedisStore`]): breaker
//!   state that survives a restart — open for the rest of its wait only, forced stays forced —
//!   saved off the call path.
//! - [`SharedBreaker`]: replicas report their breakers with a heartbeat; a replica opens its
//!   own only when a [`Quorum`] of live replicas report it open of their own finding.
//!
//! When Redis is slow or gone, no call waits longer than the fleet's
//! [`command_timeout`](FleetBuilder::command_timeout) (the client sits behind a breaker and a
//! timeout of battlement's own), every part decides locally ([`Outage`] for the limit; the
//! kill switch keeps its last state; the store queues the latest state per breaker), the
//! [`Fleet`]'s health says `warn`, and it reconnects by itself.
//!
//! Keys carry a Redis Cluster hash tag: `{<prefix>:rl:<limit>}:<key>`, `{<prefix>:ks:<switch>}`,
//! `{<prefix>:cb:<breaker>}`, `{<prefix>:fv:<breaker>}`.
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use battlement_breaker::CircuitBreaker;
//! use battlement_fleet::{
//!     Fleet, FleetKillSwitch, GlobalRateLimit, Outage, PersistedBreaker, Quorum, RedisStore,
//!     SharedBreaker,
//! };
//! use battlement_kill_switch::KillSwitch;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let fleet = Fleet::builder("redis://127.0.0.1:6379/").replica_id("gw-1").build()?;
//! let limit = GlobalRateLimit::builder("api", &fleet)
//!     .rate(1000, Duration::from_secs(1))
//!     .outage(Outage::LocalShare { replicas: 3 })
//!     .build()?;
//! let switch = KillSwitch::builder("api").build()?;
//! let _follow = FleetKillSwitch::builder(&fleet, &switch).build()?;
//! let breaker = CircuitBreaker::builder("db").build()?;
//! let _saved = PersistedBreaker::start(&breaker, Arc::new(RedisStore::new(&fleet))).await?;
//! let _shared = SharedBreaker::builder(&fleet, &breaker).quorum(Quorum::Count(2)).build()?;
//! # let _ = limit;
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! Exact mode: one Redis round trip per call (a boxed decision future; the command's encoding
//! allocates). Leased mode, with a permit in hand: the key's text in a reused per-thread
//! buffer, a `DashMap` shard read and a compare-and-swap on the key's lease counter — no round
//! trip, no allocation (the lease counter is one word per key that this replica's calls write). The kill switch's call path is
//! the local switch's (one atomic load). Breaker saving and the quorum run in tasks.

mod config;
mod error;
mod fleet;
mod future;
mod key;
mod kill_switch;
mod layer;
mod limit;
mod metrics;
mod quorum;
mod service;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use battlement_core::error::RateLimited;
pub use config::{FleetBuilder, DEFAULT_CHECK_INTERVAL, DEFAULT_COMMAND_TIMEOUT};
pub use error::FleetError;
pub use fleet::Fleet;
pub use future::ResponseFuture;
pub use key::FleetKey;
pub use kill_switch::{FleetHalt, FleetKillSwitch, FleetKillSwitchBuilder};
pub use layer::GlobalRateLimitLayer;
pub use limit::{GlobalRateLimit, GlobalRateLimitBuilder, GlobalRateLimitMetrics, Mode, Outage};
pub use metrics::FAMILIES;
pub use quorum::{FleetView, Quorum, ReplicaReport, SharedBreaker, SharedBreakerBuilder};
pub use service::GlobalRateLimitService;
pub use store::{
    FileStore, PersistedBreaker, RedisStore, SavedState, StateStore, StoreError, StoreFuture,
};
