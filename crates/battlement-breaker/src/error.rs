//! The breaker's errors.
//!
//! [`BreakerOpen`] is defined in `battlement-core`, so that every component (the retry policy, the
//! default classifier, the HTTP error mapping) recognises it without depending on this crate.

pub use battlement_core::error::BreakerOpen;
pub use battlement_core::ConfigError;
