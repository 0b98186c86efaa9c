//! The bulkhead handle: its accessors, run-time resize and admission.

use crate::permit::{stripes, waiters, Entry, Permit, Shard, Shared, MAX_PERMITS, MAX_QUEUED};
use crate::queue::{noop_waker, wait_for_permit, QueueSlot, WaitFuture};
use crate::semaphore::Semaphore;
use crate::{BulkheadBuilder, BulkheadEvent, Priority};
use battlement_core::error::{BoxError, BulkheadFull};
use battlement_core::event::EventChannel;
use battlement_core::export::Histogram;
use battlement_core::handle::Handle;
use battlement_core::stripe::{CachePadded, Shards, StripedCounter};
use battlement_core::sync::{
    AtomicU64, AtomicUsize, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use battlement_core::{ComponentKind, ConfigError};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// A concurrency limit with a bounded, time-limited wait queue, shared by every service guarded
/// with it.
///
/// At most [`max_concurrent`](Self::max_concurrent) calls run at once. A call that finds every
/// permit taken waits in a FIFO queue of at most [`max_queued`](Self::max_queued) calls, for at
/// most [`max_wait`](Self::max_wait); past either bound it is rejected with a typed error
/// ([`BulkheadFull`], [`BulkheadTimeout`](crate::BulkheadTimeout)), which `battlement-core` classifies as
/// [`Rejected`](battlement_core::FailureKind::Rejected).
///
/// The handle is a cheap `Clone` (one `Arc`): every clone, and every [`BulkheadLayer`] made
/// from one, shares one budget of permits. It implements [`HealthSource`](battlement_core::HealthSource): a snapshot reports the
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
    /// One shard per stripe: a call's permit holds its thread's, so taking and dropping it
    /// writes a reference count no other core writes.
    shards: Shards<Shard>,
}

