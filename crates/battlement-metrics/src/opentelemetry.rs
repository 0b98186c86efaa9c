//! OpenTelemetry (feature `opentelemetry`): observable instruments on a user's `Meter`, read
//! through callbacks at each collection.
//!
//! OpenTelemetry creates instruments before any callback runs, so the instruments are built
//! from a list of [`Family`]s: the pattern crates' `FAMILIES` statics (the facade's
//! `battlement::metrics::families()` gathers those of the enabled features) and any of your
//! own. A family not in the
//! list is not exported here (the Prometheus endpoint needs no list).
//!
//! | family type | instrument |
//! |---|---|
//! | counter | `u64` observable counter, named as the family |
//! | gauge | `f64` observable gauge, named as the family |
//! | histogram | OpenTelemetry has no observable histogram: a `u64` observable counter `<name>_count` and an `f64` observable counter `<name>_sum` (the buckets are on the Prometheus endpoint) |
//!
//! Units follow UCUM: `seconds` becomes `s`, `ratio` `1`, a count such as `calls` the
//! annotation `{calls}`. Each value carries the component's `name` attribute and its labels
//! as attributes. Every instrument's callback walks the registry and keeps its own family's
//! values, so a collection walks it once per instrument; the walk reads the components'
//! counters and holds no lock while it does.

use crate::walk::{walk, Sink};
use crate::HEALTH_STATUS;
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricType};
use battlement_health::HealthRegistry;
use opentelemetry::metrics::{AsyncInstrument, Meter, ObservableCounter, ObservableGauge};
use opentelemetry::KeyValue;
use std::fmt;

/// The instruments [`register`] created; the callbacks run for as long as the meter provider
/// lives (dropping this changes nothing).
pub struct Instruments {
    names: Vec<String>,
    _counters: Vec<ObservableCounter<u64>>,
    _sums: Vec<ObservableCounter<f64>>,
    _gauges: Vec<ObservableGauge<f64>>,
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instruments")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Instruments {
    /// The names of the instruments created.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Counter,
    Gauge,
    HistogramCount,
    HistogramSum,
}

struct Observe<'a, T> {
    family: &'static Family,
    want: Want,
    instrument: &'a dyn AsyncInstrument<T>,
}

fn attributes(name: &str, labels: Labels<'_>) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(labels.len() + 1);
    attrs.push(KeyValue::new("name", name.to_owned()));
    attrs.extend(
        labels
            .iter()
            .map(|(k, v)| KeyValue::new(*k, (*v).to_owned())),
    );
    attrs
}

impl<T> Observe<'_, T> {
    fn is(&self, family: &'static Family, want: Want) -> bool {
        self.want == want && family.name == self.family.name
    }
}

impl Sink for Observe<'_, u64> {
    fn counter(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: u64) {
        if self.is(family, Want::Counter) {
            self.instrument.observe(value, &attributes(name, labels));
        }
    }
    fn gauge(&mut self, _: &'static Family, _: &str, _: Labels<'_>, _: f64) {}
    fn histogram(
        &mut self,
        family: &'static Family,
        name: &str,
        labels: Labels<'_>,
        h: &HistogramSnapshot,
    ) {
        if self.is(family, Want::HistogramCount) {
            self.instrument.observe(h.count, &attributes(name, labels));
        }
    }
    fn wants(&self, family: &'static Family) -> bool {
        family.name == self.family.name
    }
}

impl Sink for Observe<'_, f64> {
    fn counter(&mut self, _: &'static Family, _: &str, _: Labels<'_>, _: u64) {}
    fn gauge(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: f64) {
        if self.is(family, Want::Gauge) {
            self.instrument.observe(value, &attributes(name, labels));
        }
    }
    fn histogram(
        &mut self,
        family: &'static Family,
        name: &str,
        labels: Labels<'_>,
        h: &HistogramSnapshot,
    ) {
        if self.is(family, Want::HistogramSum) {
            self.instrument.observe(h.sum, &attributes(name, labels));
        }
    }
    fn wants(&self, family: &'static Family) -> bool {
        family.name == self.family.name
    }
}

fn ucum(unit: &str) -> Option<String> {
    match unit {
        "" => None,
        "seconds" => Some("s".to_owned()),
        "ratio" | "ratios" => Some("1".to_owned()),
        "bytes" => Some("By".to_owned()),
        other => Some(format!("{{{other}}}")),
    }
}

