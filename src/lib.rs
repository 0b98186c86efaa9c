//! Battlement: resilience middleware for Tower.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use battlement_core as core;
#[cfg(feature = "breaker")]
pub use battlement_breaker as breaker;
#[cfg(feature = "bulkhead")]
pub use battlement_bulkhead as bulkhead;
#[cfg(feature = "chaos")]
pub use battlement_chaos as chaos;
#[cfg(feature = "fallback")]
pub use battlement_fallback as fallback;
#[cfg(feature = "halt")]
pub use battlement_halt as halt;
#[cfg(feature = "health")]
pub use battlement_health as health;
#[cfg(feature = "hedge")]
pub use battlement_hedge as hedge;
#[cfg(feature = "retry")]
pub use battlement_retry as retry;
#[cfg(feature = "timeout")]
pub use battlement_timeout as timeout;
