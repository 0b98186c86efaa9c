//! The group's read-out ([`KeyedMetrics`]), its health snapshot and the metric families it
//! exports: the keys as a group, with bounded cardinality.
//!
//! # Exported metrics
//!
//! The exporter adds the group's `name` label; `state` takes the component's states
//! (a breaker's `closed`, `open`, `half_open`, `forced_open`, `disabled`; a bulkhead's `idle`,
//! `busy`, `saturated`). Every family is in [`FAMILIES`].
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `battlement_keyed_keys` | gauge | `state` | Keys in the table, by their component's state. |
//! | `battlement_keyed_max_keys` | gauge | | The most keys the table holds. |
//! | `battlement_keyed_created_keys` | counter | | Keys whose component was created. |
//! | `battlement_keyed_evicted_keys` | counter | `reason` | Keys evicted: `idle` (idle timeout) or `full` (to make room). |
//! | `battlement_keyed_overflow_calls` | counter | | Calls through the shared overflow component (no key, or a full table). |
//! | `battlement_keyed_key_failure_rate` | gauge | `key` | Per key, only with [`per_key_metrics`](crate::KeyedBuilder::per_key_metrics): the failure rate of the worst keys. |
//! | `battlement_keyed_key_state` | gauge | `key`, `state` | Per key, likewise: 1 for the state the key's component is in. |

use crate::component::Component;
use crate::keyed::Keyed;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::{HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::fmt;
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::atomic::Ordering::Relaxed;

static KEYS: Family = Family::gauge(
    "battlement_keyed_keys",
    "Keys in the table, by their component's state.",
    "keys",
);
static MAX_KEYS: Family = Family::gauge(
    "battlement_keyed_max_keys",
    "The most keys the table holds.",
    "keys",
);
static CREATED: Family = Family::counter(
    "battlement_keyed_created_keys",
    "Keys whose component was created.",
    "keys",
);
static EVICTED: Family = Family::counter(
    "battlement_keyed_evicted_keys",
    "Keys evicted, by reason (idle or full).",
    "keys",
);
static OVERFLOW: Family = Family::counter(
    "battlement_keyed_overflow_calls",
    "Calls through the shared overflow component (no key, or a full table).",
    "calls",
);
static KEY_FAILURE_RATE: Family = Family::gauge(
    "battlement_keyed_key_failure_rate",
    "Per key (opt-in, the worst keys): the failure rate.",
    "",
);
static KEY_STATE: Family = Family::gauge(
    "battlement_keyed_key_state",
    "Per key (opt-in, the worst keys): 1 for the state its component is in.",
    "",
);

/// Every family a [`Keyed`] table exports (the table in this module's docs).
///
/// ```
/// assert!(battlement_keyed::FAMILIES.iter().any(|f| f.name == "battlement_keyed_keys"));
/// ```
pub static FAMILIES: &[&Family] = &[
    &KEYS,
    &MAX_KEYS,
    &CREATED,
    &EVICTED,
    &OVERFLOW,
    &KEY_FAILURE_RATE,
    &KEY_STATE,
];

/// A read-out of a [`Keyed`] table as a group.
///
/// ```
/// use battlement_keyed::KeyedCircuitBreaker;
///
/// let hosts = KeyedCircuitBreaker::builder("hosts").build().unwrap();
/// hosts.force_open("a.example", "maintenance");
/// let m = hosts.group_metrics();
/// assert_eq!((m.keys, m.created), (1, 1));
/// assert_eq!(m.by_state.iter().find(|s| s.0 == "forced_open").unwrap().1, 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyedMetrics {
    /// Keys in the table now.
    pub keys: usize,
    /// The most keys the table holds.
    pub max_keys: usize,
    /// Keys by their component's state (every state, in the component's order).
    pub by_state: Vec<(&'static str, usize)>,
    /// Keys whose component was created.
    pub created: u64,
    /// Keys evicted for being idle.
    pub evicted_idle: u64,
    /// Keys evicted to make room for new ones.
    pub evicted_full: u64,
    /// Calls through the overflow component.
    pub overflow_calls: u64,
}

/// One of the worst keys, by [`Keyed::worst`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorstKey<K, S> {
    /// The key.
    pub key: K,
    /// Its component's state.
    pub state: S,
    /// Its health from that state.
    pub status: HealthStatus,
    /// Its failure rate (a breaker's over its window; a bulkhead's share of rejections).
    pub failure_rate: f64,
}

fn severity(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Pass => 0,
        HealthStatus::Warn => 1,
        HealthStatus::Fail => 2,
    }
}

