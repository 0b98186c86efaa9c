//! The policy: tower's `Policy` trait, with per-request state.

use crate::backoff::bound;
use crate::config::{Callback, RetryPolicyBuilder};
use crate::event::{DelaySource, RetryEvent};
use crate::future::RetryDelay;
use crate::layer::RetryLayer;
use crate::metrics::{Core, Count, GiveUp, StripeCounts, DEPOSITS, TIMED};
use crate::rules::{DefaultPredicate, RetryContext, RetryPredicate, RetryRules, Rules};
use crate::settings::Settings;
use battlement_core::event::EventChannel;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Settings and shared state of a policy (one per built policy, shared by its clones).
pub(crate) struct Shared<K, P> {
    /// The name, the live settings, the budget and the counters (what a registry holds).
    pub(crate) core: Arc<Core>,
    pub(crate) seed: u64,
    /// Counts the requests that drew random numbers, to give each its own stream.
    pub(crate) next_stream: AtomicU64,
    pub(crate) on_retry: Option<Callback>,
    pub(crate) events: EventChannel<RetryEvent>,
    pub(crate) rules: K,
    pub(crate) predicate: P,
}

impl RequestState {
    /// Attempts finished so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// The state of one request session: tower clones the policy for every request, so each
/// request has its own copy. Plain words, `Copy`: a clone copies them and drops nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestState {
    /// Attempts finished so far.
    attempts: u32,
    /// Whether `rng` holds this request's random stream (made on its first random draw).
    has_rng: bool,
    /// The backoff strategy's previous delay in nanoseconds (for decorrelated jitter).
    prev: u64,
    /// This request's random stream: the generator's state, once `has_rng`.
    rng: u64,
    /// When the first attempt started, as [`Core::clock`] reads it (0: not kept, as without a
    /// time limit). A word rather than an `Option<Instant>`, whose padding made the state's
    /// initial copy into the response future a byte-wise copy through the stack.
    started: u64,
}

/// A retry policy for [`tower::retry::Retry`]: backoff with jitter and bounds, an attempt limit,
/// an overall time limit, a retry budget, classification and, for HTTP, idempotency and
/// `Retry-After`.
///
/// Build one with [`RetryPolicy::builder`] (any request, response and error) or
/// [`RetryPolicy::http_builder`] (feature `http`), then stack it with
/// `.layer(policy.into_layer())` (this crate's [`Retry`](crate::Retry) service) or
/// `ServiceBuilder::retry(policy)` (tower's). Clones share the settings, the budget and the event
/// channel; each request has its own attempt count, previous delay, start time and random
/// stream (in the response future of this crate's service; in the per-request clone of the
/// policy that tower's makes).
///
/// The error after the last attempt is that attempt's own error, unchanged: callers downcast
/// it as if there were no retry layer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::error::BoxError;
/// use battlement_retry::{Backoff, RetryPolicy};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(4)
///     .backoff(Backoff::linear(Duration::from_millis(100), Duration::from_millis(100)))
///     .build()
///     .unwrap();
///
/// // Fails twice with a timeout, then answers.
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = calls.clone();
/// let svc = ServiceBuilder::new().layer(policy.into_layer()).service_fn(move |req: u32| {
///     let n = counter.fetch_add(1, Ordering::SeqCst);
///     async move {
///         if n < 2 {
///             Err::<u32, BoxError>(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)))
///         } else {
///             Ok(req * 2)
///         }
///     }
/// });
///
/// let start = Instant::now();
/// assert_eq!(svc.oneshot(21).await.unwrap(), 42);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// assert_eq!(start.elapsed(), Duration::from_millis(100 + 200));
/// # }
/// ```
pub struct RetryPolicy<K = Rules, P = DefaultPredicate> {
    shared: Arc<Shared<K, P>>,
    state: RequestState,
}

impl<K, P> Clone for RetryPolicy<K, P> {
    fn clone(&self) -> Self {
        RetryPolicy {
            shared: self.shared.clone(),
            state: self.state,
        }
    }
}

impl<K: fmt::Debug, P: fmt::Debug> fmt::Debug for RetryPolicy<K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.shared;
        let settings = s.core.settings.get();
        f.debug_struct("RetryPolicy")
            .field("name", &s.core.name)
            .field("max_attempts", &settings.max_attempts)
            .field("time_limit", &settings.time_limit)
            .field("backoff", &settings.backoff)
            .field("jitter", &settings.jitter)
            .field("min_delay", &settings.min_delay)
            .field("max_delay", &settings.max_delay)
            .field("max_retry_after", &settings.max_retry_after)
            .field("rules", &s.rules)
            .field("predicate", &s.predicate)
            .field("attempts", &self.state.attempts)
            .finish()
    }
}

