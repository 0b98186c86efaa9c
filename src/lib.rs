//! Battlement: resilience middleware for Tower.
//!
//! Each pattern is a `tower::Layer` in its own crate, re-exported here behind a feature (all on
//! by default): [`breaker`], [`retry`], [`bulkhead`], [`timeout`], [`health`], [`fallback`],
//! [`hedge`], [`kill_switch`], [`chaos`], [`rate_limit`], [`throttle`], and isolation per key, [`keyed`]. The shared vocabulary (outcomes, classifiers, typed errors) is
//! [`core`]. [`metrics`] (feature `metrics`, on by default) exports every registered component's
//! metrics pull-based: a Prometheus/OpenMetrics endpoint, OpenTelemetry instruments (feature
//! `opentelemetry`) and the `metrics` facade (feature `metrics-facade`).
//!
//! Feature `test-util` (off by default, for dev-dependencies): the circuit breaker times calls
//! with tokio's clock instead of the CPU's time-stamp counter, so slow calls, latency metrics and
//! time windows follow `tokio::time::pause()`/`advance()` in tests (see "Testing with paused
//! time" below).
//!
//! The README follows, compiled as a doc test so its examples cannot rot.
#![doc = include_str!("../README.md")]

#[cfg(feature = "breaker")]
pub use battlement_breaker as breaker;
#[cfg(feature = "bulkhead")]
pub use battlement_bulkhead as bulkhead;
#[cfg(feature = "chaos")]
pub use battlement_chaos as chaos;
#[cfg(feature = "config")]
pub use battlement_config as config;
pub use battlement_core as core;
#[cfg(feature = "fallback")]
pub use battlement_fallback as fallback;
#[cfg(feature = "health")]
pub use battlement_health as health;
#[cfg(feature = "hedge")]
pub use battlement_hedge as hedge;
#[cfg(feature = "keyed")]
pub use battlement_keyed as keyed;
#[cfg(feature = "kill-switch")]
pub use battlement_kill_switch as kill_switch;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "rate-limit")]
pub use battlement_rate_limit as rate_limit;
#[cfg(feature = "retry")]
pub use battlement_retry as retry;
#[cfg(feature = "throttle")]
pub use battlement_throttle as throttle;
#[cfg(feature = "timeout")]
pub use battlement_timeout as timeout;

mod builder_ext;
mod direct;
#[cfg(feature = "grpc")]
pub mod grpc_error;
#[cfg(feature = "http")]
pub mod http_error;
#[cfg(all(
    feature = "breaker",
    feature = "bulkhead",
    feature = "health",
    feature = "http",
    feature = "kill-switch",
    feature = "retry",
    feature = "timeout"
))]
pub mod pipeline;
pub mod prelude;
mod stack;

pub use builder_ext::ServiceBuilderExt;
pub use direct::{CallFn, DirectStack};
#[cfg(feature = "config")]
pub use stack::ConfiguredStack;
pub use stack::{ResilienceLayer, ResilienceStack};
