//! The bulkhead handle and its shared state: permits, the wait queue, resizing and metrics.

use crate::semaphore::Semaphore;
use crate::BulkheadBuilder;
use battlement_core::error::{BoxError, BulkheadFull, BulkheadTimeout};
use battlement_core::stripe::{CachePadded, StripedCounter};
use battlement_core::sync::{
    AtomicU64, AtomicUsize, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use battlement_core::{
    ComponentKind, ConfigError, HealthSnapshot, HealthSource, HealthStatus, Metric,
};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const COMPONENT: &str = "bulkhead";

/// A concurrency limit with a bounded, time-limited wait queue, shared by every service guarded
/// with it.
///
/// At most [`max_concurrent`](Self::max_concurrent) calls run at once. A call that finds every
/// permit taken waits in a FIFO queue of at most [`max_queued`](Self::max_queued) calls, for at
/// most [`max_wait`](Self::max_wait); past either bound it is rejected with a typed error
/// ([`BulkheadFull`], [`BulkheadTimeout`]), which `battlement-core` classifies as
/// [`Rejected`](battlement_core::FailureKind::Rejected).
///
/// The handle is a cheap `Clone` (one `Arc`): every clone, and every [`BulkheadLayer`] made
/// from one, shares one budget of permits. It implements [`HealthSource`]: a snapshot reports the
/// counts, and `warn` while the bulkhead is saturated or has rejected a call within its
/// [`rejection_window`](crate::BulkheadBuilder::rejection_window) (10 s by default), so a
/// health scrape between two bursts still sees the rejections.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_bulkhead::Bulkhead;
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let db = Bulkhead::builder("db")
///     .max_concurrent(8)
///     .max_queued(16)
///     .max_wait(Duration::from_millis(50))
///     .build()
///     .unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(db.layer())
///     .service(service_fn(|q: &'static str| async move { Ok::<_, std::io::Error>(q.len()) }));
/// assert_eq!(svc.oneshot("select 1").await.unwrap(), 8);
///
/// let m = db.metrics();
/// assert_eq!((m.accepted, m.in_flight, m.queued), (1, 0, 0));
///
/// // Run-time resize, shared by every service guarded by `db`.
/// db.set_max_concurrent(4).unwrap();
/// assert_eq!(db.max_concurrent(), 4);
/// # }
/// ```
///
/// [`BulkheadLayer`]: crate::BulkheadLayer
#[derive(Clone)]
pub struct Bulkhead {
    shared: Arc<Shared>,
}

/// The state every clone of a [`Bulkhead`] shares.
///
/// Permits live in one of three places: held by a call, free in [`word`](Self::word), or in
/// transit to a queued call through the semaphore. A call that finds a free permit takes it with
/// one compare-and-swap on `word` and gives it back the same way: no lock, no queue. Only while
/// calls are queued does a finished call hand its permit to the semaphore, which wakes the
/// first waiter (FIFO). An admitted call also writes this thread's stripe of `accepted` and
/// reads `debt`; everything else is written only off the fast path.
pub(crate) struct Shared {
    /// Free permits (low 32 bits) and queued calls (high 32 bits). Calls are queued only while
    /// no permit is free, and a permit is only made free while no call is queued, so a queued
    /// call is never passed over by one that arrived after it.
    word: CachePadded<AtomicU64>,
    /// The queue: it holds permits only on their way to a queued call.
    semaphore: Semaphore,
    accepted: StripedCounter,
    /// Permits still to be removed after a shrink: a finishing call pays one by forgetting its
    /// permit instead of returning it.
    debt: AtomicUsize,
    max_concurrent: AtomicUsize,
    rejected_full: AtomicU64,
    rejected_timeout: AtomicU64,
    waits: AtomicU64,
    wait_total_nanos: AtomicU64,
    wait_max_nanos: AtomicU64,
    max_queued: usize,
    max_wait: Option<Duration>,
    /// When the last call was rejected: nanoseconds since `epoch`, plus one (0: never). Written
    /// only on the rejection path, never by an admitted call.
    last_rejection: AtomicU64,
    /// The time `last_rejection` counts from (`tokio::time`, so paused clocks apply).
    epoch: Instant,
    /// A rejection within this long makes the snapshot `warn`.
    rejection_window: Duration,
    /// Serialises resizes (never taken by a call).
    resize: Mutex<()>,
    name: Arc<str>,
}

impl Bulkhead {
    /// A builder for a bulkhead named `name`.
    pub fn builder(name: impl Into<String>) -> BulkheadBuilder {
        BulkheadBuilder::new(name)
    }

    pub(crate) fn from_parts(
        name: Arc<str>,
        max_concurrent: usize,
        max_queued: usize,
        max_wait: Option<Duration>,
        rejection_window: Duration,
    ) -> Self {
        Bulkhead {
            shared: Arc::new(Shared {
                word: CachePadded::new(AtomicU64::new(max_concurrent as u64)),
                semaphore: Semaphore::new(0),
                accepted: StripedCounter::new(),
                debt: AtomicUsize::new(0),
                max_concurrent: AtomicUsize::new(max_concurrent),
                rejected_full: AtomicU64::new(0),
                rejected_timeout: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                wait_total_nanos: AtomicU64::new(0),
                wait_max_nanos: AtomicU64::new(0),
                max_queued: max_queued.min(MAX_QUEUED),
                max_wait,
                last_rejection: AtomicU64::new(0),
                epoch: Instant::now(),
                rejection_window,
                resize: Mutex::new(()),
                name,
            }),
        }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// How many calls may run at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared.max_concurrent.load(Acquire)
    }

    /// How many calls may wait for a permit (0: a call that finds none is rejected at once).
    pub fn max_queued(&self) -> usize {
        self.shared.max_queued
    }

    /// How long a call may wait in the queue (`None`: until admitted or cancelled).
    pub fn max_wait(&self) -> Option<Duration> {
        self.shared.max_wait
    }

    /// Calls holding a permit now.
    ///
    /// Read from the permit accounting (permits in existence minus free ones), so the call path
    /// keeps no counter of its own for it; exact when no resize or hand-off is in progress.
    pub fn in_flight(&self) -> usize {
        let s = &self.shared;
        let capacity = s.max_concurrent.load(Acquire) + s.debt.load(Acquire);
        let free = free(s.word.load(Acquire)) as usize + s.semaphore.available_permits();
        capacity.saturating_sub(free)
    }

    /// Permits free now: a call arriving now is admitted at once if this is above zero (and no
    /// call is queued, which there is not while a permit is free).
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let b = Bulkhead::builder("pool").max_concurrent(3).build().unwrap();
    /// assert_eq!(b.free_permits(), 3);
    /// ```
    pub fn free_permits(&self) -> usize {
        free(self.shared.word.load(Acquire)) as usize
    }

    /// How long ago the last call was rejected (full or timed out); `None` if none ever was.
    pub fn since_last_rejection(&self) -> Option<Duration> {
        self.shared.since_last_rejection()
    }

    /// A rejection within this long makes the health snapshot `warn`; see
    /// [`rejection_window`](crate::BulkheadBuilder::rejection_window).
    pub fn rejection_window(&self) -> Duration {
        self.shared.rejection_window
    }

    /// Calls waiting in the queue now.
    pub fn queued(&self) -> usize {
        waiters(self.shared.word.load(Acquire)) as usize
    }

    /// Whether every permit is taken (`in_flight >= max_concurrent`): the next call waits or is
    /// rejected.
    pub fn is_saturated(&self) -> bool {
        self.in_flight() >= self.max_concurrent()
    }

    /// Changes how many calls may run at once, for every service sharing this bulkhead.
    ///
    /// Growing admits waiting calls at once. Shrinking removes free permits at once and the rest
    /// as running calls finish: no running call is interrupted, and no new call is admitted until
    /// in-flight calls are below the new limit. `max` must be at least 1.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let b = Bulkhead::builder("pool").max_concurrent(10).build().unwrap();
    /// b.set_max_concurrent(2).unwrap();
    /// assert_eq!(b.max_concurrent(), 2);
    /// assert_eq!(b.set_max_concurrent(0).unwrap_err().setting(), "max_concurrent");
    /// ```
    pub fn set_max_concurrent(&self, max: usize) -> Result<(), ConfigError> {
        validate_max_concurrent(&self.shared.name, max)?;
        let s = &self.shared;
        let _resizing = s.resize.lock().unwrap_or_else(|e| e.into_inner());
        let old = s.max_concurrent.load(Acquire);
        if max == old {
            return Ok(());
        }
        s.max_concurrent.store(max, Release);
        if max > old {
            let grow = max - old;
            // Permits still owed by a shrink are kept instead of added.
            let owed = s
                .debt
                .fetch_update(AcqRel, Acquire, |d| Some(d.saturating_sub(grow)))
                .unwrap_or_else(|d| d);
            s.give(grow - owed.min(grow));
        } else {
            let shrink = old - max;
            let forgotten = s.retire_free(shrink);
            if forgotten < shrink {
                s.debt.fetch_add(shrink - forgotten, AcqRel);
                s.settle();
            }
        }
        tracing::info!(bulkhead = %s.name, old, new = max, "bulkhead max_concurrent changed");
        Ok(())
    }

    /// A snapshot of the bulkhead's counts.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let b = Bulkhead::builder("pool").max_concurrent(3).max_queued(5).build().unwrap();
    /// let m = b.metrics();
    /// assert_eq!((m.max_concurrent, m.max_queued, m.in_flight, m.accepted), (3, 5, 0, 0));
    /// assert!(!m.is_saturated());
    /// ```
    pub fn metrics(&self) -> BulkheadMetrics {
        let s = &self.shared;
        let waited = s.waits.load(Acquire);
        let total = s.wait_total_nanos.load(Acquire);
        BulkheadMetrics {
            in_flight: self.in_flight(),
            free_permits: self.free_permits(),
            queued: self.queued(),
            max_concurrent: self.max_concurrent(),
            max_queued: s.max_queued,
            accepted: s.accepted.sum(),
            rejected_full: s.rejected_full.load(Acquire),
            rejected_timeout: s.rejected_timeout.load(Acquire),
            waited,
            wait_mean: match waited {
                0 => Duration::ZERO,
                n => Duration::from_nanos(total / n),
            },
            wait_max: Duration::from_nanos(s.wait_max_nanos.load(Acquire)),
            since_last_rejection: s.since_last_rejection(),
        }
    }

    /// Tries to admit a call now; past the fast path, queues it or rejects it.
    ///
    /// The fast path (a free permit) takes no lock and allocates nothing: one compare-and-swap on
    /// the permit word, one `Arc` clone for the permit, and a plain increment of this thread's
    /// stripe of `accepted`.
    #[inline]
    pub(crate) fn admit(&self) -> Admission {
        if self.shared.try_take() {
            self.shared.accepted.increment();
            Admission::Now(Permit {
                shared: self.shared.clone(),
            })
        } else {
            self.admit_slow()
        }
    }

    #[cold]
    #[inline(never)]
    fn admit_slow(&self) -> Admission {
        let s = &self.shared;
        let max_queued = s.max_queued;
        let entered = s.enter(max_queued as u64);
        if entered == Entry::Admitted {
            s.accepted.increment();
            return Admission::Now(Permit { shared: s.clone() });
        }
        if entered == Entry::Full {
            // (No permit can be stranded in the queue now: it is full, or there is none, and
            // queued calls take whatever the semaphore holds.)
            s.rejected_full.fetch_add(1, Relaxed);
            s.note_rejection();
            tracing::debug!(
                bulkhead = %s.name,
                max_concurrent = s.max_concurrent.load(Relaxed),
                max_queued,
                "call rejected: bulkhead full"
            );
            return Admission::Rejected(Box::new(BulkheadFull::new(s.name.clone())));
        }
        let mut wait = wait_for_permit(QueueSlot(Some(s.clone())), Instant::now(), s.max_wait);
        // Poll once now, so the call takes its place in the semaphore's FIFO queue in the order
        // of `call`s, not of first polls. The caller's first poll replaces the no-op waker.
        match wait.as_mut().poll(&mut Context::from_waker(noop_waker())) {
            Poll::Ready(Ok(permit)) => Admission::Now(permit),
            Poll::Ready(Err(error)) => Admission::Rejected(error),
            Poll::Pending => Admission::Wait(wait),
        }
    }
}

/// The queued path, step by step, for the loom models (which cannot run the async wait).
#[cfg(all(loom, test))]
impl Bulkhead {
    /// What a call that found no free permit on the fast path does first.
    pub(crate) fn loom_enter(&self) -> (Entry, Option<Permit>) {
        let s = &self.shared;
        let entry = s.enter(s.max_queued as u64);
        let permit = (entry == Entry::Admitted).then(|| Permit { shared: s.clone() });
        (entry, permit)
    }

    /// A queued call polling for its permit: on success it has left the queue.
    pub(crate) fn loom_poll_queue(&self) -> Option<Permit> {
        let s = &self.shared;
        s.semaphore.try_acquire().then(|| {
            s.leave_queue();
            Permit { shared: s.clone() }
        })
    }

    /// A queued call giving up (its wait timed out, or it was cancelled).
    pub(crate) fn loom_give_up(&self) {
        self.shared.leave_queue();
    }
}

#[cfg(test)]
impl Bulkhead {
    /// Free permits, and permits in the semaphore (in transit to a waiter, or stranded).
    pub(crate) fn permit_places(&self) -> (usize, usize) {
        let s = &self.shared;
        (
            free(s.word.load(Acquire)) as usize,
            s.semaphore.available_permits(),
        )
    }
}

/// The outcome of [`Bulkhead::admit`].
pub(crate) enum Admission {
    /// A permit was free.
    Now(Permit),
    /// The call is queued; the future resolves to a permit or a rejection.
    Wait(WaitFuture),
    /// The queue is full.
    Rejected(BoxError),
}

/// Waiting in the queue: boxed, since tokio's acquire future cannot be named. Only calls that
/// find no free permit pay for the allocation.
pub(crate) type WaitFuture = Pin<Box<dyn Future<Output = Result<Permit, BoxError>> + Send + Sync>>;

fn wait_for_permit(slot: QueueSlot, entered: Instant, max_wait: Option<Duration>) -> WaitFuture {
    Box::pin(async move {
        let acquired = {
            let semaphore = &slot.shared().semaphore;
            match max_wait {
                None => Some(semaphore.acquire().await),
                Some(limit) => tokio::time::timeout_at(entered + limit, semaphore.acquire())
                    .await
                    .ok(),
            }
        };
        let waited = entered.elapsed();
        let shared = slot.leave();
        match acquired {
            Some(true) => {
                shared.record_wait(waited);
                shared.accepted.increment();
                Ok(Permit { shared })
            }
            Some(false) => {
                // Never closed; had it been, no permit would ever come.
                shared.rejected_full.fetch_add(1, Relaxed);
                shared.note_rejection();
                Err(Box::new(BulkheadFull::new(shared.name.clone())) as BoxError)
            }
            None => {
                shared.record_wait(waited);
                shared.rejected_timeout.fetch_add(1, Relaxed);
                shared.note_rejection();
                tracing::debug!(
                    bulkhead = %shared.name,
                    ?waited,
                    "call rejected: no bulkhead permit within the wait limit"
                );
                Err(Box::new(BulkheadTimeout::new(shared.name.clone(), waited)) as BoxError)
            }
        }
    })
}

/// A place in the queue: counted among the waiters until it is left or dropped (a cancelled
/// wait).
struct QueueSlot(Option<Arc<Shared>>);

impl QueueSlot {
    fn shared(&self) -> &Shared {
        self.0.as_ref().expect("queue slot already left")
    }

    /// Leaves the queue, with the permit it was waiting for or without (a timeout).
    fn leave(mut self) -> Arc<Shared> {
        let shared = self.0.take().expect("queue slot already left");
        shared.leave_queue();
        shared
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.leave_queue();
        }
    }
}

