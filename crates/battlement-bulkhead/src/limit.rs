//! The adaptive limit algorithms: AIMD, Vegas and Gradient2, as Netflix's `concurrency-limits`
//! defines them, each fed one aggregated sample per window (its `WindowedLimit`).

use std::fmt;
use std::time::Duration;

/// An adaptive concurrency limit algorithm, for
/// [`BulkheadBuilder::adaptive`](crate::BulkheadBuilder::adaptive).
///
/// Each algorithm is the one of Netflix's
/// [`concurrency-limits`](https://github.com/Netflix/concurrency-limits), with its settings and
/// its defaults, and, as there with its `WindowedLimit`, is fed one sample per *window*: the
/// window's average latency (RTT), the calls in flight when the window closed and whether any
/// call in it was dropped (failed). See [`AdaptiveBuilder`](crate::AdaptiveBuilder) for the
/// window.
///
/// - [`Limit::aimd`]: loss based. Grows by one per window while the limit is in use, and backs
///   off by a ratio when a call is dropped or the window's latency passes a timeout.
/// - [`Limit::vegas`]: delay based (TCP Vegas). Estimates the queue as
///   `limit × (1 − rtt_noload / rtt)` and grows while it is small, shrinks while it is large.
/// - [`Limit::gradient2`]: delay based. Tracks a long-term average latency and moves the limit
///   by the gradient `long / short` (between 0.5 and 1) plus a fixed queue allowance, smoothed.
///
/// ```
/// use battlement_bulkhead::Limit;
/// use std::time::Duration;
///
/// let aimd = Limit::aimd().min_limit(1).max_limit(100).timeout(Duration::from_millis(250));
/// let vegas = Limit::vegas().initial_limit(10).smoothing(0.5);
/// let gradient = Limit::gradient2().queue_size(2).long_window(100);
/// let limits: [Limit; 3] = [aimd.into(), vegas.into(), gradient.into()];
/// assert_eq!(limits[1].initial(), 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Limit {
    /// Additive increase, multiplicative decrease.
    Aimd(Aimd),
    /// TCP Vegas.
    Vegas(Vegas),
    /// Netflix's Gradient2.
    Gradient2(Gradient2),
}

impl Limit {
    /// AIMD with Netflix's defaults: limit 20 (initial and minimum), at most 200, back-off
    /// ratio 0.9, timeout 5 s.
    pub fn aimd() -> Aimd {
        Aimd {
            bounds: Bounds::new(20, 20, 200),
            backoff_ratio: 0.9,
            timeout: Duration::from_secs(5),
        }
    }

    /// Vegas with Netflix's defaults: initial limit 20, at least 1, at most 1000, smoothing 1.0,
    /// probe multiplier 30, and `alpha`, `beta`, `threshold` and the increase and decrease
    /// steps from `log10` of the limit (`3·log10`, `6·log10`, `log10`, each at least 1).
    pub fn vegas() -> Vegas {
        Vegas {
            bounds: Bounds::new(20, 1, 1000),
            alpha: None,
            beta: None,
            threshold: None,
            smoothing: 1.0,
            probe_multiplier: 30,
            seed: 0x5eed,
        }
    }

    /// Gradient2 with Netflix's defaults: limit 20 (initial and minimum), at most 200,
    /// smoothing 0.2, queue size 4, long window 600 samples.
    pub fn gradient2() -> Gradient2 {
        Gradient2 {
            bounds: Bounds::new(20, 20, 200),
            smoothing: 0.2,
            queue_size: 4,
            long_window: 600,
        }
    }

    /// The limit it starts from.
    pub fn initial(&self) -> usize {
        self.bounds().initial
    }

