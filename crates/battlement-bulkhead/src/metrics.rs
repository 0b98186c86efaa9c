//! The bulkhead's read-out ([`BulkheadMetrics`]), the counters behind it, its health snapshot
//! and the metric families it exports.
//!
//! # Exported metrics
//!
//! [`HealthSource::export`] reads the bulkhead's permit word, its permit stripes and counters
//! at collection time; the call path writes nothing for it. Every family is in [`FAMILIES`];
//! the exporter adds the bulkhead's `name` label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_bulkhead_in_flight_calls` | gauge | | Calls holding a permit now. |
//! | `battlement_bulkhead_queued_calls` | gauge | | Calls waiting in the queue now. |
//! | `battlement_bulkhead_free_permits` | gauge | | Permits free now. |
//! | `battlement_bulkhead_max_concurrent` | gauge | | The concurrency limit. |
//! | `battlement_bulkhead_max_queued` | gauge | | The queue bound. |
//! | `battlement_bulkhead_accepted_calls` | counter | | Calls admitted, at once or after waiting. |
//! | `battlement_bulkhead_rejected_calls` | counter | `reason` | Calls rejected: `full` (the queue was full, [`BulkheadFull`](crate::BulkheadFull)), `shed` (a sheddable call refused, [`BulkheadFull::is_shed`](crate::BulkheadFull::is_shed)) or `timeout` (waited too long, [`BulkheadTimeout`](crate::BulkheadTimeout)); all three reported. |
//! | `battlement_bulkhead_waited_calls` | counter | | Calls that went through the queue (admitted or timed out). |
//! | `battlement_bulkhead_queue_wait_max_seconds` | gauge | | The longest time a call spent in the queue. |
//! | `battlement_bulkhead_queue_wait_seconds` | histogram | | Time calls spent in the queue; only with [`histogram(true)`](crate::BulkheadBuilder::histogram). |
//!
//! An [`AdaptiveLimit`] exports these (its limit is `battlement_bulkhead_max_concurrent`), and:
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_bulkhead_limit_estimate` | gauge | `algorithm` | The algorithm's estimate of the limit (the limit is its integer part). |
//! | `battlement_bulkhead_limit_rtt_noload_seconds` | gauge | `algorithm` | The estimated no-load latency. |
//! | `battlement_bulkhead_limit_rtt_seconds` | gauge | `algorithm` | The last window's average latency. |
//! | `battlement_bulkhead_limit_samples` | counter | `algorithm` | Calls sampled. |
//! | `battlement_bulkhead_limit_drops` | counter | `algorithm` | Sampled calls that failed. |
//! | `battlement_bulkhead_limit_updates` | counter | `algorithm` | Windows the algorithm was fed. |

use crate::permit::Shared;
use crate::{AdaptiveLimit, Bulkhead};
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::sync::Ordering::{Acquire, Relaxed};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::time::Duration;

static IN_FLIGHT: Family = Family::gauge(
    "battlement_bulkhead_in_flight_calls",
    "Calls holding a permit now.",
    "calls",
);
static QUEUED: Family = Family::gauge(
    "battlement_bulkhead_queued_calls",
    "Calls waiting in the queue now.",
    "calls",
);
static FREE_PERMITS: Family = Family::gauge(
    "battlement_bulkhead_free_permits",
    "Permits free now.",
    "permits",
);
static MAX_CONCURRENT: Family = Family::gauge(
    "battlement_bulkhead_max_concurrent",
    "The concurrency limit.",
    "",
);
static MAX_QUEUED: Family = Family::gauge("battlement_bulkhead_max_queued", "The queue bound.", "");
static ACCEPTED: Family = Family::counter(
    "battlement_bulkhead_accepted_calls",
    "Calls admitted, at once or after waiting.",
    "calls",
);
static REJECTED: Family = Family::counter(
    "battlement_bulkhead_rejected_calls",
    "Calls rejected, by reason (full, shed or timeout).",
    "calls",
);
static WAITED: Family = Family::counter(
    "battlement_bulkhead_waited_calls",
    "Calls that went through the queue (admitted or timed out).",
    "calls",
);
static QUEUE_WAIT_MAX: Family = Family::gauge(
    "battlement_bulkhead_queue_wait_max_seconds",
    "The longest time a call spent in the queue.",
    "seconds",
);
static QUEUE_WAIT: Family = Family::histogram(
    "battlement_bulkhead_queue_wait_seconds",
    "Time calls spent in the queue.",
    "seconds",
);

static LIMIT_ESTIMATE: Family = Family::gauge(
    "battlement_bulkhead_limit_estimate",
    "The adaptive limit algorithm's estimate of the limit.",
    "",
);
static LIMIT_RTT_NOLOAD: Family = Family::gauge(
    "battlement_bulkhead_limit_rtt_noload_seconds",
    "The adaptive limit's estimated no-load latency.",
    "seconds",
);
static LIMIT_RTT: Family = Family::gauge(
    "battlement_bulkhead_limit_rtt_seconds",
    "The adaptive limit's last window's average latency.",
    "seconds",
);
static LIMIT_SAMPLES: Family = Family::counter(
    "battlement_bulkhead_limit_samples",
    "Calls the adaptive limit sampled.",
    "calls",
);
static LIMIT_DROPS: Family = Family::counter(
    "battlement_bulkhead_limit_drops",
    "Sampled calls that failed (drops).",
    "calls",
);
static LIMIT_UPDATES: Family = Family::counter(
    "battlement_bulkhead_limit_updates",
    "Windows the adaptive limit's algorithm was fed.",
    "",
);

/// Every family a [`Bulkhead`] or an [`AdaptiveLimit`] exports (the table in this module's docs).
///
/// ```
/// assert!(battlement_bulkhead::FAMILIES
///     .iter()
///     .any(|f| f.name == "battlement_bulkhead_in_flight_calls"));
/// ```
pub static FAMILIES: &[&Family] = &[
    &IN_FLIGHT,
    &QUEUED,
    &FREE_PERMITS,
    &MAX_CONCURRENT,
    &MAX_QUEUED,
    &ACCEPTED,
    &REJECTED,
    &WAITED,
    &QUEUE_WAIT_MAX,
    &QUEUE_WAIT,
    &LIMIT_ESTIMATE,
    &LIMIT_RTT_NOLOAD,
    &LIMIT_RTT,
    &LIMIT_SAMPLES,
    &LIMIT_DROPS,
    &LIMIT_UPDATES,
];

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
        let s = self.shared();
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
            rejected_shed: s.rejected_shed.load(Acquire),
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
        if let Some(h) = &self.wait_histogram {
            h.record_nanos(nanos);
        }
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
    /// Sheddable calls refused under saturation ([`BulkheadFull`](crate::BulkheadFull) with
    /// [`is_shed`](crate::BulkheadFull::is_shed)); not counted in `rejected_full`.
    pub rejected_shed: u64,
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

    /// Calls rejected, for any reason.
    pub fn rejected(&self) -> u64 {
        self.rejected_full + self.rejected_shed + self.rejected_timeout
    }
}

