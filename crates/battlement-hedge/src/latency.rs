//! Recent latencies and their percentile, for the percentile hedge delay.
//!
//! Each stripe (one per core, chosen by the recording thread) keeps a fixed ring of its last
//! `window` latencies: recording is a `fetch_add` on the stripe's cursor and a store into its
//! slot, on lines no other core writes. Every `window / 16` records on a stripe (and on every
//! record until the first value exists) the recording thread recomputes the percentile over all
//! stripes with a quickselect into a preallocated buffer, under a `try_lock` (a thread that finds
//! it taken skips the recomputation), and publishes it in an atomic that every call reads.

use battlement_core::stripe::{CachePadded, Stripes};
use std::sync::atomic::{AtomicU64, Ordering};
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
    window: usize,
    percentile: f64,
    min_samples: usize,
    recompute_every: u64,
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
            window,
            percentile,
            min_samples,
            recompute_every: (window as u64 / 16).max(1),
            current: AtomicU64::new(NONE),
            scratch: Mutex::new(Vec::with_capacity(capacity)),
        }
    }

    /// Records one latency.
    pub(crate) fn record(&self, latency: Duration) {
        let ring = self.stripes.local();
        let i = ring.cursor.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(NONE - 1);
        ring.slots[(i % self.window as u64) as usize].store(nanos, Ordering::Relaxed);
        if (i + 1) % self.recompute_every == 0 || self.current.load(Ordering::Relaxed) == NONE {
            self.recompute();
        }
    }

    /// How many latencies the window holds.
    pub(crate) fn samples(&self) -> usize {
        self.stripes
            .iter()
            .map(|r| (r.cursor.load(Ordering::Relaxed) as usize).min(self.window))
            .sum()
    }

    fn recompute(&self) {
        if self.samples() < self.min_samples {
            return;
        }
        let Ok(mut buf) = self.scratch.try_lock() else {
            return;
        };
        buf.clear();
        for ring in self.stripes.iter() {
            let n = (ring.cursor.load(Ordering::Relaxed) as usize).min(self.window);
            buf.extend(ring.slots[..n].iter().map(|s| s.load(Ordering::Relaxed)));
        }
        if buf.len() < self.min_samples || buf.is_empty() {
            return;
        }
        // The smallest value with at least `percentile` of the samples at or below it.
        let rank = ((self.percentile * buf.len() as f64).ceil() as usize).clamp(1, buf.len());
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