/// Where [`Shared::enter`] put a call that found no permit on the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A permit was free after all: the call holds it.
    Admitted,
    /// The call is queued: it waits on the semaphore.
    Queued,
    /// No permit is free and the queue is full.
    Full,
}

/// One queued call in [`Shared::word`].
const WAITER: u64 = 1 << 32;
/// Free permits in [`Shared::word`].
const FREE: u64 = WAITER - 1;
/// The most permits a bulkhead may have (they are counted in 32 bits).
pub(crate) const MAX_PERMITS: usize = FREE as usize;
/// The most calls that may queue (they are counted in 32 bits).
const MAX_QUEUED: usize = FREE as usize;

#[inline]
fn free(word: u64) -> u64 {
    word & FREE
}

#[inline]
fn waiters(word: u64) -> u64 {
    word >> 32
}

/// A bulkhead permit held by an admitted call; dropping it releases the permit (or, after a
/// shrink, retires it).
pub(crate) struct Permit {
    shared: Arc<Shared>,
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("bulkhead", &self.shared.name)
            .finish()
    }
}

impl Shared {
    /// Takes a free permit: the fast path, one compare-and-swap. `false` if none is free (then
    /// calls may be queued, and this one must queue behind them).
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        let word = &*self.word;
        let mut w = word.load(Relaxed);
        while free(w) != 0 {
            match word.compare_exchange_weak(w, w - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
        false
    }

    /// The slow path of admission, in one compare-and-swap: take a permit freed since the fast
    /// path looked, or join the queue if it has room.
    pub(crate) fn enter(&self, max_queued: u64) -> Entry {
        let word = &*self.word;
        let mut w = word.load(Relaxed);
        let mut confirmed = false;
        loop {
            let (next, entry) = if free(w) != 0 {
                (w - 1, Entry::Admitted)
            } else if waiters(w) < max_queued {
                (w + WAITER, Entry::Queued)
            } else if confirmed {
                return Entry::Full;
            } else {
                // Reject only on the latest word: an atomic read-modify-write reads it.
                w = word.fetch_add(0, AcqRel);
                confirmed = true;
                continue;
            };
            match word.compare_exchange_weak(w, next, AcqRel, Relaxed) {
                Ok(_) => return entry,
                Err(now) => w = now,
            }
        }
    }

    /// A queued call leaves the queue, with a permit or without. The last one out returns any
    /// permit left in transit (handed over for a waiter that then gave up) to the free pool.
    fn leave_queue(&self) {
        let before = self.word.fetch_sub(WAITER, AcqRel);
        debug_assert!(waiters(before) > 0, "left a queue it was not in");
        if waiters(before) == 1 {
            self.reclaim();
        }
    }

    /// Makes `n` permits available: free, or, while calls are queued, handed to the first of
    /// them through the semaphore.
    pub(crate) fn give(&self, n: usize) {
        if n != 0 && !self.free_up(n) {
            self.hand_off(n);
        }
    }

    /// Adds `n` permits to the free pool, unless calls are queued (`false`: the permits are
    /// theirs, and the caller still holds them).
    #[inline]
    fn free_up(&self, n: usize) -> bool {
        let word = &*self.word;
        let mut w = word.load(Relaxed);
        while waiters(w) == 0 {
            // Acquire too: a shrink's debt, recorded before it last read this word, is then seen
            // by the debt check that follows a release (see `retire_free`).
            match word.compare_exchange_weak(w, w + n as u64, AcqRel, Relaxed) {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
        false
    }

    /// Hands `n` permits to the queue. Should every waiter have left meanwhile, nobody would
    /// take them: take them back.
    #[cold]
    fn hand_off(&self, n: usize) {
        self.semaphore.add_permits(n);
        self.reclaim();
    }

    /// Returns permits stranded in the semaphore to the free pool once no call is queued.
    #[cold]
    fn reclaim(&self) {
        loop {
            // A read-modify-write reads the latest word: a plain load might still show a waiter
            // that has left, and the permits would be stranded.
            if waiters(self.word.fetch_add(0, AcqRel)) != 0 {
                // A waiter will take them.
                return;
            }
            let n = self.semaphore.forget_permits(MAX_PERMITS);
            if n == 0 || self.free_up(n) {
                return;
            }
            // A call queued meanwhile: the permits are its. Go round in case it has already
            // left too.
            self.semaphore.add_permits(n);
        }
    }

    /// Removes up to `n` free permits (a shrink), from the free pool and then from the queue's
    /// transit; returns how many it removed.
    ///
    /// It reads the word with a read-modify-write, never a plain load: a release gives its
    /// permit back (a read-modify-write) and then reads the debt, while a shrink records its debt
    /// and then calls this. Either the shrink sees the permit here, or the release's give comes
    /// later in the word's order, synchronises with this write, and sees the debt.
    pub(crate) fn retire_free(&self, n: usize) -> usize {
        let word = &*self.word;
        let mut w = word.fetch_add(0, AcqRel);
        let taken = loop {
            let take = free(w).min(n as u64);
            if take == 0 {
                break 0;
            }
            match word.compare_exchange_weak(w, w - take, AcqRel, Relaxed) {
                Ok(_) => break take as usize,
                Err(now) => w = now,
            }
        };
        if taken < n {
            taken + self.semaphore.forget_permits(n - taken)
        } else {
            taken
        }
    }

    /// Returns one permit, or retires it if a shrink is owed permits.
    #[inline]
    fn release(&self) {
        if self.debt.load(Acquire) != 0 && self.pay_debt() {
            return;
        }
        self.give(1);
        // A shrink that recorded its debt after the check above may have missed this permit
        // among the free ones: settle it now rather than at the next release.
        if self.debt.load(Acquire) != 0 {
            self.settle();
        }
    }

    /// Pays one permit of shrink debt, if any is owed.
    #[cold]
    fn pay_debt(&self) -> bool {
        self.debt
            .fetch_update(AcqRel, Acquire, |d| d.checked_sub(1))
            .is_ok()
    }

    /// Pays shrink debt out of free permits. Never pays more than is owed, even when releases
    /// pay concurrently: a permit forgotten in excess is given back.
    #[cold]
    fn settle(&self) {
        loop {
            let owed = self.debt.load(Acquire);
            if owed == 0 {
                return;
            }
            let forgotten = self.retire_free(owed);
            if forgotten == 0 {
                return;
            }
            let before = self
                .debt
                .fetch_update(AcqRel, Acquire, |d| Some(d.saturating_sub(forgotten)))
                .unwrap_or_else(|d| d);
            if before < forgotten {
                self.give(forgotten - before);
                return;
            }
        }
    }

    /// Records the time of a rejection (the rejection path only: no admitted call writes it).
    #[cold]
    fn note_rejection(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_rejection.fetch_max(since + 1, Relaxed);
    }

    fn since_last_rejection(&self) -> Option<Duration> {
        match self.last_rejection.load(Relaxed) {
            0 => None,
            at => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(at - 1)),
            ),
        }
    }

    #[cold]
    fn record_wait(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.waits.fetch_add(1, Relaxed);
        self.wait_total_nanos.fetch_add(nanos, Relaxed);
        self.wait_max_nanos.fetch_max(nanos, Relaxed);
    }
}

pub(crate) fn validate_max_concurrent(name: &str, max: usize) -> Result<(), ConfigError> {
    if max == 0 {
        return Err(ConfigError::new(
            format!("{COMPONENT} `{name}`"),
            "max_concurrent",
            max,
            "must be at least 1",
        ));
    }
    if max > MAX_PERMITS {
        return Err(ConfigError::new(
            format!("{COMPONENT} `{name}`"),
            "max_concurrent",
            max,
            "must be at most 4294967295 (permits are counted in 32 bits)",
        ));
    }
    Ok(())
}

fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.shared.name)
            .field("max_concurrent", &self.max_concurrent())
            .field("max_queued", &self.shared.max_queued)
            .field("max_wait", &self.shared.max_wait)
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

