//! What is retried: the rules that judge one finished attempt, and user predicates.

use battlement_core::error::{retry_after, AsDynError};
use battlement_core::{Classify, FailureKind, Outcome, ResultClassifier};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// A set of [`FailureKind`]s, as a bitmask.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KindSet(u8);

impl KindSet {
    /// `Timeout`, `Connection`, `RateLimited`: what a retry can reasonably cure.
    pub(crate) fn transient() -> Self {
        let mut set = KindSet(0);
        for kind in FailureKind::ALL {
            if kind.is_transient() {
                set.insert(kind);
            }
        }
        set
    }

    pub(crate) fn insert(&mut self, kind: FailureKind) {
        self.0 |= 1 << kind.index();
    }

    pub(crate) fn remove(&mut self, kind: FailureKind) {
        self.0 &= !(1 << kind.index());
    }

    pub(crate) fn set(&mut self, kind: FailureKind, on: bool) {
        if on {
            self.insert(kind);
        } else {
            self.remove(kind);
        }
    }

    pub(crate) fn contains(self, kind: FailureKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(FailureKind::ALL.iter().filter(|k| self.contains(**k)))
            .finish()
    }
}

/// The rules' judgement of one finished attempt.
///
/// ```
/// use battlement_core::{FailureKind, Outcome};
/// use battlement_retry::Verdict;
/// use std::time::Duration;
///
/// let v = Verdict::retry(Outcome::Failure(FailureKind::RateLimited))
///     .with_retry_after(Some(Duration::from_secs(2)));
/// assert!(v.should_retry());
/// assert_eq!(v.retry_after(), Some(Duration::from_secs(2)));
/// assert!(!Verdict::stop(Outcome::Success).should_retry());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    outcome: Outcome,
    retry: bool,
    retry_after: Option<Duration>,
    status: Option<u16>,
    body_too_large: bool,
}

impl Verdict {
    /// The attempt should be retried.
    pub fn retry(outcome: Outcome) -> Self {
        Verdict {
            outcome,
            retry: true,
            retry_after: None,
            status: None,
            body_too_large: false,
        }
    }

    /// The attempt's result is final.
    pub fn stop(outcome: Outcome) -> Self {
        Verdict {
            outcome,
            retry: false,
            retry_after: None,
            status: None,
            body_too_large: false,
        }
    }

    /// With the delay the answer asked for (a `Retry-After` header, a breaker's retry-after).
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// With the HTTP status of the answer.
    pub fn with_status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }

    /// With whether the request's body outgrew what a copy can replay (a
    /// `ReplayBody` beyond its cap): the policy then gives up instead of
    /// retrying, whatever the rules and the `retry_if` predicate say, with reason
    /// `body_too_large`.
    pub fn with_body_too_large(mut self, too_large: bool) -> Self {
        self.body_too_large = too_large;
        self
    }

    /// Whether the request's body cannot be sent again (see
    /// [`with_body_too_large`](Verdict::with_body_too_large)).
    pub fn body_too_large(&self) -> bool {
        self.body_too_large
    }

    /// How the attempt counts, by the classifier.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the rules would retry it.
    pub fn should_retry(&self) -> bool {
        self.retry
    }

    /// The delay the answer asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status of the answer, if it was an HTTP response.
    pub fn status(&self) -> Option<u16> {
        self.status
    }
}

/// Judges finished attempts and copies requests for retries.
///
/// Implemented by [`Rules`] (any request, response and error) and `HttpRules` (feature `http`:
/// `http::Request`/`http::Response`, idempotency, `Retry-After`). The policy asks
/// [`clone_request`](RetryRules::clone_request) before each attempt (`None` means the request is
/// sent once) and [`judge`](RetryRules::judge) after it.
///
/// ```
/// use battlement_core::error::BoxError;
/// use battlement_retry::{RetryRules, Rules};
///
/// let rules = Rules::default();
/// let req = String::from("ping");
/// let copy = RetryRules::<String, (), BoxError>::clone_request(&rules, &req);
/// assert_eq!(copy.as_deref(), Some("ping"));
/// ```
pub trait RetryRules<Req, Res, E> {
    /// A copy of `req` for a possible retry, or `None` if it cannot (or must not) be retried.
    fn clone_request(&self, req: &Req) -> Option<Req>;

    /// Judges one finished attempt.
    fn judge(&self, req: &Req, result: Result<&Res, &E>) -> Verdict;
}

