//! The fault injection layer's errors.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

pub use battlement_core::ConfigError;

/// The error a [`ChaosService`](crate::ChaosService) injects (unless configured with
/// [`error_with`](crate::ChaosBuilder::error_with) to make its own).
///
/// It is public and downcastable, so a test can tell an injected failure from a real one. The
/// default classifier counts it as a failure of kind [`Other`](battlement_core::FailureKind::Other).
///
/// ```
/// use battlement_chaos::InjectedFault;
/// use battlement_core::BoxError;
///
/// let err: BoxError = Box::new(InjectedFault::new("payments".into()));
/// let fault = err.downcast_ref::<InjectedFault>().unwrap();
/// assert_eq!(fault.name(), "payments");
/// assert_eq!(err.to_string(), "fault injected by chaos `payments`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault {
    name: Arc<str>,
}

impl InjectedFault {
    /// A fault injected by the chaos handle `name`.
    pub fn new(name: Arc<str>) -> Self {
        InjectedFault { name }
    }

    /// The name of the chaos handle that injected it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault injected by chaos `{}`", self.name)
    }
}

impl Error for InjectedFault {}

battlement_core::impl_as_dyn_error!(InjectedFault);
