//! The timeout's error.
//!
//! [`Elapsed`] is defined in `battlement-core`, so the default classifier reads it as
//! `FailureKind::Timeout` and the facade maps it to HTTP 504 without depending on this crate.

pub use battlement_core::error::Elapsed;
pub use battlement_core::ConfigError;
