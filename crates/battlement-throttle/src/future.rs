//! The throttle's response future and the record of an admitted call.

use crate::throttle::Cell;
use battlement_core::stripe::CachePadded;
use battlement_core::{BoxError, FailureKind, Finish, Outcome, Settle};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// An admitted call of a [`Throttle`](crate::Throttle), until its outcome is recorded: it holds
/// the calling thread's cell of the throttle's counts (a reference count no other core writes).
///
/// How an outcome counts (chosen so the window measures what the dependency did):
///
/// - `Success`: the dependency accepted the call (`accepts`).
/// - `Failure` of any kind but `Rejected`: the dependency refused it, or failed (a 5xx or 429,
///   a timeout, a connection error): a request without an accept.
/// - `Failure(Rejected)`: a layer inside the throttle (an open breaker, a full bulkhead)
///   rejected the call locally: it never reached the dependency, so it leaves the count.
/// - `Ignored`, or dropped without an outcome (cancelled: a hedge's losing attempt, a caller
///   that gave up): it leaves the count, as a cancelled call does everywhere in battlement.
///
/// It appears in the response type of a throttle that judges gRPC streams at their end
/// (`GrpcClassifier`), as the breaker's `CallGuard` does.
pub struct Recorder {
    cell: Option<Arc<CachePadded<Cell>>>,
}

impl Recorder {
    pub(crate) fn new(cell: Arc<CachePadded<Cell>>) -> Self {
        Recorder { cell: Some(cell) }
    }
}

impl Finish for Recorder {
    #[inline]
    fn finish(mut self, outcome: Outcome) {
        if let Some(cell) = self.cell.take() {
            match outcome {
                Outcome::Success => cell.accept(),
                Outcome::Failure(FailureKind::Rejected) | Outcome::Ignored => cell.discard(),
                Outcome::Failure(_) => {}
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.discard();
        }
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("done", &self.cell.is_none())
            .finish()
    }
}

pin_project! {
    /// The future of a call through a [`ThrottleService`](crate::ThrottleService).
    ///
    /// Admitted: the inner future, the call's [`Recorder`] and the classifier, in an enum, no
    /// boxing. Throttled: fails at once with [`Throttled`](crate::Throttled). Dropped before it
    /// finishes, an admitted call leaves the throttle's count.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Admitted {
            #[pin]
            future: F,
            recorder: Option<Recorder>,
            classifier: C,
        },
        Throttled {
            error: Option<BoxError>,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn admitted(future: F, recorder: Recorder, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Admitted {
                future,
                recorder: Some(recorder),
                classifier,
            },
        }
    }

    pub(crate) fn throttled(error: BoxError) -> Self {
        ResponseFuture {
            kind: Kind::Throttled { error: Some(error) },
        }
    }

    /// Whether the call was rejected locally (the inner service was not called).
    pub fn is_throttled(&self) -> bool {
        matches!(self.kind, Kind::Throttled { .. })
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Settle<T, BoxError>,
{
    type Output = Result<C::Response<Recorder>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Admitted {
                future,
                recorder,
                classifier,
            } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                let recorder = recorder
                    .take()
                    .expect("throttle ResponseFuture polled after completion");
                Poll::Ready(classifier.settle(result, recorder))
            }
            KindProj::Throttled { error } => Poll::Ready(Err(error
                .take()
                .expect("throttle ResponseFuture polled after completion"))),
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Admitted { .. } => "admitted",
            Kind::Throttled { .. } => "throttled",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