/// Rules for any request, response and error: outcomes come from a [`Classify`]r (by default
/// [`ResultClassifier`]: every error fails, its kind read from its source chain) and failures of
/// the retryable kinds are retried (by default `Timeout`, `Connection`, `RateLimited`; `Rejected`
/// only with [`retry_rejected`](crate::RetryPolicyBuilder::retry_rejected), then honouring a
/// [`BreakerOpen`](battlement_core::error::BreakerOpen)'s retry-after).
///
/// Requests are copied with `Clone`.
///
/// ```
/// use battlement_core::{error::BoxError, FailureKind, Outcome};
/// use battlement_retry::{RetryRules, Rules};
/// use std::io;
///
/// let rules = Rules::default();
/// let refused: BoxError = Box::new(io::Error::from(io::ErrorKind::ConnectionRefused));
/// let v = rules.judge(&(), Err::<&(), _>(&refused));
/// assert_eq!(v.outcome(), Outcome::Failure(FailureKind::Connection));
/// assert!(v.should_retry());
///
/// let other: BoxError = "bad input".into();
/// assert!(!rules.judge(&(), Err::<&(), _>(&other)).should_retry());
/// ```
#[derive(Debug, Clone)]
pub struct Rules<C = ResultClassifier> {
    pub(crate) classifier: C,
    pub(crate) kinds: KindSet,
}

impl Default for Rules {
    fn default() -> Self {
        Rules::new(ResultClassifier)
    }
}

impl<C> Rules<C> {
    /// Rules classifying with `classifier`, retrying the default kinds.
    pub fn new(classifier: C) -> Self {
        Rules {
            classifier,
            kinds: KindSet::transient(),
        }
    }

    /// The classifier.
    pub fn classifier(&self) -> &C {
        &self.classifier
    }
}

/// Judges an outcome by its failure kind; a retried rejection carries its breaker's retry-after.
pub(crate) fn judge_by_kind<E: AsDynError>(
    kinds: KindSet,
    outcome: Outcome,
    error: Option<&E>,
) -> Verdict {
    match outcome {
        Outcome::Failure(kind) if kinds.contains(kind) => {
            let after = match (kind, error) {
                (FailureKind::Rejected, Some(e)) => retry_after(e.as_dyn_error()),
                _ => None,
            };
            Verdict::retry(outcome).with_retry_after(after)
        }
        _ => Verdict::stop(outcome),
    }
}

impl<Req, Res, E, C> RetryRules<Req, Res, E> for Rules<C>
where
    Req: Clone,
    E: AsDynError,
    C: Classify<Res, E>,
{
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }

    fn judge(&self, _req: &Req, result: Result<&Res, &E>) -> Verdict {
        let outcome = self.classifier.classify(result);
        judge_by_kind(self.kinds, outcome, result.err())
    }
}

/// What a [retry predicate](crate::RetryPolicyBuilder::retry_if) sees: the request, the attempt's
/// result, its outcome and what the rules decided.
///
/// ```
/// use battlement_core::error::BoxError;
/// use battlement_retry::{RetryContext, RetryPolicy};
///
/// // Also retry answers that say "busy"; never retry requests for "/pay".
/// let policy = RetryPolicy::builder()
///     .retry_if(|cx: &RetryContext<'_, String, String, BoxError>| {
///         if cx.request() == "/pay" {
///             return false;
///         }
///         cx.default_decision() || matches!(cx.result(), Ok(body) if body.as_str() == "busy")
///     })
///     .build()
///     .unwrap();
/// # drop(policy);
/// ```
pub struct RetryContext<'a, Req, Res, E> {
    pub(crate) request: &'a Req,
    pub(crate) result: Result<&'a Res, &'a E>,
    pub(crate) verdict: Verdict,
    pub(crate) attempt: u32,
}

impl<Req, Res, E> fmt::Debug for RetryContext<'_, Req, Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryContext")
            .field("verdict", &self.verdict)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl<'a, Req, Res, E> RetryContext<'a, Req, Res, E> {
    /// The request (as it will be sent again).
    pub fn request(&self) -> &'a Req {
        self.request
    }

    /// The attempt's result.
    pub fn result(&self) -> Result<&'a Res, &'a E> {
        self.result
    }

    /// How the attempt counts, by the classifier.
    pub fn outcome(&self) -> Outcome {
        self.verdict.outcome
    }

    /// The rules' full judgement.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// What the rules decided: `true` to retry.
    pub fn default_decision(&self) -> bool {
        self.verdict.retry
    }

    /// The number of the attempt that just finished (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Decides, with the rules' verdict at hand, whether an attempt is retried.
