//! Recent latencies and their percentile, for the percentile hedge delay.
//!
//! Each stripe (one per core, chosen by the recording thread) keeps a fixed ring of its last
//! `window` latencies: recording is a `fetch_add` on the stripe's cursor and a store into its
//! slot, on lines no other core writes. Every `window / 16` records on a stripe (and on every
//! record until the first value exists) the recording thread recomputes the percentile over all
//! stripes with a quickselect into a preallocated buffer, under a `try_lock` (a thread that finds
//! it taken skips the recomputation), and publishes it in an atomic that every call reads.
//!
//! A reload ([`LatencyWindow::reconfigure`]) changes the percentile, the minimum of samples and
//! the window's length in place. The rings keep the memory they were built with: a longer
//! window than that is cut to it.

use battlement_core::stripe::{CachePadded, Stripes};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const NONE: u64 = u64::MAX;

#[derive(Debug)]
struct Ring {
    cursor: AtomicU64,
    slots: Box<[AtomicU64]>,
}

#[derive(Debug)]
pub(crate) struct LatencyWindow {
    stripes: Stripes<CachePadded<Ring>>,
    /// The slots each ring has.
    capacity: usize,
    /// The slots each ring uses (at most `capacity`).
    window: AtomicUsize,
    /// The percentile's bits (`f64`).
    percentile: AtomicU64,
    min_samples: AtomicUsize,
    recompute_every: AtomicU64,
    current: AtomicU64,
    scratch: Mutex<Vec<u64>>,
}

impl LatencyWindow {
    pub(crate) fn new(percentile: f64, window: usize, min_samples: usize) -> Self {
        let stripes = Stripes::new(|_| Ring {
            cursor: AtomicU64::new(0),
            slots: (0..window).map(|_| AtomicU64::new(0)).collect(),
        });
        let capacity = window * stripes.len();
        LatencyWindow {
            stripes,
            capacity: window,
            window: AtomicUsize::new(window),
            percentile: AtomicU64::new(percentile.to_bits()),
            min_samples: AtomicUsize::new(min_samples),
            recompute_every: AtomicU64::new((window as u64 / 16).max(1)),
            current: AtomicU64::new(NONE),
            scratch: Mutex::new(Vec::with_capacity(capacity)),
        }
    }

    /// The slots each ring was built with: the longest window a reload can set.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the percentile, the window's length (cut to [`capacity`](Self::capacity)) and the
    /// minimum of samples (cut to the window), then recomputes the percentile over the samples
    /// held (or forgets it, when they are now too few).
    pub(crate) fn reconfigure(&self, percentile: f64, window: usize, min_samples: usize) {
        let window = window.clamp(1, self.capacity);
        self.percentile
            .store(percentile.to_bits(), Ordering::Relaxed);
        self.window.store(window, Ordering::Relaxed);
        self.min_samples
            .store(min_samples.clamp(1, window), Ordering::Relaxed);
        self.recompute_every
            .store((window as u64 / 16).max(1), Ordering::Relaxed);
        if self.samples() < min_samples.clamp(1, window) {
            self.current.store(NONE, Ordering::Relaxed);
        } else {
            // Waiting for the lock, so a recomputation racing this one with the old settings
            // cannot publish after it.
            let mut buf = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            self.recompute_with(&mut buf);
        }
    }

    /// Records one latency.
    pub(crate) fn record(&self, latency: Duration) {
        let ring = self.stripes.local();
        let i = ring.cursor.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(NONE - 1);
        let window = self.window.load(Ordering::Relaxed) as u64;
        ring.slots[(i % window) as usize].store(nanos, Ordering::Relaxed);
        if (i + 1) % self.recompute_every.load(Ordering::Relaxed) == 0
            || self.current.load(Ordering::Relaxed) == NONE
        {
            self.recompute();
        }
    }

    /// How many latencies the window holds.
    pub(crate) fn samples(&self) -> usize {
        let window = self.window.load(Ordering::Relaxed);
        self.stripes
            .iter()
            .map(|r| (r.cursor.load(Ordering::Relaxed) as usize).min(window))
            .sum()
    }

