//! The outcome of one call, as every battlement component sees it.

use std::fmt;

/// How a finished call counts for a resilience component.
///
/// A [`Classify`](crate::Classify) implementation maps a call's `Result` to an `Outcome`; the
/// breaker, the retry policy and the health probe all read the same value, so "a 503 is a failure,
/// a 404 is not" is said once.
///
/// ```
/// use battlement_core::{FailureKind, Outcome};
///
/// let o = Outcome::Failure(FailureKind::Timeout);
/// assert!(o.is_failure());
/// assert_eq!(o.failure_kind(), Some(FailureKind::Timeout));
/// assert!(!Outcome::Ignored.is_success());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed, for the given reason.
    Failure(FailureKind),
    /// The call neither succeeded nor failed (a 404, a validation error): it is not counted.
    Ignored,
}

impl Outcome {
    /// `true` for [`Outcome::Success`].
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// `true` for [`Outcome::Failure`].
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure(_))
    }

    /// The failure's kind, if this is a failure.
    pub fn failure_kind(self) -> Option<FailureKind> {
        match self {
            Outcome::Failure(kind) => Some(kind),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success => f.write_str("success"),
            Outcome::Failure(kind) => write!(f, "failure ({kind})"),
            Outcome::Ignored => f.write_str("ignored"),
        }
    }
}

/// Why a call failed.
///
/// ```
/// use battlement_core::FailureKind;
///
/// assert_eq!(FailureKind::RateLimited.as_str(), "rate_limited");
/// assert!(FailureKind::Timeout.is_transient());
/// assert!(!FailureKind::Rejected.is_transient());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// The call took longer than its limit.
    Timeout,
    /// The connection could not be made, or broke (refused, reset, aborted).
    Connection,
    /// The server answered with an error (an HTTP 5xx, a gRPC `INTERNAL`).
    ServerError,
    /// The server asked us to slow down (an HTTP 429, a gRPC `RESOURCE_EXHAUSTED`).
    RateLimited,
    /// A battlement component refused the call (breaker open, bulkhead full, halted).
    Rejected,
    /// Any other failure.
    Other,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Timeout,
        FailureKind::Connection,
        FailureKind::ServerError,
        FailureKind::RateLimited,
        FailureKind::Rejected,
        FailureKind::Other,
    ];

    /// A short, stable, snake_case name (used in metrics and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Connection => "connection",
            FailureKind::ServerError => "server_error",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Rejected => "rejected",
            FailureKind::Other => "other",
        }
    }

    /// A dense index in `0..FailureKind::ALL.len()`, for per-kind counter arrays.
    pub fn index(self) -> usize {
        match self {
            FailureKind::Timeout => 0,
            FailureKind::Connection => 1,
            FailureKind::ServerError => 2,
            FailureKind::RateLimited => 3,
            FailureKind::Rejected => 4,
            FailureKind::Other => 5,
        }
    }

    /// `true` for the kinds a retry can reasonably cure by default: `Timeout`, `Connection`,
    /// `RateLimited`.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::Timeout | FailureKind::Connection | FailureKind::RateLimited
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_dense_and_matches_all() {
        for (i, k) in FailureKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    #[test]
    fn outcome_accessors() {
        assert!(Outcome::Success.is_success());
        assert!(!Outcome::Success.is_failure());
        assert_eq!(Outcome::Ignored.failure_kind(), None);
        assert_eq!(
            Outcome::Failure(FailureKind::Connection).to_string(),
            "failure (connection)"
        );
    }
}
