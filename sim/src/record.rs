//! What a run records, per second of simulated time (and attempts per 10 ms as well).

use std::cell::RefCell;
use tokio::time::Instant;

/// The bins of the fine attempt series per second.
pub const FINE_PER_SECOND: usize = 100;

/// A run's time series: index `s` is the simulated second `[s, s + 1)` from the start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Requests the clients sent (each counted once, however many attempts it took).
    pub requests: Vec<u64>,
    /// Attempts that reached a server (refused ones included).
    pub attempts: Vec<u64>,
    /// Attempts that reached a server, per 10 ms.
    pub attempts_fine: Vec<u64>,
    /// Requests that succeeded, by the second they finished in (goodput).
    pub goodput: Vec<u64>,
    /// Requests that succeeded, by the second they were sent in.
    pub succeeded_by_start: Vec<u64>,
    /// Requests that failed (after every attempt), by the second they were sent in.
    pub failed_by_start: Vec<u64>,
    /// The latency of every request that succeeded, in milliseconds, by the second it was sent
    /// in.
    pub latency_ms: Vec<Vec<u32>>,
}

impl Series {
    fn new(seconds: usize) -> Self {
        Series {
            requests: vec![0; seconds],
            attempts: vec![0; seconds],
            attempts_fine: vec![0; seconds * FINE_PER_SECOND],
            goodput: vec![0; seconds],
            succeeded_by_start: vec![0; seconds],
            failed_by_start: vec![0; seconds],
            latency_ms: vec![Vec::new(); seconds],
        }
    }
}

pub(crate) struct Recorder {
    origin: Instant,
    series: RefCell<Series>,
}

impl Recorder {
    pub(crate) fn new(seconds: usize) -> Self {
        Recorder {
            origin: Instant::now(),
            series: RefCell::new(Series::new(seconds)),
        }
    }

    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Nanoseconds since the start.
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    pub(crate) fn attempt(&self) {
        let t = self.nanos(Instant::now());
        let mut s = self.series.borrow_mut();
        let second = (t / 1_000_000_000) as usize;
        if let Some(n) = s.attempts.get_mut(second) {
            *n += 1;
        }
        if let Some(n) = s.attempts_fine.get_mut((t / 10_000_000) as usize) {
            *n += 1;
        }
    }

    pub(crate) fn request(&self, start: Instant) {
        let second = (self.nanos(start) / 1_000_000_000) as usize;
        if let Some(n) = self.series.borrow_mut().requests.get_mut(second) {
            *n += 1;
        }
    }

    pub(crate) fn done(&self, start: Instant, ok: bool) {
        let now = Instant::now();
        let sent = (self.nanos(start) / 1_000_000_000) as usize;
        let finished = (self.nanos(now) / 1_000_000_000) as usize;
        let mut s = self.series.borrow_mut();
        if sent >= s.requests.len() {
            return;
        }
        if ok {
            s.succeeded_by_start[sent] += 1;
            let ms = now.saturating_duration_since(start).as_millis();
            s.latency_ms[sent].push(u32::try_from(ms).unwrap_or(u32::MAX));
            if let Some(n) = s.goodput.get_mut(finished) {
                *n += 1;
            }
        } else {
            s.failed_by_start[sent] += 1;
        }
    }

    pub(crate) fn into_series(self) -> Series {
        self.series.into_inner()
    }
}