impl HealthSource for Bulkhead {
    fn name(&self) -> &str {
        &self.shared().name
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
            .with_metric(Metric::new(
                "rejected_shed",
                m.rejected_shed as f64,
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

    /// Reports the families of [`FAMILIES`] from [`metrics`](Bulkhead::metrics) and, when
    /// enabled, the queue-wait histogram.
    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.gauge(&IN_FLIGHT, &[], m.in_flight as f64);
        out.gauge(&QUEUED, &[], m.queued as f64);
        out.gauge(&FREE_PERMITS, &[], m.free_permits as f64);
        out.gauge(&MAX_CONCURRENT, &[], m.max_concurrent as f64);
        out.gauge(&MAX_QUEUED, &[], m.max_queued as f64);
        out.counter(&ACCEPTED, &[], m.accepted);
        out.counter(&REJECTED, &[("reason", "full")], m.rejected_full);
        out.counter(&REJECTED, &[("reason", "shed")], m.rejected_shed);
        out.counter(&REJECTED, &[("reason", "timeout")], m.rejected_timeout);
        out.counter(&WAITED, &[], m.waited);
        out.gauge(&QUEUE_WAIT_MAX, &[], m.wait_max.as_secs_f64());
        if let Some(h) = &self.shared().wait_histogram {
            out.histogram(&QUEUE_WAIT, &[], &h.snapshot());
        }
    }
}

impl HealthSource for AdaptiveLimit {
    fn name(&self) -> &str {
        self.bulkhead.name()
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Bulkhead
    }

    /// The bulkhead's snapshot (its `max_concurrent` is the limit now), with the algorithm's
    /// `limit_estimate`, `rtt_noload` and `rtt` (ms), `samples`, `drops` and `updates`.
    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        HealthSource::snapshot(&self.bulkhead)
            .with_metric(Metric::new("limit_estimate", m.estimate, "calls"))
            .with_metric(Metric::new("rtt_noload", ms(m.rtt_noload), "ms"))
            .with_metric(Metric::new("rtt", ms(m.rtt), "ms"))
            .with_metric(Metric::new("samples", m.samples as f64, "calls"))
            .with_metric(Metric::new("drops", m.drops as f64, "calls"))
            .with_metric(Metric::new("updates", m.updates as f64, "windows"))
    }

    /// The bulkhead's families, and the adaptive ones of [`FAMILIES`], labelled with the
    /// `algorithm`.
    fn export(&self, out: &mut dyn MetricsVisitor) {
        HealthSource::export(&self.bulkhead, out);
        let m = self.metrics();
        let labels = [("algorithm", m.algorithm)];
        out.gauge(&LIMIT_ESTIMATE, &labels, m.estimate);
        out.gauge(&LIMIT_RTT_NOLOAD, &labels, m.rtt_noload.as_secs_f64());
        out.gauge(&LIMIT_RTT, &labels, m.rtt.as_secs_f64());
        out.counter(&LIMIT_SAMPLES, &labels, m.samples);
        out.counter(&LIMIT_DROPS, &labels, m.drops);
        out.counter(&LIMIT_UPDATES, &labels, m.updates);
    }
}
