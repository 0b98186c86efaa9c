//! The service: retries with a [`RetryPolicy`], without cloning the policy for each request.

use crate::future::ResponseFuture;
use crate::policy::{RequestState, RetryPolicy, Shared};
use crate::rules::{DefaultPredicate, RetryPredicate, RetryRules, Rules};
use battlement_core::stripe::{CachePadded, Stripes};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// A request's handle on the policy's shared state: one per stripe, so the reference count a
/// request increments and decrements is on a cache line only its thread writes.
pub(crate) type Handle<K, P> = Arc<CachePadded<Arc<Shared<K, P>>>>;

/// The policy's handles, one per stripe (made once per layer; clones share them).
pub(crate) struct Handles<K, P> {
    policy: RetryPolicy<K, P>,
    stripes: Stripes<Handle<K, P>>,
}

impl<K, P> Handles<K, P> {
    pub(crate) fn new(policy: RetryPolicy<K, P>) -> Arc<Self> {
        let shared = policy.shared().clone();
        Arc::new(Handles {
            policy,
            stripes: Stripes::new_shared(|_| shared.clone()),
        })
    }

    pub(crate) fn policy(&self) -> &RetryPolicy<K, P> {
        &self.policy
    }
}

/// Retries a service's failed calls with a [`RetryPolicy`]; what a
/// [`RetryLayer`](crate::RetryLayer) makes.
///
/// It decides as tower's [`tower::retry::Retry`] does with the same policy (the policy still
/// implements [`tower::retry::Policy`], for `ServiceBuilder::retry`), but a request's first
/// attempt costs less: tower's service clones the policy for every request, which increments
/// and decrements one reference count that every core shares; this one borrows the policy's
/// settings, rules and counters through a handle of the calling thread's own (a reference count
/// no other core writes), and keeps the per-request state (attempts, previous delay, random
/// stream, start) as plain words in the response future. Like tower's, it keeps a copy of the
/// request and a clone of the inner service for the next attempt; a request the rules cannot
/// copy is sent once, with neither.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::error::BoxError;
/// use battlement_retry::{Retry, RetryPolicy};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use tower::ServiceExt;
///
/// let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
/// // Reset once, then answers.
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = calls.clone();
/// let inner = tower::service_fn(move |x: u32| {
///     let n = counter.fetch_add(1, Ordering::SeqCst);
///     async move {
///         if n == 0 {
///             Err::<u32, BoxError>(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))
///         } else {
///             Ok(x)
///         }
///     }
/// });
/// let svc = Retry::new(policy, inner);
/// assert_eq!(svc.oneshot(7).await.unwrap(), 7);
/// assert_eq!(calls.load(Ordering::SeqCst), 2);
/// # }
/// ```
pub struct Retry<S, K = Rules, P = DefaultPredicate> {
    handles: Arc<Handles<K, P>>,
    inner: S,
}

impl<S, K, P> Retry<S, K, P> {
    /// Retries `inner`'s calls with `policy`.
    pub fn new(policy: RetryPolicy<K, P>, inner: S) -> Self {
        Retry::with_handles(Handles::new(policy), inner)
    }

    pub(crate) fn with_handles(handles: Arc<Handles<K, P>>, inner: S) -> Self {
        Retry { handles, inner }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<K, P> {
        self.handles.policy()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, P> Clone for Retry<S, K, P> {
    fn clone(&self) -> Self {
        Retry {
            handles: self.handles.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug, P: fmt::Debug> fmt::Debug for Retry<S, K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", self.policy())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Req, K, P> Service<Req> for Retry<S, K, P>
where
    S: Service<Req> + Clone,
    K: RetryRules<Req, S::Response, S::Error>,
    P: RetryPredicate<Req, S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, K, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let handle = self.handles.stripes.local();
        let mut state = RequestState::default();
        match handle.begin::<Req, S::Response, S::Error>(&mut state, &req) {
            Some(copy) => {
                let handle = handle.clone();
                let future = self.inner.call(req);
                ResponseFuture::new(future, Some((handle, state, copy, self.inner.clone())))
            }
            None => ResponseFuture::new(self.inner.call(req), None),
        }
    }
}
