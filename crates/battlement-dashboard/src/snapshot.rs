//! Snapshots: every registered component read at one moment, as the page draws it.

use crate::control::{Action, Control};
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
use battlement_core::{ComponentKind, HealthStatus};
use battlement_health::HealthRegistry;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use tokio::time::Instant;

/// How many samples a component's sparkline keeps: 60 (a minute at the default interval).
pub const SPARK_SAMPLES: usize = 60;

/// Every registered component read at one moment, with the aggregate health: what the page
/// draws, sent over the event stream as the `snapshot` event (JSON).
///
/// ```
/// use battlement_dashboard::Snapshot;
///
/// let snap = Snapshot::default();
/// let json = serde_json::to_value(&snap).unwrap();
/// assert_eq!(json["status"], "pass");
/// assert!(json["components"].as_array().unwrap().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Snapshot {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The sampling interval, in milliseconds (a sparkline spans [`SPARK_SAMPLES`] of them).
    pub interval_ms: u64,
    /// The registry's `service_id`, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// The aggregate health (`pass`, `warn`, `fail`), as the health endpoint reports it.
    pub status: HealthStatus,
    /// How many components are in each status.
    pub counts: Counts,
    /// Every registered component, in registration order.
    pub components: Vec<ComponentView>,
}

/// How many components are in each (own) status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Counts {
    /// Components registered.
    pub total: usize,
    /// Passing.
    pub pass: usize,
    /// Warning.
    pub warn: usize,
    /// Failing.
    pub fail: usize,
}

/// One component in a [`Snapshot`].
///
/// `metrics` are the measurements of its health snapshot (a breaker's `failure_rate`,
/// `slow_call_rate`, `calls_rejected` and `retry_after`, a bulkhead's `in_flight`, `queued`
/// and `free_permits`, …). `rate` is chosen as follows: the per-second rate, over the last
/// sample interval, of the first counter family the component
/// [exports](battlement_core::HealthSource::export), summed over its labels (a breaker's calls
/// by every outcome, rejections included; a bulkhead's accepted calls; a retry policy's calls;
/// a kill switch's rejected calls); `spark` is the last [`SPARK_SAMPLES`] of it, oldest first.
///
/// ```
/// use battlement_dashboard::ComponentView;
///
/// let view = ComponentView::default();
/// assert_eq!(view.metric("failure_rate"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentView {
    /// Its kind.
    pub kind: ComponentKind,
    /// Its name.
    pub name: String,
    /// Its state, in its own words (`closed`, `open`, `saturated`, `halted`, …).
    pub state: String,
    /// Its own status.
    pub status: HealthStatus,
    /// What it contributes to the aggregate (a non-critical `fail` counts as `warn`).
    pub effective: HealthStatus,
    /// Whether it is critical.
    pub critical: bool,
    /// Its message, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its measurements, by name.
    pub metrics: BTreeMap<String, f64>,
    /// Calls (or what its first counter counts) per second over the last interval.
    pub rate: f64,
    /// The last [`SPARK_SAMPLES`] rates, oldest first.
    pub spark: Vec<f64>,
    /// The actions the page may offer on it (a control handle was given for it).
    pub actions: Vec<Action>,
}

impl Default for ComponentView {
    fn default() -> Self {
        ComponentView {
            kind: ComponentKind::Other,
            name: String::new(),
            state: String::new(),
            status: HealthStatus::Pass,
            effective: HealthStatus::Pass,
            critical: false,
            message: None,
            metrics: BTreeMap::new(),
            rate: 0.0,
            spark: Vec::new(),
            actions: Vec::new(),
        }
    }
}

impl ComponentView {
    /// The measurement named `name`, if it reported one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }
}

/// Sums the values of the first counter family a component exports.
#[derive(Default)]
struct FirstCounter {
    family: Option<&'static str>,
    total: u64,
}

impl MetricsVisitor for FirstCounter {
    fn counter(&mut self, family: &'static Family, _: Labels<'_>, value: u64) {
        match self.family {
            None => {
                self.family = Some(family.name);
                self.total = value;
            }
            Some(name) if name == family.name => self.total = self.total.wrapping_add(value),
            Some(_) => {}
        }
    }
    fn gauge(&mut self, _: &'static Family, _: Labels<'_>, _: f64) {}
    fn histogram(&mut self, _: &'static Family, _: Labels<'_>, _: &HistogramSnapshot) {}
}

/// What the sampler remembers of a component between samples.
#[derive(Debug, Default)]
pub(crate) struct Track {
    last: Option<(u64, Instant)>,
    spark: VecDeque<f64>,
    seen: bool,
}

/// Reads the registry now: every component's snapshot (through [`HealthRegistry::report`]) and
/// the total of its first counter family (through [`HealthRegistry::for_each_component`] and
/// its export). With `tracks`, the rates are measured against the previous sample and pushed
/// onto each sparkline; without, rates are 0 and sparklines empty.
pub(crate) fn take(
    registry: &HealthRegistry,
    interval: std::time::Duration,
    controls: &[Control],
    tracks: Option<&mut HashMap<(ComponentKind, String), Track>>,
) -> Snapshot {
    let report = registry.report();
    let mut totals: HashMap<(ComponentKind, String), u64> = HashMap::new();
    registry.for_each_component(|c| {
        let mut first = FirstCounter::default();
        c.export(&mut first);
        if first.family.is_some() {
            totals.insert((c.kind(), c.name().to_owned()), first.total);
        }
    });
    let now = Instant::now();
    let mut tracks = tracks;
    if let Some(tracks) = tracks.as_deref_mut() {
        for t in tracks.values_mut() {
            t.seen = false;
        }
    }
    let components = report
        .components
        .iter()
        .map(|c| {
            let s = &c.snapshot;
            let key = (s.kind, s.name.clone());
            let total = totals.get(&key).copied();
            let (rate, spark) = match tracks.as_deref_mut() {
                Some(tracks) => {
                    let track = tracks.entry(key).or_default();
                    track.seen = true;
                    let rate = match (track.last, total) {
                        (Some((before, at)), Some(total)) => {
                            let dt = now.saturating_duration_since(at).as_secs_f64();
                            if dt > 0.0 && total >= before {
                                (total - before) as f64 / dt
                            } else {
                                0.0
                            }
                        }
                        _ => 0.0,
                    };
                    track.last = total.map(|t| (t, now));
                    if track.spark.len() == SPARK_SAMPLES {
                        track.spark.pop_front();
                    }
                    track.spark.push_back(rate);
                    (rate, track.spark.iter().copied().collect())
                }
                None => (0.0, Vec::new()),
            };
            let actions = controls
                .iter()
                .find(|k| k.kind() == s.kind && k.name() == s.name)
                .map(|k| k.actions().to_vec())
                .unwrap_or_default();
            ComponentView {
                kind: s.kind,
                name: s.name.clone(),
                state: s.state.to_string(),
                status: s.status,
                effective: c.effective,
                critical: c.critical,
                message: s.message.clone(),
                metrics: s
                    .metrics
                    .iter()
                    .map(|m| (m.name.to_string(), m.value))
                    .collect(),
                rate,
                spark,
                actions,
            }
        })
        .collect();
    if let Some(tracks) = tracks {
        // Forget components no longer registered.
        tracks.retain(|_, t| t.seen);
    }
    Snapshot {
        time_ms: crate::event::now_ms(),
        interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        service_id: report.service_id.clone(),
        status: report.status,
        counts: Counts {
            total: report.counts.total,
            pass: report.counts.pass,
            warn: report.counts.warn,
            fail: report.counts.fail,
        },
        components,
    }
}
