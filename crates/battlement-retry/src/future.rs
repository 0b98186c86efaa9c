//! The futures: the wait before a retry, and the retry service's response future.

use crate::policy::RequestState;
use crate::rules::{RetryPredicate, RetryRules};
use crate::service::Handle;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower::Service;

pin_project! {
    /// The wait before a retry: a `tokio::time::Sleep`, or nothing for a zero delay.
    ///
    /// Returned by the policy's [`Policy::retry`](tower::retry::Policy::retry); tower's `Retry`
    /// polls it and then sends the request again. Time comes from `tokio::time`, so tests run it
    /// with a paused clock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_retry::RetryDelay;
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let start = Instant::now();
    /// RetryDelay::new(Duration::from_secs(2)).await;
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct RetryDelay {
        #[pin]
        inner: Inner,
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner {
        Now,
        Sleeping { #[pin] sleep: Sleep },
    }
}

impl RetryDelay {
    /// A wait of `delay` (`Duration::ZERO` is ready at once).
    pub fn new(delay: Duration) -> Self {
        let inner = if delay.is_zero() {
            Inner::Now
        } else {
            Inner::Sleeping {
                sleep: tokio::time::sleep(delay),
            }
        };
        RetryDelay { inner }
    }
}

impl RetryDelay {
    /// Whether the wait is over before it starts (a zero delay).
    pub(crate) fn is_now(&self) -> bool {
        matches!(self.inner, Inner::Now)
    }
}

impl Future for RetryDelay {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().inner.project() {
            InnerProj::Now => Poll::Ready(()),
            InnerProj::Sleeping { sleep } => sleep.poll(cx),
        }
    }
}

/// What a request keeps for its next attempt: its thread's handle (the policy and a clone of the
/// inner service), its own state, and the copy of the request to send next.
pub(crate) struct Session<S: 'static, Req, K: 'static, P: 'static> {
    handle: Handle<S, K, P>,
    state: RequestState,
    request: Option<Req>,
}

impl<S: 'static, Req, K: 'static, P: 'static> Session<S, Req, K, P> {
    #[inline]
    pub(crate) fn new(handle: Handle<S, K, P>, state: RequestState, request: Req) -> Self {
        Session {
            handle,
            state,
            request: Some(request),
        }
    }
}

pin_project! {
    /// The response future of a [`Retry`](crate::Retry) service: the current attempt, the wait
    /// before the next one, or the wait for the inner service to be ready for it.
    pub struct ResponseFuture<S, Req, K, P>
    where
        S: Service<Req>,
        S: 'static,
        K: 'static,
        P: 'static,
    {
        #[pin]
        state: State<S::Future, S>,
        // `None` for a request sent once (its copy could not be made).
        session: Option<Session<S, Req, K, P>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S> {
        Called { #[pin] future: F },
        // Boxed: a `Sleep` is most of a future's size, and every request's future is moved at
        // least once; only a retry that waits allocates.
        Waiting { delay: Pin<Box<RetryDelay>> },
        // A clone of the inner service for this attempt, until it is ready and called.
        Checking { service: S },
    }
}

impl<S, Req, K, P> ResponseFuture<S, Req, K, P>
where
    S: Service<Req> + 'static,
    K: 'static,
    P: 'static,
{
    /// The future of a request that may be retried: its first attempt, and what a retry
    /// needs. The attempt's future is taken last, straight into place.
    #[inline]
    pub(crate) fn new(session: Session<S, Req, K, P>, future: S::Future) -> Self {
        ResponseFuture {
            state: State::Called { future },
            session: Some(session),
        }
    }

    /// The future of a request sent once.
    #[inline]
    pub(crate) fn once(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Called { future },
            session: None,
        }
    }
}

impl<S, Req, K, P> fmt::Debug for ResponseFuture<S, Req, K, P>
where
    S: Service<Req> + 'static,
    K: 'static,
    P: 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Waiting { .. } => "waiting",
            State::Checking { .. } => "checking",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field(
                "attempts",
                &self.session.as_ref().map(|s| s.state.attempts()),
            )
            .finish()
    }
}

impl<S, Req, K, P> ResponseFuture<S, Req, K, P>
where
    S: Service<Req> + Clone + 'static,
    K: 'static,
    P: 'static,
    K: RetryRules<Req, S::Response, S::Error>,
    P: RetryPredicate<Req, S::Response, S::Error>,
{
    /// Judges an attempt's result: `Some` to return it, or `None` with the next attempt (or the
    /// wait before it) set up in `state`.
    #[inline]
    fn judge(
        mut state: Pin<&mut State<S::Future, S>>,
        session: &mut Option<Session<S, Req, K, P>>,
        mut result: Result<S::Response, S::Error>,
    ) -> Option<Result<S::Response, S::Error>> {
        let Some(session) = session.as_mut() else {
            return Some(result);
        };
        let Some(req) = session.request.as_mut() else {
            return Some(result);
        };
        match session.handle.shared.decide(
            &mut session.state,
            req,
            &mut result,
            Some(&session.handle.counts),
        ) {
            Some(delay) if delay.is_now() => {
                let service = session.handle.service.clone();
                state.set(State::Checking { service });
            }
            Some(delay) => state.set(State::Waiting {
                delay: Box::pin(delay),
            }),
            None => return Some(result),
        }
        None
    }

    /// Drives the request from any state until it is pending or done: the path of a request
    /// whose first attempt is not its last, kept out of line so that the first attempt's path
    /// (every poll until that attempt's result is judged) stays short where it is inlined.
    #[inline(never)]
    fn drive(
        mut state: Pin<&mut State<S::Future, S>>,
        session: &mut Option<Session<S, Req, K, P>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Response, S::Error>> {
        loop {
            match state.as_mut().project() {
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    if let Some(result) = Self::judge(state.as_mut(), session, result) {
                        return Poll::Ready(result);
                    }
                }
                StateProj::Waiting { delay } => {
                    ready!(delay.as_mut().poll(cx));
                    let session = session
                        .as_ref()
                        .expect("only a request with a session waits for a retry");
                    let service = session.handle.service.clone();
                    state.set(State::Checking { service });
                }
                StateProj::Checking { service } => {
                    if let Err(e) = ready!(service.poll_ready(cx)) {
                        return Poll::Ready(Err(e));
                    }
                    let session = session
                        .as_mut()
                        .expect("only a request with a session waits for a retry");
                    let req = session
                        .request
                        .take()
                        .expect("only a request with a copy waits for a retry");
                    session.request = RetryRules::<Req, S::Response, S::Error>::clone_request(
                        &session.handle.shared.rules,
                        &req,
                    );
                    let future = service.call(req);
                    state.set(State::Called { future });
                }
            }
        }
    }
}

impl<S, Req, K, P> Future for ResponseFuture<S, Req, K, P>
where
    S: Service<Req> + Clone + 'static,
    K: 'static,
    P: 'static,
    K: RetryRules<Req, S::Response, S::Error>,
    P: RetryPredicate<Req, S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    /// The first attempt's path inline; anything after it out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let StateProj::Called { future } = this.state.as_mut().project() {
            let result = ready!(future.poll(cx));
            if let Some(result) = Self::judge(this.state.as_mut(), this.session, result) {
                return Poll::Ready(result);
            }
        }
        Self::drive(this.state, this.session, cx)
    }
}
