//! The sliding window of recent outcomes, striped so concurrent calls write different cache lines.
//!
//! Each stripe (one per core) holds its own ring of slots, and a call records into the ring of
//! the thread that finishes it; a decision (trip or not) sums the rings. The calling thread owns
//! its stripe ([`Stripes::owned`]): no other live thread writes its cursor, so on the success
//! path of a count window of up to [`EXACT_COUNT_SLOTS`] calls a call makes a plain load and
//! store of the cursor and two plain stores into its slot, and no locked instruction. A thread
//! that owns no stripe (more threads than stripes) records into one shared ring, whose cursor it
//! moves with a `fetch_add`.
//!
//! - Count-based windows of up to [`EXACT_COUNT_SLOTS`] calls keep one slot per call: each
//!   stripe's ring holds exactly its last `size` outcomes. Larger windows group calls into
//!   at most `EXACT_COUNT_SLOTS` buckets of a power-of-two number of calls each, so the window
//!   covers `size` calls give or take one bucket. Rings have power-of-two capacity and a decision
//!   sums only the slots inside the window, so recording a call needs no division.
//! - Time-based windows keep `buckets` slots, each covering `length / buckets` of time and tagged
//!   with its epoch, so a stale bucket is recognised and reused: memory is constant and old
//!   buckets age out.
//!
//! With several rings, a count window is the union of each ring's last `size` calls, so it
//! holds up to `size` × (stripes + 1) calls (documented on `SlidingWindow::Count`): an exact
//! window of the last `size` calls across threads needs one cursor that every call writes. The
//! window is cleared when the breaker closes, so a ring that went quiet cannot carry outcomes
//! from an earlier closed period.

use battlement_core::stripe::{CachePadded, Stripes};
use battlement_core::sync::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use battlement_core::FailureKind;

/// Count windows up to this size keep one slot per call.
pub(crate) const EXACT_COUNT_SLOTS: u64 = 128;

const FAIL_SHIFT: u32 = 32;
const SLOW_MASK: u64 = (1 << FAIL_SHIFT) - 1;
const NO_EPOCH: u64 = u64::MAX;

#[derive(Debug)]
struct Slot {
    /// Calls recorded in this slot.
    calls: AtomicU64,
    /// `failures << 32 | slow`.
    bad: AtomicU64,
    /// Time windows: the epoch this slot holds.
    epoch: AtomicU64,
    /// Sum of recorded latencies (raw clock ticks), when timing is on.
    lat_sum: AtomicU64,
    /// Largest recorded latency (raw clock ticks), when timing is on.
    lat_max: AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            calls: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            epoch: AtomicU64::new(NO_EPOCH),
            lat_sum: AtomicU64::new(0),
            lat_max: AtomicU64::new(0),
        }
    }

    /// Adds a latency to a slot other calls may be recording into. The maximum is read first:
    /// once a slot has seen its slowest call, later calls only read it (no compare-and-swap).
    #[inline]
    fn add_latency(&self, lat: u64) {
        self.lat_sum.fetch_add(lat, Relaxed);
        if lat > self.lat_max.load(Relaxed) {
            self.lat_max.fetch_max(lat, Relaxed);
        }
    }

    fn clear(&self) {
        self.calls.store(0, Relaxed);
        self.bad.store(0, Relaxed);
        self.lat_sum.store(0, Relaxed);
        self.lat_max.store(0, Relaxed);
        self.epoch.store(NO_EPOCH, Relaxed);
    }
}

/// A stripe's ring cursor, and the counts of calls it stands for: outcomes recorded and
/// failures by kind, ever.
///
/// Every recorded outcome takes the next position; only recording moves the cursor
/// ([`Window::clear`] empties the slots and leaves it where it is).
///
/// The breaker's metrics report calls and successes (calls less failures) from these, as
/// counters that must never go down, while calls record. So a failure is counted before its
/// position is taken, the take is released, and [`read`](Self::read) acquires the cursor before
/// it reads the rest: a read never counts more calls, or more successes, than were made (it may
/// count fewer: a failure under way). [`Seen`] makes the reads monotonic.
#[derive(Debug)]
struct Tally {
    /// Positions taken, ever: one per recorded outcome.
    next: AtomicU64,
    /// Failures recorded, by kind.
    failures: [AtomicU64; 6],
}

