//! The hedging layer's shared state, and the handle that reports it (read-out and health
//! snapshot in `metrics.rs`).

use crate::budget::Budget;
use crate::latency::LatencyWindow;
use battlement_core::stripe::StripedCounter;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A delay that is not fixed: the percentile of recent latencies.
const PERCENTILE: u64 = u64::MAX;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos())
        .unwrap_or(PERCENTILE - 1)
        .min(PERCENTILE - 1)
}

/// The hedge delay: fixed, or the percentile of recent latencies within bounds. Every setting
/// is an atomic a reload stores and a call loads; the latency window is built when the
/// percentile is first asked for (at build, or by a reload) and kept after.
#[derive(Debug)]
pub(crate) struct Delay {
    /// The fixed delay in nanoseconds, or [`PERCENTILE`].
    fixed: AtomicU64,
    initial: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    window: OnceLock<LatencyWindow>,
}

/// A delay as a builder gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DelaySetting {
    Fixed(Duration),
    Percentile {
        percentile: f64,
        window: usize,
        min_samples: usize,
        initial: Duration,
        min: Duration,
        max: Duration,
    },
}

impl Delay {
    pub(crate) fn new(setting: DelaySetting) -> Self {
        let delay = Delay {
            fixed: AtomicU64::new(0),
            initial: AtomicU64::new(0),
            min: AtomicU64::new(0),
            max: AtomicU64::new(0),
            window: OnceLock::new(),
        };
        delay.set(setting);
        delay
    }

    /// Stores `setting`; the percentile's bounds before the switch to percentile mode, so a
    /// call that sees the mode sees them.
    pub(crate) fn set(&self, setting: DelaySetting) {
        match setting {
            DelaySetting::Fixed(d) => self.fixed.store(nanos(d), Ordering::Release),
            DelaySetting::Percentile {
                percentile,
                window,
                min_samples,
                initial,
                min,
                max,
            } => {
                let mut built = false;
                let w = self.window.get_or_init(|| {
                    built = true;
                    LatencyWindow::new(percentile, window, min_samples)
                });
                if !built {
                    if window > w.capacity() {
                        tracing::warn!(
                            window,
                            kept = w.capacity(),
                            "hedge: the latency window cannot grow past the memory it was built with"
                        );
                    }
                    w.reconfigure(percentile, window, min_samples);
                }
                self.initial.store(nanos(initial), Ordering::Relaxed);
                self.min.store(nanos(min), Ordering::Relaxed);
                self.max.store(nanos(max), Ordering::Relaxed);
                self.fixed.store(PERCENTILE, Ordering::Release);
            }
        }
    }

    /// How long to wait for the attempts in flight before sending another.
    #[inline]
    pub(crate) fn get(&self) -> Duration {
        let fixed = self.fixed.load(Ordering::Acquire);
        if fixed != PERCENTILE {
            return Duration::from_nanos(fixed);
        }
        let initial = self.initial.load(Ordering::Relaxed);
        let nanos = match self.window.get().and_then(LatencyWindow::get) {
            // Bounds stored one by one may be seen min > max for a moment: never panic.
            Some(d) => nanos(d)
                .max(self.min.load(Ordering::Relaxed))
                .min(self.max.load(Ordering::Relaxed)),
            None => initial,
        };
        Duration::from_nanos(nanos)
    }

    /// Whether the delay follows latency (calls are timed).
    #[inline]
    pub(crate) fn is_percentile(&self) -> bool {
        self.fixed.load(Ordering::Relaxed) == PERCENTILE
    }

    /// The latency window, once there is one.
    pub(crate) fn window(&self) -> Option<&LatencyWindow> {
        self.window.get()
    }
}

/// State shared by every service one [`HedgeLayer`](crate::HedgeLayer) makes.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) delay: Delay,
    pub(crate) max_attempts: AtomicUsize,
    pub(crate) budget: Budget,
    pub(crate) requests: StripedCounter,
    pub(crate) hedges_sent: AtomicU64,
    pub(crate) hedges_won: AtomicU64,
    pub(crate) hedges_denied: AtomicU64,
    pub(crate) reloads: AtomicU64,
    /// Serialises reloads (never taken by a call).
    pub(crate) reload: Mutex<()>,
}

impl Shared {
    pub(crate) fn new(
        name: Arc<str>,
        delay: DelaySetting,
        max_attempts: usize,
        budget: Option<(f64, u32)>,
    ) -> Self {
        let b = Budget::off();
        b.set(budget, 0);
        Shared {
            name,
            delay: Delay::new(delay),
            max_attempts: AtomicUsize::new(max_attempts),
            budget: b,
            requests: StripedCounter::new(),
            hedges_sent: AtomicU64::new(0),
            hedges_won: AtomicU64::new(0),
            hedges_denied: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload: Mutex::new(()),
        }
    }

    #[inline]
    pub(crate) fn count_request(&self) {
        self.requests.increment();
    }

    /// The most attempts a call starting now makes.
    #[inline]
    pub(crate) fn max_attempts(&self) -> usize {
        self.max_attempts.load(Ordering::Relaxed)
    }

    /// How long to wait for the attempts in flight before sending another.
    #[inline]
    pub(crate) fn delay(&self) -> Duration {
        self.delay.get()
    }

    /// Whether the layer measures latencies (percentile delay).
    #[inline]
    pub(crate) fn measures_latency(&self) -> bool {
        self.delay.is_percentile()
    }

    #[inline]
    pub(crate) fn record_latency(&self, latency: Duration) {
        if let Some(window) = self.delay.window() {
            window.record(latency);
        }
    }

    /// Asks the budget for one hedge; counts it as sent or denied.
    pub(crate) fn try_hedge(&self) -> bool {
        let allowed = !self.budget.is_on() || self.budget.withdraw(self.requests.sum());
        if allowed {
            self.hedges_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hedges_denied.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    pub(crate) fn hedge_won(&self) {
        self.hedges_won.fetch_add(1, Ordering::Relaxed);
    }
}

/// A cheap handle to a hedging layer's metrics; implements [`HealthSource`](battlement_core::HealthSource).
///
/// Its [`HealthSnapshot`](battlement_core::HealthSnapshot) (kind `hedge`, state `hedging`, status `pass`: hedging is an optimisation,
/// never unhealthy) has the metrics `requests`, `hedges_sent`, `hedges_won`, `hedges_denied`,
/// `hedge_rate` (hedges per request), `win_rate` (wins per hedge) and `delay` (ms).
///
/// ```
/// use battlement_core::HealthSource;
/// use battlement_hedge::HedgeLayer;
/// use std::time::Duration;
///
/// let layer = HedgeLayer::builder().name("search").delay(Duration::from_millis(20)).build().unwrap();
/// let snap = layer.handle().snapshot();
/// assert_eq!(snap.name, "search");
/// assert_eq!(snap.metric("delay"), Some(20.0));
/// ```
#[derive(Clone)]
pub struct HedgeHandle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for HedgeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeHandle")
            .field("name", &self.shared.name)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl HedgeHandle {
    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The hedge delay now.
    pub fn current_delay(&self) -> Duration {
        self.shared.delay()
    }

    /// The most attempts one call makes (the first plus hedges).
    pub fn max_attempts(&self) -> usize {
        self.shared.max_attempts()
    }
}
