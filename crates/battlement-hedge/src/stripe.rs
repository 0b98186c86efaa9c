//! Striped counters: each thread adds to its own cache line; reads sum the stripes.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The stripe a thread writes: threads are numbered round-robin on first use, so on a
/// multi-thread runtime each worker writes its own cache lines.
#[inline]
pub(crate) fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    STRIPE.with(|s| *s)
}

/// How many stripes to use: the machine's parallelism, rounded up to a power of two.
pub(crate) fn stripe_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 64)
        .next_power_of_two()
}

/// A counter that many threads add to without sharing a cache line.
#[derive(Debug)]
pub(crate) struct StripedCounter {
    stripes: Box<[CachePadded<AtomicU64>]>,
    mask: usize,
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        let n = stripe_count();
        StripedCounter {
            stripes: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            mask: n - 1,
        }
    }

    #[inline]
    pub(crate) fn incr(&self) {
        self.stripes[thread_stripe() & self.mask].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}
