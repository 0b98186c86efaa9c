//! The rate limiter's read-out ([`RateLimitMetrics`]), its health snapshot and its metric
//! families.

use crate::key::KeyExtractor;
use crate::RateLimit;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Calls, by `outcome` (`admitted`, `rejected`).
pub(crate) static CALLS: Family = Family::counter(
    "battlement_rate_limit_calls",
    "Calls through the rate limiter, by outcome (admitted, rejected).",
    "calls",
);
/// Calls that waited to be admitted (admitted or rejected in the end).
pub(crate) static WAITED: Family = Family::counter(
    "battlement_rate_limit_waited",
    "Calls that waited for their turn (admitted or rejected in the end).",
    "calls",
);
/// Keys tracked now.
pub(crate) static KEYS: Family = Family::gauge(
    "battlement_rate_limit_keys",
    "Keys the keyed rate limiter tracks now.",
    "keys",
);
/// The key table's bound.
pub(crate) static MAX_KEYS: Family = Family::gauge(
    "battlement_rate_limit_max_keys",
    "The most keys the keyed rate limiter tracks.",
    "keys",
);
/// Idle keys evicted.
pub(crate) static KEYS_EVICTED: Family = Family::counter(
    "battlement_rate_limit_keys_evicted",
    "Idle keys evicted from the keyed rate limiter's table.",
    "keys",
);
/// Calls of new keys that found the key table full, by `outcome` (`admitted`, `rejected`).
pub(crate) static KEYS_OVERFLOW: Family = Family::counter(
    "battlement_rate_limit_keys_overflow",
    "Calls of new keys that found the key table full, by outcome (admitted untracked, rejected).",
    "calls",
);

/// Every family a rate limiter reports.
pub static FAMILIES: &[&Family] = &[
    &CALLS,
    &WAITED,
    &KEYS,
    &MAX_KEYS,
    &KEYS_EVICTED,
    &KEYS_OVERFLOW,
];

/// A point-in-time view of a [`RateLimit`]'s counts, from [`RateLimit::metrics`]. Counters
/// count since the limiter was built.
///
/// ```
/// use battlement_rate_limit::RateLimit;
/// use std::time::Duration;
///
/// let limit = RateLimit::builder("api").rate(10, Duration::from_secs(1)).build().unwrap();
/// let m = limit.metrics();
/// assert_eq!((m.admitted, m.rejected, m.waited, m.keys_tracked), (0, 0, 0, 0));
/// assert_eq!(m.max_keys, None); // unkeyed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitMetrics {
    /// Calls admitted (at once or after waiting; new keys admitted untracked included).
    pub admitted: u64,
    /// Calls rejected ([`RateLimited`](crate::RateLimited)).
    pub rejected: u64,
    /// Calls that waited for their turn (admitted or rejected in the end; a call dropped while
    /// waiting is counted too).
    pub waited: u64,
    /// Keys tracked now (0 when unkeyed).
    pub keys_tracked: usize,
    /// The key table's bound (`None` when unkeyed).
    pub max_keys: Option<usize>,
    /// Idle keys evicted.
    pub keys_evicted: u64,
    /// Calls of new keys admitted untracked because the table was full
    /// ([`KeysFull::Admit`](crate::KeysFull::Admit)).
    pub keys_overflow_admitted: u64,
    /// Calls of new keys rejected because the table was full
    /// ([`KeysFull::Reject`](crate::KeysFull::Reject)).
    pub keys_overflow_rejected: u64,
    /// How long ago the last call was rejected; `None` if none ever was.
    pub since_last_rejection: Option<Duration>,
}

