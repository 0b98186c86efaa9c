//! The names most stacks need: `use battlement::prelude::*;`.

pub use crate::core::error::{
    BreakerOpen, BulkheadFull, BulkheadTimeout, Elapsed, Halted, RateLimited, Throttled,
};
#[cfg(feature = "grpc")]
pub use crate::core::GrpcClassifier;
#[cfg(feature = "http")]
pub use crate::core::HttpClassifier;
pub use crate::core::{
    BoxError, Classify, ConfigError, FailureKind, HealthStatus, Outcome, ResponseClassifier,
    ResponseOutcome, ResultClassifier,
};
pub use crate::ServiceBuilderExt;

#[cfg(feature = "breaker")]
pub use crate::breaker::{CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
#[cfg(feature = "bulkhead")]
pub use crate::bulkhead::Bulkhead;
#[cfg(feature = "chaos")]
pub use crate::chaos::Chaos;
#[cfg(feature = "fallback")]
pub use crate::fallback::{FallbackChain, FallbackLayer};
#[cfg(feature = "health")]
pub use crate::health::{CheckResult, HealthCheck, HealthProbe, HealthRegistry, HealthService};
#[cfg(feature = "hedge")]
pub use crate::hedge::HedgeLayer;
#[cfg(feature = "http")]
pub use crate::http_error::{ErrorMapping, HttpErrorLayer};
#[cfg(feature = "kill-switch")]
pub use crate::kill_switch::KillSwitch;
#[cfg(feature = "rate-limit")]
pub use crate::rate_limit::RateLimit;
#[cfg(feature = "retry")]
pub use crate::retry::{Backoff, Jitter, RetryPolicy};
#[cfg(feature = "throttle")]
pub use crate::throttle::Throttle;
#[cfg(feature = "timeout")]
pub use crate::timeout::TimeoutLayer;
