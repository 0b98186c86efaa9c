//! The permit accounting the loom models check (`loom_tests.rs`): the state every clone of a
//! bulkhead shares, the per-thread permit stripes over the shared pool and queue word, permits,
//! release and resize.

use crate::priority::CLASSES;
use crate::semaphore::Semaphore;
use crate::BulkheadEvent;
use battlement_core::event::EventChannel;
use battlement_core::export::Histogram;
use battlement_core::handle::Handle;
use battlement_core::stripe::{CachePadded, StripedCounter};
use battlement_core::sync::{
    AtomicU64, AtomicUsize, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed, SeqCst},
};
use std::fmt;
use std::sync::Arc;
use tokio::time::Instant;

/// The state every clone of a [`Bulkhead`](crate::Bulkhead) shares.
///
/// Permits live in one of four places: held by a call, free in a thread's stripe
/// ([`stripes`](Self::stripes)), free in the shared pool ([`word`](Self::word)), or in transit
/// to a queued call through the semaphore. A call takes a permit from its thread's stripe with
/// one compare-and-swap and gives it back there with one `fetch_add`: neither writes a line that
/// calls on another thread write, so calls on two cores do not contend. Each also reads the
/// shared word, which no call writes while permits are plentiful, to see whether calls are
/// queued. A stripe that runs dry refills with a batch from the shared pool, or else steals half
/// of another stripe's permits; only when none is free anywhere does a call queue.
///
/// FIFO for queued calls rests on a hand-shake between the stripes and the shared word's count
/// of queued calls, every access `SeqCst`: a call joins the queue (a read-modify-write of the
/// word) and then empties every stripe into the queue ([`sweep`](Self::sweep)), while a call
/// that took or returned a permit in its stripe (a read-modify-write of the stripe) then reads
/// the word, and, seeing queued calls, hands what it holds to the queue. Whichever came second
/// sees the other: a permit never stays free in a stripe while a call waits, and a call that
/// arrives after one queued never keeps a permit ahead of it. Only while calls are queued does a
/// finished call hand its permit to the queue of one priority class (chosen by `Shared::pick`:
/// the highest with waiters, within the starvation bound), whose semaphore wakes that class's
/// first waiter (FIFO). An admitted call also writes this thread's stripe of `accepted` and
/// reads `debt`; everything else is written only off the fast path.
pub(crate) struct Shared {
    /// The shared pool's free permits (low 32 bits) and queued calls (high 32 bits). Calls are
    /// queued only while no permit is free here (and, see above, in no stripe), and a permit is
    /// only made free while no call is queued, so a queued call is never passed over by one that
    /// arrived after it.
    pub(crate) word: CachePadded<AtomicU64>,
    /// Free permits cached per thread stripe (indexed like the handle's shards), each on cache
    /// lines of its own. Empty while calls are queued, but for permits on their way to the
    /// queue.
    pub(crate) stripes: Box<[Arc<CachePadded<AtomicU64>>]>,
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

/// The most permits a stripe refills with from the shared pool at once (a stripe takes
/// `max_concurrent / (2 × stripes)`, between 1 and this).
const MAX_BATCH: usize = 1024;

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

/// One stripe's handle: what an admitted call's [`Permit`] holds, in an `Arc` of its own on
/// cache lines of its own, so that cloning and dropping it per call writes a reference count no
/// other core writes. Its index names the stripe of [`Shared::stripes`] the permit returns to.
pub(crate) struct Shard {
    pub(crate) shared: Arc<Shared>,
    /// Stripe `index` of [`Shared::stripes`], reached without indexing on the call path.
    pub(crate) free: Arc<CachePadded<AtomicU64>>,
    pub(crate) index: usize,
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("bulkhead", &self.shared.name)
            .field("index", &self.index)
            .finish()
    }
}

/// How many stripes a bulkhead has: [`stripe_count`](battlement_core::stripe::stripe_count),
/// or two under loom (whose threads all share one thread index), so that the models can put
/// permits in two stripes.
pub(crate) fn stripes() -> usize {
    #[cfg(loom)]
    {
        2
    }
    #[cfg(not(loom))]
    {
        battlement_core::stripe::stripe_count()
    }
}

