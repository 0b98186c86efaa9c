//! The numbers a run is summed up by.

use crate::record::{Series, FINE_PER_SECOND};
use crate::Config;
use std::ops::Range;
use std::time::Duration;

/// How long "after" lasts: the window after capacity returns that the after-numbers cover.
pub const AFTER: Duration = Duration::from_secs(60);
/// How long the spike window lasts, from the drop: the crash fails the calls in service at
/// once, and their first retries (the first backoff later) either arrive together or, with
/// jitter, spread out.
pub const SPIKE_WINDOW: Duration = Duration::from_secs(2);
/// How many consecutive healthy seconds count as recovered.
pub const HEALTHY_SECONDS: usize = 10;

/// A run summed up: during the capacity drop, and in the [`AFTER`] window once it returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Offered load: requests per second sent.
    pub offered: f64,
    /// Attempts at the servers ÷ requests sent, during the drop.
    pub amplification_drop: f64,
    /// Attempts at the servers ÷ requests sent, after.
    pub amplification_after: f64,
    /// Requests that succeeded per second, during the drop.
    pub goodput_drop: f64,
    /// Requests that succeeded per second, after.
    pub goodput_after: f64,
    /// The share of requests sent during the drop that succeeded.
    pub success_drop: f64,
    /// The share of requests sent after that succeeded.
    pub success_after: f64,
    /// Latency of the successful requests sent before the drop: median and 99th percentile.
    pub latency_before: (Option<Duration>, Option<Duration>),
    /// Latency of the successful requests sent during the drop.
    pub latency_drop: (Option<Duration>, Option<Duration>),
    /// Latency of the successful requests sent after.
    pub latency_after: (Option<Duration>, Option<Duration>),
    /// The time from capacity's return to the first of [`HEALTHY_SECONDS`] healthy seconds in
    /// a row (at least 99 % of the requests sent that second succeed, with a 99th percentile
    /// latency within twice the one before the drop); `None` if the run ends first.
    pub recovery: Option<Duration>,
    /// The most attempts in one 10 ms bin ÷ the mean per bin, over the first
    /// [`SPIKE_WINDOW`] of the drop: how synchronized the retries are.
    pub spike: f64,
}

fn seconds(d: Duration) -> usize {
    d.as_secs() as usize
}

fn sum(v: &[u64], r: Range<usize>) -> u64 {
    let end = r.end.min(v.len());
    v[r.start.min(end)..end].iter().sum()
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn percentiles(series: &Series, r: Range<usize>) -> (Option<Duration>, Option<Duration>) {
    let end = r.end.min(series.latency_ms.len());
    let mut all: Vec<u32> = series.latency_ms[r.start.min(end)..end]
        .iter()
        .flatten()
        .copied()
        .collect();
    (percentile(&mut all, 0.5), percentile(&mut all, 0.99))
}

/// The `q` quantile (nearest rank) of `values`, reordering them.
pub(crate) fn percentile(values: &mut [u32], q: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    let (_, v, _) = values.select_nth_unstable(rank);
    Some(Duration::from_millis(u64::from(*v)))
}

impl Summary {
    /// Sums a run up.
    pub fn new(config: &Config, series: &Series) -> Self {
        let f = config.failure;
        let drop = seconds(f.start)..seconds(f.start + f.length);
        let after = drop.end..drop.end + seconds(AFTER);
        let before = seconds(f.start).min(10)..seconds(f.start);
        let span = |r: &Range<usize>| (r.end.min(series.requests.len()) - r.start) as f64;
        let latency_before = percentiles(series, before.clone());
        let healthy_p99 = latency_before.1.map(|p| p * 2);
        let healthy = |s: usize| {
            let ok = series.succeeded_by_start[s];
            let failed = series.failed_by_start[s];
            let mut lat = series.latency_ms[s].clone();
            ratio(ok, ok + failed) >= 0.99
                && match (percentile(&mut lat, 0.99), healthy_p99) {
                    (Some(p), Some(limit)) => p <= limit,
                    _ => false,
                }
        };
        // The last seconds' requests may still be running when the run ends: leave out the
        // last timeout's worth.
        let last = series
            .requests
            .len()
            .saturating_sub(seconds(config.timeout) * config.max_attempts as usize + 5);
        let mut recovery = None;
        let mut run = 0;
        for s in drop.end..last {
            if healthy(s) {
                run += 1;
                if run == HEALTHY_SECONDS {
                    let first = s + 1 - HEALTHY_SECONDS;
                    recovery = Some(Duration::from_secs((first - drop.end) as u64));
                    break;
                }
            } else {
                run = 0;
            }
        }
        let fine = drop.start * FINE_PER_SECOND
            ..(drop.start + seconds(SPIKE_WINDOW)).min(drop.end) * FINE_PER_SECOND;
        let fine_bins = &series.attempts_fine[fine];
        let peak = fine_bins.iter().copied().max().unwrap_or(0);
        let mean = fine_bins.iter().sum::<u64>() as f64 / fine_bins.len().max(1) as f64;
        Summary {
            offered: config.offered(),
            amplification_drop: ratio(
                sum(&series.attempts, drop.clone()),
                sum(&series.requests, drop.clone()),
            ),
            amplification_after: ratio(
                sum(&series.attempts, after.clone()),
                sum(&series.requests, after.clone()),
            ),
            goodput_drop: sum(&series.goodput, drop.clone()) as f64 / span(&drop),
            goodput_after: sum(&series.goodput, after.clone()) as f64 / span(&after),
            success_drop: ratio(
                sum(&series.succeeded_by_start, drop.clone()),
                sum(&series.requests, drop.clone()),
            ),
            success_after: ratio(
                sum(&series.succeeded_by_start, after.clone()),
                sum(&series.requests, after.clone()),
            ),
            latency_before,
            latency_drop: percentiles(series, drop),
            latency_after: percentiles(series, after),
            recovery,
            spike: if mean > 0.0 { peak as f64 / mean } else { 0.0 },
        }
    }
}