impl Bulkhead {
    /// A builder for a bulkhead named `name`.
    pub fn builder(name: impl Into<String>) -> BulkheadBuilder {
        BulkheadBuilder::new(name)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one constructor, called by the builder"
    )]
    pub(crate) fn from_parts(
        name: Arc<str>,
        max_concurrent: usize,
        max_queued: usize,
        max_wait: Option<Duration>,
        rejection_window: Duration,
        histogram: bool,
        events: EventChannel<BulkheadEvent>,
        adaptive: Option<Box<crate::adaptive::Adaptive>>,
        shedding: (f64, u32),
    ) -> Self {
        let shared = Arc::new(Shared {
            word: CachePadded::new(AtomicU64::new(max_concurrent as u64)),
            stripes: (0..stripes())
                .map(|_| Arc::new(CachePadded::new(AtomicU64::new(0))))
                .collect(),
            queues: std::array::from_fn(|_| Semaphore::new(0)),
            class_waiters: std::array::from_fn(|_| AtomicUsize::new(0)),
            passed_over: std::array::from_fn(|_| AtomicU64::new(0)),
            starvation_bound: AtomicU64::new(u64::from(shedding.1)),
            sheddable_share: AtomicU64::new(shedding.0.to_bits()),
            rejected_shed: AtomicU64::new(0),
            accepted: StripedCounter::new(),
            debt: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(max_concurrent),
            rejected_full: AtomicU64::new(0),
            rejected_timeout: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            wait_total_nanos: AtomicU64::new(0),
            wait_max_nanos: AtomicU64::new(0),
            wait_histogram: histogram.then(Histogram::new),
            max_queued: AtomicUsize::new(max_queued.min(MAX_QUEUED)),
            max_wait: AtomicU64::new(max_wait.map_or(0, nanos)),
            last_rejection: AtomicU64::new(0),
            epoch: Instant::now(),
            rejection_window: AtomicU64::new(nanos(rejection_window)),
            reloads: AtomicU64::new(0),
            events,
            resize: Mutex::new(()),
            name,
            adaptive,
        });
        Bulkhead {
            shards: Shards::with_count(shared.stripes.len(), |index| Shard {
                shared: shared.clone(),
                free: shared.stripes[index].clone(),
                index,
            }),
        }
    }

    /// The state every clone shares.
    #[inline]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shards.all()[0].shared
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// How many calls may run at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared().max_concurrent.load(Acquire)
    }

    /// How many calls may wait for a permit (0: a call that finds none is rejected at once).
    pub fn max_queued(&self) -> usize {
        self.shared().max_queued.load(Relaxed)
    }

    /// How long a call may wait in the queue (`None`: until admitted or cancelled).
    pub fn max_wait(&self) -> Option<Duration> {
        self.shared().max_wait()
    }

    /// Calls holding a permit now.
    ///
    /// Read from the permit accounting (permits in existence minus free ones, the free ones
    /// summed over the per-thread stripes one after another), so the call path keeps no counter
    /// of its own for it; exact when no call starts or finishes and no resize or hand-off is in
    /// progress during the read, otherwise off by at most the calls that start or finish.
    pub fn in_flight(&self) -> usize {
        self.shared().in_flight()
    }

    /// Permits free now: a call arriving now is admitted at once if this is above zero (and no
    /// call is queued, which there is not while a permit is free). The sum of the shared pool
    /// and the per-thread stripes, read one after another: see
    /// [`in_flight`](Self::in_flight) for how exact it is.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let b = Bulkhead::builder("pool").max_concurrent(3).build().unwrap();
    /// assert_eq!(b.free_permits(), 3);
    /// ```
    pub fn free_permits(&self) -> usize {
        self.shared().free_permits()
    }

    /// How long ago the last call was rejected (full or timed out); `None` if none ever was.
    pub fn since_last_rejection(&self) -> Option<Duration> {
        self.shared().since_last_rejection()
    }

    /// A rejection within this long makes the health snapshot `warn`; see
    /// [`rejection_window`](crate::BulkheadBuilder::rejection_window).
    pub fn rejection_window(&self) -> Duration {
        Duration::from_nanos(self.shared().rejection_window.load(Relaxed))
    }

    /// Calls waiting in the queue now.
    pub fn queued(&self) -> usize {
        waiters(self.shared().word.load(Acquire)) as usize
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
        validate_max_concurrent(&self.shared().name, max)?;
        let _resizing = self
            .shared()
            .resize
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.resize(max);
        Ok(())
    }

    /// Applies the settings of `settings` to this live bulkhead, or, if any is invalid, changes
    /// nothing and returns the error ([`BulkheadBuilder::validate`]'s).
    ///
    /// The builder's name, registries (and `critical`) and event capacity are not applied: the
    /// bulkhead keeps its identity, its registrations and its event channel. No call is dropped
    /// or failed:
    ///
    /// - `max_concurrent` resizes as [`set_max_concurrent`](Self::set_max_concurrent) does:
    ///   growing admits queued calls at once, in arrival order; shrinking never interrupts a
    ///   running call, so calls in flight may exceed the new limit until enough of them finish
    ///   (each finishing call retires its permit), and no new call is admitted until they are
    ///   below it.
    /// - `max_queued` and `max_wait` apply to calls that arrive after the reload: calls already
    ///   queued keep their place (a smaller queue does not evict them) and their deadline.
    /// - `rejection_window` applies to the next health snapshot; `sheddable_queue_share` to
    ///   calls arriving after the reload, `starvation_bound` to the next hand-off.
    ///
    /// Each setting is published on its own: a call arriving during the reload may see some of
    /// the new settings and some of the old ones. A reload is a `tracing` info event, a
    /// [`BulkheadEvent::Reloaded`], and counts in
    /// [`BulkheadMetrics::reloads`](crate::BulkheadMetrics::reloads).
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    /// use std::time::Duration;
    ///
    /// let b = Bulkhead::builder("db").max_concurrent(4).build().unwrap();
    /// b.reload(&Bulkhead::builder("db").max_concurrent(8).max_queued(16).max_wait(Duration::from_millis(50)))
    ///     .unwrap();
    /// assert_eq!((b.max_concurrent(), b.max_queued()), (8, 16));
    ///
    /// let err = b.reload(&Bulkhead::builder("db").max_concurrent(0)).unwrap_err();
    /// assert_eq!(err.setting(), "max_concurrent");
    /// assert_eq!(b.max_concurrent(), 8); // nothing changed
    /// assert_eq!(b.metrics().reloads, 1);
    /// ```
    pub fn reload(&self, settings: &BulkheadBuilder) -> Result<(), ConfigError> {
        settings.validate()?;
        let s = self.shared();
        let _resizing = s.resize.lock().unwrap_or_else(|e| e.into_inner());
        let max_queued = settings.max_queued.min(MAX_QUEUED);
        s.max_queued.store(max_queued, Relaxed);
        s.max_wait
            .store(settings.max_wait.map_or(0, nanos), Relaxed);
        s.rejection_window
            .store(nanos(settings.rejection_window), Relaxed);
        s.sheddable_share
            .store(settings.sheddable_queue_share.to_bits(), Relaxed);
        s.starvation_bound
            .store(u64::from(settings.starvation_bound), Relaxed);
        let old = s.max_concurrent.load(Acquire);
        self.resize(settings.max_concurrent);
        s.reloads.fetch_add(1, Relaxed);
        tracing::info!(
            bulkhead = %s.name,
            max_concurrent = settings.max_concurrent,
            max_queued,
            max_wait = ?settings.max_wait,
            "bulkhead settings reloaded"
        );
        s.events.send(BulkheadEvent::Reloaded {
            name: s.name.clone(),
            max_concurrent: (old, settings.max_concurrent),
            max_queued,
            max_wait: settings.max_wait,
        });
        Ok(())
    }

    /// Subscribes to typed events ([`BulkheadEvent`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<BulkheadEvent> {
        self.shared().events.subscribe()
    }

    /// Changes the limit to `max` (validated), with the resize lock held.
    fn resize(&self, max: usize) {
        let old = self.shared().resize_locked(max);
        if old != max {
            tracing::info!(bulkhead = %self.shared().name, old, new = max, "bulkhead max_concurrent changed");
        }
    }

    /// Tries to admit a call now; past the fast path, queues it or rejects it.
    ///
    /// The fast path (a free permit in this thread's stripe) takes no lock, allocates nothing
    /// and writes nothing another core's calls write: one compare-and-swap on the stripe, one
    /// load of the shared word, a handle on this thread's shard for the permit (a reference
    /// count on the shard's own line, or once leaked a pointer copy), and a plain increment of
    /// this thread's stripe of `accepted`.
    ///
    /// `priority` is asked only past the fast path.
    #[inline]
    pub(crate) fn admit(&self, priority: impl FnOnce() -> Priority) -> Admission {
        Self::admit_on(self.shards.local(), priority)
    }

    /// [`admit`](Self::admit) through `shard` (the calling thread's, but for the loom models).
    #[inline]
    pub(crate) fn admit_on(
        shard: Handle<CachePadded<Shard>>,
        priority: impl FnOnce() -> Priority,
    ) -> Admission {
        let s = &shard.shared;
        if s.try_take(&shard.free) {
            s.accepted.increment();
            Admission::Now(Permit { shard })
        } else {
            Self::admit_slow(shard, priority())
        }
    }

    #[cold]
    #[inline(never)]
    fn admit_slow(shard: Handle<CachePadded<Shard>>, priority: Priority) -> Admission {
        let s = &shard.shared;
        let admitted = || {
            s.accepted.increment();
            Admission::Now(Permit {
                shard: shard.clone(),
            })
        };
        // The stripe is empty: a batch from the shared pool, or half of another stripe's.
        if s.take_free(shard.index) {
            return admitted();
        }
        let class = priority.index();
        let max_queued = s.max_queued.load(Relaxed);
        let room = if priority == Priority::Sheddable {
            s.sheddable_queued(max_queued)
        } else {
            max_queued
        };
        s.join_class(class);
        let entered = s.enter(room as u64);
        if entered != Entry::Queued {
            s.leave_class(class);
        }
        if entered == Entry::Admitted {
            return admitted();
        }
        // Full, but with no call queued (no queue, or none for this priority) a permit may have
        // come back to a stripe since `take_free` looked.
        if entered == Entry::Full && s.take_free(shard.index) {
            return admitted();
        }
        if entered == Entry::Full && priority == Priority::Sheddable {
            s.rejected_shed.fetch_add(1, Relaxed);
            s.note_rejection();
            tracing::debug!(
                bulkhead = %s.name,
                max_queued,
                sheddable_queued = room,
                "sheddable call shed: bulkhead saturated"
            );
            return Admission::Rejected(Box::new(BulkheadFull::shed(s.name.clone())));
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
        // Permits that callers put in their stripes before this call joined the queue are its
        // (or those of calls queued before it).
        s.sweep();
        let mut wait = wait_for_permit(
            QueueSlot(Some(shard.clone()), class),
            Instant::now(),
            s.max_wait(),
        );
        // Poll once now, so the call takes its place in the semaphore's FIFO queue in the order
        // of `call`s, not of first polls. The caller's first poll replaces the no-op waker.
        match wait.as_mut().poll(&mut Context::from_waker(noop_waker())) {
            Poll::Ready(Ok(permit)) => Admission::Now(permit),
            Poll::Ready(Err(error)) => Admission::Rejected(error),
            Poll::Pending => Admission::Wait(wait),
        }
    }
}

