//! Metrics export, pull-based: what a component tells an exporter when it is scraped.
//!
//! Components keep their counts in striped cells that their calls write; nothing on a call path
//! knows an exporter exists. At collection time an exporter (the Prometheus endpoint, the
//! OpenTelemetry callbacks, the `metrics`-facade ticker) walks the registered components and
//! asks each to [`export`](crate::HealthSource::export) itself into a [`MetricsVisitor`]: the
//! component reads its cells and reports each value once, under a [`Family`] (a metric's name,
//! help, unit and type, a `static` of the crate that reports it) and a few labels whose values
//! come from fixed sets (outcomes, states, reasons). The exporter adds the component's `name`
//! label itself, so label cardinality is bounded by construction: the components a program
//! builds times the fixed sets.
//!
//! Durations are exported in seconds, as Prometheus and OpenTelemetry expect.
//!
//! ```
//! use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
//!
//! static CALLS: Family = Family::counter("battlement_example_calls", "Calls, by outcome.", "calls");
//! static IN_FLIGHT: Family = Family::gauge("battlement_example_in_flight", "Calls running now.", "calls");
//!
//! /// An exporter that prints what it is told.
//! struct Lines(Vec<String>);
//! impl MetricsVisitor for Lines {
//!     fn counter(&mut self, family: &'static Family, labels: Labels<'_>, value: u64) {
//!         self.0.push(format!("{}{:?} {value}", family.name, labels));
//!     }
//!     fn gauge(&mut self, family: &'static Family, labels: Labels<'_>, value: f64) {
//!         self.0.push(format!("{}{:?} {value}", family.name, labels));
//!     }
//!     fn histogram(&mut self, family: &'static Family, labels: Labels<'_>, h: &HistogramSnapshot) {
//!         self.0.push(format!("{}{:?} count={}", family.name, labels, h.count));
//!     }
//! }
//!
//! let mut out = Lines(Vec::new());
//! out.counter(&CALLS, &[("outcome", "success")], 3);
//! out.gauge(&IN_FLIGHT, &[], 1.0);
//! assert_eq!(out.0[0], r#"battlement_example_calls[("outcome", "success")] 3"#);
//! ```

use crate::stripe::{CachePadded, Stripes};
use crate::sync::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Labels of one value beyond the component's own `name` (which the exporter adds): pairs of a
/// label name and a value from a fixed set.
pub type Labels<'a> = &'a [(&'static str, &'a str)];

/// What a family's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricType {
    /// A count that only grows (Prometheus adds `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution over fixed buckets ([`HistogramSnapshot`]).
    Histogram,
}

/// A metric family: its name, help text, unit and type. Components declare theirs as `static`s
/// and report values under them; the documented table of every family is the facade's
/// `battlement::metrics` page.
///
/// Names are snake_case, start with `battlement_` followed by the component kind
/// (`battlement_circuit_breaker_calls`), and carry no `_total` suffix (an exporter that needs one
/// adds it); a family's unit is a plural noun (`calls`, `seconds`, `permits`), or `""`.
///
/// ```
/// use battlement_core::export::{Family, MetricType};
///
/// static STATE: Family = Family::gauge("battlement_circuit_breaker_state", "1 for the state it is in.", "");
/// assert_eq!(STATE.kind, MetricType::Gauge);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Family {
    /// The metric's name.
    pub name: &'static str,
    /// One sentence on what it measures.
    pub help: &'static str,
    /// Its unit, plural (`calls`, `seconds`), or `""`.
    pub unit: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
}

impl Family {
    /// A counter family.
    pub const fn counter(name: &'static str, help: &'static str, unit: &'static str) -> Self {
        Family {
            name,
            help,
            unit,
            kind: MetricType::Counter,
        }
    }

    /// A gauge family.
    pub const fn gauge(name: &'static str, help: &'static str, unit: &'static str) -> Self {
        Family {
            name,
            help,
            unit,
            kind: MetricType::Gauge,
        }
    }

    /// A histogram family (its unit is normally `seconds`).
    pub const fn histogram(name: &'static str, help: &'static str, unit: &'static str) -> Self {
        Family {
            name,
            help,
            unit,
            kind: MetricType::Histogram,
        }
    }
}

/// Takes the values a component reports at collection time. Exporters implement it; components
/// call it from [`HealthSource::export`](crate::HealthSource::export).
///
/// A component reports each (family, labels) once per collection, and always reports the same
/// family with the same label names.
pub trait MetricsVisitor {
    /// A counter's value (cumulative since the component was built).
    fn counter(&mut self, family: &'static Family, labels: Labels<'_>, value: u64);
    /// A gauge's value now.
    fn gauge(&mut self, family: &'static Family, labels: Labels<'_>, value: f64);
    /// A histogram's buckets now (cumulative since the component was built).
    fn histogram(
        &mut self,
        family: &'static Family,
        labels: Labels<'_>,
        histogram: &HistogramSnapshot,
    );
}

/// Bounded buckets of a [`Histogram`]; a last, unbounded one (`+Inf`) takes the rest.
const BOUNDED: usize = 21;

/// Buckets, including the unbounded last one.
const BUCKETS: usize = BOUNDED + 1;

/// Bucket `i` holds durations of at most 2^(i + FIRST_SHIFT) ns: the first about 65.5 µs.
const FIRST_SHIFT: u32 = 16;