/// Creates observable instruments on `meter` for [`HEALTH_STATUS`] and each of `families`
/// (each name once), whose callbacks read `registry`'s components at every collection.
///
/// ```
/// use battlement_core::export::{Family, MetricsVisitor};
/// use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
/// use battlement_health::HealthRegistry;
/// use opentelemetry::metrics::MeterProvider as _;
/// use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
///
/// static CALLS: Family = Family::counter("battlement_other_calls", "Calls.", "calls");
/// #[derive(Clone)]
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass)
///     }
///     fn export(&self, out: &mut dyn MetricsVisitor) {
///         out.counter(&CALLS, &[("outcome", "success")], 5);
///     }
/// }
/// let health = HealthRegistry::new();
/// health.register(&Db, true).unwrap();
///
/// let exporter = InMemoryMetricExporter::default();
/// let provider = SdkMeterProvider::builder()
///     .with_reader(PeriodicReader::builder(exporter.clone()).build())
///     .build();
/// let instruments = battlement_metrics::opentelemetry::register(&provider.meter("app"), &health, &[&CALLS]);
/// assert!(instruments.names().iter().any(|n| n == "battlement_other_calls"));
/// provider.force_flush().unwrap();
/// let exported = exporter.get_finished_metrics().unwrap();
/// let names: Vec<&str> = exported[0].scope_metrics().flat_map(|s| s.metrics()).map(|m| m.name()).collect();
/// assert!(names.contains(&"battlement_other_calls") && names.contains(&"battlement_health_status"));
/// ```
pub fn register(
    meter: &Meter,
    registry: &HealthRegistry,
    families: &[&'static Family],
) -> Instruments {
    let mut out = Instruments {
        names: Vec::new(),
        _counters: Vec::new(),
        _sums: Vec::new(),
        _gauges: Vec::new(),
    };
    let all = std::iter::once(&HEALTH_STATUS).chain(families.iter().copied());
    for family in all {
        if out.names.iter().any(|n| n == family.name)
            || out
                .names
                .iter()
                .any(|n| n.strip_suffix("_count") == Some(family.name))
        {
            continue;
        }
        let unit = ucum(family.unit);
        match family.kind {
            MetricType::Counter => {
                let registry = registry.clone();
                let mut b = meter
                    .u64_observable_counter(family.name)
                    .with_description(family.help)
                    .with_callback(move |instrument| {
                        walk(
                            &registry,
                            &mut Observe {
                                family,
                                want: Want::Counter,
                                instrument,
                            },
                        );
                    });
                if let Some(u) = unit {
                    b = b.with_unit(u);
                }
                out._counters.push(b.build());
                out.names.push(family.name.to_owned());
            }
            MetricType::Gauge => {
                let registry = registry.clone();
                let mut b = meter
                    .f64_observable_gauge(family.name)
                    .with_description(family.help)
                    .with_callback(move |instrument| {
                        walk(
                            &registry,
                            &mut Observe {
                                family,
                                want: Want::Gauge,
                                instrument,
                            },
                        );
                    });
                if let Some(u) = unit {
                    b = b.with_unit(u);
                }
                out._gauges.push(b.build());
                out.names.push(family.name.to_owned());
            }
            MetricType::Histogram => {
                let count = format!("{}_count", family.name);
                let sum = format!("{}_sum", family.name);
                let r = registry.clone();
                out._counters.push(
                    meter
                        .u64_observable_counter(count.clone())
                        .with_description(family.help)
                        .with_callback(move |instrument| {
                            walk(
                                &r,
                                &mut Observe {
                                    family,
                                    want: Want::HistogramCount,
                                    instrument,
                                },
                            );
                        })
                        .build(),
                );
                let r = registry.clone();
                let mut b = meter
                    .f64_observable_counter(sum.clone())
                    .with_description(family.help)
                    .with_callback(move |instrument| {
                        walk(
                            &r,
                            &mut Observe {
                                family,
                                want: Want::HistogramSum,
                                instrument,
                            },
                        );
                    });
                if let Some(u) = unit {
                    b = b.with_unit(u);
                }
                out._sums.push(b.build());
                out.names.push(count);
                out.names.push(sum);
            }
            _ => {}
        }
    }
    out
}