    fn recompute(&self) {
        let min_samples = self.min_samples.load(Ordering::Relaxed);
        if self.samples() < min_samples {
            return;
        }
        let Ok(mut buf) = self.scratch.try_lock() else {
            return;
        };
        self.recompute_with(&mut buf);
    }

    fn recompute_with(&self, buf: &mut Vec<u64>) {
        let min_samples = self.min_samples.load(Ordering::Relaxed);
        let window = self.window.load(Ordering::Relaxed);
        buf.clear();
        for ring in self.stripes.iter() {
            let n = (ring.cursor.load(Ordering::Relaxed) as usize).min(window);
            buf.extend(ring.slots[..n].iter().map(|s| s.load(Ordering::Relaxed)));
        }
        if buf.len() < min_samples || buf.is_empty() {
            return;
        }
        // The smallest value with at least `percentile` of the samples at or below it.
        let percentile = f64::from_bits(self.percentile.load(Ordering::Relaxed));
        let rank = ((percentile * buf.len() as f64).ceil() as usize).clamp(1, buf.len());
        let (_, value, _) = buf.select_nth_unstable(rank - 1);
        self.current.store(*value, Ordering::Relaxed);
    }

    /// The percentile of recent latencies, once at least `min_samples` were recorded.
    #[inline]
    pub(crate) fn get(&self) -> Option<Duration> {
        match self.current.load(Ordering::Relaxed) {
            NONE => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_over_the_last_window() {
        let w = LatencyWindow::new(0.95, 100, 20);
        for ms in 1..=19 {
            w.record(Duration::from_millis(ms));
        }
        assert_eq!(w.get(), None, "fewer than min_samples");
        w.record(Duration::from_millis(20));
        // 20 samples 1..=20 ms: the 19th smallest is the p95.
        assert_eq!(w.get(), Some(Duration::from_millis(19)));
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms));
        }
        // The ring now holds exactly 1..=100 ms (recomputed on the 100th record of 100+20).
        assert_eq!(w.samples(), 100);
        assert_eq!(w.get(), Some(Duration::from_millis(95)));
        // Old samples slide out: 100 records of 500 ms.
        for _ in 0..100 {
            w.record(Duration::from_millis(500));
        }
        assert_eq!(w.get(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn reconfigure_changes_the_percentile_and_cuts_the_window_to_its_memory() {
        let w = LatencyWindow::new(0.95, 100, 20);
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms));
        }
        // (Last recomputed on the 96th record.)
        assert_eq!(w.get(), Some(Duration::from_millis(92)));
        w.reconfigure(0.95, 100, 20);
        assert_eq!(
            w.get(),
            Some(Duration::from_millis(95)),
            "recomputed over all 100"
        );
        w.reconfigure(0.5, 100, 20);
        assert_eq!(
            w.get(),
            Some(Duration::from_millis(50)),
            "recomputed at once"
        );
        // A longer window than the rings have is cut to them.
        w.reconfigure(0.5, 1000, 20);
        assert_eq!(w.samples(), 100);
        // More samples needed than held: no percentile until they are recorded.
        w.reconfigure(0.5, 50, 50);
        assert_eq!(w.samples(), 50);
        assert_eq!(
            w.get(),
            Some(Duration::from_millis(25)),
            "over the first 50 slots"
        );
        w.reconfigure(0.5, 100, 100);
        assert_eq!(w.get(), Some(Duration::from_millis(50)));
        let fresh = LatencyWindow::new(0.5, 100, 10);
        for ms in 1..=5 {
            fresh.record(Duration::from_millis(ms));
        }
        fresh.reconfigure(0.5, 100, 2);
        assert_eq!(fresh.get(), Some(Duration::from_millis(3)));
        fresh.reconfigure(0.5, 100, 10);
        assert_eq!(fresh.get(), None, "five samples are fewer than ten");
    }

    #[test]
    fn p50_and_p100() {
        let w = LatencyWindow::new(0.5, 16, 4);
        for ms in [40, 10, 30, 20] {
            w.record(Duration::from_millis(ms));
        }
        assert_eq!(w.get(), Some(Duration::from_millis(20)));
        let w = LatencyWindow::new(1.0, 16, 4);
        for ms in [40, 10, 30, 20] {
            w.record(Duration::from_millis(ms));
        }
        assert_eq!(w.get(), Some(Duration::from_millis(40)));
    }
}