/// The class the loom models queue in.
#[cfg(all(loom, test))]
const NORMAL: usize = 1;

/// The queued path, step by step, for the loom models (which cannot run the async wait).
#[cfg(all(loom, test))]
impl Bulkhead {
    /// What a call that found no free permit on the fast path does first.
    pub(crate) fn loom_enter(&self) -> (Entry, Option<Permit>) {
        self.loom_enter_class(NORMAL)
    }

    /// [`loom_enter`](Self::loom_enter) for a call of priority class `class`.
    pub(crate) fn loom_enter_class(&self, class: usize) -> (Entry, Option<Permit>) {
        self.loom_enter_on(0, class)
    }

    /// What a call on stripe `stripe` that found no free permit in it does, as
    /// `admit_slow` does it: a free permit elsewhere, or the shared word (then, queued, the
    /// sweep of the stripes).
    pub(crate) fn loom_enter_on(&self, stripe: usize, class: usize) -> (Entry, Option<Permit>) {
        let shard = &self.shards.all()[stripe];
        let s = self.shared();
        let permit = || {
            Some(Permit {
                shard: Handle::from(shard.clone()),
            })
        };
        if s.take_free(stripe) {
            return (Entry::Admitted, permit());
        }
        s.join_class(class);
        let entry = s.enter(s.max_queued.load(Relaxed) as u64);
        if entry != Entry::Queued {
            s.leave_class(class);
        }
        match entry {
            Entry::Admitted => (entry, permit()),
            Entry::Full if s.take_free(stripe) => (Entry::Admitted, permit()),
            Entry::Full => (entry, None),
            Entry::Queued => {
                s.sweep();
                (entry, None)
            }
        }
    }

