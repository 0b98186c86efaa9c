//! The permit accounting the loom models check (`loom_tests.rs`): the state every clone of a
//! bulkhead shares, the free-permit and queue word, permits, release and resize.

use crate::priority::CLASSES;
use crate::semaphore::Semaphore;
use crate::BulkheadEvent;
use battlement_core::event::EventChannel;
use battlement_core::export::Histogram;
use battlement_core::stripe::{CachePadded, StripedCounter};
use battlement_core::sync::{
    AtomicU64, AtomicUsize, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use std::fmt;
use std::sync::Arc;
use tokio::time::Instant;

/// The state every clone of a [`Bulkhead`](crate::Bulkhead) shares.
///
/// Permits live in one of three places: held by a call, free in [`word`](Self::word), or in
/// transit to a queued call through the semaphore. A call that finds a free permit takes it with
/// one compare-and-swap on `word` and gives it back the same way: no lock, no queue. Only while
/// calls are queued does a finished call hand its permit to the queue of one priority class
/// (chosen by `Shared::pick`: the highest with waiters, within the starvation bound), whose
/// semaphore wakes that class's first waiter (FIFO). An admitted call also writes this thread's stripe of `accepted` and
/// reads `debt`; everything else is written only off the fast path.
pub(crate) struct Shared {
    /// Free permits (low 32 bits) and queued calls (high 32 bits). Calls are queued only while
    /// no permit is free, and a permit is only made free while no call is queued, so a queued
    /// call is never passed over by one that arrived after it.
    pub(crate) word: CachePadded<AtomicU64>,
    /// The queue, one FIFO per [`Priority`](crate::Priority) class (critical first): each
    /// holds permits only on their way to a queued call of its class.
    pub(crate) queues: [Semaphore; CLASSES],
    /// Calls queued in each class (counted before they join the word's count, and until after
    /// they leave it). Written only by queued calls.
    pub(crate) class_waiters: [AtomicUsize; CLASSES],
    /// How many hand-offs in a row passed over each class while it had waiters.
    pub(crate) passed_over: [AtomicU64; CLASSES],
    /// A class passed over this many times in a row is served next.
    pub(crate) starvation_bound: AtomicU64,
    /// The share of `max_queued` sheddable calls may fill (an `f64`'s bits).
    pub(crate) sheddable_share: AtomicU64,
    /// Sheddable calls rejected (shed).
    pub(crate) rejected_shed: AtomicU64,
    pub(crate) accepted: StripedCounter,
    /// Permits still to be removed after a shrink: a finishing call pays one by forgetting its
    /// permit instead of returning it.
    pub(crate) debt: AtomicUsize,
    pub(crate) max_concurrent: AtomicUsize,
    pub(crate) rejected_full: AtomicU64,
    pub(crate) rejected_timeout: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) wait_total_nanos: AtomicU64,
    pub(crate) wait_max_nanos: AtomicU64,
    /// Queue waits for the exporters, when
    /// [`histogram`](crate::BulkheadBuilder::histogram) is on (written only by queued calls).
    pub(crate) wait_histogram: Option<Histogram>,
    /// The queue bound (read by arrivals that find no free permit; a reload changes it).
    pub(crate) max_queued: AtomicUsize,
    /// The wait limit in nanoseconds, 0 for none (read when a call queues).
    pub(crate) max_wait: AtomicU64,
    /// When the last call was rejected: nanoseconds since `epoch`, plus one (0: never). Written
    /// only on the rejection path, never by an admitted call.
    pub(crate) last_rejection: AtomicU64,
    /// The time `last_rejection` counts from (`tokio::time`, so paused clocks apply).
    pub(crate) epoch: Instant,
    /// A rejection within this long makes the snapshot `warn` (nanoseconds).
    pub(crate) rejection_window: AtomicU64,
    /// Reloads applied.
    pub(crate) reloads: AtomicU64,
    pub(crate) events: EventChannel<BulkheadEvent>,
    /// Serialises resizes (never taken by a call).
    pub(crate) resize: Mutex<()>,
    pub(crate) name: Arc<str>,
    /// The adaptive limit's sampling and algorithm, for a bulkhead built with
    /// [`adaptive`](crate::BulkheadBuilder::adaptive) (only its own service reads it).
    pub(crate) adaptive: Option<Box<crate::adaptive::Adaptive>>,
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
pub(crate) const MAX_QUEUED: usize = FREE as usize;

#[inline]
pub(crate) fn free(word: u64) -> u64 {
    word & FREE
}

#[inline]
pub(crate) fn waiters(word: u64) -> u64 {
    word >> 32
}

/// A bulkhead permit held by an admitted call; dropping it releases the permit (or, after a
/// shrink, retires it).
pub(crate) struct Permit {
    pub(crate) shared: Arc<Shared>,
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

    /// A queued call leaves the queue, with a permit or without. The last one out of its class
    /// returns any permit left in transit (handed over for a waiter that then gave up) to the
    /// free pool or another class ([`leave_class`](Self::leave_class)).
    pub(crate) fn leave_queue(&self, class: usize) {
        let before = self.word.fetch_sub(WAITER, AcqRel);
        debug_assert!(waiters(before) > 0, "left a queue it was not in");
        self.leave_class(class);
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
    pub(crate) fn free_up(&self, n: usize) -> bool {
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
        let mut taken = taken;
        for queue in &self.queues {
            if taken == n {
                break;
            }
            taken += queue.forget_permits(n - taken);
        }
        taken
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
    pub(crate) fn settle(&self) {
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
}
