//! A registered component: an observed handle or a custom check, with its history and counters.

use crate::check::{CheckRun, HealthCheck};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// One entry of a component's history: a check run, or a change of an observed component's
/// state or status.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::HealthStatus;
/// use battlement_health::{CheckResult, HealthCheck, HealthRegistry};
///
/// let registry = HealthRegistry::new();
/// registry.add_check(HealthCheck::builder("db", || async { CheckResult::warn("slow") }).build().unwrap()).unwrap();
/// registry.run_checks().await;
/// let history = registry.history("db").unwrap();
/// assert_eq!(history.len(), 1);
/// assert_eq!(history[0].status, HealthStatus::Warn);
/// assert_eq!(history[0].state, "warning");
/// assert_eq!(history[0].message.as_deref(), Some("slow"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// When it happened (wall-clock time).
    pub time: SystemTime,
    /// The component's own status.
    pub status: HealthStatus,
    /// Its state (`passing`, `timed_out`, `open`, …).
    pub state: Cow<'static, str>,
    /// The message, if any.
    pub message: Option<String>,
    /// The observed value of a check run.
    pub observed_value: Option<f64>,
    /// How long the check run took (`None` for an observed component's state change).
    pub duration: Option<Duration>,
}

/// Counters of a component's runs (check runs, or the monitor's periodic observations of a
/// breaker, bulkhead or probe).
///
/// A run *fails* when its status is `fail`; `pass` and `warn` count as successes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_health::{CheckResult, HealthCheck, HealthRegistry};
///
/// let registry = HealthRegistry::new();
/// registry.add_check(HealthCheck::builder("db", || async { CheckResult::fail("down") }).build().unwrap()).unwrap();
/// registry.run_checks().await;
/// registry.run_checks().await;
/// let stats = registry.check_metrics("db").unwrap();
/// assert_eq!((stats.runs, stats.failures, stats.consecutive_failures), (2, 2, 2));
/// assert!(stats.last_success.is_none() && stats.last_failure.is_some());
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CheckMetrics {
    /// Runs so far.
    pub runs: u64,
    /// Failing runs so far.
    pub failures: u64,
    /// Failing runs since the last success.
    pub consecutive_failures: u64,
    /// When the last successful run ended.
    pub last_success: Option<SystemTime>,
    /// When the last failing run ended.
    pub last_failure: Option<SystemTime>,
    /// The mean duration of a run.
    pub mean_duration: Option<Duration>,
}

pub(crate) enum Source {
    Observed(Arc<dyn HealthSource>),
    Check(HealthCheck),
}

pub(crate) struct Component {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) kind: ComponentKind,
    pub(crate) critical: bool,
    pub(crate) source: Source,
    /// A run of this check has not failed yet (latched: the startup view).
    started: AtomicBool,
    record: Mutex<Record>,
}

