//! The rate limiter's response future.

use crate::key::{ExtractKey, KeyExtractor};
use crate::RateLimit;
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// The future of a call through a [`RateLimitService`](crate::RateLimitService).
    ///
    /// Admitted: the inner future in an enum, no boxing. Waiting: the timer and the ready
    /// service with the request, boxed. Rejected: fails at once.
    ///
    /// Dropping a waiting call cancels it: it holds no permit nor place in the limiter, only
    /// its timer, which is dropped with it.
    pub struct ResponseFuture<F, S, Req, X: KeyExtractor> {
        #[pin]
        kind: Kind<F, S, Req, X>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req, X: KeyExtractor> {
        Admitted {
            #[pin]
            future: F,
        },
        Waiting {
            limit: RateLimit<X>,
            sleep: Pin<Box<Sleep>>,
            deadline: Instant,
            queued: Option<Box<(S, Req)>>,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

impl<F, S, Req, X: KeyExtractor> ResponseFuture<F, S, Req, X> {
    pub(crate) fn admitted(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Admitted { future },
        }
    }

    pub(crate) fn waiting(limit: RateLimit<X>, wait: Duration, service: S, request: Req) -> Self {
        limit.note_waited();
        let now = Instant::now();
        let deadline = now + limit.max_delay();
        ResponseFuture {
            kind: Kind::Waiting {
                limit,
                sleep: Box::pin(tokio::time::sleep_until(now + wait)),
                deadline,
                queued: Some(Box::new((service, request))),
            },
        }
    }

    pub(crate) fn rejected(error: BoxError) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }

    /// Whether the call is waiting for its turn.
    pub fn is_waiting(&self) -> bool {
        matches!(self.kind, Kind::Waiting { .. })
    }

    /// Whether the call was rejected (the inner service was not called).
    pub fn is_rejected(&self) -> bool {
        matches!(self.kind, Kind::Rejected { .. })
    }
}

impl<F, S, Req, X, T, E> Future for ResponseFuture<F, S, Req, X>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    S: Service<Req, Future = F, Error = E>,
    X: ExtractKey<Req>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Admitted { future } => {
                    return Poll::Ready(ready!(future.poll(cx)).map_err(Into::into));
                }
                KindProj::Waiting {
                    limit,
                    sleep,
                    deadline,
                    queued,
                } => {
                    ready!(sleep.as_mut().poll(cx));
                    let Some(boxed) = queued.as_ref() else {
                        unreachable!("rate limit ResponseFuture polled after completion");
                    };
                    match limit.check(&boxed.1) {
                        Ok(()) => {
                            let (mut service, request) = *queued.take().expect("checked above");
                            let future = service.call(request);
                            kind.set(Kind::Admitted { future });
                        }
                        Err(wait) => {
                            let at = Instant::now() + wait;
                            if at > *deadline {
                                let error = Box::new(limit.reject(wait));
                                kind.set(Kind::Rejected { error: Some(error) });
                            } else {
                                // Another call took this turn: wait for the next one.
                                sleep.as_mut().reset(at);
                            }
                        }
                    }
                }
                KindProj::Rejected { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .expect("rate limit ResponseFuture polled after completion")));
                }
            }
        }
    }
}

impl<F, S, Req, X: KeyExtractor> fmt::Debug for ResponseFuture<F, S, Req, X> {
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