impl RetryPolicy {
    /// A builder for a policy over any request, response and error, with [`Rules`] and the
    /// [`ResultClassifier`](battlement_core::ResultClassifier).
    pub fn builder() -> RetryPolicyBuilder<Rules, DefaultPredicate> {
        RetryPolicyBuilder::with_rules(Rules::default())
    }
}

#[cfg(feature = "http")]
impl RetryPolicy<crate::http::HttpRules> {
    /// A builder for a policy over `http::Request`/`http::Response`, with
    /// [`HttpRules`](crate::HttpRules) and the [`HttpClassifier`](battlement_core::HttpClassifier).
    pub fn http_builder() -> RetryPolicyBuilder<crate::http::HttpRules, DefaultPredicate> {
        RetryPolicyBuilder::with_rules(crate::http::HttpRules::default())
    }
}

impl<K, P> RetryPolicy<K, P> {
    pub(crate) fn from_shared(shared: Arc<Shared<K, P>>) -> Self {
        RetryPolicy {
            shared,
            state: RequestState::default(),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<K, P>> {
        &self.shared
    }

    /// A fresh session of this policy (no attempts yet), for one direct call.
    pub(crate) fn session(&self) -> Self {
        Self::from_shared(self.shared.clone())
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.shared.core
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.shared.core.name
    }

    /// The most attempts in all, the first included, as set now.
    pub fn max_attempts(&self) -> u32 {
        self.shared.core.settings.get().max_attempts
    }

    /// The rules that judge attempts.
    pub fn rules(&self) -> &K {
        &self.shared.rules
    }

    /// A receiver of every [`RetryEvent`] from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RetryEvent> {
        self.shared.events.subscribe()
    }

    /// A layer applying this policy with this crate's [`Retry`](crate::Retry) service, which
    /// decides as tower's `Retry` does (`ServiceBuilder::retry`) without cloning the policy for
    /// each request.
    pub fn into_layer(self) -> RetryLayer<K, P> {
        RetryLayer::new(self)
    }
}

/// The delay before retry number `retry`, and where it came from; a server-given
/// `retry_after` must already be within the policy's `max_retry_after`.
fn next_delay<K, P>(
    shared: &Shared<K, P>,
    settings: &Settings,
    state: &mut RequestState,
    retry: u32,
    retry_after: Option<Duration>,
) -> (Duration, DelaySource) {
    let random = settings.backoff.is_random() || settings.jitter.is_random();
    if random && !state.has_rng {
        let stream = shared.next_stream.fetch_add(1, Ordering::Relaxed);
        state.rng = fastrand::Rng::with_seed(shared.seed.wrapping_add(stream)).get_seed();
        state.has_rng = true;
    }
    let mut rng = fastrand::Rng::with_seed(if random { state.rng } else { 0 });
    let raw = settings
        .backoff
        .delay(retry, Duration::from_nanos(state.prev), &mut rng);
    state.prev = crate::backoff::nanos(raw);
    let backoff = bound(
        settings.jitter.apply(raw, &mut rng),
        settings.min_delay,
        settings.max_delay,
    );
    if random {
        state.rng = rng.get_seed();
    }
    match retry_after {
        Some(after) => (after.max(settings.min_delay), DelaySource::RetryAfter),
        None => (backoff, DelaySource::Backoff),
    }
}

impl<K, P> Shared<K, P> {
    /// A request's first attempt, before it is sent: deposits in the budget, notes the start
    /// (with a time limit) and copies the request for a retry (`None`: it is sent once).
    #[inline]
    pub(crate) fn begin<Req, Res, E>(&self, state: &mut RequestState, req: &Req) -> Option<Req>
    where
        K: RetryRules<Req, Res, E>,
    {
        begin::<K, Req, Res, E>(&self.core, &self.rules, state, req)
    }
}

/// [`Shared::begin`] with the policy's core and rules given apart (a retry service keeps its
/// core one load nearer than the policy's).
#[inline]
pub(crate) fn begin<K, Req, Res, E>(
    core: &Core,
    rules: &K,
    state: &mut RequestState,
    req: &Req,
) -> Option<Req>
where
    K: RetryRules<Req, Res, E>,
{
    // One load and one branch for a policy without a budget or a time limit. A time limit
    // set by a reload applies to requests that start after it.
    let first = core.first();
    if first != 0 {
        if first & DEPOSITS != 0 {
            core.budget.deposit();
        }
        if first & TIMED != 0 {
            state.started = core.clock();
        }
    }
    let copy = rules.clone_request(req);
    if copy.is_none() {
        core.counts.add(Count::SentOnce as usize);
    }
    copy
}

impl<K, P> Shared<K, P> {
    /// Judges the result of a request's latest attempt: `None` to return it (counted as a
    /// success or a give-up), or the wait before the next attempt.
    #[inline]
    pub(crate) fn decide<Req, Res, E>(
        &self,
        state: &mut RequestState,
        req: &mut Req,
        result: &mut Result<Res, E>,
        counts: Option<&StripeCounts>,
    ) -> Option<RetryDelay>
    where
        K: RetryRules<Req, Res, E>,
        P: RetryPredicate<Req, Res, E>,
    {
        // No overflow: a decision that lets another attempt follow was made below
        // `max_attempts`, a `u32`. Kept in `state` only for a retry (below): a request that
        // ends here is not judged again.
        let attempt = state.attempts.wrapping_add(1);
        let shared = self;
        let result = result.as_ref();
        let verdict = shared.rules.judge(req, result);
        let cx = RetryContext {
            request: &*req,
            result,
            verdict,
            attempt,
        };
        let core = &*shared.core;
        if !shared.predicate.should_retry(&cx) {
            if verdict.outcome().is_failure() {
                core.gave_up(attempt, GiveUp::NotRetryable);
            } else {
                if !counts.is_some_and(|counts| counts.succeeded(attempt)) {
                    succeeded_elsewhere(shared, attempt);
                }
            }
            return None;
        }
        if verdict.body_too_large() {
            let outcome = verdict.outcome();
            tracing::debug!(retry = &*core.name, attempt, %outcome, "giving up: request body beyond the replay cap");
            core.gave_up(attempt, GiveUp::BodyTooLarge);
            return None;
        }
        // Read at every decision: a reload applies from a request's next decision on.
        let settings = core.settings.get();
        let name = &*core.name;
        let outcome = verdict.outcome();
        if attempt >= settings.max_attempts {
            tracing::debug!(retry = name, attempt, %outcome, "giving up: attempts exhausted");
            core.gave_up(attempt, GiveUp::MaxAttempts);
            return None;
        }
        let retry_after = verdict.retry_after();
        if let Some(after) = retry_after {
            if after > settings.max_retry_after {
                let max = settings.max_retry_after;
                tracing::debug!(retry = name, attempt, %outcome, retry_after = ?after, ?max, "giving up: retry-after beyond max_retry_after");
                core.gave_up(attempt, GiveUp::RetryAfter);
                return None;
            }
        }
        let (delay, source) = next_delay(shared, &settings, state, attempt, retry_after);
        if let (Some(limit), 1..) = (settings.time_limit, state.started) {
            let elapsed = Duration::from_nanos(core.clock().saturating_sub(state.started));
            let too_late = elapsed.checked_add(delay).map_or(true, |at| at >= limit);
            if too_late {
                tracing::debug!(retry = name, attempt, %outcome, ?delay, ?limit, "giving up: time limit");
                core.gave_up(attempt, GiveUp::TimeLimit);
                return None;
            }
        }
        if !core.budget.withdraw() {
            tracing::debug!(retry = name, attempt, %outcome, "giving up: retry budget spent");
            core.gave_up(attempt, GiveUp::Budget);
            return None;
        }
        state.attempts = attempt;
        core.counts.add(Count::Retries as usize);
        let event = RetryEvent {
            name: core.name.clone(),
            attempt,
            delay,
            source,
            outcome,
            status: verdict.status(),
        };
        tracing::debug!(
            retry = name,
            attempt,
            ?delay,
            %source,
            %outcome,
            status = ?event.status,
            "retrying"
        );
        if let Some(on_retry) = &shared.on_retry {
            on_retry(&event);
        }
        shared.events.send(event);
        Some(RetryDelay::new(delay))
    }
}

/// Counts a success through the policy's core: for a thread that does not own the stripe of
/// the request's handle, or a request of tower's `Retry`. Out of line, so that the first
/// attempt's path does not load the core.
#[cold]
#[inline(never)]
fn succeeded_elsewhere<K, P>(shared: &Shared<K, P>, attempt: u32) {
    shared.core.succeeded(attempt);
}

impl<Req, Res, E, K, P> tower::retry::Policy<Req, Res, E> for RetryPolicy<K, P>
where
    K: RetryRules<Req, Res, E>,
    P: RetryPredicate<Req, Res, E>,
{
    type Future = RetryDelay;

    #[inline]
    fn retry(&mut self, req: &mut Req, result: &mut Result<Res, E>) -> Option<RetryDelay> {
        self.shared.decide(&mut self.state, req, result, None)
    }

    #[inline]
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        if self.state.attempts == 0 {
            // The first attempt of a request: tower calls this on the service's own policy,
            // before cloning it for the request's session.
            return self.shared.begin::<Req, Res, E>(&mut self.state, req);
        }
        self.shared.rules.clone_request(req)
    }
}