impl<X: KeyExtractor> RateLimit<X> {
    /// A snapshot of the limiter's counts.
    pub fn metrics(&self) -> RateLimitMetrics {
        let inner = &*self.inner;
        let keys = inner.keys.as_ref();
        let read = |f: fn(&crate::keys::Keys<X::Key>) -> u64| keys.map_or(0, |k| f(k));
        RateLimitMetrics {
            admitted: inner.admitted.sum(),
            rejected: inner.rejected.load(Relaxed),
            waited: inner.waited.load(Relaxed),
            keys_tracked: keys.map_or(0, |k| k.tracked()),
            max_keys: keys.map(|k| k.max()),
            keys_evicted: read(|k| k.evicted.load(Relaxed)),
            keys_overflow_admitted: read(|k| k.overflow_admitted.load(Relaxed)),
            keys_overflow_rejected: read(|k| k.overflow_rejected.load(Relaxed)),
            since_last_rejection: self.since_last_rejection(),
        }
    }

    fn keys_full(&self) -> bool {
        self.inner
            .keys
            .as_ref()
            .is_some_and(|keys| keys.full.load(Relaxed))
    }
}

impl<X: KeyExtractor> HealthSource for RateLimit<X> {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::RateLimit
    }

    /// State `keys_full` (status `warn`) while new keys find the key table full; else
    /// `limiting` (`warn`) if a call was rejected within the
    /// [`rejection_window`](crate::RateLimitBuilder::rejection_window); `admitting` (`pass`)
    /// otherwise.
    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        let recent = m
            .since_last_rejection
            .filter(|ago| *ago <= self.rejection_window());
        let full = self.keys_full();
        let (state, status) = if full {
            ("keys_full", HealthStatus::Warn)
        } else if recent.is_some() {
            ("limiting", HealthStatus::Warn)
        } else {
            ("admitting", HealthStatus::Pass)
        };
        let mut snap = HealthSnapshot::new(self.name(), ComponentKind::RateLimit, state, status)
            .with_metric(Metric::new("quota", f64::from(self.quota()), "calls"))
            .with_metric(Metric::millis("window", self.window()))
            .with_metric(Metric::new("burst", f64::from(self.burst()), "calls"))
            .with_metric(Metric::calls("admitted", m.admitted))
            .with_metric(Metric::calls("rejected", m.rejected))
            .with_metric(Metric::calls("waited", m.waited));
        if let Some(max) = m.max_keys {
            snap = snap
                .with_metric(Metric::new("keys_tracked", m.keys_tracked as f64, "keys"))
                .with_metric(Metric::new("max_keys", max as f64, "keys"))
                .with_metric(Metric::new("keys_evicted", m.keys_evicted as f64, "keys"));
        }
        if full {
            snap = snap.with_message(format!(
                "rate limiter `{}` tracks {} keys, its maximum: new keys are {}",
                self.name(),
                m.keys_tracked,
                match self.inner.keys.as_ref().map(|k| k.when_full()) {
                    Some(crate::KeysFull::Admit) => "admitted untracked",
                    _ => "rejected",
                }
            ));
        } else if let Some(ago) = recent {
            snap = snap.with_message(format!(
                "rate limiter `{}` rejected a call {ago:?} ago (within its {:?} rejection \
                 window); {} rejected in all",
                self.name(),
                self.rejection_window(),
                m.rejected
            ));
        }
        snap
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        out.counter(&CALLS, &[("outcome", "admitted")], m.admitted);
        out.counter(&CALLS, &[("outcome", "rejected")], m.rejected);
        out.counter(&WAITED, &[], m.waited);
        if let Some(max) = m.max_keys {
            out.gauge(&KEYS, &[], m.keys_tracked as f64);
            out.gauge(&MAX_KEYS, &[], max as f64);
            out.counter(&KEYS_EVICTED, &[], m.keys_evicted);
            out.counter(
                &KEYS_OVERFLOW,
                &[("outcome", "admitted")],
                m.keys_overflow_admitted,
            );
            out.counter(
                &KEYS_OVERFLOW,
                &[("outcome", "rejected")],
                m.keys_overflow_rejected,
            );
        }
    }
}