struct Record {
    history_len: usize,
    history: VecDeque<HistoryEntry>,
    stats: CheckMetrics,
    total_duration: Duration,
    last_run: Option<(CheckRun, SystemTime)>,
    /// The last state and status seen of an observed component.
    last_seen: Option<(Cow<'static, str>, HealthStatus)>,
}

impl Component {
    pub(crate) fn new(
        id: u64,
        name: Arc<str>,
        kind: ComponentKind,
        critical: bool,
        source: Source,
        history_len: usize,
    ) -> Self {
        Component {
            id,
            name,
            kind,
            critical,
            source,
            started: AtomicBool::new(false),
            record: Mutex::new(Record {
                history_len,
                history: VecDeque::with_capacity(history_len),
                stats: CheckMetrics::default(),
                total_duration: Duration::ZERO,
                last_run: None,
                last_seen: None,
            }),
        }
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn check(&self) -> Option<&HealthCheck> {
        match &self.source {
            Source::Check(c) => Some(c),
            Source::Observed(_) => None,
        }
    }

    /// The component's snapshot now, and the time it describes (`None` = now).
    ///
    /// An observed component whose `snapshot` panics reports `fail`.
    pub(crate) fn snapshot(&self) -> (HealthSnapshot, Option<SystemTime>) {
        match &self.source {
            Source::Observed(o) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| o.snapshot())) {
                    Ok(mut snap) => {
                        // The report shows the component under the identity it registered with.
                        if *snap.name != *self.name {
                            snap.name = self.name.to_string();
                        }
                        snap.kind = self.kind;
                        (snap, None)
                    }
                    Err(_) => {
                        tracing::error!(component = %self.name, "component snapshot panicked");
                        (
                            HealthSnapshot::new(
                                &*self.name,
                                self.kind,
                                "unknown",
                                HealthStatus::Fail,
                            )
                            .with_message("taking the component's snapshot panicked"),
                            None,
                        )
                    }
                }
            }
            Source::Check(check) => {
                let rec = self.record();
                let (mut snap, time) = match &rec.last_run {
                    None => (
                        HealthSnapshot::new(
                            &*self.name,
                            ComponentKind::Check,
                            "pending",
                            HealthStatus::Warn,
                        )
                        .with_message("the check has not run yet"),
                        None,
                    ),
                    Some((run, at)) => {
                        let mut snap = HealthSnapshot::new(
                            &*self.name,
                            ComponentKind::Check,
                            run.state(),
                            run.result.status,
                        );
                        snap.message = run.result.message.clone();
                        if let Some(value) = run.result.observed_value {
                            snap.metrics.push(Metric {
                                name: check.measurement.clone(),
                                value,
                                unit: run.result.observed_unit.clone(),
                            });
                        }
                        (snap, Some(*at))
                    }
                };
                let s = rec.stats;
                snap.metrics
                    .push(Metric::new("runs", s.runs as f64, "count"));
                snap.metrics
                    .push(Metric::new("failures", s.failures as f64, "count"));
                snap.metrics.push(Metric::new(
                    "consecutive_failures",
                    s.consecutive_failures as f64,
                    "count",
                ));
                if let Some(mean) = s.mean_duration {
                    snap.metrics
                        .push(Metric::new("mean_duration", mean.as_secs_f64() * 1e3, "ms"));
                }
                (snap, time)
            }
        }
    }

    /// Whether a run of this check has passed (or warned) at least once.
    pub(crate) fn has_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Records one run of this component's check.
    pub(crate) fn record_run(&self, run: CheckRun) {
        if run.result.status != HealthStatus::Fail {
            self.started.store(true, Ordering::Release);
        }
        let now = SystemTime::now();
        let mut rec = self.record();
        let entry = HistoryEntry {
            time: now,
            status: run.result.status,
            state: Cow::Borrowed(run.state()),
            message: run.result.message.clone(),
            observed_value: run.result.observed_value,
            duration: Some(run.duration),
        };
        let previous = rec.last_run.as_ref().map(|(r, _)| r.result.status);
        if previous != Some(run.result.status) {
            tracing::info!(
                component = %self.name,
                from = previous.map(|s| s.as_str()).unwrap_or("pending"),
                to = %run.result.status,
                message = run.result.message.as_deref().unwrap_or(""),
                "health check status changed"
            );
        }
        rec.count(run.result.status, run.duration, now);
        rec.push(entry);
        rec.last_run = Some((run, now));
    }

    /// Records one periodic observation of an observed component (the monitor's tick).
    pub(crate) fn record_observation(&self, snap: &HealthSnapshot, duration: Duration) {
        let now = SystemTime::now();
        let mut rec = self.record();
        rec.count(snap.status, duration, now);
    }

    /// Adds a history entry if an observed component's state or status changed since last seen.
    pub(crate) fn note_state(&self, snap: &HealthSnapshot) {
        if self.check().is_some() {
            return;
        }
        let mut rec = self.record();
        let changed = match &rec.last_seen {
            Some((state, status)) => *state != snap.state || *status != snap.status,
            None => true,
        };
        if changed {
            rec.last_seen = Some((snap.state.clone(), snap.status));
            rec.push(HistoryEntry {
                time: SystemTime::now(),
                status: snap.status,
                state: snap.state.clone(),
                message: snap.message.clone(),
                observed_value: None,
                duration: None,
            });
        }
    }

    pub(crate) fn history(&self) -> Vec<HistoryEntry> {
        self.record().history.iter().cloned().collect()
    }

    pub(crate) fn metrics(&self) -> CheckMetrics {
        self.record().stats
    }
}

impl Record {
    fn push(&mut self, entry: HistoryEntry) {
        while self.history.len() >= self.history_len {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }

    fn count(&mut self, status: HealthStatus, duration: Duration, now: SystemTime) {
        let s = &mut self.stats;
        s.runs += 1;
        if status == HealthStatus::Fail {
            s.failures += 1;
            s.consecutive_failures += 1;
            s.last_failure = Some(now);
        } else {
            s.consecutive_failures = 0;
            s.last_success = Some(now);
        }
        self.total_duration += duration;
        s.mean_duration = Some(self.total_duration.div_f64(s.runs as f64));
    }
}