///
/// Implemented by [`DefaultPredicate`] (the rules decide) and by [`PredicateFn`] (a closure, from
/// [`retry_if`](crate::RetryPolicyBuilder::retry_if)).
///
/// ```
/// use battlement_core::{error::BoxError, Outcome};
/// use battlement_retry::{DefaultPredicate, RetryPredicate};
///
/// fn takes<P: RetryPredicate<(), (), BoxError>>(_p: P) {}
/// takes(DefaultPredicate);
/// ```
pub trait RetryPredicate<Req, Res, E> {
    /// `true` to retry (limits, deadline and budget still apply).
    fn should_retry(&self, cx: &RetryContext<'_, Req, Res, E>) -> bool;
}

/// The predicate that keeps the rules' decision.
///
/// ```
/// use battlement_retry::{DefaultPredicate, RetryPolicy};
///
/// let policy = RetryPolicy::builder().build().unwrap();
/// let _: &RetryPolicy<_, DefaultPredicate> = &policy;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPredicate;

impl<Req, Res, E> RetryPredicate<Req, Res, E> for DefaultPredicate {
    #[inline]
    fn should_retry(&self, cx: &RetryContext<'_, Req, Res, E>) -> bool {
        cx.verdict.retry
    }
}

/// A closure predicate over a [`RetryContext`]; see
/// [`retry_if`](crate::RetryPolicyBuilder::retry_if).
///
/// ```
/// use battlement_core::error::BoxError;
/// use battlement_retry::{PredicateFn, RetryContext, RetryPolicy};
///
/// // Retry every failure, whatever its kind.
/// let policy = RetryPolicy::builder()
///     .retry_if(|cx: &RetryContext<'_, u32, u32, BoxError>| cx.outcome().is_failure())
///     .build()
///     .unwrap();
/// # drop(policy);
/// ```
pub struct PredicateFn<F, Req, Res, E> {
    pub(crate) f: F,
    pub(crate) _types: PhantomData<fn(&Req, &Res, &E)>,
}

impl<F: Clone, Req, Res, E> Clone for PredicateFn<F, Req, Res, E> {
    fn clone(&self) -> Self {
        PredicateFn {
            f: self.f.clone(),
            _types: PhantomData,
        }
    }
}

impl<F, Req, Res, E> fmt::Debug for PredicateFn<F, Req, Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PredicateFn").finish_non_exhaustive()
    }
}

impl<F, Req, Res, E> RetryPredicate<Req, Res, E> for PredicateFn<F, Req, Res, E>
where
    F: Fn(&RetryContext<'_, Req, Res, E>) -> bool,
{
    #[inline]
    fn should_retry(&self, cx: &RetryContext<'_, Req, Res, E>) -> bool {
        (self.f)(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use battlement_core::error::{BoxError, BreakerOpen, BulkheadFull, Elapsed};

    #[test]
    fn kind_set() {
        let mut set = KindSet::transient();
        assert!(set.contains(FailureKind::Timeout));
        assert!(set.contains(FailureKind::Connection));
        assert!(set.contains(FailureKind::RateLimited));
        assert!(!set.contains(FailureKind::Rejected));
        assert!(!set.contains(FailureKind::ServerError));
        assert!(!set.contains(FailureKind::Other));
        set.insert(FailureKind::Rejected);
        set.remove(FailureKind::Timeout);
        assert!(set.contains(FailureKind::Rejected));
        assert!(!set.contains(FailureKind::Timeout));
        assert_eq!(format!("{set:?}"), "{Connection, RateLimited, Rejected}");
    }

    #[test]
    fn default_rules_judge_by_kind() {
        let rules = Rules::default();
        let judge = |err: BoxError| RetryRules::<(), (), BoxError>::judge(&rules, &(), Err(&err));
        let timeout = judge(Box::new(Elapsed::new("t".into(), Duration::from_secs(1))));
        assert!(timeout.should_retry());
        assert_eq!(timeout.outcome(), Outcome::Failure(FailureKind::Timeout));
        let open = judge(Box::new(BreakerOpen::new(
            "b".into(),
            Some(Duration::from_secs(3)),
        )));
        assert!(!open.should_retry());
        assert_eq!(open.outcome(), Outcome::Failure(FailureKind::Rejected));
        assert!(!judge(Box::new(BulkheadFull::new("b".into()))).should_retry());
        assert!(!judge("plain".into()).should_retry());
        let ok = RetryRules::<(), (), BoxError>::judge(&rules, &(), Ok(&()));
        assert_eq!(ok, Verdict::stop(Outcome::Success));
    }

    #[test]
    fn rejected_carries_breaker_retry_after_when_retried() {
        let mut rules = Rules::default();
        rules.kinds.insert(FailureKind::Rejected);
        let err: BoxError = Box::new(BreakerOpen::new("b".into(), Some(Duration::from_secs(3))));
        let v = RetryRules::<(), (), BoxError>::judge(&rules, &(), Err(&err));
        assert!(v.should_retry());
        assert_eq!(v.retry_after(), Some(Duration::from_secs(3)));
        let err: BoxError = Box::new(BulkheadFull::new("b".into()));
        let v = RetryRules::<(), (), BoxError>::judge(&rules, &(), Err(&err));
        assert!(v.should_retry());
        assert_eq!(v.retry_after(), None);
    }
}
