//! The breaker's response future.

use crate::breaker::{Admission, Shard, UNTIMED};
use battlement_core::error::BreakerOpen;
use battlement_core::{BoxError, Classify};
use crossbeam_utils::CachePadded;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The future of a call through a [`CircuitBreakerService`](crate::CircuitBreakerService).
    ///
    /// When it finishes it records the call's outcome; dropped before that, it counts as neither
    /// success nor failure and returns any half-open trial permit it held.
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
            guard: Guard,
            classifier: C,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

/// Records the call's end; if dropped unfinished, records a cancellation.
struct Guard {
    shard: Arc<CachePadded<Shard>>,
    admission: Admission,
    /// When the call started, or [`UNTIMED`].
    start: u64,
    done: bool,
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.shard.shared.cancel(self.shard.index, self.admission);
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn admitted(
        future: F,
        shard: Arc<CachePadded<Shard>>,
        admission: Admission,
        classifier: C,
    ) -> Self {
        let start = shard.shared.start_timer();
        ResponseFuture {
            kind: Kind::Admitted {
                future,
                guard: Guard {
                    shard,
                    admission,
                    start,
                    done: false,
                },
                classifier,
            },
        }
    }

    pub(crate) fn rejected(error: BreakerOpen) -> Self {
        // Boxed here rather than when polled: the same one allocation, and a smaller future.
        ResponseFuture {
            kind: Kind::Rejected {
                error: Some(Box::new(error)),
            },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Admitted {
                future,
                guard,
                classifier,
            } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                let outcome = classifier.classify(result.as_ref());
                let latency =
                    (guard.start != UNTIMED).then(|| guard.shard.shared.elapsed(guard.start));
                guard.done = true;
                guard
                    .shard
                    .shared
                    .record(guard.shard.index, guard.admission, outcome, latency);
                Poll::Ready(result)
            }
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Admitted { .. } => "admitted",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
