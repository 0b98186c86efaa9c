//! The counter every admitted call increments, striped per thread: the call path does no locked
//! read-modify-write and writes no cache line another thread writes.

use crate::sync::{AtomicU64, Ordering::Relaxed};

/// Stripes owned by the first threads that count; later threads share `overflow`.
const STRIPES: usize = 16;

/// One stripe on its own cache lines (two, against adjacent-line prefetching).
#[repr(align(128))]
struct Stripe(AtomicU64);

pub(crate) struct StripedCounter {
    stripes: [Stripe; STRIPES],
    overflow: AtomicU64,
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        StripedCounter {
            stripes: std::array::from_fn(|_| Stripe(AtomicU64::new(0))),
            overflow: AtomicU64::new(0),
        }
    }

    /// Adds one.
    #[inline]
    pub(crate) fn increment(&self) {
        match thread_index().and_then(|i| self.stripes.get(i)) {
            // This thread is the stripe's only writer: a plain load and store cannot lose an
            // increment, and readers only ever see a value it held.
            Some(stripe) => stripe.0.store(stripe.0.load(Relaxed) + 1, Relaxed),
            None => {
                self.overflow.fetch_add(1, Relaxed);
            }
        }
    }

    /// The total so far (increments made concurrently may or may not be included).
    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Relaxed))
            .fold(self.overflow.load(Relaxed), u64::wrapping_add)
    }
}

/// A number unique to this thread for the life of the process (`None` while its thread-locals
/// are being destroyed).
#[cfg(not(loom))]
#[inline]
fn thread_index() -> Option<usize> {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    INDEX.try_with(|i| *i).ok()
}

/// Under loom every thread shares the overflow counter (loom threads are not OS threads).
#[cfg(loom)]
fn thread_index() -> Option<usize> {
    None
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_every_increment_across_threads() {
        let counter = Arc::new(StripedCounter::new());
        // More threads than stripes, so the overflow counter is exercised too.
        let threads: Vec<_> = (0..STRIPES + 8)
            .map(|_| {
                let c = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.increment();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.sum(), (STRIPES as u64 + 8) * 1000);
    }
}
