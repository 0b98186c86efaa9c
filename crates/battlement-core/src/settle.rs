//! How a recording layer (the breaker, the health probe) applies a classifier: at once, from
//! the call's result, or at the end of the response's body.

use crate::{Classify, Outcome};

/// Receives a call's outcome once it is known.
///
/// The breaker's call guard and the health probe's recorder implement it. Dropped without
/// `finish` (the response future or the response body was dropped first), it counts as neither
/// success nor failure and releases what it holds: the cancellation rule.
///
/// ```
/// use battlement_core::{Finish, Outcome};
///
/// struct Print;
/// impl Finish for Print {
///     fn finish(self, outcome: Outcome) {
///         println!("{outcome}");
///     }
/// }
/// Print.finish(Outcome::Success);
/// ```
pub trait Finish {
    /// Records `outcome`.
    fn finish(self, outcome: Outcome);

    /// Told that the outcome will come later (at the end of the response's body), right when
    /// the response's head arrived: a finisher that measures latency to the head (the breaker's)
    /// takes its reading here. Default: nothing.
    #[inline]
    fn defer(&mut self) {}
}

/// Marks a classifier that judges a call at once, from its result, never waiting for the body:
/// with it, the breaker and the health probe return the inner service's response unchanged.
///
/// Every built-in classifier except [`GrpcClassifier`](crate::GrpcClassifier) is one. Your own
/// [`Classify`] implementation needs this one line to be used by the breaker or the probe:
///
/// ```
/// use battlement_core::{error::BoxError, AtOnce, Classify, Outcome};
///
/// #[derive(Clone)]
/// struct EvenFails;
/// impl Classify<u32, BoxError> for EvenFails {
///     fn classify(&self, r: Result<&u32, &BoxError>) -> Outcome {
///         match r {
///             Ok(n) if n % 2 == 1 => Outcome::Success,
///             _ => Outcome::Failure(battlement_core::FailureKind::Other),
///         }
///     }
/// }
/// impl AtOnce for EvenFails {}
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not marked `AtOnce`: the breaker and the health probe cannot apply it",
    note = "if `{Self}` implements `Classify` and judges a call from its result alone, add `impl battlement_core::AtOnce for {Self} {{}}`"
)]
pub trait AtOnce {}

impl<C: AtOnce + ?Sized> AtOnce for &C {}
impl<C: AtOnce + ?Sized> AtOnce for std::sync::Arc<C> {}

/// How the breaker and the health probe apply a classifier to a call: they hand over the call's
/// result and a [`Finish`] to record into, and get back the response to pass on.
///
/// Every [`Classify`] + [`AtOnce`] classifier settles at once (the response is passed on
/// unchanged, `Response<F> = Res`). [`GrpcClassifier`](crate::GrpcClassifier) on an
/// `http::Response<B>` settles at end of stream when the head does not decide: the response's
/// body becomes a [`GrpcBody`](crate::GrpcBody) that holds the `Finish` until the trailers'
/// `grpc-status` arrives.
///
/// ```
/// use battlement_core::{classify_ok, error::BoxError, FailureKind, Finish, Outcome, Settle};
/// use std::cell::Cell;
///
/// struct Record<'a>(&'a Cell<Option<Outcome>>);
/// impl Finish for Record<'_> {
///     fn finish(self, outcome: Outcome) { self.0.set(Some(outcome)) }
/// }
/// let over_99_fails = classify_ok(|n: &u32| {
///     if *n > 99 { Outcome::Failure(FailureKind::Other) } else { Outcome::Success }
/// });
/// let seen = Cell::new(None);
/// let res = over_99_fails.settle(Ok::<_, BoxError>(502), Record(&seen)).unwrap();
/// assert_eq!(res, 502); // passed on unchanged
/// assert!(seen.get().unwrap().is_failure());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify the calls of this service (results of `{Res}`)",
    label = "the breaker and the health probe need a classifier for `Result<{Res}, {E}>`",
    note = "a classifier is `Classify<{Res}, {E}>` + `AtOnce`; if `{Self}` implements `Classify` for it, add `impl battlement_core::AtOnce for {Self} {{}}`",
    note = "for a response type that does not implement `ResponseOutcome`, pass `ResultClassifier` (every `Ok` succeeds) or implement `ResponseOutcome` for it"
)]
pub trait Settle<Res, E> {
    /// The response passed on in place of `Res` (given `F`, the finisher it may hold).
    type Response<F: Finish>;

    /// The outcome when `result` decides it at once (always, for an [`AtOnce`] classifier), or
    /// `None` when it is known only at the end of the response's body. Reads the result by
    /// reference, so a caller that records at once passes the response on where it lies.
    fn decide(&self, result: Result<&Res, &E>) -> Option<Outcome>;

    /// The response to pass on: `finish` is `None` when [`decide`](Self::decide) gave the
    /// outcome (the caller recorded it), else the finisher, already told to
    /// [`defer`](Finish::defer), that records it at the end of the body.
    fn respond<F: Finish>(
        &self,
        result: Result<Res, E>,
        finish: Option<F>,
    ) -> Result<Self::Response<F>, E>;

    /// Both steps: classifies `result`, records the outcome into `finish` (now, or when the
    /// response's body ends), and returns the response to pass on.
    #[inline]
    fn settle<F: Finish>(
        &self,
        result: Result<Res, E>,
        mut finish: F,
    ) -> Result<Self::Response<F>, E> {
        match self.decide(result.as_ref()) {
            Some(outcome) => {
                finish.finish(outcome);
                self.respond(result, None)
            }
            None => {
                finish.defer();
                self.respond(result, Some(finish))
            }
        }
    }
}

impl<C, Res, E> Settle<Res, E> for C
where
    C: Classify<Res, E> + AtOnce,
{
    type Response<F: Finish> = Res;

    #[inline]
    fn decide(&self, result: Result<&Res, &E>) -> Option<Outcome> {
        Some(self.classify(result))
    }

    #[inline]
    fn respond<F: Finish>(&self, result: Result<Res, E>, _: Option<F>) -> Result<Res, E> {
        result
    }
}

impl AtOnce for crate::ResultClassifier {}
impl AtOnce for crate::ResponseClassifier {}
impl<F> AtOnce for crate::FnClassifier<F> {}
impl<F> AtOnce for crate::OkClassifier<F> {}
#[cfg(feature = "http")]
impl AtOnce for crate::HttpClassifier {}
#[cfg(feature = "tower-http")]
impl<C> AtOnce for crate::TowerHttpClassifier<C> {}
