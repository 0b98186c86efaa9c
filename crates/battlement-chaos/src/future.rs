//! The fault injection response future.

use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

pin_project! {
    /// The future of a call through a [`ChaosService`](crate::ChaosService): an optional injected
    /// delay, then the inner service's future, an injected error or an injected response.
    ///
    /// Without injection (always, while the handle is off) it is the inner future in an enum.
    /// Dropped early, it drops the inner future and the delay; nothing is held.
    pub struct ResponseFuture<F, Res> {
        #[pin]
        delay: Delay,
        #[pin]
        kind: Kind<F, Res>,
    }
}

pin_project! {
    #[project = DelayProj]
    enum Delay {
        Off,
        Sleeping {
            #[pin]
            sleep: Sleep,
        },
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, Res> {
        Inner {
            #[pin]
            future: F,
        },
        Error {
            error: Option<BoxError>,
        },
        Response {
            response: Option<Res>,
        },
    }
}

impl<F, Res> ResponseFuture<F, Res> {
    #[inline]
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            delay: Delay::Off,
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn error(error: BoxError) -> Self {
        ResponseFuture {
            delay: Delay::Off,
            kind: Kind::Error { error: Some(error) },
        }
    }

    pub(crate) fn response(response: Res) -> Self {
        ResponseFuture {
            delay: Delay::Off,
            kind: Kind::Response {
                response: Some(response),
            },
        }
    }

    pub(crate) fn delayed(self, delay: Duration) -> Self {
        ResponseFuture {
            delay: Delay::Sleeping {
                sleep: tokio::time::sleep(delay),
            },
            kind: self.kind,
        }
    }

    /// Whether a fault was injected into this call (a delay, an error or a response).
    pub fn is_injected(&self) -> bool {
        !matches!((&self.delay, &self.kind), (Delay::Off, Kind::Inner { .. }))
    }
}

impl<F, Res, E> Future for ResponseFuture<F, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let DelayProj::Sleeping { sleep } = this.delay.as_mut().project() {
            ready!(sleep.poll(cx));
            this.delay.set(Delay::Off);
        }
        match this.kind.project() {
            KindProj::Inner { future } => Poll::Ready(ready!(future.poll(cx)).map_err(Into::into)),
            KindProj::Error { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Response { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, Res> fmt::Debug for ResponseFuture<F, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Error { .. } => "error",
            Kind::Response { .. } => "response",
        };
        f.debug_struct("ResponseFuture")
            .field("delayed", &matches!(self.delay, Delay::Sleeping { .. }))
            .field("kind", &kind)
            .finish()
    }
}