    /// The algorithm's name (`aimd`, `vegas`, `gradient2`).
    pub fn algorithm(&self) -> &'static str {
        match self {
            Limit::Aimd(_) => "aimd",
            Limit::Vegas(_) => "vegas",
            Limit::Gradient2(_) => "gradient2",
        }
    }

    fn bounds(&self) -> &Bounds {
        match self {
            Limit::Aimd(l) => &l.bounds,
            Limit::Vegas(l) => &l.bounds,
            Limit::Gradient2(l) => &l.bounds,
        }
    }

    /// The first invalid setting: (setting, value, why).
    pub(crate) fn invalid(&self) -> Option<(&'static str, String, &'static str)> {
        let b = self.bounds();
        if b.min == 0 {
            return Some(("min_limit", b.min.to_string(), "must be at least 1"));
        }
        if b.max < b.min {
            return Some(("max_limit", b.max.to_string(), "must be at least min_limit"));
        }
        if b.max > crate::permit::MAX_PERMITS {
            return Some(("max_limit", b.max.to_string(), "must be at most 4294967295"));
        }
        if b.initial < b.min || b.initial > b.max {
            return Some((
                "initial_limit",
                b.initial.to_string(),
                "must be between min_limit and max_limit",
            ));
        }
        let unit = |x: f64| x > 0.0 && x <= 1.0;
        match self {
            Limit::Aimd(l) => {
                if !(l.backoff_ratio >= 0.5 && l.backoff_ratio < 1.0) {
                    return Some((
                        "backoff_ratio",
                        l.backoff_ratio.to_string(),
                        "must be in [0.5, 1)",
                    ));
                }
                if l.timeout.is_zero() {
                    return Some((
                        "timeout",
                        format!("{:?}", l.timeout),
                        "must be greater than zero",
                    ));
                }
            }
            Limit::Vegas(l) => {
                if !unit(l.smoothing) {
                    return Some(("smoothing", l.smoothing.to_string(), "must be in (0, 1]"));
                }
                if l.probe_multiplier == 0 {
                    return Some(("probe_multiplier", "0".into(), "must be at least 1"));
                }
                if let (Some(a), Some(b)) = (l.alpha, l.beta) {
                    if b < a {
                        return Some(("beta", b.to_string(), "must be at least alpha"));
                    }
                }
            }
            Limit::Gradient2(l) => {
                if !unit(l.smoothing) {
                    return Some(("smoothing", l.smoothing.to_string(), "must be in (0, 1]"));
                }
                if l.long_window == 0 {
                    return Some(("long_window", "0".into(), "must be at least 1"));
                }
            }
        }
        None
    }
}

/// The limit's bounds, shared by every algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bounds {
    initial: usize,
    min: usize,
    max: usize,
}

impl Bounds {
    const fn new(initial: usize, min: usize, max: usize) -> Self {
        Bounds { initial, min, max }
    }

    fn clamp(&self, limit: f64) -> f64 {
        limit.clamp(self.min as f64, self.max as f64)
    }
}

macro_rules! bounds_methods {
    () => {
        /// The limit it starts from.
        pub fn initial_limit(mut self, limit: usize) -> Self {
            self.bounds.initial = limit;
            self
        }

        /// The lowest the limit goes (at least 1).
        pub fn min_limit(mut self, limit: usize) -> Self {
            self.bounds.min = limit;
            self
        }

        /// The highest the limit goes.
        pub fn max_limit(mut self, limit: usize) -> Self {
            self.bounds.max = limit;
            self
        }
    };
}

/// AIMD settings; made by [`Limit::aimd`].
///
/// Per window: if a call was dropped, or the window's average latency is above
/// [`timeout`](Self::timeout), the limit becomes `floor(limit × backoff_ratio)`; else, if at
/// least half the limit is in use, it grows by one.
///
/// ```
/// use battlement_bulkhead::{Bulkhead, Limit};
/// use std::time::Duration;
///
/// let b = Bulkhead::builder("db")
///     .adaptive(Limit::aimd().initial_limit(10).min_limit(2).backoff_ratio(0.8).timeout(Duration::from_millis(100)))
///     .build()
///     .unwrap();
/// assert_eq!(b.limit(), 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    bounds: Bounds,
    backoff_ratio: f64,
    timeout: Duration,
}

impl Aimd {
    bounds_methods!();

    /// What the limit is multiplied by on a drop (default 0.9; in `[0.5, 1)`).
    pub fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// A window whose average latency is above this counts as a drop (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Vegas settings; made by [`Limit::vegas`].
///
/// Per window, with `rtt_noload` the lowest window latency seen (re-probed every
/// `probe_multiplier × limit` windows, with a seeded jitter of ×0.5–1) and
/// `queue = ceil(limit × (1 − rtt_noload / rtt))`: a drop shrinks the limit; else, while less
/// than half the limit is in use, it stays; else it grows by `beta` if `queue <= threshold`, by
/// the increase step if `queue < alpha`, shrinks by the decrease step if `queue > beta`, and
/// otherwise stays. The new limit is smoothed: `limit + smoothing × (new − limit)`.
///
/// ```
/// use battlement_bulkhead::Limit;
///
/// let v = Limit::vegas().alpha(2).beta(4).threshold(1).probe_multiplier(50).seed(7);
/// # let _ = v;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Vegas {
    bounds: Bounds,
    alpha: Option<u32>,
    beta: Option<u32>,
    threshold: Option<u32>,
    smoothing: f64,
    probe_multiplier: u32,
    seed: u64,
}

