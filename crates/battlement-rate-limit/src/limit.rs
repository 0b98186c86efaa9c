//! The rate limiter handle: governor's GCRA limiters, the clock they read, and the counts.

use crate::config::RateLimitBuilder;
use crate::event::RateLimitEvent;
use crate::key::{ExtractKey, KeyExtractor, Unkeyed};
use crate::keys::{Direct, Keys, Store};
use arc_swap::ArcSwap;
use battlement_core::error::RateLimited;
use battlement_core::event::EventChannel;
use battlement_core::stripe::StripedCounter;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// governor's clock over `tokio::time`: the time since the limiter was built, so a test's
/// `tokio::time::pause()` and `advance()` move it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokioClock {
    epoch: tokio::time::Instant,
}

impl TokioClock {
    pub(crate) fn new() -> Self {
        TokioClock {
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl governor::clock::Clock for TokioClock {
    type Instant = Duration;

    #[inline]
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}

pub(crate) type DirectLimiter =
    governor::RateLimiter<NotKeyed, Direct, TokioClock, NoOpMiddleware<Duration>>;
pub(crate) type KeyedLimiter<K> =
    governor::RateLimiter<K, Store<K>, TokioClock, NoOpMiddleware<Duration>>;

/// A rate limiter shared by any number of [`RateLimitLayer`](crate::RateLimitLayer)s: GCRA
/// (governor's), one limit for every call or one per key.
///
/// The handle is cheap to clone (an `Arc` inside); every clone is the same limiter. Built with
/// [`RateLimit::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_rate_limit::{RateLimit, RateLimited};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// // 2 calls a second, in bursts of at most 2.
/// let limit = RateLimit::builder("api").rate(2, Duration::from_secs(1)).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(limit.layer())
///     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
///
/// assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
/// assert_eq!(svc.clone().oneshot(2).await.unwrap(), 2);
/// let err = svc.clone().oneshot(3).await.unwrap_err();
/// assert_eq!(err.downcast_ref::<RateLimited>().unwrap().retry_after(), Duration::from_millis(500));
///
/// tokio::time::advance(Duration::from_millis(500)).await;
/// assert_eq!(svc.oneshot(4).await.unwrap(), 4);
/// assert_eq!((limit.metrics().admitted, limit.metrics().rejected), (3, 1));
/// # }
/// ```
pub struct RateLimit<X: KeyExtractor = Unkeyed> {
    pub(crate) inner: Arc<Inner<X>>,
}

impl<X: KeyExtractor> Clone for RateLimit<X> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner<X: KeyExtractor> {
    pub(crate) name: Arc<str>,
    pub(crate) extractor: X,
    /// The limiters of the current settings; a reload swaps in new ones over the same state.
    pub(crate) limits: Arc<ArcSwap<Limits<X::Key>>>,
    /// The GCRA cell of the calls without a key (all of them, unkeyed), shared by every
    /// limiter a reload builds.
    pub(crate) direct_state: Arc<InMemoryState>,
    /// The key table (keyed), shared the same way.
    pub(crate) keys: Option<Arc<Keys<X::Key>>>,
    pub(crate) clock: TokioClock,
    /// In nanoseconds (reloadable).
    pub(crate) rejection_window: AtomicU64,
    pub(crate) admitted: StripedCounter,
    pub(crate) rejected: AtomicU64,
    pub(crate) waited: AtomicU64,
    /// When the last rejection happened, in nanoseconds since the clock's epoch, plus one
    /// (0: never). Written on the rejection path only.
    pub(crate) last_rejection: AtomicU64,
    pub(crate) events: EventChannel<RateLimitEvent>,
}

/// A service's cache of the current [`Limits`].
pub(crate) type LimitsCache<K> = arc_swap::Cache<Arc<ArcSwap<Limits<K>>>, Arc<Limits<K>>>;

/// One set of settings' limiters: governor's `RateLimiter`s fix their quota when built, so a
/// reload builds new ones over the same state stores.
pub(crate) struct Limits<K: std::hash::Hash + Eq + Clone> {
    /// The limit of every call (unkeyed), or of the calls without a key (keyed).
    pub(crate) direct: DirectLimiter,
    pub(crate) keyed: Option<KeyedLimiter<K>>,
    pub(crate) quota: u32,
    pub(crate) window: Duration,
    pub(crate) burst: u32,
    pub(crate) max_delay: Duration,
}

impl RateLimit {
    /// Starts building a rate limiter called `name` (one limit for every call; make it keyed
    /// with [`keyed`](RateLimitBuilder::keyed)).
    pub fn builder(name: impl Into<String>) -> RateLimitBuilder {
        RateLimitBuilder::new(name)
    }
}

impl<X: KeyExtractor> RateLimit<X> {
    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether calls are counted per key.
    pub fn is_keyed(&self) -> bool {
        self.inner.keys.is_some()
    }

    /// The calls allowed per [`window`](Self::window) (the rate's `n`).
    pub fn quota(&self) -> u32 {
        self.inner.limits.load().quota
    }

    /// The rate's period.
    pub fn window(&self) -> Duration {
        self.inner.limits.load().window
    }

    /// How many calls may pass at once after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.inner.limits.load().burst
    }

    /// How long a call may wait to be admitted (zero: rejected at once).
    pub fn max_delay(&self) -> Duration {
        self.inner.limits.load().max_delay
    }

    /// How long after a rejection the health snapshot still reports `warn`.
    pub fn rejection_window(&self) -> Duration {
        Duration::from_nanos(self.inner.rejection_window.load(Relaxed))
    }

    /// Subscribes to typed events ([`RateLimitEvent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<RateLimitEvent> {
        self.inner.events.subscribe()
    }

    /// Evicts now the keys that are idle (whose state is indistinguishable from a key never
    /// seen: governor's `retain_recent`); returns how many. Eviction also runs by itself when a
    /// new key arrives (see [`eviction_interval`](RateLimitBuilder::eviction_interval)); this
    /// is for a timer of your own. Does nothing for an unkeyed limiter.
    pub fn evict_idle(&self) -> u64 {
        let limits = self.inner.limits.load();
        match (&limits.keyed, &self.inner.keys) {
            (Some(limiter), Some(keys)) => {
                let before = keys.evicted.load(Relaxed);
                limiter.retain_recent();
                keys.evicted.load(Relaxed) - before
            }
            _ => 0,
        }
    }

    /// Decides one call for `req` without a service and without waiting (whatever
    /// [`max_delay`](Self::max_delay) says): `Ok` admits it, `Err` is the typed rejection. Both
    /// are counted, as through a layer. For a component that admits calls itself, such as a
    /// fleet's global limiter falling back to this replica's share (battlement-fleet).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_rate_limit::RateLimit;
    /// use std::time::Duration;
    ///
    /// let limit = RateLimit::builder("api").rate(1, Duration::from_secs(1)).build().unwrap();
    /// assert!(limit.try_acquire(&()).is_ok());
    /// let err = limit.try_acquire(&()).unwrap_err();
    /// assert_eq!(err.retry_after(), Duration::from_secs(1));
    /// assert_eq!((limit.metrics().admitted, limit.metrics().rejected), (1, 1));
    /// # }
    /// ```
    pub fn try_acquire<Req>(&self, req: &Req) -> Result<(), RateLimited>
    where
        X: ExtractKey<Req>,
    {
        self.check(req).map_err(|wait| self.reject(wait))
    }

    /// Checks one call for `req`: `Ok` admits it (and counts it), `Err` is the time until it
    /// would be admitted (counted by the caller, which may wait).
    #[inline]
    pub(crate) fn check<Req>(&self, req: &Req) -> Result<(), Duration>
    where
        X: ExtractKey<Req>,
    {
        self.check_with(&self.inner.limits.load(), req)
    }

    /// A cache of the current limiters for a service: reading it costs one atomic load while
    /// no reload happened (arc-swap's `Cache`), against a reader slot for `ArcSwap::load`.
    pub(crate) fn cache(&self) -> LimitsCache<X::Key> {
        arc_swap::Cache::new(self.inner.limits.clone())
    }

    /// [`check`](Self::check) with the limiters given.
    #[inline]
    pub(crate) fn check_with<Req>(&self, limits: &Limits<X::Key>, req: &Req) -> Result<(), Duration>
    where
        X: ExtractKey<Req>,
    {
        let inner = &*self.inner;
        let decision = match &limits.keyed {
            None => limits.direct.check(),
            Some(limiter) => match inner.extractor.extract(req) {
                Some(key) => limiter.check_key(&key),
                None => limits.direct.check(),
            },
        };
        match decision {
            Ok(()) => {
                inner.admitted.increment();
                Ok(())
            }
            Err(not_until) => {
                Err(not_until.wait_time_from(governor::clock::Clock::now(&inner.clock)))
            }
        }
    }

    /// Counts a rejection and makes its error.
    #[cold]
    pub(crate) fn reject(&self, retry_after: Duration) -> RateLimited {
        let inner = &*self.inner;
        inner.rejected.fetch_add(1, Relaxed);
        let now = u64::try_from(inner.clock.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        let before = inner.last_rejection.swap(now + 1, Relaxed);
        let window = inner.rejection_window.load(Relaxed);
        if before == 0 || now.saturating_sub(before - 1) > window {
            tracing::info!(name = %inner.name, kind = "rate_limit", ?retry_after, "rate limiter is rejecting calls");
            inner.events.send(RateLimitEvent::Rejecting {
                name: inner.name.clone(),
                retry_after,
            });
        }
        tracing::debug!(name = %inner.name, kind = "rate_limit", ?retry_after, "call rejected by rate limiter");
        let limits = inner.limits.load();
        RateLimited::new(
            inner.name.clone(),
            retry_after,
            u64::from(limits.quota),
            limits.window,
        )
    }

    /// Whether a call whose turn is `wait` away may wait for it.
    pub(crate) fn may_wait(&self, wait: Duration) -> bool {
        let max = self.inner.limits.load().max_delay;
        !max.is_zero() && wait <= max
    }

    /// Counts a call that waited (admitted or not in the end).
    pub(crate) fn note_waited(&self) {
        self.inner.waited.fetch_add(1, Relaxed);
    }

    pub(crate) fn since_last_rejection(&self) -> Option<Duration> {
        match self.inner.last_rejection.load(Relaxed) {
            0 => None,
            at => Some(
                self.inner
                    .clock
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(at - 1)),
            ),
        }
    }
}

impl<X: KeyExtractor + fmt::Debug> fmt::Debug for RateLimit<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limits = self.inner.limits.load();
        f.debug_struct("RateLimit")
            .field("name", &self.inner.name)
            .field("quota", &limits.quota)
            .field("window", &limits.window)
            .field("burst", &limits.burst)
            .field("max_delay", &limits.max_delay)
            .field("key", &self.inner.extractor)
            .finish()
    }
}
