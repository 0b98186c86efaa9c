//! The hedged call's response future.

use crate::handle::Shared;
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{sleep, Instant, Sleep};
use tower::util::Oneshot;
use tower::ServiceExt;
use tower_service::Service;

pin_project! {
    /// The future of a call through a [`Hedge`](crate::Hedge) service.
    ///
    /// It polls every attempt in flight; when the delay passes with none answered (and the
    /// budget allows), it starts another, up to the layer's `max_attempts`. The first attempt to
    /// succeed answers: the others are dropped at once (cancelled). An attempt that fails while
    /// others are in flight is set aside; when every attempt started has failed, the call fails
    /// with the last error. A hedge is never sent after every attempt in flight failed: hedging
    /// is not retrying.
    ///
    /// The first attempt lives inline; hedges are boxed (the only allocation, and only when a
    /// hedge is sent). Dropping the future drops every attempt and counts as nothing.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        first: First<S::Future>,
        hedges: Vec<Pin<Box<Oneshot<S, Req>>>>,
        spare: Option<(S, Req)>,
        #[pin]
        timer: Timer,
        attempts: usize,
        max_attempts: usize,
        started: Option<Instant>,
        last_error: Option<BoxError>,
        shared: Arc<Shared>,
    }
}

pin_project! {
    #[project = FirstProj]
    enum First<F> {
        Running {
            #[pin]
            future: F,
        },
        Done,
    }
}

pin_project! {
    #[project = TimerProj]
    enum Timer {
        Off,
        On {
            #[pin]
            sleep: Sleep,
        },
    }
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    fn new(
        future: S::Future,
        spare: Option<(S, Req)>,
        max_attempts: usize,
        timer: Timer,
        shared: Arc<Shared>,
    ) -> Self {
        ResponseFuture {
            first: First::Running { future },
            hedges: Vec::new(),
            spare,
            timer,
            attempts: 1,
            max_attempts,
            started: shared.measures_latency().then(Instant::now),
            last_error: None,
            shared,
        }
    }

    /// A call that may be hedged, up to `max_attempts` attempts (read when the call starts, so
    /// a reload applies to the next calls): `spare` is the service and request that hedges
    /// clone.
    pub(crate) fn hedged(
        future: S::Future,
        spare: (S, Req),
        max_attempts: usize,
        shared: Arc<Shared>,
    ) -> Self {
        let timer = Timer::On {
            sleep: sleep(shared.delay()),
        };
        Self::new(future, Some(spare), max_attempts, timer, shared)
    }

    /// A call that is not hedged.
    pub(crate) fn single(future: S::Future, shared: Arc<Shared>) -> Self {
        Self::new(future, None, 1, Timer::Off, shared)
    }

    /// Attempts started so far (the first included).
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// Attempts in flight now.
    pub fn in_flight(&self) -> usize {
        usize::from(matches!(self.first, First::Running { .. })) + self.hedges.len()
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("name", &self.shared.name)
            .field("attempts", &self.attempts)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // The first attempt.
            if let FirstProj::Running { future } = this.first.as_mut().project() {
                if let Poll::Ready(result) = future.poll(cx) {
                    this.first.set(First::Done);
                    match result {
                        Ok(response) => {
                            // Cancel the hedges now, not when the caller drops this future.
                            this.hedges.clear();
                            if let Some(started) = this.started {
                                this.shared.record_latency(started.elapsed());
                            }
                            return Poll::Ready(Ok(response));
                        }
                        Err(e) => *this.last_error = Some(e.into()),
                    }
                }
            }

            // The hedges.
            let mut i = 0;
            while i < this.hedges.len() {
                match this.hedges[i].as_mut().poll(cx) {
                    Poll::Pending => i += 1,
                    Poll::Ready(Ok(response)) => {
                        this.first.set(First::Done);
                        this.hedges.clear();
                        this.shared.hedge_won();
                        if let Some(started) = this.started {
                            this.shared.record_latency(started.elapsed());
                        }
                        tracing::debug!(name = %this.shared.name, attempts = *this.attempts, "hedge: a hedge answered first");
                        return Poll::Ready(Ok(response));
                    }
                    Poll::Ready(Err(e)) => {
                        *this.last_error = Some(e.into());
                        drop(this.hedges.swap_remove(i));
                    }
                }
            }

            let in_flight = matches!(*this.first, First::Running { .. }) || !this.hedges.is_empty();
            if !in_flight {
                this.timer.set(Timer::Off);
                let error = this
                    .last_error
                    .take()
                    .expect("ResponseFuture polled after completion");
                return Poll::Ready(Err(error));
            }

            // The delay before the next hedge.
            let TimerProj::On { mut sleep } = this.timer.as_mut().project() else {
                return Poll::Pending;
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if !this.shared.try_hedge() {
                tracing::debug!(name = %this.shared.name, "hedge: budget exhausted, no hedge sent");
                this.timer.set(Timer::Off);
                return Poll::Pending;
            }
            let max = *this.max_attempts;
            *this.attempts += 1;
            let (svc, req) = if *this.attempts >= max {
                this.spare.take()
            } else {
                this.spare.clone()
            }
            .expect("a hedgeable call keeps a spare service and request");
            if this.hedges.capacity() == 0 {
                this.hedges.reserve_exact(max - 1);
            }
            this.hedges.push(Box::pin(svc.oneshot(req)));
            tracing::debug!(name = %this.shared.name, attempt = *this.attempts, "hedge: no answer yet, hedge sent");
            if *this.attempts >= max {
                this.timer.set(Timer::Off);
            } else {
                let next = Instant::now() + this.shared.delay();
                sleep.as_mut().reset(next);
            }
            // Poll the new hedge at once.
        }
    }
}