/// A point-in-time view of a [`Bulkhead`]'s counts, from [`Bulkhead::metrics`].
///
/// Counters (`accepted`, `rejected_*`, `waited`) count since the bulkhead was built. Wait times
/// are those of calls that went through the queue and left it admitted or timed out (a call
/// cancelled while waiting is not counted).
///
/// ```
/// use battlement_bulkhead::Bulkhead;
/// use std::time::Duration;
///
/// let b = Bulkhead::builder("pool").max_concurrent(1).build().unwrap();
/// let m = b.metrics();
/// assert_eq!(m.rejected_full + m.rejected_timeout, 0);
/// assert_eq!(m.wait_mean, Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// Calls holding a permit.
    pub in_flight: usize,
    /// Permits free: a call arriving now is admitted at once if this is above zero.
    pub free_permits: usize,
    /// Calls waiting in the queue.
    pub queued: usize,
    /// The concurrency limit.
    pub max_concurrent: usize,
    /// The queue bound.
    pub max_queued: usize,
    /// Calls admitted (at once or after waiting).
    pub accepted: u64,
    /// Calls rejected because the queue was full ([`BulkheadFull`]).
    pub rejected_full: u64,
    /// Calls rejected after waiting too long ([`BulkheadTimeout`]).
    pub rejected_timeout: u64,
    /// Calls that went through the queue (admitted or timed out).
    pub waited: u64,
    /// Their mean time in the queue.
    pub wait_mean: Duration,
    /// Their longest time in the queue.
    pub wait_max: Duration,
    /// How long ago the last call was rejected (full or timed out); `None` if none ever was.
    pub since_last_rejection: Option<Duration>,
}

