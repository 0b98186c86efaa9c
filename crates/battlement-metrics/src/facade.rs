//! The `metrics` facade (feature `metrics`): for programs already on the `metrics` crate, a task
//! that reads every registered component on a tick and sets the facade's counters
//! ([`absolute`](metrics::Counter::absolute)) and gauges ([`set`](metrics::Gauge::set)) to the
//! components' values, under the same names and labels as the Prometheus endpoint's families
//! (without `_total`: the facade's exporter adds what its format needs).
//!
//! Histograms: the facade records histogram samples one at a time and cannot take a component's
//! merged buckets, so a histogram family `<name>` is set as a counter `<name>_count` (values
//! recorded) and a gauge `<name>_sum` (their sum, in the family's unit); the buckets are on the
//! Prometheus endpoint.
//!
//! Values are as fresh as the last tick (10 s by default): a component's counters move on its
//! call path as usual, and only the tick reads them.

use crate::walk::{walk, Sink};
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricType};
use battlement_core::ConfigError;
use battlement_health::HealthRegistry;
use metrics::{Label, Unit};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Sets the `metrics` facade's counters and gauges from a [`HealthRegistry`]'s components:
/// once with [`update`](Self::update), or on a tick with [`spawn`](Self::spawn).
///
/// ```
/// use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
/// use battlement_health::HealthRegistry;
/// use battlement_metrics::facade::FacadeExporter;
/// use metrics_util::debugging::{DebugValue, DebuggingRecorder};
///
/// #[derive(Clone)]
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("db", ComponentKind::Other, "down", HealthStatus::Fail)
///     }
/// }
/// let health = HealthRegistry::new();
/// health.register(&Db, true).unwrap();
/// let recorder = DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// metrics::with_local_recorder(&recorder, || FacadeExporter::new(&health).update());
/// let fail = snapshotter.snapshot().into_vec().into_iter().find(|(k, ..)| {
///     k.key().name() == "battlement_health_status"
///         && k.key().labels().any(|l| l.key() == "status" && l.value() == "fail")
/// });
/// assert!(matches!(fail, Some((.., DebugValue::Gauge(v))) if v.into_inner() == 1.0));
/// ```
#[derive(Debug, Clone)]
pub struct FacadeExporter {
    registry: HealthRegistry,
    interval: Duration,
    described: Arc<Mutex<HashSet<&'static str>>>,
}

/// Stops the ticking task of [`FacadeExporter::spawn`] when dropped or [aborted](Self::abort).
#[derive(Debug)]
pub struct FacadeHandle {
    task: JoinHandle<()>,
}

impl FacadeHandle {
    /// Stops the task now.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for FacadeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FacadeExporter {
    /// The default tick: 10 seconds.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

    /// An exporter of `registry`'s components, ticking every [`DEFAULT_INTERVAL`](Self::DEFAULT_INTERVAL).
    pub fn new(registry: &HealthRegistry) -> Self {
        FacadeExporter {
            registry: registry.clone(),
            interval: Self::DEFAULT_INTERVAL,
            described: Arc::default(),
        }
    }

    /// How often [`spawn`](Self::spawn)'s task updates the facade (checked there: not zero).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Reads every component now and sets the facade's metrics (through the recorder in
    /// scope: the global one, or a local one under [`metrics::with_local_recorder`]); describes
    /// each family the first time it is seen.
    pub fn update(&self) {
        let mut described = self
            .described
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        walk(
            &self.registry,
            &mut Facade {
                described: &mut described,
            },
        );
    }

    /// Spawns a task on the current tokio runtime that calls [`update`](Self::update) now and
    /// then every interval (a late tick is not made up for: the next one is an interval after
    /// it), until the returned handle is dropped.
    ///
    /// # Errors
    ///
    /// The interval is zero.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self) -> Result<FacadeHandle, ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::new(
                "metrics facade exporter",
                "interval",
                "0s",
                "must be greater than zero",
            ));
        }
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.update();
            }
        });
        Ok(FacadeHandle { task })
    }
}

struct Facade<'a> {
    described: &'a mut HashSet<&'static str>,
}

fn labels_of(name: &str, labels: Labels<'_>) -> Vec<Label> {
    let mut out = Vec::with_capacity(labels.len() + 1);
    out.push(Label::new("name", name.to_owned()));
    out.extend(labels.iter().map(|(k, v)| Label::new(*k, (*v).to_owned())));
    out
}

fn unit_of(family: &Family) -> Option<Unit> {
    match family.unit {
        "seconds" => Some(Unit::Seconds),
        "bytes" => Some(Unit::Bytes),
        // The facade's `Percent` is 0..=100; a ratio (0..=1) has no unit there.
        "" | "ratio" | "ratios" => None,
        _ => Some(Unit::Count),
    }
}

impl Facade<'_> {
    fn describe(&mut self, family: &'static Family) {
        if !self.described.insert(family.name) {
            return;
        }
        let unit = unit_of(family);
        match (family.kind, unit) {
            (MetricType::Counter, Some(u)) => {
                metrics::describe_counter!(family.name, u, family.help)
            }
            (MetricType::Counter, None) => metrics::describe_counter!(family.name, family.help),
            (MetricType::Gauge, Some(u)) => metrics::describe_gauge!(family.name, u, family.help),
            (MetricType::Gauge, None) => metrics::describe_gauge!(family.name, family.help),
            (MetricType::Histogram, _) => {
                metrics::describe_counter!(
                    format!("{}_count", family.name),
                    Unit::Count,
                    family.help
                );
                metrics::describe_gauge!(format!("{}_sum", family.name), family.help);
            }
            _ => {}
        }
    }
}

impl Sink for Facade<'_> {
    fn counter(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: u64) {
        self.describe(family);
        metrics::counter!(family.name, labels_of(name, labels)).absolute(value);
    }
    fn gauge(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: f64) {
        self.describe(family);
        metrics::gauge!(family.name, labels_of(name, labels)).set(value);
    }
    fn histogram(
        &mut self,
        family: &'static Family,
        name: &str,
        labels: Labels<'_>,
        h: &HistogramSnapshot,
    ) {
        self.describe(family);
        metrics::counter!(format!("{}_count", family.name), labels_of(name, labels))
            .absolute(h.count);
        metrics::gauge!(format!("{}_sum", family.name), labels_of(name, labels)).set(h.sum);
    }
}
