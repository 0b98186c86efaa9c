//! The bulkhead's errors.
//!
//! [`BulkheadFull`] and [`BulkheadTimeout`] are defined in `battlement-core`, so every component
//! (the retry policy, the default classifier, which counts both as
//! [`Rejected`](battlement_core::FailureKind::Rejected), the facade's HTTP and gRPC mappings)
//! recognises them without depending on this crate.

pub use battlement_core::error::{BulkheadFull, BulkheadTimeout};
pub use battlement_core::ConfigError;
