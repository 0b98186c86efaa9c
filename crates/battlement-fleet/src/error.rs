//! The error of a fleet operation that needed Redis.

use std::error::Error;
use std::fmt;

/// Why an operation that needed Redis did not happen: Redis is known to be unreachable (the
/// guard breaker in front of it is open), it did not answer within the command timeout, or it
/// answered with an error.
///
/// Every part of the fleet decides locally on this error (see the crate docs); it reaches the
/// application only from the operator calls ([`FleetKillSwitch::halt`](crate::FleetKillSwitch::halt),
/// a [`StateStore`](crate::StateStore)'s `save`…).
///
/// ```
/// use battlement_fleet::FleetError;
///
/// let err = FleetError::Timeout(std::time::Duration::from_millis(5));
/// assert_eq!(err.to_string(), "redis did not answer within 5ms");
/// assert!(FleetError::Unavailable.is_unavailable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    /// Redis is known to be unreachable: the call was not sent.
    Unavailable,
    /// Redis did not answer within the command timeout.
    Timeout(std::time::Duration),
    /// Redis (or the connection to it) answered with an error.
    Redis(String),
}

impl FleetError {
    /// Whether Redis could not be reached at all (any variant but a Redis error reply is
    /// "unreachable" for the fallbacks; this says whether the call was not even sent).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, FleetError::Unavailable)
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::Unavailable => f.write_str("redis is unreachable (fleet guard open)"),
            FleetError::Timeout(d) => write!(f, "redis did not answer within {d:?}"),
            FleetError::Redis(e) => write!(f, "redis error: {e}"),
        }
    }
}

impl Error for FleetError {}