/// The upper bounds, in seconds, of a [`Histogram`]'s bounded buckets: 2^(i+16) ns for `i` in
/// 0..21, from about 65.5 µs to about 68.7 s. Powers of two in nanoseconds let a recording find
/// its bucket with one leading-zeros count instead of a search.
pub static HISTOGRAM_BOUNDS: [f64; BOUNDED] = {
    let mut bounds = [0.0; BOUNDED];
    let mut i = 0;
    while i < BOUNDED {
        bounds[i] = (1u64 << (i as u32 + FIRST_SHIFT)) as f64 / 1e9;
        i += 1;
    }
    bounds
};

#[derive(Debug)]
struct Cell {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

/// A latency histogram for call paths: fixed power-of-two buckets in striped cells, so recording
/// takes no lock, allocates nothing and writes only the calling thread's cell (a leading-zeros
/// count, an add to one bucket and an add to the sum); a collection merges the cells into a
/// [`HistogramSnapshot`].
///
/// Bucket `i` counts durations of at most 2^(i+16) ns (the first about 65.5 µs, the last
/// bounded one about 68.7 s; [`HISTOGRAM_BOUNDS`] gives them in seconds).
///
/// ```
/// use battlement_core::export::Histogram;
/// use std::time::Duration;
///
/// let h = Histogram::new();
/// h.record(Duration::from_millis(3));
/// h.record(Duration::from_millis(40));
/// let s = h.snapshot();
/// assert_eq!(s.count, 2);
/// assert!((s.sum - 0.043).abs() < 1e-9);
/// // cumulative: 3 ms falls in the bucket bounded by 2^22 ns (about 4.2 ms)
/// let le_4ms = s.bounds().iter().position(|&b| b > 0.004).unwrap();
/// assert_eq!(s.cumulative()[le_4ms], 1);
/// assert_eq!(*s.cumulative().last().unwrap(), 2);
/// ```
#[derive(Debug)]
pub struct Histogram {
    cells: Stripes<CachePadded<Cell>>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram with one cell per stripe.
    pub fn new() -> Self {
        Histogram {
            cells: Stripes::new(|_| Cell {
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Records one duration.
    #[inline]
    pub fn record(&self, duration: Duration) {
        self.record_nanos(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one duration given in nanoseconds.
    #[inline]
    pub fn record_nanos(&self, nanos: u64) {
        let cell = self.cells.local();
        cell.buckets[bucket_of(nanos)].fetch_add(1, Relaxed);
        cell.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The buckets merged over every cell.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0u64; BUCKETS];
        let mut sum_nanos = 0u64;
        for cell in &self.cells {
            for (total, bucket) in counts.iter_mut().zip(&cell.buckets) {
                *total += bucket.load(Relaxed);
            }
            sum_nanos = sum_nanos.wrapping_add(cell.sum_nanos.load(Relaxed));
        }
        HistogramSnapshot {
            count: counts.iter().sum(),
            sum: sum_nanos as f64 / 1e9,
            counts,
        }
    }
}

/// The bucket of a duration of `nanos`: the smallest `i` with `nanos <= 2^(i+16)`, or the last.
#[inline]
fn bucket_of(nanos: u64) -> usize {
    // ceil(log2(nanos)) for nanos >= 2; 0 for 0 and 1.
    let log = 64 - nanos.saturating_sub(1).leading_zeros();
    (log.saturating_sub(FIRST_SHIFT) as usize).min(BUCKETS - 1)
}

/// A [`Histogram`] merged at one collection: per-bucket counts, their total and the sum of the
/// recorded values in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
    counts: [u64; BUCKETS],
}

impl HistogramSnapshot {
    /// The upper bound of each bounded bucket, in seconds (2^(i+16) ns); the last bucket,
    /// beyond them, is unbounded (`+Inf`).
    pub fn bounds(&self) -> &'static [f64; BOUNDED] {
        &HISTOGRAM_BOUNDS
    }

    /// The count in each bucket (not cumulative), the unbounded one last.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Cumulative counts, as Prometheus's `le` buckets: entry `i` counts the values at most
    /// `bounds()[i]`, the last entry (`+Inf`) all of them.
    pub fn cumulative(&self) -> [u64; BUCKETS] {
        let mut running = 0;
        self.counts.map(|c| {
            running += c;
            running
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lands_in_the_first_bucket_whose_bound_holds_it() {
        let bounds_ns: Vec<u64> = (0..BUCKETS as u32 - 1)
            .map(|i| 1u64 << (i + FIRST_SHIFT))
            .collect();
        for nanos in [
            0,
            1,
            2,
            65_535,
            65_536,
            65_537,
            1_000_000,
            1 << 30,
            (1 << 36) + 1,
            u64::MAX,
        ] {
            let expected = bounds_ns
                .iter()
                .position(|&b| nanos <= b)
                .unwrap_or(BUCKETS - 1);
            assert_eq!(bucket_of(nanos), expected, "{nanos} ns");
        }
    }

    #[test]
    fn snapshots_merge_every_thread_cell() {
        let h = Histogram::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        h.record(Duration::from_micros(100));
                    }
                });
            }
        });
        let snap = h.snapshot();
        assert_eq!(snap.count, 4000);
        assert!((snap.sum - 0.4).abs() < 1e-9);
        // 100 µs is above 2^16 ns and at most 2^17 ns: the second bucket
        assert_eq!(snap.counts()[1], 4000);
    }
}
