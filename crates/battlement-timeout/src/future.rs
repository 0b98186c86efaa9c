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
        // The timer once armed: an entry in this thread's shard, or (when the shard has no
        // lane for this limit) tokio's `Sleep`.
        entry: Option<Entry>,
        #[pin]
        sleep: Option<Sleep>,
        // In nanoseconds: made a `Duration` only when the timer is armed.
        limit: u64,
        named: &'static Named,
        scope: TimeoutScope,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, limit: u64, named: &'static Named, scope: TimeoutScope) -> Self {
        ResponseFuture {
            inner,
            entry: None,
            sleep: None,
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
        let fired = if let Some(entry) = this.entry {
            entry.poll(cx)
        } else if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
            sleep.poll(cx)
        } else {
            arm(this.entry, this.sleep, *this.limit, cx)
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
fn arm(
    entry: &mut Option<Entry>,
    mut sleep: Pin<&mut Option<Sleep>>,
    limit: u64,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let limit = Duration::from_nanos(limit);
    match Entry::arm(limit, cx) {
        Some(armed) => {
            *entry = Some(armed);
            Poll::Pending
        }
        None => {
            sleep.set(Some(tokio::time::sleep(limit)));
            sleep.as_pin_mut().expect("armed above").poll(cx)
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