impl<C: Component, K> Keyed<C, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// The group's counts now (a scan of the table for the states).
    pub fn group_metrics(&self) -> KeyedMetrics {
        let t = &self.table;
        let mut by_state: Vec<(&'static str, usize)> =
            C::STATES.iter().map(|s| (C::state_name(*s), 0)).collect();
        for e in t.map.iter() {
            let state = e.component.key_state();
            if let Some(i) = C::STATES.iter().position(|s| *s == state) {
                by_state[i].1 += 1;
            }
        }
        KeyedMetrics {
            keys: self.len(),
            max_keys: t.max_keys,
            by_state,
            created: t.created.load(Relaxed),
            evicted_idle: t.evicted_idle.load(Relaxed),
            evicted_full: t.evicted_full.load(Relaxed),
            overflow_calls: t.overflow_calls.sum(),
        }
    }

    /// The `n` worst keys: by health (failing first), then by failure rate; keys that pass
    /// with no failures are left out.
    pub fn worst(&self, n: usize) -> Vec<WorstKey<K, C::State>> {
        if n == 0 {
            return Vec::new();
        }
        let mut all: Vec<WorstKey<K, C::State>> = self
            .table
            .map
            .iter()
            .filter_map(|e| {
                let c = &e.component;
                let status = c.key_status();
                let failure_rate = c.failure_rate();
                (status != HealthStatus::Pass || failure_rate > 0.0).then(|| WorstKey {
                    key: e.key().clone(),
                    state: c.key_state(),
                    status,
                    failure_rate,
                })
            })
            .collect();
        all.sort_by(|a, b| {
            severity(b.status)
                .cmp(&severity(a.status))
                .then(b.failure_rate.total_cmp(&a.failure_rate))
        });
        all.truncate(n);
        all
    }
}

/// The group as one health component: counts per state, the worst keys in its message.
///
/// Its status: `fail` when it holds keys and every one fails (every breaker open); `warn` when
/// some key, or the overflow component, is not `pass`; `pass` otherwise. One bad host among
/// many warns instead of failing readiness: the other hosts still serve.
impl<C: Component, K> HealthSource for Keyed<C, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.table.name
    }

    fn kind(&self) -> battlement_core::ComponentKind {
        C::KIND
    }

    fn snapshot(&self) -> HealthSnapshot {
        let m = self.group_metrics();
        let t = &self.table;
        let (mut failing, mut degraded) = (0usize, false);
        for e in t.map.iter() {
            match e.component.key_status() {
                HealthStatus::Fail => failing += 1,
                HealthStatus::Warn => degraded = true,
                HealthStatus::Pass => {}
            }
        }
        let overflow = t.overflow.key_status();
        let status = if m.keys > 0 && failing == m.keys {
            HealthStatus::Fail
        } else if failing > 0 || degraded || overflow != HealthStatus::Pass {
            HealthStatus::Warn
        } else {
            HealthStatus::Pass
        };
        let mut snap = HealthSnapshot::new(t.name.to_string(), C::KIND, "keyed", status)
            .with_metric(Metric::unitless("keys", m.keys as f64))
            .with_metric(Metric::unitless("max_keys", m.max_keys as f64))
            .with_metric(Metric::unitless(
                "evicted_keys",
                (m.evicted_idle + m.evicted_full) as f64,
            ))
            .with_metric(Metric::calls("overflow_calls", m.overflow_calls));
        for (state, n) in &m.by_state {
            snap = snap.with_metric(Metric::unitless(format!("keys_{state}"), *n as f64));
        }
        let worst = self.worst(t.worst_keys);
        if !worst.is_empty() {
            let mut msg = format!("{failing} of {} keys failing; worst:", m.keys);
            for (i, w) in worst.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let _ = write!(
                    msg,
                    "{sep}{} {} ({:.0}% failures)",
                    w.key,
                    C::state_name(w.state),
                    w.failure_rate * 100.0
                );
            }
            snap = snap.with_message(msg);
        }
        snap
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.group_metrics();
        let t = &self.table;
        for (state, n) in &m.by_state {
            out.gauge(&KEYS, &[("state", state)], *n as f64);
        }
        out.gauge(&MAX_KEYS, &[], m.max_keys as f64);
        out.counter(&CREATED, &[], m.created);
        out.counter(&EVICTED, &[("reason", "idle")], m.evicted_idle);
        out.counter(&EVICTED, &[("reason", "full")], m.evicted_full);
        out.counter(&OVERFLOW, &[], m.overflow_calls);
        if t.per_key_metrics > 0 {
            for w in self.worst(t.per_key_metrics) {
                let key = w.key.to_string();
                out.gauge(&KEY_FAILURE_RATE, &[("key", &key)], w.failure_rate);
                for state in C::STATES {
                    let v = if *state == w.state { 1.0 } else { 0.0 };
                    out.gauge(
                        &KEY_STATE,
                        &[("key", &key), ("state", C::state_name(*state))],
                        v,
                    );
                }
            }
        }
    }
}