/// Orders a stripe's read-modify-write before the load of the other word that follows it (the
/// two sides of [`Shared`]'s hand-shake). Both are `SeqCst`, so in the C++20 model they are
/// already in the single total order of `SeqCst` operations and nothing more is needed (on
/// x86-64 a locked instruction and a plain load); loom models `SeqCst` accesses as
/// acquire/release only, so under loom a `SeqCst` fence stands in for that order.
#[inline(always)]
fn handshake() {
    #[cfg(loom)]
    loom::sync::atomic::fence(SeqCst);
}

/// A bulkhead permit held by an admitted call; dropping it releases the permit (or, after a
/// shrink, retires it) into the stripe of its shard.
pub(crate) struct Permit {
    pub(crate) shard: Handle<CachePadded<Shard>>,
}

impl Permit {
    /// The bulkhead's shared state.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shard.shared
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.shard.shared.release(&self.shard.free);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("bulkhead", &self.shared().name)
            .field("stripe", &self.shard.index)
            .finish()
    }
}

impl Shared {
    /// Takes a free permit from stripe `cell`: the fast path, one compare-and-swap on the stripe
    /// and one load of the shared word. `false` if the stripe has none, or if a call is queued
    /// (then the permit taken is handed to the queue: a later call never passes a queued one).
    #[inline]
    pub(crate) fn try_take(&self, cell: &AtomicU64) -> bool {
        let mut c = cell.load(Relaxed);
        loop {
            if c == 0 {
                return false;
            }
            match cell.compare_exchange_weak(c, c - 1, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        handshake();
        if waiters(self.word.load(SeqCst)) != 0 {
            self.yield_to_queue();
            return false;
        }
        true
    }

    /// A call took a permit while calls are queued: the permit is theirs.
    #[cold]
    #[inline(never)]
    fn yield_to_queue(&self) {
        self.give(1);
    }

    /// Takes a free permit outside the queue, while no call is queued: from the shared pool
    /// (moving a batch of them into stripe `i` for the calls that follow), else from another
    /// stripe (moving half of what it has into stripe `i`). `false` if calls are queued or no
    /// permit was found free.
    pub(crate) fn take_free(&self, i: usize) -> bool {
        let word = &*self.word;
        let mut w = word.load(SeqCst);
        let mut batch = 0;
        while waiters(w) == 0 && free(w) != 0 {
            let want = (self.max_concurrent.load(Relaxed) / (2 * self.stripes.len()))
                .clamp(1, MAX_BATCH) as u64;
            let take = free(w).min(want);
            match word.compare_exchange_weak(w, w - take, SeqCst, SeqCst) {
                Ok(_) => {
                    batch = take;
                    break;
                }
                Err(now) => w = now,
            }
        }
        if batch == 0 {
            if waiters(w) != 0 {
                return false;
            }
            batch = self.steal(i);
            if batch == 0 {
                return false;
            }
        }
        if batch > 1 {
            self.stripes[i].fetch_add(batch - 1, SeqCst);
        }
        handshake();
        if waiters(word.load(SeqCst)) != 0 {
            // A call queued meanwhile: what was taken is its, and so is stripe `i`'s.
            let cached = self.stripes[i].swap(0, SeqCst);
            self.give(cached as usize + 1);
            return false;
        }
        true
    }

    /// Takes half (rounded up) of the free permits of the first other stripe that has any;
    /// returns how many.
    fn steal(&self, i: usize) -> u64 {
        let n = self.stripes.len();
        for k in 1..n {
            let cell = &**self.stripes[(i + k) % n];
            let mut c = cell.load(SeqCst);
            while c != 0 {
                let take = c.div_ceil(2);
                match cell.compare_exchange_weak(c, c - take, SeqCst, SeqCst) {
                    Ok(_) => return take,
                    Err(now) => c = now,
                }
            }
        }
        0
    }

    /// Empties every stripe into the queue: a call that has just joined the queue does this,
    /// so that no permit stays free while it waits (a release that put its permit in a stripe
    /// before the call joined may not have seen it).
    pub(crate) fn sweep(&self) {
        handshake();
        let mut found = 0;
        for cell in self.stripes.iter().map(|c| &***c) {
            if cell.load(SeqCst) != 0 {
                found += cell.swap(0, SeqCst);
            }
        }
        self.give(found as usize);
    }

    /// Free permits: the shared pool's plus every stripe's, read one after another (see
    /// [`Bulkhead::free_permits`](crate::Bulkhead::free_permits)).
    pub(crate) fn free_permits(&self) -> usize {
        let striped: u64 = self.stripes.iter().map(|c| c.load(Acquire)).sum();
        (free(self.word.load(Acquire)) + striped) as usize
    }

    /// The slow path of admission, in one compare-and-swap on the shared word: take a permit
    /// from the shared pool, or join the queue if it has room.
    pub(crate) fn enter(&self, max_queued: u64) -> Entry {
        let word = &*self.word;
        let mut w = word.load(SeqCst);
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
                w = word.fetch_add(0, SeqCst);
                confirmed = true;
                continue;
            };
            match word.compare_exchange_weak(w, next, SeqCst, SeqCst) {
                Ok(_) => return entry,
                Err(now) => w = now,
            }
        }
    }

