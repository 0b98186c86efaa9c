//! Response futures: the fallback layer's and the fallback chain's.

use crate::chain::ChainInner;
use crate::error::{AllFailed, FailedResponse, MemberUnavailable};
use crate::health::{Admit, TrialPermit};
use crate::service::Shared;
use crate::source::{FallbackInput, PendingFallback};
use battlement_core::{BoxError, Classify, FailureKind, Outcome};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tower::util::Oneshot;
use tower::ServiceExt;
use tower_service::Service;

pin_project! {
    /// The future of a call through a [`FallbackService`](crate::FallbackService): the inner
    /// call, then, if it failed, the fallback.
    ///
    /// Dropping it drops whichever is running (and the prepared fallback); nothing is recorded.
    pub struct ResponseFuture<Fut, P, C>
    where
        P: PendingFallback,
    {
        #[pin]
        state: State<Fut, P>,
        shared: Arc<Shared<C>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, P>
    where
        P: PendingFallback,
    {
        Primary {
            #[pin]
            future: Fut,
            pending: Option<P>,
        },
        Fallback {
            #[pin]
            future: P::Future,
        },
    }
}

impl<Fut, P: PendingFallback, C> ResponseFuture<Fut, P, C> {
    pub(crate) fn new(future: Fut, pending: P, shared: Arc<Shared<C>>) -> Self {
        ResponseFuture {
            state: State::Primary {
                future,
                pending: Some(pending),
            },
            shared,
        }
    }

    /// Whether the fallback is answering (the inner call failed).
    pub fn is_falling_back(&self) -> bool {
        matches!(self.state, State::Fallback { .. })
    }
}

impl<Fut, P: PendingFallback, C> fmt::Debug for ResponseFuture<Fut, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("name", &self.shared.name)
            .field("falling_back", &self.is_falling_back())
            .finish()
    }
}

impl<Fut, P, C, E> Future for ResponseFuture<Fut, P, C>
where
    Fut: Future<Output = Result<P::Response, E>>,
    E: Into<BoxError>,
    P: PendingFallback,
    C: Classify<P::Response, BoxError>,
{
    type Output = Result<P::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Primary { future, pending } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    let kind = match this.shared.classifier.classify(result.as_ref()) {
                        Outcome::Failure(FailureKind::Rejected) if !this.shared.on_rejected => {
                            return Poll::Ready(result)
                        }
                        Outcome::Failure(kind) => kind,
                        Outcome::Success | Outcome::Ignored => return Poll::Ready(result),
                    };
                    tracing::debug!(name = %this.shared.name, %kind, "fallback: call failed, answering from the fallback");
                    let input = match result {
                        Ok(response) => FallbackInput::Response { response, kind },
                        Err(error) => FallbackInput::Error { error, kind },
                    };
                    let pending = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let future = pending.fallback(input);
                    this.state.set(State::Fallback { future });
                }
                StateProj::Fallback { future } => return future.poll(cx),
            }
        }
    }
}

pin_project! {
    /// The future of a call through a [`FallbackChain`](crate::FallbackChain): tries the members
    /// in order (skipping unhealthy ones), each with a clone of the request, until one answers.
    ///
    /// Dropping it drops the member call in flight, which counts as neither success nor
    /// failure; if that call was an unhealthy member's trial, the trial permit is given back.
    pub struct ChainFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        inner: Arc<ChainInner<S, C>>,
        req: Option<Req>,
        next: usize,
        errors: Vec<(Arc<str>, BoxError)>,
        current: Option<Current>,
        #[pin]
        call: Call<S, Req>,
    }
}

struct Current {
    index: usize,
    trial: Option<TrialPermit>,
}

pin_project! {
    #[project = CallProj]
    enum Call<S, Req>
    where
        S: Service<Req>,
    {
        Idle,
        Calling {
            #[pin]
            future: Oneshot<S, Req>,
        },
    }
}

impl<S: Service<Req>, Req, C> ChainFuture<S, Req, C> {
    pub(crate) fn new(inner: Arc<ChainInner<S, C>>, req: Req) -> Self {
        ChainFuture {
            inner,
            req: Some(req),
            next: 0,
            errors: Vec::new(),
            current: None,
            call: Call::Idle,
        }
    }
}

impl<S: Service<Req>, Req, C> fmt::Debug for ChainFuture<S, Req, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let health = &self.inner.health;
        f.debug_struct("ChainFuture")
            .field("chain", &health.name)
            .field(
                "calling",
                &self.current.as_ref().map(|c| &health.members[c.index].name),
            )
            .field("failed", &self.errors.len())
            .finish()
    }
}

impl<S, Req, C> Future for ChainFuture<S, Req, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
    C: Classify<S::Response, BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let health = &this.inner.health;
        loop {
            match this.call.as_mut().project() {
                CallProj::Calling { future } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    this.call.set(Call::Idle);
                    let current = this.current.take().expect("a member call has its index");
                    let outcome = this.inner.classifier.classify(result.as_ref());
                    match current.trial {
                        Some(permit) => permit.finish(outcome),
                        None => health.record(current.index, outcome),
                    }
                    let name = &health.members[current.index].name;
                    match (outcome, result) {
                        (Outcome::Failure(kind), result) => {
                            tracing::debug!(chain = %health.name, member = %name, %kind, "fallback chain: member failed, trying the next");
                            let error = match result {
                                Err(e) => e,
                                Ok(_) => Box::new(FailedResponse::new(name.clone(), kind)),
                            };
                            this.errors.push((name.clone(), error));
                        }
                        (_, Ok(response)) => {
                            health.served(current.index);
                            return Poll::Ready(Ok(response));
                        }
                        // An error the classifier ignores (a caller's mistake, not the
                        // member's): no other member would do better.
                        (_, Err(e)) => return Poll::Ready(Err(e)),
                    }
                }
                CallProj::Idle => {
                    let n = this.inner.members.len();
                    let mut admitted = None;
                    while *this.next < n {
                        let index = *this.next;
                        *this.next += 1;
                        match health.admit(index) {
                            Admit::Call => admitted = Some((index, None)),
                            Admit::Trial(permit) => admitted = Some((index, Some(permit))),
                            Admit::Skip(trial_in) => {
                                let name = health.members[index].name.clone();
                                this.errors.push((
                                    name.clone(),
                                    Box::new(MemberUnavailable::new(
                                        health.name.clone(),
                                        name,
                                        trial_in,
                                    )),
                                ));
                                continue;
                            }
                        }
                        break;
                    }
                    let Some((index, trial)) = admitted else {
                        health.note_all_failed();
                        let errors = std::mem::take(this.errors);
                        return Poll::Ready(Err(Box::new(AllFailed::new(
                            health.name.clone(),
                            errors,
                        ))));
                    };
                    let req = if index + 1 == n {
                        this.req.take()
                    } else {
                        this.req.clone()
                    }
                    .expect("ChainFuture polled after completion");
                    *this.current = Some(Current { index, trial });
                    let member = this.inner.members[index].clone();
                    this.call.set(Call::Calling {
                        future: member.oneshot(req),
                    });
                }
            }
        }
    }
}
