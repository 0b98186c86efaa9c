//! The bulkhead's read-out ([`BulkheadMetrics`]), the counters behind it, and its health
//! snapshot.

use crate::permit::Shared;
use crate::Bulkhead;
use battlement_core::sync::Ordering::{Acquire, Relaxed};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::time::Duration;

impl Bulkhead {
    /// A snapshot of the bulkhead's counts.
    ///
    /// ```
    /// use battlement_bulkhead::Bulkhead;
    ///
    /// let b = Bulkhead::builder("pool").max_concurrent(3).max_queued(5).build().unwrap();
    /// let m = b.metrics();
    /// assert_eq!((m.max_concurrent, m.max_queued, m.in_flight, m.accepted), (3, 5, 0, 0));
    /// assert!(!m.is_saturated());
    /// ```
    pub fn metrics(&self) -> BulkheadMetrics {
        let s = &self.shared;
        let waited = s.waits.load(Acquire);
        let total = s.wait_total_nanos.load(Acquire);
        BulkheadMetrics {
            in_flight: self.in_flight(),
            free_permits: self.free_permits(),
            queued: self.queued(),
            max_concurrent: self.max_concurrent(),
            max_queued: self.max_queued(),
            reloads: s.reloads.load(Relaxed),
            accepted: s.accepted.sum(),
            rejected_full: s.rejected_full.load(Acquire),
            rejected_timeout: s.rejected_timeout.load(Acquire),
            waited,
            wait_mean: match waited {
                0 => Duration::ZERO,
                n => Duration::from_nanos(total / n),
            },
            wait_max: Duration::from_nanos(s.wait_max_nanos.load(Acquire)),
            since_last_rejection: s.since_last_rejection(),
        }
    }
}

impl Shared {
    /// Records the time of a rejection (the rejection path only: no admitted call writes it).
    #[cold]
    pub(crate) fn note_rejection(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_rejection.fetch_max(since + 1, Relaxed);
    }

    pub(crate) fn since_last_rejection(&self) -> Option<Duration> {
        match self.last_rejection.load(Relaxed) {
            0 => None,
            at => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(at - 1)),
            ),
        }
    }

    #[cold]
    pub(crate) fn record_wait(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.waits.fetch_add(1, Relaxed);
        self.wait_total_nanos.fetch_add(nanos, Relaxed);
        self.wait_max_nanos.fetch_max(nanos, Relaxed);
    }
}

/// A point-in-time view of a [`Bulkhead`]'s counts, from [`Bulkhead::metrics`].
///
/// Counters (`accepted`, `rejected_*`, `waited`) count since the bulkhead was built. Wait times
/// are those of calls that went through the queue and left it admitted or timed out (a call
/// cancelled while waiting is not counted).
///
/// ```
/// use battlement_bulkhead::Bulkhead;
/// use std::time::Duration;
///
/// let b = Bulkhead::builder("pool").max_concurrent(1).build().unwrap();
/// let m = b.metrics();
/// assert_eq!(m.rejected_full + m.rejected_timeout, 0);
/// assert_eq!(m.wait_mean, Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// Calls holding a permit.
    pub in_flight: usize,
    /// Permits free: a call arriving now is admitted at once if this is above zero.
    pub free_permits: usize,
    /// Calls waiting in the queue.
    pub queued: usize,
    /// The concurrency limit.
    pub max_concurrent: usize,
    /// The queue bound.
    pub max_queued: usize,
    /// Settings applied with [`reload`](Bulkhead::reload) since it was built.
    pub reloads: u64,
    /// Calls admitted (at once or after waiting).
    pub accepted: u64,
    /// Calls rejected because the queue was full ([`BulkheadFull`](crate::BulkheadFull)).
    pub rejected_full: u64,
    /// Calls rejected after waiting too long ([`BulkheadTimeout`](crate::BulkheadTimeout)).
    pub rejected_timeout: u64,
    /// Calls that went through the queue (admitted or timed out).
    pub waited: u64,
    /// Their mean time in the queue.
    pub wait_mean: Duration,
    /// Their longest time in the queue.
    pub wait_max: Duration,
    /// How long ago the last call was rejected (full or timed out); `None` if none ever was.
    pub since_last_rejection: Option<Duration>,
}

impl BulkheadMetrics {
    /// Every permit is taken.
    pub fn is_saturated(&self) -> bool {
        self.in_flight >= self.max_concurrent
    }

    /// Calls rejected, for either reason.
    pub fn rejected(&self) -> u64 {
        self.rejected_full + self.rejected_timeout
    }
}

impl HealthSource for Bulkhead {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Bulkhead
    }

    /// State `saturated` (status `warn`) while every permit is taken or calls are waiting;
    /// else `rejecting` (`warn`) if a call was rejected within the
    /// [`rejection_window`](crate::BulkheadBuilder::rejection_window), so a reading between two
    /// bursts still shows them; `available` (`pass`) otherwise.
    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        let busy = m.is_saturated() || m.queued > 0;
        let window = self.rejection_window();
        let recent = m.since_last_rejection.filter(|ago| *ago <= window);
        let (state, status) = if busy {
            ("saturated", HealthStatus::Warn)
        } else if recent.is_some() {
            ("rejecting", HealthStatus::Warn)
        } else {
            ("available", HealthStatus::Pass)
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut snap = HealthSnapshot::new(self.name(), ComponentKind::Bulkhead, state, status)
            .with_metric(Metric::new("in_flight", m.in_flight as f64, "calls"))
            .with_metric(Metric::new(
                "free_permits",
                m.free_permits as f64,
                "permits",
            ))
            .with_metric(Metric::new("queued", m.queued as f64, "calls"))
            .with_metric(Metric::new(
                "max_concurrent",
                m.max_concurrent as f64,
                "calls",
            ))
            .with_metric(Metric::new("max_queued", m.max_queued as f64, "calls"))
            .with_metric(Metric::new("accepted", m.accepted as f64, "calls"))
            .with_metric(Metric::new(
                "rejected_full",
                m.rejected_full as f64,
                "calls",
            ))
            .with_metric(Metric::new(
                "rejected_timeout",
                m.rejected_timeout as f64,
                "calls",
            ))
            .with_metric(Metric::new("waited", m.waited as f64, "calls"))
            .with_metric(Metric::new("wait_mean", ms(m.wait_mean), "ms"))
            .with_metric(Metric::new("wait_max", ms(m.wait_max), "ms"));
        if busy {
            snap = snap.with_message(format!(
                "bulkhead `{}` is saturated: {}/{} calls in flight, {}/{} queued",
                self.name(),
                m.in_flight,
                m.max_concurrent,
                m.queued,
                m.max_queued
            ));
        } else if let Some(ago) = recent {
            snap = snap.with_message(format!(
                "bulkhead `{}` rejected a call {:?} ago (within its {:?} rejection window); {} \
                 rejected in all",
                self.name(),
                ago,
                window,
                m.rejected()
            ));
        }
        snap
    }
}
