//! The probe's sliding time window: striped, lock-free, allocation-free on the record path.
//!
//! Time is cut into buckets of `window / buckets`. Each stripe (one per core, picked by the
//! thread index of `battlement_core::stripe`, cache-line padded) has a ring of `buckets` slots;
//! a slot holds three words (successes, failures, latency sum in µs), each tagged with the bucket
//! epoch it counts:
//! `[epoch: 24 bits | value: 40 bits]`. Recording is a CAS on the word: same epoch → add; older
//! epoch → the slot is recycled for the new bucket (value restarts). So recycling a slot never
//! loses or misattributes a concurrent increment. Reading sums the words whose epoch lies within
//! the last `buckets` epochs, over every stripe.
//!
//! Limits: values saturate at 2^40 - 1 per stripe, slot and word; epochs are compared modulo
//! 2^24 buckets (a slot left untouched for exactly a multiple of 2^24 buckets would read as
//! current, until overwritten).

use battlement_core::stripe::{CachePadded, Stripes};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const VALUE_BITS: u32 = 40;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
const EPOCH_MASK: u64 = (1 << (64 - VALUE_BITS)) - 1;

#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    bucket_nanos: u64,
    buckets: u64,
}

impl Clock {
    #[inline]
    fn epoch(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.start).as_nanos();
        (nanos.min(u128::from(u64::MAX)) as u64) / self.bucket_nanos
    }
}

#[derive(Debug, Default)]
struct Slot {
    successes: AtomicU64,
    failures: AtomicU64,
    latency_us: AtomicU64,
}

/// One stripe's ring of slots; a response future holds an `Arc` to the stripe it records into.
#[derive(Debug)]
pub(crate) struct Stripe {
    clock: Clock,
    slots: Box<[Slot]>,
}

impl Stripe {
    /// Records one counted call that ended at `now`.
    #[inline]
    pub(crate) fn record(&self, success: bool, latency: Duration, now: Instant) {
        let epoch = self.clock.epoch(now);
        let slot = &self.slots[(epoch % self.clock.buckets) as usize];
        let tag = epoch & EPOCH_MASK;
        let buckets = self.clock.buckets;
        add(
            if success {
                &slot.successes
            } else {
                &slot.failures
            },
            tag,
            1,
            buckets,
        );
        let us = latency.as_micros().min(u128::from(VALUE_MASK)) as u64;
        add(&slot.latency_us, tag, us, buckets);
    }
}

