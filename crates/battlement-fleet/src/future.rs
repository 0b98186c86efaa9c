//! The global rate limit's response future.

use crate::key::FleetKey;
use crate::limit::{Decision, GlobalRateLimit};
use battlement_core::BoxError;
use battlement_rate_limit::{ExtractKey, KeyExtractor};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower_service::Service;

type BoxDecision = Pin<Box<dyn Future<Output = Decision> + Send>>;

pin_project! {
    /// The response future of a [`GlobalRateLimitService`](crate::GlobalRateLimitService):
    /// the decision (Redis' answer, boxed: a network round trip), then the inner call. A
    /// leased permit skips the first step (no box).
    pub struct ResponseFuture<S: Service<Req>, Req, X: KeyExtractor> {
        #[pin]
        state: St<S, Req, X>,
    }
}

pin_project! {
    #[project = StProj]
    enum St<S: Service<Req>, Req, X: KeyExtractor> {
        Deciding {
            decision: BoxDecision,
            svc: Option<S>,
            req: Option<Req>,
            limit: GlobalRateLimit<X>,
        },
        Called {
            #[pin]
            future: S::Future,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

impl<S: Service<Req>, Req, X: KeyExtractor> ResponseFuture<S, Req, X> {
    pub(crate) fn called(future: S::Future) -> Self {
        ResponseFuture {
            state: St::Called { future },
        }
    }

    pub(crate) fn rejected(error: battlement_core::error::RateLimited) -> Self {
        ResponseFuture {
            state: St::Rejected {
                error: Some(Box::new(error)),
            },
        }
    }

    pub(crate) fn deciding(
        decision: BoxDecision,
        svc: S,
        req: Req,
        limit: GlobalRateLimit<X>,
    ) -> Self {
        ResponseFuture {
            state: St::Deciding {
                decision,
                svc: Some(svc),
                req: Some(req),
                limit,
            },
        }
    }
}

impl<S, Req, X> Future for ResponseFuture<S, Req, X>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    X: ExtractKey<Req>,
    X::Key: FleetKey,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StProj::Deciding {
                    decision,
                    svc,
                    req,
                    limit,
                } => {
                    let decision = ready!(decision.as_mut().poll(cx));
                    let req_ref = req.as_ref().expect("polled after completion");
                    let admitted = match decision {
                        Decision::Admit => Ok(()),
                        Decision::Reject(e) => Err(e),
                        Decision::Local => limit.decide_locally(req_ref),
                    };
                    match admitted {
                        Ok(()) => {
                            let mut svc = svc.take().expect("polled after completion");
                            let req = req.take().expect("polled after completion");
                            let future = svc.call(req);
                            this.state.set(St::Called { future });
                        }
                        Err(e) => this.state.set(St::Rejected {
                            error: Some(Box::new(e)),
                        }),
                    }
                }
                StProj::Called { future } => return future.poll(cx).map_err(Into::into),
                StProj::Rejected { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")))
                }
            }
        }
    }
}

impl<S: Service<Req>, Req, X: KeyExtractor> fmt::Debug for ResponseFuture<S, Req, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