impl BulkheadMetrics {
    /// Every permit is taken.
    pub fn is_saturated(&self) -> bool {
        self.in_flight >= self.max_concurrent
    }

    /// Calls rejected, for either reason.
    pub fn rejected(&self) -> u64 {
        self.rejected_full + self.rejected_timeout
    }
}

impl HealthSource for Bulkhead {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Bulkhead
    }

    /// State `saturated` (status `warn`) while every permit is taken or calls are waiting;
    /// else `rejecting` (`warn`) if a call was rejected within the
    /// [`rejection_window`](crate::BulkheadBuilder::rejection_window), so a reading between two
    /// bursts still shows them; `available` (`pass`) otherwise.
    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        let busy = m.is_saturated() || m.queued > 0;
        let window = self.shared.rejection_window;
        let recent = m.since_last_rejection.filter(|ago| *ago <= window);
        let (state, status) = if busy {
            ("saturated", HealthStatus::Warn)
        } else if recent.is_some() {
            ("rejecting", HealthStatus::Warn)
        } else {
            ("available", HealthStatus::Pass)
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut snap = HealthSnapshot::new(self.name(), ComponentKind::Bulkhead, state, status)
            .with_metric(Metric::new("in_flight", m.in_flight as f64, "calls"))
            .with_metric(Metric::new(
                "free_permits",
                m.free_permits as f64,
                "permits",
            ))
            .with_metric(Metric::new("queued", m.queued as f64, "calls"))
            .with_metric(Metric::new(
                "max_concurrent",
                m.max_concurrent as f64,
                "calls",
            ))
            .with_metric(Metric::new("max_queued", m.max_queued as f64, "calls"))
            .with_metric(Metric::new("accepted", m.accepted as f64, "calls"))
            .with_metric(Metric::new(
                "rejected_full",
                m.rejected_full as f64,
                "calls",
            ))
            .with_metric(Metric::new(
                "rejected_timeout",
                m.rejected_timeout as f64,
                "calls",
            ))
            .with_metric(Metric::new("waited", m.waited as f64, "calls"))
            .with_metric(Metric::new("wait_mean", ms(m.wait_mean), "ms"))
            .with_metric(Metric::new("wait_max", ms(m.wait_max), "ms"));
        if busy {
            snap = snap.with_message(format!(
                "bulkhead `{}` is saturated: {}/{} calls in flight, {}/{} queued",
                self.name(),
                m.in_flight,
                m.max_concurrent,
                m.queued,
                m.max_queued
            ));
        } else if let Some(ago) = recent {
            snap = snap.with_message(format!(
                "bulkhead `{}` rejected a call {:?} ago (within its {:?} rejection window); {} \
                 rejected in all",
                self.name(),
                ago,
                window,
                m.rejected()
            ));
        }
        snap
    }
}
