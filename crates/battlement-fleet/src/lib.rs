//! Fleet coordination on Redis (or Valkey): what many replicas of a service share.
//!
//! PLACEHOLDER

mod config;
mod error;
mod fleet;
mod future;
mod key;
mod kill_switch;
mod layer;
mod limit;
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
pub use quorum::{FleetView, Quorum, ReplicaReport, SharedBreaker, SharedBreakerBuilder};
pub use service::GlobalRateLimitService;
pub use store::{
    FileStore, PersistedBreaker, RedisStore, SavedState, StateStore, StoreError, StoreFuture,
};