    /// A queued call leaves the queue, with a permit or without. The last one out of its class
    /// returns any permit left in transit (handed over for a waiter that then gave up) to the
    /// free pool or another class ([`leave_class`](Self::leave_class)).
    pub(crate) fn leave_queue(&self, class: usize) {
        let before = self.word.fetch_sub(WAITER, SeqCst);
        debug_assert!(waiters(before) > 0, "left a queue it was not in");
        self.leave_class(class);
    }

    /// Makes `n` permits available: free in the shared pool, or, while calls are queued, handed
    /// to the first of them through the semaphore.
    pub(crate) fn give(&self, n: usize) {
        if n != 0 && !self.free_up(n) {
            self.hand_off(n);
        }
    }

    /// Adds `n` permits to the shared pool, unless calls are queued (`false`: the permits are
    /// theirs, and the caller still holds them).
    #[inline]
    pub(crate) fn free_up(&self, n: usize) -> bool {
        let word = &*self.word;
        let mut w = word.load(SeqCst);
        while waiters(w) == 0 {
            match word.compare_exchange_weak(w, w + n as u64, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
        false
    }

    /// Removes up to `n` free permits (a shrink), from the shared pool, then the stripes, then
    /// the queue's transit; returns how many it removed.
    ///
    /// A release puts its permit in its stripe (a `SeqCst` read-modify-write) and then reads the
    /// debt, while a shrink records its debt and then calls this, which reads the stripes after
    /// (`SeqCst`): either the shrink sees the permit here, or the release sees the debt.
    pub(crate) fn retire_free(&self, n: usize) -> usize {
        handshake();
        let word = &*self.word;
        let mut w = word.fetch_add(0, SeqCst);
        let mut taken = loop {
            let take = free(w).min(n as u64);
            if take == 0 {
                break 0;
            }
            match word.compare_exchange_weak(w, w - take, SeqCst, SeqCst) {
                Ok(_) => break take,
                Err(now) => w = now,
            }
        };
        for cell in self.stripes.iter().map(|c| &***c) {
            let mut c = cell.load(SeqCst);
            while taken < n as u64 && c != 0 {
                let take = c.min(n as u64 - taken);
                match cell.compare_exchange_weak(c, c - take, SeqCst, SeqCst) {
                    Ok(_) => taken += take,
                    Err(now) => c = now,
                }
            }
        }
        let mut taken = taken as usize;
        for queue in &self.queues {
            if taken == n {
                break;
            }
            taken += queue.forget_permits(n - taken);
        }
        taken
    }

    /// Returns one permit to stripe `cell`, or retires it if a shrink is owed permits.
    ///
    /// The permit goes back to the stripe (a read-modify-write of a line that the calls of
    /// other threads do not write); the shared word is only read, to see whether calls are
    /// queued: then the stripe's permits are theirs and go through the queue.
    #[inline]
    fn release(&self, cell: &AtomicU64) {
        if self.debt.load(SeqCst) != 0 && self.pay_debt() {
            return;
        }
        cell.fetch_add(1, SeqCst);
        handshake();
        if waiters(self.word.load(SeqCst)) != 0 {
            self.flush(cell);
        }
        // A shrink that recorded its debt after the check above may have missed this permit
        // among the free ones: settle it now rather than at the next release.
        if self.debt.load(SeqCst) != 0 {
            self.settle();
        }
    }

    /// Calls are queued: stripe `cell`'s free permits go to them.
    #[cold]
    #[inline(never)]
    fn flush(&self, cell: &AtomicU64) {
        let n = cell.swap(0, SeqCst);
        self.give(n as usize);
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
