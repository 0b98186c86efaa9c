//! The timeout's response future.

use crate::config::Named;
use crate::timer::Entry;
use battlement_core::error::{Elapsed, TimeoutScope};
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

pin_project! {
    /// The future of a call through a [`TimeoutService`](crate::TimeoutService): the inner
    /// future raced against a timer, no boxing. Dropping it drops both (and takes the timer
    /// out of its thread's shard).
    ///
    /// The timer is armed lazily: the first poll polls the inner future, and only when it is
    /// still pending does the timer start, `limit` from that first poll. A call that completes
    /// on its first poll (a cache hit, a handler that answers at once) reads no clock and
    /// touches no timer. The limit therefore runs from the first poll, not from `call`; a
    /// response future is polled as soon as it is awaited, so the two are the same instant in
    /// practice.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        timer: Timer,
        // In nanoseconds: made a `Duration` only when the timer is armed.
        limit: u64,
        named: &'static Named,
        scope: TimeoutScope,
    }
}

pin_project! {
    /// A call's timer.
    #[project = TimerProj]
    #[derive(Debug)]
    enum Timer {
        /// Not armed: the inner call has not been pending yet.
        Unarmed,
        /// An entry in the calling thread's timer shard.
        Shard { entry: Entry },
        /// Tokio's `Sleep`, when the shard has no lane for the limit.
        Tokio {
            #[pin]
            sleep: Sleep,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, limit: u64, named: &'static Named, scope: TimeoutScope) -> Self {
        ResponseFuture {
            inner,
            timer: Timer::Unarmed,
            limit,
            named,
            scope,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        let fired = match this.timer.as_mut().project() {
            TimerProj::Shard { entry } => entry.poll(cx),
            TimerProj::Tokio { sleep } => sleep.poll(cx),
            TimerProj::Unarmed => arm(this.timer, *this.limit, cx),
        };
        match fired {
            Poll::Ready(()) => Poll::Ready(Err(elapsed(
                this.named,
                Duration::from_nanos(*this.limit),
                *this.scope,
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Arms the timer of a call still pending after its first poll: an entry in the thread's
/// shard (which has registered `cx`'s waker), or tokio's `Sleep` when the shard refuses it.
fn arm(mut timer: Pin<&mut Timer>, limit: u64, cx: &mut Context<'_>) -> Poll<()> {
    let limit = Duration::from_nanos(limit);
    match Entry::arm(limit, cx) {
        Some(entry) => {
            timer.set(Timer::Shard { entry });
            Poll::Pending
        }
        None => {
            timer.set(Timer::Tokio {
                sleep: tokio::time::sleep(limit),
            });
            match timer.project() {
                TimerProj::Tokio { sleep } => sleep.poll(cx),
                _ => unreachable!("armed above"),
            }
        }
    }
}

/// The error for a call that ran out of time (out of line: the cold path).
#[cold]
#[inline(never)]
fn elapsed(named: &'static Named, limit: Duration, scope: TimeoutScope) -> BoxError {
    named.elapsed.increment();
    let name = named.name;
    tracing::debug!(timeout = name, ?limit, %scope, "call timed out");
    Box::new(Elapsed::new(name.into(), limit).with_scope(scope))
}
