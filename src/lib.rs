//! Battlement: resilience middleware for Tower.
//!
//! Each pattern is a `tower::Layer` in its own crate, re-exported here behind a feature (all on
//! by default): [`breaker`], [`retry`], [`bulkhead`], [`timeout`], [`health`], [`fallback`],
//! [`hedge`], [`kill_switch`], [`chaos`], [`rate_limit`], [`throttle`], and isolation per key, [`keyed`]. The shared vocabulary (outcomes, classifiers, typed errors) is
//! [`core`]. [`metrics`] (feature `metrics`, on by default) exports every registered component's
//! metrics pull-based: a Prometheus/OpenMetrics endpoint, OpenTelemetry instruments (feature
//! `opentelemetry`) and the `metrics` facade (feature `metrics-facade`).
//! [`dashboard`] (feature `dashboard`, on by default) serves a live page of every registered
//! component, its events and opt-in operator controls.
//!
//! Outlier detection for `tower::balance` endpoint pools (Envoy's rules): [`outlier`] (feature
//! `outlier`, on by default).
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
#[cfg(feature = "dashboard")]
pub use battlement_dashboard as dashboard;
#[cfg(feature = "fallback")]
pub use battlement_fallback as fallback;
#[cfg(feature = "fleet")]
pub use battlement_fleet as fleet;
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
#[cfg(feature = "outlier")]
pub use battlement_outlier as outlier;
#[cfg(feature = "rate-limit")]
pub use battlement_rate_limit as rate_limit;
/// A reqwest-middleware middleware running the retry, breaker, bulkhead and timeout around each
/// request (feature `reqwest`, not in `full`).
#[cfg(feature = "reqwest")]
pub use battlement_reqwest as reqwest;
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
mod leak;
pub mod per_thread;
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
pub use leak::Leak;
pub use per_thread::PerThread;
#[cfg(feature = "config")]
pub use stack::ConfiguredStack;
pub use stack::{ResilienceLayer, ResilienceStack};
