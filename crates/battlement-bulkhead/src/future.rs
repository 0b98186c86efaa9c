//! The bulkhead's response future.

use crate::bulkhead::Admission;
use crate::permit::Permit;
use crate::queue::WaitFuture;
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower_service::Service;

pin_project! {
    /// The future of a call through a [`BulkheadService`](crate::BulkheadService).
    ///
    /// Admitted: the inner future and the permit, no boxing. Queued: the wait for a permit and
    /// the ready service with the request, both boxed (so the future is no larger than the
    /// inner future and a permit, however large the request), then the inner call. Rejected:
    /// fails at once.
    ///
    /// Dropping it releases everything it holds: its permit, or its place in the queue.
    pub struct ResponseFuture<F, S, Req> {
        #[pin]
        kind: Kind<F, S, Req>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req> {
        Admitted {
            #[pin]
            future: F,
            permit: Option<Permit>,
        },
        Waiting {
            wait: WaitFuture,
            queued: Option<Box<(S, Req)>>,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

impl<F, S, Req> ResponseFuture<F, S, Req> {
    /// The future of a call admitted by [`Bulkhead::try_call`](crate::Bulkhead::try_call):
    /// with a permit, `inner` (ready) is called at once; queued, the ready `inner` goes with
    /// the request into the future and a clone takes its place (as in
    /// [`BulkheadService`](crate::BulkheadService)); rejected, it fails at once.
    #[inline]
    pub fn new(admission: crate::BulkheadAdmission, inner: &mut S, req: Req) -> Self
    where
        S: Service<Req, Future = F> + Clone,
    {
        match admission.0 {
            Admission::Now(permit) => Self::admitted(inner.call(req), permit),
            Admission::Wait(wait) => {
                let clone = inner.clone();
                let ready = std::mem::replace(inner, clone);
                Self::waiting(wait, ready, req)
            }
            Admission::Rejected(error) => Self::rejected(error),
        }
    }

    #[inline]
    pub(crate) fn admitted(future: F, permit: Permit) -> Self {
        ResponseFuture {
            kind: Kind::Admitted {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn waiting(wait: WaitFuture, service: S, request: Req) -> Self {
        ResponseFuture {
            kind: Kind::Waiting {
                wait,
                queued: Some(Box::new((service, request))),
            },
        }
    }

    pub(crate) fn rejected(error: BoxError) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }

    /// Whether the call is waiting in the bulkhead's queue.
    pub fn is_waiting(&self) -> bool {
        matches!(self.kind, Kind::Waiting { .. })
    }

    /// Whether the call was rejected (the inner service was not called).
    pub fn is_rejected(&self) -> bool {
        matches!(self.kind, Kind::Rejected { .. })
    }
}

impl<F, S, Req, T, E> Future for ResponseFuture<F, S, Req>
where
    S: Service<Req, Future = F, Response = T, Error = E>,
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Admitted { future, permit } => {
                    // The inner `Poll` passed on as it is, not taken apart by `ready!` and
                    // rebuilt: behind an axum router that moved the response once less (16
                    // instructions a request).
                    let poll = future.poll(cx);
                    if poll.is_ready() {
                        // Released as soon as the call is done, not when the future is dropped.
                        drop(permit.take());
                    }
                    return poll.map(|output| output.map_err(Into::into));
                }
                KindProj::Waiting { wait, queued } => {
                    let permit = match ready!(wait.as_mut().poll(cx)) {
                        Ok(permit) => permit,
                        Err(error) => return Poll::Ready(Err(error)),
                    };
                    let Some(queued) = queued.take() else {
                        unreachable!("bulkhead ResponseFuture polled after completion");
                    };
                    let (mut service, request) = *queued;
                    let future = service.call(request);
                    kind.set(Kind::Admitted {
                        future,
                        permit: Some(permit),
                    });
                }
                KindProj::Rejected { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .expect("bulkhead ResponseFuture polled after completion")));
                }
            }
        }
    }
}

impl<F, S, Req> fmt::Debug for ResponseFuture<F, S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Admitted { .. } => "admitted",
            Kind::Waiting { .. } => "waiting",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