impl Vegas {
    bounds_methods!();

    /// A fixed `alpha`: below this estimated queue the limit grows by the increase step
    /// (default `3 × log10(limit)`, at least 3).
    pub fn alpha(mut self, alpha: u32) -> Self {
        self.alpha = Some(alpha);
        self
    }

    /// A fixed `beta`: above this estimated queue the limit shrinks; at or below `threshold` it
    /// grows by `beta` (default `6 × log10(limit)`, at least 6).
    pub fn beta(mut self, beta: u32) -> Self {
        self.beta = Some(beta);
        self
    }

    /// A fixed `threshold`: at or below this estimated queue the limit grows by `beta`
    /// (default `log10(limit)`, at least 1).
    pub fn threshold(mut self, threshold: u32) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// How far each step moves the limit towards its new value, in `(0, 1]` (default 1.0).
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Re-probe the no-load latency every `multiplier × limit` windows, jittered (default 30).
    pub fn probe_multiplier(mut self, multiplier: u32) -> Self {
        self.probe_multiplier = multiplier;
        self
    }

    /// The seed of the probe jitter (default fixed, so runs repeat).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// Gradient2 settings; made by [`Limit::gradient2`].
///
/// Per window, with `short` the window's latency and `long` an exponential average of window
/// latencies over [`long_window`](Self::long_window) windows (a plain average over the first
/// ten; cut by 10 % whenever it is more than twice `short`): while less than half the limit is
/// in use it stays; else `gradient = clamp(long / short, 0.5, 1)`, and the limit becomes
/// `limit + smoothing × (limit × gradient + queue_size − limit)`.
///
/// Gradient2 learns its baseline from the latencies it sees: started under a load that already
/// queues, it takes that latency for normal. Let it see some light traffic first.
///
/// ```
/// use battlement_bulkhead::Limit;
///
/// let g = Limit::gradient2().min_limit(1).smoothing(0.5).queue_size(2).long_window(100);
/// # let _ = g;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient2 {
    bounds: Bounds,
    smoothing: f64,
    queue_size: u32,
    long_window: u32,
}

impl Gradient2 {
    bounds_methods!();

    /// How far each step moves the limit towards its new value, in `(0, 1]` (default 0.2).
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// How much the limit may grow per window while latency is at its baseline (default 4).
    pub fn queue_size(mut self, size: u32) -> Self {
        self.queue_size = size;
        self
    }

    /// Windows the long-term latency averages over (default 600).
    pub fn long_window(mut self, windows: u32) -> Self {
        self.long_window = windows;
        self
    }
}

impl From<Aimd> for Limit {
    fn from(l: Aimd) -> Self {
        Limit::Aimd(l)
    }
}

impl From<Vegas> for Limit {
    fn from(l: Vegas) -> Self {
        Limit::Vegas(l)
    }
}

impl From<Gradient2> for Limit {
    fn from(l: Gradient2) -> Self {
        Limit::Gradient2(l)
    }
}

/// One window's aggregate: what an algorithm decides from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Average latency of the window's samples, in nanoseconds.
    pub(crate) rtt: f64,
    /// Calls in flight when the window closed.
    pub(crate) inflight: usize,
    /// Whether a call in the window was dropped.
    pub(crate) dropped: bool,
}

/// `max(1, floor(log10(x)))`, Netflix's `Log10RootFunction`.
fn log10(x: f64) -> f64 {
    x.max(1.0).log10().floor().max(1.0)
}

/// An algorithm with its state.
pub(crate) struct Algorithm {
    limit: Limit,
    estimate: f64,
    /// Vegas: the no-load latency; Gradient2: the long-term latency; AIMD: the lowest window
    /// latency (reported only). 0 before the first window.
    baseline: f64,
    /// Gradient2's warm-up count; Vegas's windows since the last probe.
    count: u64,
    /// Vegas's jitter of the next probe, and its generator.
    jitter: f64,
    rng: u64,
}

