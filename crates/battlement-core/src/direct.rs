//! The error of a direct call: a component's `call(|| async { … })` outside Tower.

use crate::error::{AsDynError, BoxError};
use std::error::Error;
use std::fmt;

/// Why a direct call (`breaker.call(…)`, `bulkhead.call(…)`, `kill_switch.call(…)`) did not
/// return a value: the component refused it (`Rejected`, with the component's typed error, the
/// same one its layer returns), or it ran and failed (`Inner`, the call's own error, unchanged).
///
/// Match on it to tell "the dependency was not called" from "the dependency failed":
///
/// ```
/// use battlement_core::error::BreakerOpen;
/// use battlement_core::CallError;
///
/// fn describe(err: &CallError<BreakerOpen, std::io::Error>) -> String {
///     match err {
///         CallError::Rejected(open) => format!("not called: {} is open", open.name()),
///         CallError::Inner(io) => format!("failed: {io}"),
///     }
/// }
/// let err = CallError::Rejected(BreakerOpen::new("db".into(), None));
/// assert_eq!(describe(&err), "not called: db is open");
/// ```
///
/// It implements `std::error::Error` when the call's error does (its source is the variant's
/// error, so [`failure_kind`](crate::error::failure_kind) reads a rejection as `Rejected`), and
/// [`AsDynError`] when the call's error does (a `BoxError`, an `io::Error`, …), so the default
/// classifiers judge it: a retry around a breaker's direct call does not retry an open breaker
/// by default, as around its layer. [`into_boxed`](Self::into_boxed) gives the `BoxError` a layer
/// would have returned.
#[derive(Debug)]
pub enum CallError<R, E> {
    /// The component refused the call; the dependency was not called.
    Rejected(R),
    /// The call ran and returned this error.
    Inner(E),
}

impl<R, E> CallError<R, E> {
    /// Whether the component refused the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }

    /// The rejection, if the component refused the call.
    pub fn rejected(&self) -> Option<&R> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(_) => None,
        }
    }

    /// The call's own error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }

    /// The error a layer would have returned: the rejection or the call's error, boxed.
    ///
    /// ```
    /// use battlement_core::error::{BoxError, Halted};
    /// use battlement_core::CallError;
    ///
    /// let err: CallError<Halted, BoxError> =
    ///     CallError::Rejected(Halted::new("payments".into(), "incident".into(), std::time::SystemTime::now()));
    /// assert!(err.into_boxed().is::<Halted>());
    /// ```
    pub fn into_boxed(self) -> BoxError
    where
        R: Error + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        match self {
            CallError::Rejected(r) => Box::new(r),
            CallError::Inner(e) => e.into(),
        }
    }
}

impl<R: fmt::Display, E: fmt::Display> fmt::Display for CallError<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => write!(f, "call rejected: {r}"),
            CallError::Inner(e) => write!(f, "call failed: {e}"),
        }
    }
}

impl<R, E> Error for CallError<R, E>
where
    R: Error + 'static,
    E: Error + 'static,
{
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(e) => Some(e),
        }
    }
}

impl<R, E> AsDynError for CallError<R, E>
where
    R: Error + 'static,
    E: AsDynError,
{
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        match self {
            CallError::Rejected(r) => r,
            CallError::Inner(e) => e.as_dyn_error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{failure_kind, BreakerOpen};
    use crate::{Classify, FailureKind, Outcome, ResultClassifier};

    #[test]
    fn classified_by_its_variant() {
        let rejected: CallError<BreakerOpen, BoxError> =
            CallError::Rejected(BreakerOpen::new("db".into(), None));
        assert_eq!(
            ResultClassifier.classify(Err::<&(), _>(&rejected)),
            Outcome::Failure(FailureKind::Rejected)
        );
        let timed_out: CallError<BreakerOpen, std::io::Error> =
            CallError::Inner(std::io::ErrorKind::TimedOut.into());
        assert_eq!(failure_kind(&timed_out), FailureKind::Timeout);
        let boxed: BoxError = Box::new(timed_out);
        assert_eq!(failure_kind(&*boxed), FailureKind::Timeout);
    }
}
