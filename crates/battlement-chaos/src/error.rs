//! The fault injection layer's errors.
//!
//! [`InjectedFault`] is defined in `battlement-core`, beside the other errors, so the default
//! classifier reads it as the kind of failure it imitates (by default `Connection`; see
//! [`ChaosBuilder::error_kind`](crate::ChaosBuilder::error_kind)) without depending on this
//! crate.

pub use battlement_core::error::InjectedFault;
pub use battlement_core::ConfigError;
