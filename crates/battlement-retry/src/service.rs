//! The service: retries with a [`RetryPolicy`], without cloning the policy for each request.

use crate::future::{ResponseFuture, Session};
use crate::metrics::Core;
use crate::metrics::StripeCounts;
use crate::policy::{begin, RequestState, RetryPolicy, Shared};
use crate::rules::{DefaultPredicate, RetryPredicate, RetryRules, Rules};
use battlement_core::handle;
use battlement_core::stripe::{self, CachePadded, Stripes, MAX_STRIPES};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// What a thread's requests keep for a possible retry: the policy's shared state and a clone of
/// the inner service to clone again for the next attempt. One per stripe, each in an `Arc` of its
/// own, so the reference count a request increments and decrements is on a cache line only its
/// thread writes, and the inner service's own reference counts (which every core's clones share)
/// are written only when a request is actually retried.
pub(crate) struct Local<S, K, P> {
    pub(crate) shared: Arc<Shared<K, P>>,
    pub(crate) service: S,
    /// The stripe's cell of the policy's counters.
    pub(crate) counts: StripeCounts,
}

/// A request's handle on its thread's [`Local`]: a reference counted on the stripe's own line,
/// or once the service is [leaked](Retry::leak) a pointer, which a request copies.
pub(crate) type Handle<S, K, P> = handle::Handle<CachePadded<Local<S, K, P>>>;

/// The policy and each stripe's [`Local`] (made once per service the layer makes; clones of the
/// service share them).
pub(crate) struct Locals<S: 'static, K: 'static, P: 'static> {
    /// The policy's core, one load nearer than through the policy.
    core: Arc<Core>,
    policy: RetryPolicy<K, P>,
    /// Each thread index's handle, for every index a thread can hold below [`MAX_STRIPES`]:
    /// index `i` holds stripe `i` modulo the stripe count. Kept inline, so that a request finds
    /// its thread's handle at a fixed offset from this, with one comparison against a constant
    /// (no load of a slice's pointer and length).
    pub(crate) stripes: [Handle<S, K, P>; MAX_STRIPES],
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
/// request for the next attempt (a request the rules cannot copy is sent once); unlike tower's,
/// it does not clone the inner service for every request, which would write reference counts
/// that every core's clones share: a retry clones, for its attempt, a clone of the inner service
/// taken when this service was made (one per stripe of threads). So a change made through
/// [`get_mut`](Self::get_mut) applies to first attempts only.
///
/// Making one sets up that state per stripe, so it suits a service made once and kept, as a
/// server's or a client's stack is. The inner service, the rules and the predicate must be
/// `'static` (a [leaked](Self::leak) service keeps them for good). For a stack made for one
/// request around a borrowed service, plug the policy into tower's `Retry` instead
/// (`ServiceBuilder::retry(policy)`), as the reqwest middleware does.
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
pub struct Retry<S: 'static, K: 'static = Rules, P: 'static = DefaultPredicate> {
    pub(crate) locals: handle::Handle<Locals<S, K, P>>,
    inner: S,
}

impl<S: Clone + 'static, K: 'static, P: 'static> Retry<S, K, P> {
    /// Retries `inner`'s calls with `policy`.
    pub fn new(policy: RetryPolicy<K, P>, inner: S) -> Self {
        let shared = policy.shared().clone();
        let cells = Stripes::new_shared(|index| Local {
            shared: shared.clone(),
            service: inner.clone(),
            counts: shared.core.counts.stripe(index),
        });
        let stripes = std::array::from_fn(|index| Handle::from(cells.get(index).clone()));
        Retry {
            locals: Arc::new(Locals {
                core: shared.core.clone(),
                policy,
                stripes,
            })
            .into(),
            inner,
        }
    }
}

impl<S: 'static, K: 'static, P: 'static> Retry<S, K, P> {
    /// This service, with its policy and its stripes' clones of the inner service kept for
    /// the rest of the program (never freed), so that neither a clone of the service nor a
    /// request counts a reference: a clone copies a pointer (and clones the inner service), and
    /// a request that may be retried copies a pointer to its thread's stripe instead of
    /// counting a reference on it: two locked instructions fewer per request, most of what the
    /// retry adds to a call whose first attempt succeeds (on a 2-vCPU Xeon, about 5 ns over a
    /// bare call instead of about 20).
    ///
    /// For a service made once and kept, as a server's stack is: every service leaked this way
    /// stays in memory, with one clone of the inner service per stripe of threads. A policy's
    /// reloads still reach it. [`RetryLayer::leak`](crate::RetryLayer::leak) leaks the
    /// services a layer makes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_core::error::BoxError;
    /// use battlement_retry::{Retry, RetryPolicy};
    /// use tower::ServiceExt;
    ///
    /// let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    /// let inner = tower::service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
    /// let svc = Retry::new(policy, inner).leak();
    /// assert!(svc.is_leaked() && svc.clone().is_leaked());
    /// assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    /// # }
    /// ```
    pub fn leak(self) -> Self {
        if self.locals.is_leaked() {
            return self;
        }
        let locals = Locals {
            core: self.locals.core.clone(),
            policy: self.locals.policy.clone(),
            stripes: std::array::from_fn(|index| self.locals.stripes[index].leak()),
        };
        Retry {
            locals: handle::Handle::from(Arc::new(locals)).leak(),
            inner: self.inner,
        }
    }
}

impl<S: 'static, K: 'static, P: 'static> Retry<S, K, P> {
    /// Whether this service was [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.locals.is_leaked()
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<K, P> {
        &self.locals.policy
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

impl<S: Clone + 'static, K: 'static, P: 'static> Clone for Retry<S, K, P> {
    fn clone(&self) -> Self {
        Retry {
            locals: self.locals.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S: fmt::Debug + 'static, K: fmt::Debug + 'static, P: fmt::Debug + 'static> fmt::Debug
    for Retry<S, K, P>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", self.policy())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Req, K, P> Service<Req> for Retry<S, K, P>
where
    S: Service<Req> + Clone + 'static,
    K: 'static,
    P: 'static,
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
        let locals = &*self.locals;
        let mut state = RequestState::default();
        // Through the service's own pointers, not the stripe: a shorter chain of loads.
        let rules = &locals.policy.shared().rules;
        match begin::<K, Req, S::Response, S::Error>(&locals.core, rules, &mut state, &req) {
            Some(copy) => {
                let session = Session::new(stripe::local(&locals.stripes).clone(), state, copy);
                ResponseFuture::new(session, self.inner.call(req))
            }
            None => ResponseFuture::once(self.inner.call(req)),
        }
    }
}