impl fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Algorithm")
            .field("limit", &self.limit.algorithm())
            .field("estimate", &self.estimate)
            .field("baseline", &self.baseline)
            .finish()
    }
}

impl Algorithm {
    pub(crate) fn new(limit: Limit) -> Self {
        let rng = match &limit {
            Limit::Vegas(v) => v.seed | 1,
            _ => 1,
        };
        let mut a = Algorithm {
            estimate: limit.initial() as f64,
            limit,
            baseline: 0.0,
            count: 0,
            jitter: 1.0,
            rng,
        };
        a.jitter = a.next_jitter();
        a
    }

    /// A jitter in `[0.5, 1)` from a xorshift generator.
    fn next_jitter(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        ((x >> 11) as f64 / (1u64 << 53) as f64).mul_add(0.5, 0.5)
    }

    /// The limit now (fractional).
    pub(crate) fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The baseline latency in nanoseconds (0 before the first window).
    pub(crate) fn baseline(&self) -> f64 {
        self.baseline
    }

    /// Takes new settings (a reload). The same algorithm keeps what it learned (the estimate,
    /// clamped to the new bounds, the baseline, the counts); another one starts afresh from the
    /// estimate now, clamped. Returns the new estimate.
    pub(crate) fn retune(&mut self, limit: Limit) -> f64 {
        let estimate = limit.bounds().clamp(self.estimate);
        if limit.algorithm() == self.limit.algorithm() {
            self.limit = limit;
            self.estimate = estimate;
        } else {
            let mut fresh = Algorithm::new(limit);
            fresh.estimate = estimate;
            *self = fresh;
        }
        self.estimate
    }

    /// Feeds one window; returns the new limit.
    pub(crate) fn update(&mut self, w: Window) -> f64 {
        let limit = self.estimate;
        let next = match &self.limit {
            Limit::Aimd(a) => {
                if self.baseline == 0.0 || w.rtt < self.baseline {
                    self.baseline = w.rtt;
                }
                let current = limit.floor();
                let next = if w.dropped || w.rtt > a.timeout.as_nanos() as f64 {
                    (current * a.backoff_ratio).floor()
                } else if w.inflight as f64 * 2.0 >= current {
                    current + 1.0
                } else {
                    current
                };
                a.bounds.clamp(next)
            }
            Limit::Vegas(v) => {
                let v = v.clone();
                self.count += 1;
                if self.jitter * f64::from(v.probe_multiplier) * limit <= self.count as f64 {
                    self.jitter = self.next_jitter();
                    self.count = 0;
                    self.baseline = w.rtt;
                    return limit;
                }
                if self.baseline == 0.0 || w.rtt < self.baseline {
                    self.baseline = w.rtt;
                    return limit;
                }
                let queue = (limit * (1.0 - self.baseline / w.rtt)).ceil();
                let step = log10(limit);
                let new = if w.dropped {
                    limit - step
                } else if (w.inflight as f64) * 2.0 < limit {
                    return limit;
                } else {
                    let alpha = v.alpha.map_or(3.0 * step, f64::from);
                    let beta = v.beta.map_or(6.0 * step, f64::from);
                    let threshold = v.threshold.map_or(step, f64::from);
                    if queue <= threshold {
                        limit + beta
                    } else if queue < alpha {
                        limit + step
                    } else if queue > beta {
                        limit - step
                    } else {
                        return limit;
                    }
                };
                let new = v.bounds.clamp(new);
                v.bounds.clamp(v.smoothing.mul_add(new - limit, limit))
            }
            Limit::Gradient2(g) => {
                const WARMUP: u64 = 10;
                let short = w.rtt;
                if self.count < WARMUP {
                    self.count += 1;
                    self.baseline += (short - self.baseline) / self.count as f64;
                } else {
                    let factor = 2.0 / (f64::from(g.long_window) + 1.0);
                    self.baseline = self.baseline.mul_add(1.0 - factor, short * factor);
                }
                let long = self.baseline;
                if long / short > 2.0 {
                    self.baseline *= 0.9;
                }
                if (w.inflight as f64) < limit / 2.0 {
                    return limit;
                }
                let gradient = (long / short).clamp(0.5, 1.0);
                let new = limit.mul_add(gradient, f64::from(g.queue_size));
                g.bounds
                    .clamp(limit.mul_add(1.0 - g.smoothing, new * g.smoothing))
            }
        };
        self.estimate = next;
        next
    }
}