impl Tally {
    fn new() -> Self {
        Tally {
            next: AtomicU64::new(0),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts an outcome (a failure of `failure`'s kind, or not) and takes its position, on a
    /// tally any thread may write.
    #[inline]
    fn take(&self, failure: Option<FailureKind>) -> u64 {
        if let Some(kind) = failure {
            self.failures[kind.index()].fetch_add(1, Relaxed);
        }
        // Release: a reader that sees this position sees its failure. (A locked add orders
        // as much on x86 whatever the ordering; elsewhere this is one barrier.)
        self.next.fetch_add(1, Release)
    }

    /// [`take`](Self::take) on a tally that only the calling thread writes (its stripe's, see
    /// [`Stripes::owned`]): plain loads and stores, no locked instruction. The release store
    /// orders the failure's count before the position, as `take` does.
    #[inline(always)]
    fn take_owned(&self, failure: Option<FailureKind>) -> u64 {
        if let Some(kind) = failure {
            let count = &self.failures[kind.index()];
            count.store(count.load(Relaxed) + 1, Relaxed);
        }
        let next = self.next.load(Relaxed);
        self.next.store(next + 1, Release);
        next
    }

    /// The next position to be taken.
    #[inline]
    fn peek(&self) -> u64 {
        self.next.load(Relaxed)
    }

    /// Outcomes recorded and failures by kind, ever: never more than were made, and so never
    /// more successes (outcomes less failures) either.
    fn read(&self) -> (u64, [u64; 6]) {
        let made = self.next.load(Acquire);
        (
            made,
            std::array::from_fn(|i| self.failures[i].load(Relaxed)),
        )
    }
}

/// The most a derived count has been read as: a read that comes out lower than an earlier one
/// (a failure or a skip under way, see [`Tally`]) reports the earlier one, so the count never
/// goes down; a read is never above what was made, so neither is the count.
#[derive(Debug)]
struct Seen(AtomicU64);

impl Seen {
    fn new() -> Self {
        Seen(AtomicU64::new(0))
    }

    fn at_least(&self, read: u64) -> u64 {
        self.0.fetch_max(read, Relaxed).max(read)
    }
}

#[derive(Debug)]
struct Stripe {
    /// The ring's cursor and the counts of outcomes (see [`Tally`]).
    recorded: Tally,
    slots: Box<[Slot]>,
    slow: AtomicU64,
    ignored: AtomicU64,
    cancelled: AtomicU64,
    rejected: AtomicU64,
    stale: AtomicU64,
}

impl Stripe {
    fn new(slots: usize) -> Self {
        Stripe {
            recorded: Tally::new(),
            slots: (0..slots).map(|_| Slot::new()).collect(),
            slow: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }
}

/// The window's shape, packed in one word so that a reload can change it while calls record (a
/// second word holds the rest, which the call path does not read): a count window's `shift`
/// (bits 0..6) and `mask` (from bit 8; its `slots` in the second word); a time window's bucket
/// count (from bit 8, its bucket span in the second word) and [`TIME`].
const TIME: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `1 << shift` calls share a slot; the window is the last `slots` slots of a ring of
    /// `mask + 1` (a power of two).
    Count { shift: u32, slots: u64, mask: u64 },
    /// `buckets` slots, each covering `slot_nanos`.
    Time { buckets: u64, slot_nanos: u64 },
}

impl Kind {
    /// The shape of a count window of `size` calls within `capacity` slots per stripe.
    fn count(size: u64, capacity: u64) -> Kind {
        let exact = EXACT_COUNT_SLOTS.min(capacity);
        let per_slot = size.div_ceil(exact).next_power_of_two();
        let slots = size.div_ceil(per_slot);
        let ring = slots.next_power_of_two();
        Kind::Count {
            shift: per_slot.trailing_zeros(),
            slots,
            mask: ring - 1,
        }
    }

    /// The shape of a time window of `length_nanos` in `buckets` buckets, in at most `capacity`
    /// of them (the same length in fewer, longer buckets).
    fn time(length_nanos: u64, buckets: u64, capacity: u64) -> Kind {
        let buckets = buckets.min(capacity).max(1);
        Kind::Time {
            buckets,
            slot_nanos: (length_nanos / buckets).max(1),
        }
    }

    /// How many slots per stripe the shape uses.
    fn slots_used(self) -> u64 {
        match self {
            Kind::Count { mask, .. } => mask + 1,
            Kind::Time { buckets, .. } => buckets,
        }
    }

    fn pack(self) -> (u64, u64) {
        match self {
            Kind::Count { shift, slots, mask } => (u64::from(shift) | mask << 8, slots),
            Kind::Time {
                buckets,
                slot_nanos,
            } => (TIME | buckets << 8, slot_nanos),
        }
    }
}

/// What one finished call adds to the window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) failure: Option<FailureKind>,
    pub(crate) slow: bool,
    /// Latency in raw clock ticks when timing is on.
    pub(crate) latency: Option<u64>,
}

/// Sums over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
    pub(crate) lat_sum: u64,
    pub(crate) lat_max: u64,
}

/// Cumulative counters since the breaker was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cumulative {
    pub(crate) recorded: u64,
    /// Recorded outcomes that were not failures.
    pub(crate) successes: u64,
    pub(crate) failures: [u64; 6],
    pub(crate) slow: u64,
    pub(crate) ignored: u64,
    pub(crate) cancelled: u64,
    pub(crate) rejected: u64,
    pub(crate) stale: u64,
}