    /// A call on stripe `stripe`, fast path first, then as [`loom_enter_on`](Self::loom_enter_on).
    pub(crate) fn loom_call_on(&self, stripe: usize) -> (Entry, Option<Permit>) {
        let shard = Handle::from(self.shards.all()[stripe].clone());
        match Self::admit_on(shard, || crate::Priority::Normal) {
            Admission::Now(permit) => (Entry::Admitted, Some(permit)),
            Admission::Rejected(_) => (Entry::Full, None),
            Admission::Wait(_) => unreachable!("the loom models queue through loom_enter_on"),
        }
    }

    /// A queued call polling for its permit: on success it has left the queue.
    pub(crate) fn loom_poll_queue(&self) -> Option<Permit> {
        self.loom_poll_queue_class(NORMAL)
    }

    /// [`loom_poll_queue`](Self::loom_poll_queue) for a call of class `class`.
    pub(crate) fn loom_poll_queue_class(&self, class: usize) -> Option<Permit> {
        let s = self.shared();
        s.queues[class].try_acquire().then(|| {
            s.leave_queue(class);
            Permit {
                shard: Handle::from(self.shards.all()[0].clone()),
            }
        })
    }

    /// A queued call giving up (its wait timed out, or it was cancelled).
    pub(crate) fn loom_give_up(&self) {
        self.loom_give_up_class(NORMAL);
    }

    /// [`loom_give_up`](Self::loom_give_up) for a call of class `class`.
    pub(crate) fn loom_give_up_class(&self, class: usize) {
        self.shared().leave_queue(class);
    }
}