#[inline]
fn add(word: &AtomicU64, tag: u64, n: u64, buckets: u64) {
    let mut current = word.load(Relaxed);
    loop {
        let (t, v) = (current >> VALUE_BITS, current & VALUE_MASK);
        let value = if t == tag {
            v.saturating_add(n).min(VALUE_MASK)
        } else if t.wrapping_sub(tag) & EPOCH_MASK < 2 * buckets {
            // The slot already counts a later bucket (by less than two windows): this call was
            // held up for a whole window between reading the clock and here; it is out of the
            // window, drop it. (A slot further "ahead" can only be a very old one whose tag
            // wrapped around: it is recycled.)
            return;
        } else {
            n.min(VALUE_MASK)
        };
        match word.compare_exchange_weak(current, (tag << VALUE_BITS) | value, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

#[inline]
fn read(word: &AtomicU64, tag: u64, buckets: u64) -> u64 {
    let w = word.load(Relaxed);
    let age = tag.wrapping_sub(w >> VALUE_BITS) & EPOCH_MASK;
    if age < buckets {
        w & VALUE_MASK
    } else {
        0
    }
}

/// Sums over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Totals {
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) latency_us: u64,
}

/// The window: one ring per stripe.
#[derive(Debug)]
pub(crate) struct Window {
    clock: Clock,
    stripes: Stripes<Arc<CachePadded<Stripe>>>,
}

impl Window {
    pub(crate) fn new(window: Duration, buckets: usize) -> Self {
        Window::with_stripes(window, buckets, battlement_core::stripe::stripe_count())
    }

    pub(crate) fn with_stripes(window: Duration, buckets: usize, stripes: usize) -> Self {
        let window_nanos = window.as_nanos().min(u128::from(u64::MAX)) as u64;
        let clock = Clock {
            start: Instant::now(),
            bucket_nanos: (window_nanos / buckets as u64).max(1),
            buckets: buckets as u64,
        };
        let stripes = Stripes::shared_with_count(stripes, |_| Stripe {
            clock,
            slots: (0..buckets).map(|_| Slot::default()).collect(),
        });
        Window { clock, stripes }
    }

    /// The calling thread's stripe.
    #[inline]
    pub(crate) fn stripe(&self) -> &Arc<CachePadded<Stripe>> {
        self.stripes.local()
    }

    /// Sums every stripe's slots within the window ending at `now`.
    pub(crate) fn totals(&self, now: Instant) -> Totals {
        let tag = self.clock.epoch(now) & EPOCH_MASK;
        let buckets = self.clock.buckets;
        let mut t = Totals::default();
        for stripe in self.stripes.iter() {
            for slot in stripe.slots.iter() {
                t.successes += read(&slot.successes, tag, buckets);
                t.failures += read(&slot.failures, tag, buckets);
                t.latency_us += read(&slot.latency_us, tag, buckets);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn counts_within_the_window_and_forgets_older_buckets() {
        // 10 s window, 10 buckets of 1 s.
        let w = Window::with_stripes(Duration::from_secs(10), 10, 2);
        let t0 = Instant::now();
        w.stripes.get(0).record(true, 10 * MS, t0);
        w.stripes
            .get(1)
            .record(false, 30 * MS, t0 + Duration::from_millis(500));
        assert_eq!(
            w.totals(t0 + Duration::from_millis(600)),
            Totals {
                successes: 1,
                failures: 1,
                latency_us: 40_000
            }
        );
        // Still inside at 9.9 s (bucket 9; bucket 0 is 9 buckets old).
        w.stripes
            .get(0)
            .record(true, Duration::ZERO, t0 + Duration::from_millis(9_900));
        assert_eq!(w.totals(t0 + Duration::from_millis(9_900)).successes, 2);
        // At 10 s, bucket 0 is out of the window.
        let t = w.totals(t0 + Duration::from_secs(10));
        assert_eq!((t.successes, t.failures), (1, 0));
        // At 20 s everything is gone.
        assert_eq!(w.totals(t0 + Duration::from_secs(20)), Totals::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_recycled_slot_restarts_and_a_late_call_is_dropped() {
        let w = Window::with_stripes(Duration::from_secs(4), 4, 1);
        let t0 = Instant::now();
        for _ in 0..5 {
            w.stripes.get(0).record(false, MS, t0);
        }
        // Bucket 4 reuses slot 0: the old count restarts instead of adding up.
        w.stripes
            .get(0)
            .record(true, MS, t0 + Duration::from_secs(4));
        let t = w.totals(t0 + Duration::from_secs(4));
        assert_eq!((t.successes, t.failures), (1, 0));
        // A call whose clock reading is a whole window old does not overwrite the newer bucket.
        w.stripes.get(0).record(true, MS, t0);
        assert_eq!(w.totals(t0 + Duration::from_secs(4)).successes, 1);
    }

    #[test]
    fn words_saturate_and_epochs_wrap() {
        let word = AtomicU64::new(0);
        add(&word, 3, VALUE_MASK - 1, 4);
        add(&word, 3, 5, 4);
        assert_eq!(read(&word, 3, 1), VALUE_MASK);
        // Tags wrap modulo 2^24: with 2 buckets, epochs EPOCH_MASK - 1, EPOCH_MASK, 0, 1, ...
        let word = AtomicU64::new(((EPOCH_MASK - 3) << VALUE_BITS) | 9);
        add(&word, EPOCH_MASK - 1, 3, 2);
        assert_eq!(read(&word, EPOCH_MASK - 1, 2), 3, "older tag recycled");
        assert_eq!(read(&word, EPOCH_MASK, 2), 3);
        assert_eq!(read(&word, 0, 2), 0, "two buckets later it is out");
        add(&word, 0, 1, 2);
        assert_eq!(read(&word, 0, 2), 1);
        assert_eq!(read(&word, 1, 2), 1);
        // A delayed write for an older bucket leaves the newer count alone.
        add(&word, EPOCH_MASK - 1, 100, 2);
        assert_eq!(read(&word, 0, 2), 1);
        // A slot far "ahead" is a wrapped-around old one: recycled.
        let word = AtomicU64::new((1000 << VALUE_BITS) | 9);
        add(&word, 10, 2, 4);
        assert_eq!(read(&word, 10, 4), 2);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let w = Arc::new(Window::with_stripes(Duration::from_secs(3600), 4, 2));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let now = rt.block_on(async { Instant::now() });
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for n in 0..10_000u64 {
                        // Every thread hits both stripes to force contention on each word.
                        w.stripes.get(n as usize + i).record(n % 4 != 0, MS, now);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = w.totals(now);
        assert_eq!(t.successes, 30_000);
        assert_eq!(t.failures, 10_000);
        assert_eq!(t.latency_us, 40_000 * 1000);
    }
}