/// The window: per-stripe rings of a fixed capacity, and their shape.
///
/// A reload may change the shape (type or size) while calls record: the rings keep their
/// capacity (at least [`EXACT_COUNT_SLOTS`], so every count window fits exactly), the new shape
/// is published in one word, and the rings are emptied. A call racing the change may record
/// into the emptied window under either shape: every slot index it can compute is within the
/// capacity, and at worst one of its outcomes lands in the new window.
#[derive(Debug)]
pub(crate) struct Window {
    /// A ring per stripe, written by the thread that owns the stripe.
    stripes: Stripes<CachePadded<Stripe>>,
    /// The ring of threads that own no stripe.
    shared: CachePadded<Stripe>,
    /// The shape, packed (see [`TIME`]).
    shape: AtomicU64,
    /// Count windows: the slots summed; time windows: nanoseconds per bucket.
    extra: AtomicU64,
    /// Slots per stripe.
    capacity: u64,
    /// The most outcomes, and successes, [`cumulative`](Self::cumulative) has read.
    seen: [Seen; 2],
}

impl Window {
    pub(crate) fn count(size: u64) -> Self {
        Self::new(|capacity| Kind::count(size, capacity))
    }

    pub(crate) fn time(length_nanos: u64, buckets: u64) -> Self {
        Self::new(|capacity| Kind::time(length_nanos, buckets, capacity))
    }

    fn new(kind: impl Fn(u64) -> Kind) -> Self {
        // The rings are never smaller than the largest count ring, so a reload to any count
        // window is as exact as building it; a time window reloaded onto rings built smaller
        // than its bucket count keeps its length in fewer buckets.
        let capacity = kind(u64::MAX).slots_used().max(EXACT_COUNT_SLOTS);
        let (packed, extra) = kind(capacity).pack();
        Window {
            stripes: Stripes::new(|_| Stripe::new(capacity as usize)),
            shared: CachePadded::new(Stripe::new(capacity as usize)),
            shape: AtomicU64::new(packed),
            extra: AtomicU64::new(extra),
            capacity,
            seen: [Seen::new(), Seen::new()],
        }
    }