#[cfg(test)]
impl Bulkhead {
    /// Free permits, and permits in the semaphore (in transit to a waiter, or stranded).
    pub(crate) fn permit_places(&self) -> (usize, usize) {
        let s = self.shared();
        (
            s.free_permits(),
            s.queues.iter().map(Semaphore::available_permits).sum(),
        )
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Shared {
    /// Calls holding a permit now (see [`Bulkhead::in_flight`]).
    pub(crate) fn in_flight(&self) -> usize {
        let capacity = self.max_concurrent.load(Acquire) + self.debt.load(Acquire);
        let free = self.free_permits()
            + self
                .queues
                .iter()
                .map(Semaphore::available_permits)
                .sum::<usize>();
        capacity.saturating_sub(free)
    }

    /// Changes the limit to `max` (validated), with the resize lock held; returns the old one.
    /// Growing gives permits (to the queue first); shrinking retires free permits now and the
    /// rest as calls release theirs.
    pub(crate) fn resize_locked(&self, max: usize) -> usize {
        let s = self;
        let old = s.max_concurrent.load(Acquire);
        if max == old {
            return old;
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
        old
    }

    /// How many queued calls a sheddable call may join: `max_queued × sheddable_queue_share`,
    /// rounded down.
    pub(crate) fn sheddable_queued(&self, max_queued: usize) -> usize {
        let share = f64::from_bits(self.sheddable_share.load(Relaxed));
        ((max_queued as f64) * share) as usize
    }

    /// The wait limit for a call queueing now.
    pub(crate) fn max_wait(&self) -> Option<Duration> {
        match self.max_wait.load(Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}

/// A call's admission by [`Bulkhead::try_call`]: a permit, a place in the queue, or a
/// rejection. [`ResponseFuture::new`](crate::ResponseFuture::new) turns it into the call's
/// future; dropped, it gives back what it holds.
///
/// ```
/// use battlement_bulkhead::Bulkhead;
///
/// let b = Bulkhead::builder("pool").max_concurrent(1).build().unwrap();
/// let first = b.try_call();
/// assert_eq!(b.in_flight(), 1);
/// drop(first);
/// assert_eq!(b.in_flight(), 0);
/// ```
pub struct BulkheadAdmission(pub(crate) Admission);

impl fmt::Debug for BulkheadAdmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            Admission::Now(_) => "admitted",
            Admission::Wait(_) => "waiting",
            Admission::Rejected(_) => "rejected",
        };
        f.debug_tuple("BulkheadAdmission").field(&state).finish()
    }
}

impl Bulkhead {
    /// Admits one call, as a [`BulkheadService`](crate::BulkheadService) does (a permit, a
    /// place in the queue, or a rejection), for services that pick a bulkhead per call
    /// (battlement-keyed). Must be called from within a tokio runtime when the call may queue.
    #[inline]
    pub fn try_call(&self) -> BulkheadAdmission {
        BulkheadAdmission(self.admit(|| Priority::Normal))
    }

    /// Whether anything but this handle holds the bulkhead: another clone of it (a layer, a
    /// service, the health registry), a permit, or a call in its queue. A table of bulkheads
    /// drops one only when this is `false`, so no permit is lost.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let b = Bulkhead::builder("pool").build().unwrap();
    /// assert!(!b.is_shared());
    /// let call = b.try_call();
    /// assert!(b.is_shared());
    /// drop(call);
    /// assert!(!b.is_shared());
    /// ```
    pub fn is_shared(&self) -> bool {
        // The table is this handle's and its clones'; each shard is held by the table and by
        // the permits and queue places taken through it; the shared state by the shards alone.
        self.shards.is_shared() || Arc::strong_count(self.shared()) > self.shards.all().len()
    }

    /// This bulkhead kept for the rest of the program (never freed), as a handle whose clones
    /// copy a pointer: cloning it, or a layer or service made from it, writes no reference
    /// count that other cores' clones share. For services cloned for every request, as axum's
    /// router clones the matched route (and hyper the service it serves): on several cores
    /// those clones would otherwise write one word from every core, per request. It is the
    /// same bulkhead: permits, queue, metrics and health are those of this handle. A permit
    /// copies a pointer to its thread's shard too, where a bulkhead that is not leaked counts a
    /// reference on it (two locked instructions a call, on a line only that thread writes:
    /// about half of what a free permit costs on a 2-vCPU Xeon).
    ///
    /// For bulkheads made once, at start, that live as long as the program: each call of
    /// `leak` on a handle that is not leaked yet keeps one more reference for good.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let pool = Bulkhead::builder("pool").max_concurrent(1).build().unwrap().leak();
    /// let clone = pool.clone(); // a pointer copy
    /// let _permit = clone.try_call();
    /// assert_eq!(pool.in_flight(), 1);
    /// ```
    pub fn leak(self) -> Self {
        Bulkhead {
            shards: self.shards.leak(),
        }
    }

    /// Whether this handle was [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.shards.is_leaked()
    }

    /// The reference counts on the bulkhead's shards (see `Shards::references`).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn references(&self) -> usize {
        self.shards.references()
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

pub(crate) fn validate_max_concurrent(name: &str, max: usize) -> Result<(), ConfigError> {
    if max == 0 {
        return Err(ConfigError::scoped(
            ComponentKind::Bulkhead,
            name,
            "max_concurrent",
            max,
            "must be at least 1",
        ));
    }
    if max > MAX_PERMITS {
        return Err(ConfigError::scoped(
            ComponentKind::Bulkhead,
            name,
            "max_concurrent",
            max,
            "must be at most 4294967295 (permits are counted in 32 bits)",
        ));
    }
    Ok(())
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.shared().name)
            .field("max_concurrent", &self.max_concurrent())
            .field("max_queued", &self.max_queued())
            .field("max_wait", &self.max_wait())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}
