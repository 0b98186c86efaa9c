//! The kill switch's errors.
//!
//! [`Halted`] is defined in `battlement-core`, so every component (the retry policy, the default
//! classifier, which counts it as [`Rejected`](battlement_core::FailureKind::Rejected), the
//! facade's HTTP mapping) recognises it without depending on this crate.

pub use battlement_core::error::Halted;
pub use battlement_core::ConfigError;