    /// The current shape.
    fn kind(&self) -> Kind {
        let packed = self.shape.load(Relaxed);
        let extra = self.extra.load(Relaxed);
        if packed & TIME == 0 {
            Kind::Count {
                shift: (packed & 63) as u32,
                slots: extra,
                mask: packed >> 8,
            }
        } else {
            Kind::Time {
                buckets: (packed & !TIME) >> 8,
                slot_nanos: extra,
            }
        }
    }

    /// Changes the window to a count window of `size` calls, emptied.
    pub(crate) fn reshape_count(&self, size: u64) {
        self.reshape(Kind::count(size, self.capacity));
    }

    /// Changes the window to a time window, emptied.
    pub(crate) fn reshape_time(&self, length_nanos: u64, buckets: u64) {
        self.reshape(Kind::time(length_nanos, buckets, self.capacity));
    }

    #[cold]
    fn reshape(&self, kind: Kind) {
        let (packed, extra) = kind.pack();
        self.extra.store(extra, Relaxed);
        self.shape.store(packed, Relaxed);
        self.clear();
    }

    /// How many stripes the window has (a power of two).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn stripes(&self) -> usize {
        self.stripes.len()
    }

    #[inline]
    fn stripe_at(&self, index: usize) -> &Stripe {
        self.stripes.get(index)
    }

    /// Every ring: the stripes' and the shared one.
    fn rings(&self) -> impl Iterator<Item = &Stripe> {
        self.stripes
            .iter()
            .map(|stripe| &**stripe)
            .chain(std::iter::once(&*self.shared))
    }

    /// Records a finished call into the calling thread's ring (its stripe's if it owns one,
    /// else the shared one), and returns the time it was recorded at: `now()`, which only time
    /// windows call (0 for count windows). Always inlined: see `Shared::record_success`.
    #[inline(always)]
    pub(crate) fn record(&self, rec: Record, now: impl FnOnce() -> u64) -> u64 {
        let (stripe, pos) = match self.stripes.owned() {
            Some(stripe) => (&**stripe, stripe.recorded.take_owned(rec.failure)),
            None => (&*self.shared, self.shared.recorded.take(rec.failure)),
        };
        let bad = if rec.failure.is_some() {
            1u64 << FAIL_SHIFT
        } else {
            0
        } | u64::from(rec.slow);
        if rec.slow {
            stripe.slow.fetch_add(1, Relaxed);
        }
        let packed = self.shape.load(Relaxed);
        if packed & TIME == 0 {
            // (`& 63`: what a shift by a register does anyway, so it costs nothing.)
            let (shift, mask) = (packed & 63, packed >> 8);
            let slot = &stripe.slots[((pos >> shift) & mask) as usize];
            if pos & ((1 << shift) - 1) == 0 {
                // First call of this slot's round: overwrite what the slot held a window ago.
                slot.calls.store(1, Relaxed);
                slot.bad.store(bad, Relaxed);
                if let Some(lat) = rec.latency {
                    slot.lat_sum.store(lat, Relaxed);
                    slot.lat_max.store(lat, Relaxed);
                }
            } else {
                slot.calls.fetch_add(1, Relaxed);
                if bad != 0 {
                    slot.bad.fetch_add(bad, Relaxed);
                }
                if let Some(lat) = rec.latency {
                    slot.add_latency(lat);
                }
            }
            0
        } else {
            let now = now();
            let buckets = (packed & !TIME) >> 8;
            let epoch = now / self.extra.load(Relaxed);
            let slot = &stripe.slots[(epoch % buckets) as usize];
            let held = slot.epoch.load(Relaxed);
            if held != epoch
                && slot
                    .epoch
                    .compare_exchange(held, epoch, Relaxed, Relaxed)
                    .is_ok()
            {
                slot.calls.store(0, Relaxed);
                slot.bad.store(0, Relaxed);
                slot.lat_sum.store(0, Relaxed);
                slot.lat_max.store(0, Relaxed);
            }
            slot.calls.fetch_add(1, Relaxed);
            if bad != 0 {
                slot.bad.fetch_add(bad, Relaxed);
            }
            if let Some(lat) = rec.latency {
                slot.add_latency(lat);
            }
            now
        }
    }

    /// Sums the window as of `now` (only read for time windows).
    pub(crate) fn totals(&self, now: u64) -> Totals {
        let mut t = Totals::default();
        let add = |t: &mut Totals, slot: &Slot| {
            let bad = slot.bad.load(Relaxed);
            t.calls += slot.calls.load(Relaxed);
            t.failures += bad >> FAIL_SHIFT;
            t.slow += bad & SLOW_MASK;
            t.lat_sum += slot.lat_sum.load(Relaxed);
            t.lat_max = t.lat_max.max(slot.lat_max.load(Relaxed));
        };
        match self.kind() {
            Kind::Count { shift, slots, mask } => {
                for stripe in self.rings() {
                    let recorded = stripe.recorded.peek();
                    if recorded == 0 {
                        continue;
                    }
                    // The slot of the latest call, and the `slots - 1` before it.
                    let last = (recorded - 1) >> shift;
                    for k in 0..slots.min(last + 1) {
                        add(&mut t, &stripe.slots[((last - k) & mask) as usize]);
                    }
                }
            }
            Kind::Time {
                buckets,
                slot_nanos,
            } => {
                let current = now / slot_nanos;
                let oldest = current.saturating_sub(buckets - 1);
                for stripe in self.rings() {
                    for slot in stripe.slots[..buckets as usize].iter() {
                        let e = slot.epoch.load(Relaxed);
                        if e != NO_EPOCH && e >= oldest {
                            add(&mut t, slot);
                        }
                    }
                }
            }
        }
        t
    }

    /// Empties the window (cumulative counters stay). The cursors stay where they are (their
    /// owners alone move them): in a bucketed count window the bucket under way when it cleared
    /// counts only the calls after the clear, so the window covers its size give or take one
    /// bucket, as it does anyway.
    ///
    /// A ring no call has recorded into (its cursor never moved) is left alone, and only the
    /// slots the shape uses are emptied (a reshape empties the window under its new shape, and
    /// no shape reads slots beyond its own).
    pub(crate) fn clear(&self) {
        let used = self.kind().slots_used() as usize;
        for stripe in self.rings() {
            if stripe.recorded.peek() == 0 {
                continue;
            }
            for slot in stripe.slots.iter().take(used) {
                slot.clear();
            }
        }
    }

    pub(crate) fn note_ignored(&self, stripe: usize) {
        self.stripe_at(stripe).ignored.fetch_add(1, Relaxed);
    }

    pub(crate) fn note_cancelled(&self, stripe: usize) {
        self.stripe_at(stripe).cancelled.fetch_add(1, Relaxed);
    }

    pub(crate) fn note_rejected(&self) {
        self.stripes.local().rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn note_stale(&self, stripe: usize) {
        self.stripe_at(stripe).stale.fetch_add(1, Relaxed);
    }

    pub(crate) fn cumulative(&self) -> Cumulative {
        let mut c = Cumulative::default();
        for s in self.rings() {
            let (made, failures) = s.recorded.read();
            c.recorded += made;
            for (acc, f) in c.failures.iter_mut().zip(failures) {
                *acc += f;
            }
            c.slow += s.slow.load(Relaxed);
            c.ignored += s.ignored.load(Relaxed);
            c.cancelled += s.cancelled.load(Relaxed);
            c.rejected += s.rejected.load(Relaxed);
            c.stale += s.stale.load(Relaxed);
        }
        let failures: u64 = c.failures.iter().sum();
        c.successes = self.seen[1].at_least(c.recorded.saturating_sub(failures));
        c.recorded = self.seen[0].at_least(c.recorded);
        c
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok() -> Record {
        Record {
            failure: None,
            slow: false,
            latency: None,
        }
    }
    fn fail() -> Record {
        Record {
            failure: Some(FailureKind::ServerError),
            slow: false,
            latency: None,
        }
    }

    #[test]
    fn count_window_slides_exactly() {
        let w = Window::count(4);
        for r in [ok(), ok(), ok(), ok(), fail(), fail()] {
            w.record(r, || 0);
        }
        // Last four: ok ok fail fail.
        let t = w.totals(0);
        assert_eq!((t.calls, t.failures), (4, 2));
        w.record(ok(), || 0);
        w.record(ok(), || 0);
        w.record(ok(), || 0);
        let t = w.totals(0);
        assert_eq!((t.calls, t.failures), (4, 1));
    }

    #[test]
    fn clear_empties_window_but_keeps_cumulative() {
        let w = Window::count(300);
        for _ in 0..5 {
            w.record(fail(), || 0);
        }
        w.clear();
        assert_eq!(w.totals(0), Totals::default());
        assert_eq!(w.cumulative().failures[FailureKind::ServerError.index()], 5);
        w.record(fail(), || 0);
        assert_eq!(w.totals(0).calls, 1);
    }

    #[test]
    fn clear_empties_a_bucketed_window_mid_bucket() {
        // 300 calls in buckets of 4: cleared after 5 calls, mid-bucket; the cursor stays, and
        // the bucket under way counts only the calls after the clear.
        let w = Window::count(300);
        for r in [ok(), ok(), fail(), ok(), ok()] {
            w.record(r, || 0);
        }
        w.clear();
        let c = w.cumulative();
        assert_eq!((c.recorded, c.successes), (5, 4));
        assert_eq!(c.failures[FailureKind::ServerError.index()], 1);
        assert_eq!(w.totals(0), Totals::default());
        w.record(fail(), || 0);
        assert_eq!(w.cumulative().recorded, 6);
        let t = w.totals(0);
        assert_eq!((t.calls, t.failures), (1, 1));
        // The next bucket starts whole.
        for _ in 0..4 {
            w.record(ok(), || 0);
        }
        assert_eq!(w.totals(0).calls, 5);
    }

    /// A thread that owns no stripe records into the shared ring: both rings count toward the
    /// window and the cumulative counts, and a clear empties both.
    #[test]
    fn threads_without_a_stripe_record_into_the_shared_ring() {
        use battlement_core::stripe::{stripe_count, MAX_STRIPES};
        let w = std::sync::Arc::new(Window::count(10));
        w.record(fail(), || 0);
        // More threads at once than there are indices: the last ones own no stripe.
        let n = MAX_STRIPES + stripe_count();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (w, barrier) = (w.clone(), barrier.clone());
                std::thread::spawn(move || {
                    w.record(ok(), || 0);
                    barrier.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(
            w.shared.recorded.peek() > 0,
            "some thread owned no stripe and recorded into the shared ring"
        );
        let c = w.cumulative();
        assert_eq!((c.recorded, c.successes), (n as u64 + 1, n as u64));
        let t = w.totals(0);
        assert!(t.calls >= 10 && t.failures == 1, "{t:?}");
        w.clear();
        assert_eq!(w.totals(0), Totals::default());
    }

    #[test]
    fn time_window_ages_out() {
        // 10 s window in 10 buckets of 1 s.
        let sec = 1_000_000_000u64;
        let w = Window::time(10 * sec, 10);
        w.record(fail(), || 0);
        w.record(ok(), || sec / 2);
        w.record(ok(), || 3 * sec);
        assert_eq!(w.totals(3 * sec).calls, 3);
        assert_eq!(w.totals(9 * sec + sec / 2).calls, 3);
        // At 10 s the bucket [0, 1) s has left the window.
        let t = w.totals(10 * sec);
        assert_eq!((t.calls, t.failures), (1, 0));
        assert_eq!(w.totals(13 * sec).calls, 0);
        // A reused bucket starts from zero.
        w.record(fail(), || 20 * sec);
        let t = w.totals(20 * sec);
        assert_eq!((t.calls, t.failures), (1, 1));
    }

    proptest! {
        // Against a model: a plain VecDeque of the last `size` outcomes (exact for size <= 128).
        #[test]
        fn count_window_matches_model(size in 1u64..=128, outcomes in proptest::collection::vec(any::<bool>(), 0..400)) {
            let w = Window::count(size);
            let mut model = std::collections::VecDeque::new();
            for failed in outcomes {
                w.record(if failed { fail() } else { ok() }, || 0);
                model.push_back(failed);
                if model.len() as u64 > size { model.pop_front(); }
                let t = w.totals(0);
                prop_assert_eq!(t.calls, model.len() as u64);
                prop_assert_eq!(t.failures, model.iter().filter(|f| **f).count() as u64);
            }
        }

        // Bucketed count windows cover between size - bucket and size calls.
        #[test]
        fn bucketed_count_window_bounds(size in 129u64..5000, n in 0u64..12000) {
            let w = Window::count(size);
            for _ in 0..n { w.record(ok(), || 0); }
            let per_slot = size.div_ceil(EXACT_COUNT_SLOTS).next_power_of_two();
            let calls = w.totals(0).calls;
            prop_assert!(calls <= n);
            prop_assert!(calls <= size + per_slot);
            prop_assert!(calls + per_slot >= n.min(size), "calls {} n {} size {}", calls, n, size);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::{Seen, Tally};
    use battlement_core::FailureKind;
    use loom::thread;
    use std::sync::Arc;

    /// What the metrics read while a stripe's owner records with plain loads and stores: never
    /// more calls, or successes, than were made (and, through `Seen`, never fewer than read
    /// before).
    #[test]
    fn loom_tally_reads_never_exceed_what_was_made() {
        loom::model(|| {
            let tally = Arc::new(Tally::new());
            // Four successes and a failure before the owner's thread starts.
            for failure in [None, None, Some(FailureKind::ServerError), None, None] {
                tally.take_owned(failure);
            }
            let owner = {
                let tally = tally.clone();
                thread::spawn(move || {
                    tally.take_owned(Some(FailureKind::Timeout));
                    tally.take_owned(None);
                })
            };
            let seen = [Seen::new(), Seen::new()];
            let read = || {
                let (made, failures) = tally.read();
                let failed: u64 = failures.iter().sum();
                (
                    seen[0].at_least(made),
                    seen[1].at_least(made.saturating_sub(failed)),
                )
            };
            let (calls, successes) = read();
            assert!(calls <= 7, "read {calls} calls, 7 at most were made");
            assert!(
                successes <= 5,
                "read {successes} successes, 5 at most were made"
            );
            let again = read();
            assert!(
                again.0 >= calls && again.1 >= successes,
                "a count went down"
            );
            owner.join().unwrap();
            assert_eq!(read(), (7, 5));
            assert_eq!(tally.peek(), 7);
        });
    }

    /// The shared ring's tally, taken by two threads at once: every position once.
    #[test]
    fn loom_shared_tally_gives_each_call_its_own_position() {
        loom::model(|| {
            let tally = Arc::new(Tally::new());
            let other = {
                let tally = tally.clone();
                thread::spawn(move || tally.take(None))
            };
            let mine = tally.take(Some(FailureKind::Timeout));
            let theirs = other.join().unwrap();
            assert_ne!(mine, theirs);
            assert_eq!(tally.read().0, 2);
        });
    }
}
