//! The fallback chain's typed errors.
//!
//! A [`FallbackChain`](crate::FallbackChain) that finds no member to answer fails with
//! [`AllFailed`], which carries one entry per member, in order: the member's own error, a
//! [`FailedResponse`] when it answered with a response the classifier counted as a failure, or
//! [`MemberUnavailable`] when the call skipped it as unhealthy.

use battlement_core::{BoxError, FailureKind};
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Every member of a fallback chain failed (or was skipped as unhealthy).
///
/// `errors` holds one `(member name, error)` pair per member, in the chain's order. Its
/// [`source`](Error::source) is the error of the last member that was actually called, so
/// `battlement_core::error::failure_kind` reads that member's failure.
///
/// ```
/// use battlement_fallback::AllFailed;
///
/// let err = AllFailed::new(
///     "search".into(),
///     vec![("primary".into(), "connection refused".into()), ("backup".into(), "timed out".into())],
/// );
/// assert_eq!(err.errors().len(), 2);
/// assert_eq!(err.error("backup").unwrap().to_string(), "timed out");
/// assert_eq!(
///     err.to_string(),
///     "fallback chain `search`: all 2 members failed: primary: connection refused; backup: timed out"
/// );
/// ```
#[derive(Debug)]
pub struct AllFailed {
    chain: Arc<str>,
    errors: Vec<(Arc<str>, BoxError)>,
}

impl AllFailed {
    /// The chain `chain` failed with these members' errors.
    pub fn new(chain: Arc<str>, errors: Vec<(Arc<str>, BoxError)>) -> Self {
        AllFailed { chain, errors }
    }

    /// The chain's name.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Every member's error, in the chain's order.
    pub fn errors(&self) -> &[(Arc<str>, BoxError)] {
        &self.errors
    }

    /// The named member's error.
    pub fn error(&self, member: &str) -> Option<&BoxError> {
        self.errors
            .iter()
            .find(|(name, _)| &**name == member)
            .map(|(_, e)| e)
    }

    /// The members' errors, by value.
    pub fn into_errors(self) -> Vec<(Arc<str>, BoxError)> {
        self.errors
    }
}

impl fmt::Display for AllFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fallback chain `{}`: all {} members failed",
            self.chain,
            self.errors.len()
        )?;
        for (i, (name, err)) in self.errors.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{name}: {err}")?;
        }
        Ok(())
    }
}

impl Error for AllFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.errors
            .iter()
            .rev()
            .map(|(_, e)| &**e as &(dyn Error + 'static))
            .find(|e| !e.is::<MemberUnavailable>())
    }
}

/// A chain member the call skipped because it is unhealthy (its entry in [`AllFailed`]).
///
/// ```
/// use battlement_fallback::MemberUnavailable;
/// use std::time::Duration;
///
/// let e = MemberUnavailable::new("search".into(), "primary".into(), Some(Duration::from_secs(2)));
/// assert_eq!(e.member(), "primary");
/// assert_eq!(e.trial_in(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone)]
pub struct MemberUnavailable {
    chain: Arc<str>,
    member: Arc<str>,
    trial_in: Option<Duration>,
}

impl MemberUnavailable {
    /// Member `member` of chain `chain` was skipped; it admits a trial call in `trial_in`
    /// (`None`: a trial call is in flight).
    pub fn new(chain: Arc<str>, member: Arc<str>, trial_in: Option<Duration>) -> Self {
        MemberUnavailable {
            chain,
            member,
            trial_in,
        }
    }

    /// The chain's name.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The member's name.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Time until the member admits a trial call (`None`: a trial call is in flight).
    pub fn trial_in(&self) -> Option<Duration> {
        self.trial_in
    }
}

impl fmt::Display for MemberUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member `{}` is unhealthy; skipped", self.member)?;
        match self.trial_in {
            Some(d) => write!(f, " (trial call in {d:?})"),
            None => f.write_str(" (a trial call is in flight)"),
        }
    }
}

impl Error for MemberUnavailable {}

/// A chain member answered, but the classifier counted the answer as a failure (an HTTP 503,
/// say); its entry in [`AllFailed`]. The response itself is dropped.
///
/// ```
/// use battlement_core::FailureKind;
/// use battlement_fallback::FailedResponse;
///
/// let e = FailedResponse::new("backup".into(), FailureKind::ServerError);
/// assert_eq!(e.kind(), FailureKind::ServerError);
/// assert_eq!(e.to_string(), "member `backup` answered with a failure (server_error)");
/// ```
#[derive(Debug, Clone)]
pub struct FailedResponse {
    member: Arc<str>,
    kind: FailureKind,
}

impl FailedResponse {
    /// Member `member` answered with a response classified as a failure of kind `kind`.
    pub fn new(member: Arc<str>, kind: FailureKind) -> Self {
        FailedResponse { member, kind }
    }

    /// The member's name.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The failure's kind.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }
}

impl fmt::Display for FailedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "member `{}` answered with a failure ({})",
            self.member, self.kind
        )
    }
}

impl Error for FailedResponse {}
