//! Test doubles (feature `testing`): a sink that keeps what registers, a visitor that keeps what
//! components export.

use crate::{ComponentKind, ConfigError, HealthSink, HealthSource};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a [`RecordingSink`] keeps: each component, with its `critical` flag.
pub type Registered = (Arc<dyn HealthSource>, bool);

/// A [`HealthSink`] that keeps what registers with it, with its `critical` flag: for testing
/// that a builder registers its component (and how), without the health crate.
///
/// ```
/// use battlement_core::testing::RecordingSink;
/// use battlement_core::{ComponentKind, HealthSink, HealthSnapshot, HealthSource, HealthStatus};
/// use std::sync::Arc;
///
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass)
///     }
/// }
///
/// let sink = RecordingSink::new();
/// sink.register_component(Arc::new(Db), true).unwrap();
/// assert_eq!(sink.registered().len(), 1);
/// assert!(sink.registered()[0].1);
/// assert!(sink.unregister_component(ComponentKind::Other, "db"));
/// assert!(sink.registered().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct RecordingSink(Arc<Mutex<Vec<Registered>>>);

impl RecordingSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// What is registered now, in the order it registered.
    pub fn registered(&self) -> Vec<Registered> {
        self.list().clone()
    }

    fn list(&self) -> MutexGuard<'_, Vec<Registered>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for RecordingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .list()
            .iter()
            .map(|(c, _)| c.name().to_owned())
            .collect();
        f.debug_tuple("RecordingSink").field(&names).finish()
    }
}

impl HealthSink for RecordingSink {
    fn register_component(
        &self,
        component: Arc<dyn HealthSource>,
        critical: bool,
    ) -> Result<(), ConfigError> {
        self.list().push((component, critical));
        Ok(())
    }

    fn unregister_component(&self, kind: ComponentKind, name: &str) -> bool {
        let mut list = self.list();
        let before = list.len();
        list.retain(|(c, _)| !(c.kind() == kind && c.name() == name));
        list.len() != before
    }
}

/// A value a [`RecordingVisitor`] was told.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// A counter's value.
    Counter(u64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram's buckets.
    Histogram(crate::export::HistogramSnapshot),
}

/// A [`MetricsVisitor`](crate::export::MetricsVisitor) that keeps what a component exports, for
/// tests of [`HealthSource::export`]: it panics when a (family, labels) is reported twice, when a
/// value's type is not its family's, or when a family is reported with different label names,
/// and [`assert_families_in`](Self::assert_families_in) checks that every family reported is one
/// of a crate's `FAMILIES`.
///
/// ```
/// use battlement_core::export::{Family, MetricsVisitor};
/// use battlement_core::testing::RecordingVisitor;
///
/// static CALLS: Family = Family::counter("battlement_example_calls", "Calls.", "calls");
/// let mut out = RecordingVisitor::new();
/// out.counter(&CALLS, &[("outcome", "success")], 3);
/// assert_eq!(out.counter_value("battlement_example_calls", &[("outcome", "success")]), 3);
/// out.assert_families_in(&[&CALLS]);
/// ```
#[derive(Debug, Default)]
pub struct RecordingVisitor {
    values: Vec<(
        &'static crate::export::Family,
        Vec<(String, String)>,
        Recorded,
    )>,
}

impl RecordingVisitor {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every value reported, in order: family, labels, value.
    pub fn values(
        &self,
    ) -> &[(
        &'static crate::export::Family,
        Vec<(String, String)>,
        Recorded,
    )] {
        &self.values
    }

    /// The names of the families reported, each once, in the order first reported.
    pub fn family_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for (f, _, _) in &self.values {
            if !names.contains(&f.name) {
                names.push(f.name);
            }
        }
        names
    }

    /// The value reported under `family` (by name) and exactly these labels, if any.
    pub fn get(&self, family: &str, labels: crate::export::Labels<'_>) -> Option<&Recorded> {
        let want = owned(labels);
        self.values
            .iter()
            .find(|(f, l, _)| f.name == family && *l == want)
            .map(|(_, _, v)| v)
    }

    /// A counter's value; panics if it was not reported as a counter.
    pub fn counter_value(&self, family: &str, labels: crate::export::Labels<'_>) -> u64 {
        match self.get(family, labels) {
            Some(Recorded::Counter(v)) => *v,
            other => panic!("counter {family}{labels:?} not reported (found {other:?})"),
        }
    }

    /// A gauge's value; panics if it was not reported as a gauge.
    pub fn gauge_value(&self, family: &str, labels: crate::export::Labels<'_>) -> f64 {
        match self.get(family, labels) {
            Some(Recorded::Gauge(v)) => *v,
            other => panic!("gauge {family}{labels:?} not reported (found {other:?})"),
        }
    }

    /// A histogram's buckets; panics if it was not reported as a histogram.
    pub fn histogram_value(
        &self,
        family: &str,
        labels: crate::export::Labels<'_>,
    ) -> &crate::export::HistogramSnapshot {
        match self.get(family, labels) {
            Some(Recorded::Histogram(h)) => h,
            other => panic!("histogram {family}{labels:?} not reported (found {other:?})"),
        }
    }

    /// How many values were reported under `family`.
    pub fn count_of(&self, family: &str) -> usize {
        self.values
            .iter()
            .filter(|(f, _, _)| f.name == family)
            .count()
    }

    /// Panics unless every family reported is one of `families` (compared by value).
    pub fn assert_families_in(&self, families: &[&crate::export::Family]) {
        for (f, _, _) in &self.values {
            assert!(
                families.contains(f),
                "family {} was reported but is not in FAMILIES",
                f.name
            );
        }
    }

    fn push(
        &mut self,
        family: &'static crate::export::Family,
        labels: crate::export::Labels<'_>,
        kind: crate::export::MetricType,
        value: Recorded,
    ) {
        assert_eq!(
            family.kind, kind,
            "{} is a {:?} family, reported as a {kind:?}",
            family.name, family.kind
        );
        let labels = owned(labels);
        for (f, l, _) in &self.values {
            if f.name != family.name {
                continue;
            }
            assert!(
                *l != labels,
                "{}{labels:?} was reported twice in one collection",
                family.name
            );
            let names =
                |l: &[(String, String)]| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            assert_eq!(
                names(l),
                names(&labels),
                "{} was reported with different label names",
                family.name
            );
        }
        self.values.push((family, labels, value));
    }
}

fn owned(labels: crate::export::Labels<'_>) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl crate::export::MetricsVisitor for RecordingVisitor {
    fn counter(
        &mut self,
        family: &'static crate::export::Family,
        labels: crate::export::Labels<'_>,
        value: u64,
    ) {
        self.push(
            family,
            labels,
            crate::export::MetricType::Counter,
            Recorded::Counter(value),
        );
    }

    fn gauge(
        &mut self,
        family: &'static crate::export::Family,
        labels: crate::export::Labels<'_>,
        value: f64,
    ) {
        self.push(
            family,
            labels,
            crate::export::MetricType::Gauge,
            Recorded::Gauge(value),
        );
    }

    fn histogram(
        &mut self,
        family: &'static crate::export::Family,
        labels: crate::export::Labels<'_>,
        histogram: &crate::export::HistogramSnapshot,
    ) {
        self.push(
            family,
            labels,
            crate::export::MetricType::Histogram,
            Recorded::Histogram(histogram.clone()),
        );
    }
}
