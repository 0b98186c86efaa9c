//! The hedging layer's shared state, and the handle that reports it (read-out and health
//! snapshot in `metrics.rs`).

use crate::budget::Budget;
use crate::latency::LatencyWindow;
use battlement_core::stripe::StripedCounter;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub(crate) enum DelayMode {
    Fixed(Duration),
    Percentile {
        window: LatencyWindow,
        initial: Duration,
        min: Duration,
        max: Duration,
    },
}

/// State shared by every service one [`HedgeLayer`](crate::HedgeLayer) makes.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) delay: DelayMode,
    pub(crate) max_attempts: usize,
    pub(crate) budget: Option<Budget>,
    pub(crate) requests: StripedCounter,
    pub(crate) hedges_sent: AtomicU64,
    pub(crate) hedges_won: AtomicU64,
    pub(crate) hedges_denied: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        name: Arc<str>,
        delay: DelayMode,
        max_attempts: usize,
        budget: Option<Budget>,
    ) -> Self {
        Shared {
            name,
            delay,
            max_attempts,
            budget,
            requests: StripedCounter::new(),
            hedges_sent: AtomicU64::new(0),
            hedges_won: AtomicU64::new(0),
            hedges_denied: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn count_request(&self) {
        self.requests.increment();
    }

    /// How long to wait for the attempts in flight before sending another.
    #[inline]
    pub(crate) fn delay(&self) -> Duration {
        match &self.delay {
            DelayMode::Fixed(d) => *d,
            DelayMode::Percentile {
                window,
                initial,
                min,
                max,
            } => window.get().map_or(*initial, |d| d.clamp(*min, *max)),
        }
    }

    /// Whether the layer measures latencies (percentile delay).
    #[inline]
    pub(crate) fn measures_latency(&self) -> bool {
        matches!(self.delay, DelayMode::Percentile { .. })
    }

    #[inline]
    pub(crate) fn record_latency(&self, latency: Duration) {
        if let DelayMode::Percentile { window, .. } = &self.delay {
            window.record(latency);
        }
    }

    /// Asks the budget for one hedge; counts it as sent or denied.
    pub(crate) fn try_hedge(&self) -> bool {
        let allowed = match &self.budget {
            None => true,
            Some(b) => b.withdraw(self.requests.sum()),
        };
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
        self.shared.max_attempts
    }
}
