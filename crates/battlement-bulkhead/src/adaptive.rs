//! The adaptive limit: a bulkhead whose `max_concurrent` an algorithm moves from the latency and
//! the failures of the calls it admits.

use crate::clock::HotClock;
use crate::limit::{Algorithm, Limit, Window};
use crate::permit::{waiters, Shared};
use crate::{Bulkhead, BulkheadBuilder, BulkheadMetrics};
use battlement_core::stripe::{CachePadded, Stripes};
use battlement_core::sync::{
    AtomicU64,
    Ordering::{Acquire, Relaxed},
};
use battlement_core::ConfigError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The default shortest window (Netflix's `WindowedLimit`'s): 1 s.
pub const DEFAULT_MIN_WINDOW: Duration = Duration::from_secs(1);
/// The default longest window: 1 s.
pub const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(1);
/// The default fewest samples in a window: 10.
pub const DEFAULT_WINDOW_SAMPLES: u64 = 10;
/// The default shortest latency sampled: 100 µs (faster calls, a cache hit say, are ignored).
pub const DEFAULT_MIN_RTT: Duration = Duration::from_micros(100);

/// Builds an [`AdaptiveLimit`]: a bulkhead's settings with an adaptive [`Limit`]; made by
/// [`BulkheadBuilder::adaptive`].
///
/// The bulkhead's queue, wait limit, rejection window, histogram and registries apply as they
/// do to a fixed bulkhead; its `max_concurrent` does not: the limit starts at the algorithm's
/// initial limit and moves between its minimum and maximum.
///
/// # Windows
///
/// As Netflix's `WindowedLimit` does, the algorithm is fed one aggregate per window: the
/// average latency of the calls that finished in it, the calls in flight when it closed, and
/// whether any was dropped. A window closes once it has lasted twice its average latency,
/// clamped to [`min_window`, `max_window`] (1 s and 1 s by default), and holds at least
/// [`window_samples`](Self::window_samples) samples (10).
///
/// ```
/// use battlement_bulkhead::{Bulkhead, Limit};
/// use std::time::Duration;
///
/// let limit = Bulkhead::builder("search")
///     .max_queued(100)
///     .max_wait(Duration::from_millis(50))
///     .adaptive(Limit::gradient2().min_limit(4).max_limit(400))
///     .min_window(Duration::from_millis(100))
///     .max_window(Duration::from_millis(500))
///     .window_samples(20)
///     .build()
///     .unwrap();
/// assert_eq!(limit.limit(), 20);
///
/// let err = Bulkhead::builder("search").adaptive(Limit::vegas().min_limit(0)).build().unwrap_err();
/// assert_eq!(err.setting(), "min_limit");
/// ```
#[must_use]
pub struct AdaptiveBuilder {
    bulkhead: BulkheadBuilder,
    limit: Limit,
    min_window: Duration,
    max_window: Duration,
    window_samples: u64,
    min_rtt: Duration,
}

impl fmt::Debug for AdaptiveBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveBuilder")
            .field("bulkhead", &self.bulkhead)
            .field("limit", &self.limit)
            .field("min_window", &self.min_window)
            .field("max_window", &self.max_window)
            .field("window_samples", &self.window_samples)
            .field("min_rtt", &self.min_rtt)
            .finish()
    }
}

impl BulkheadBuilder {
    /// An adaptive limit instead of a fixed `max_concurrent`: see [`AdaptiveLimit`].
    ///
    /// ```
    /// use battlement_bulkhead::{Bulkhead, Limit};
    ///
    /// let limit = Bulkhead::builder("db").adaptive(Limit::vegas()).build().unwrap();
    /// assert_eq!(limit.limit(), 20);
    /// ```
    pub fn adaptive(self, limit: impl Into<Limit>) -> AdaptiveBuilder {
        AdaptiveBuilder {
            bulkhead: self,
            limit: limit.into(),
            min_window: DEFAULT_MIN_WINDOW,
            max_window: DEFAULT_MAX_WINDOW,
            window_samples: DEFAULT_WINDOW_SAMPLES,
            min_rtt: DEFAULT_MIN_RTT,
        }
    }
}

impl AdaptiveBuilder {
    /// The shortest a window lasts (default [`DEFAULT_MIN_WINDOW`]; greater than zero).
    pub fn min_window(mut self, window: Duration) -> Self {
        self.min_window = window;
        self
    }

    /// The longest a window lasts, if it has its samples (default [`DEFAULT_MAX_WINDOW`]; at
    /// least `min_window`).
    pub fn max_window(mut self, window: Duration) -> Self {
        self.max_window = window;
        self
    }

    /// The fewest samples a window needs before it closes (default
    /// [`DEFAULT_WINDOW_SAMPLES`]; at least 1).
    pub fn window_samples(mut self, samples: u64) -> Self {
        self.window_samples = samples;
        self
    }

    /// Calls faster than this are not sampled (default [`DEFAULT_MIN_RTT`]; zero samples all).
    pub fn min_rtt(mut self, rtt: Duration) -> Self {
        self.min_rtt = rtt;
        self
    }

    /// Registers the limit (as a bulkhead) with a health registry when it is built, as
    /// [`BulkheadBuilder::registry`] does.
    pub fn registry(
        mut self,
        registry: &(impl battlement_core::HealthSink + Clone + Send + Sync + 'static),
    ) -> Self {
        self.bulkhead = self.bulkhead.registry(registry);
        self
    }

    /// Runs every check [`build`](Self::build) runs except registration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bulkhead.validate()?;
        if let Some((setting, value, why)) = self.limit.invalid() {
            return Err(self.bulkhead.error(setting, value, why));
        }
        if self.min_window.is_zero() {
            return Err(self.bulkhead.error(
                "min_window",
                format!("{:?}", self.min_window),
                "must be greater than zero",
            ));
        }
        if self.max_window < self.min_window {
            return Err(self.bulkhead.error(
                "max_window",
                format!("{:?}", self.max_window),
                "must be at least min_window",
            ));
        }
        if self.window_samples == 0 {
            return Err(self.bulkhead.error(
                "window_samples",
                "0".to_owned(),
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Validates the settings and builds the adaptive limit (registered with the bulkhead
    /// builder's registries, as a bulkhead).
    pub fn build(self) -> Result<AdaptiveLimit, ConfigError> {
        self.validate()?;
        let clock = HotClock::new();
        let ticks = |d: Duration| clock.nanos_to_ticks(crate::bulkhead::nanos(d));
        let adaptive = Adaptive {
            cells: Stripes::new(|_| Cell::default()),
            overflow: CachePadded::new(Cell::default()),
            next_update: CachePadded::new(AtomicU64::new(
                clock.raw().saturating_add(ticks(self.min_window)),
            )),
            min_rtt: AtomicU64::new(ticks(self.min_rtt)),
            min_window: AtomicU64::new(ticks(self.min_window)),
            max_window: AtomicU64::new(ticks(self.max_window)),
            window_samples: AtomicU64::new(self.window_samples),
            algorithm: AtomicU64::new(algorithm_index(&self.limit)),
            state: std::sync::Mutex::new(State {
                algorithm: Algorithm::new(self.limit.clone()),
                seen: Totals::default(),
            }),
            estimate: AtomicU64::new((self.limit.initial() as f64).to_bits()),
            baseline_nanos: AtomicU64::new(0),
            rtt_nanos: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            clock,
        };
        let bulkhead = self
            .bulkhead
            .assemble(self.limit.initial(), Some(Box::new(adaptive)))?;
        let limit = AdaptiveLimit { bulkhead };
        self.bulkhead.register(Arc::new(limit.clone()))?;
        Ok(limit)
    }
}

/// A bulkhead whose limit moves with the latency and the failures of the calls it admits
/// (AIMD, Vegas or Gradient2: see [`Limit`]); built with
/// [`Bulkhead::builder(name).adaptive(limit)`](BulkheadBuilder::adaptive).
///
/// It is a bulkhead: the same permits, queue (bounded, FIFO, time-limited), typed rejections
/// ([`BulkheadFull`](crate::BulkheadFull), [`BulkheadTimeout`](crate::BulkheadTimeout)),
/// metrics, health (kind `bulkhead`) and export, plus what the algorithm knows
/// ([`AdaptiveMetrics`]). A window's new limit resizes the permits as
/// [`Bulkhead::set_max_concurrent`] does: growing admits queued calls at once, shrinking takes
/// effect as running calls finish.
///
/// It is a handle of its own, with a service of its own ([`AdaptiveLayer`](crate::AdaptiveLayer)),
/// rather than a flag on [`Bulkhead`]: only its service times calls, so a fixed bulkhead's
/// call costs exactly what it did, and an adaptive limit cannot be used through a service
/// that would not feed it samples.
///
/// # Samples
///
/// The service times each call from the moment it holds a permit (a queued call's wait is not
/// its latency) to the moment the inner future finishes. A call whose inner future fails
/// (`Err`, whatever the error) is a *drop*: the overload signal the algorithms back off on. A
/// response future dropped before it finishes (cancelled) is no sample at all. Samples go to
/// the calling thread's cell (plain stores, no lock, no shared write); the call that finishes
/// after the window's end takes a try-lock (never waited on), aggregates the cells, runs the
/// algorithm and resizes the permits. Admission takes no lock and allocates nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_bulkhead::{Bulkhead, Limit};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let limit = Bulkhead::builder("catalog")
///     .max_queued(64)
///     .adaptive(Limit::aimd().initial_limit(4).min_limit(1).timeout(Duration::from_millis(50)))
///     .min_window(Duration::from_millis(10))
///     .max_window(Duration::from_millis(10))
///     .window_samples(1)
///     .min_rtt(Duration::ZERO)
///     .build()
///     .unwrap();
/// let svc = ServiceBuilder::new().layer(limit.layer()).service(service_fn(|_: ()| async {
///     tokio::time::sleep(Duration::from_millis(5)).await;
///     Ok::<_, std::io::Error>(())
/// }));
/// for _ in 0..4 {
///     svc.clone().oneshot(()).await.unwrap();
/// }
/// let m = limit.metrics();
/// assert_eq!(m.samples, 4);
/// assert_eq!(m.rtt_noload, Duration::from_millis(5));
/// # }
/// ```
#[derive(Clone)]
pub struct AdaptiveLimit {
    pub(crate) bulkhead: Bulkhead,
}

impl AdaptiveLimit {
    /// The limit's name.
    pub fn name(&self) -> &str {
        self.bulkhead.name()
    }

    /// The limit now: how many calls may run at once.
    pub fn limit(&self) -> usize {
        self.bulkhead.max_concurrent()
    }

    /// Calls holding a permit now.
    pub fn in_flight(&self) -> usize {
        self.bulkhead.in_flight()
    }

    /// Calls waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.bulkhead.queued()
    }

    fn adaptive(&self) -> &Adaptive {
        self.bulkhead
            .shared()
            .adaptive
            .as_deref()
            .expect("an adaptive limit's bulkhead has its sampler")
    }

    /// A snapshot: the bulkhead's counts and the algorithm's state.
    ///
    /// ```
    /// use battlement_bulkhead::{Bulkhead, Limit};
    /// use std::time::Duration;
    ///
    /// let l = Bulkhead::builder("db").adaptive(Limit::gradient2()).build().unwrap();
    /// let m = l.metrics();
    /// assert_eq!((m.algorithm, m.limit, m.samples), ("gradient2", 20, 0));
    /// assert_eq!(m.rtt_noload, Duration::ZERO); // no window yet
    /// ```
    pub fn metrics(&self) -> AdaptiveMetrics {
        let a = self.adaptive();
        let totals = a.totals();
        AdaptiveMetrics {
            bulkhead: self.bulkhead.metrics(),
            algorithm: a.algorithm(),
            limit: self.limit(),
            estimate: f64::from_bits(a.estimate.load(Relaxed)),
            rtt_noload: Duration::from_nanos(a.baseline_nanos.load(Relaxed)),
            rtt: Duration::from_nanos(a.rtt_nanos.load(Relaxed)),
            samples: totals.count,
            drops: totals.drops,
            updates: a.updates.load(Relaxed),
        }
    }
}

impl AdaptiveLimit {
    /// Takes new settings from `settings` (a live reload; see `battlement-config`), or, if any
    /// is invalid, changes nothing and returns the error ([`AdaptiveBuilder::validate`]'s).
    ///
    /// - The algorithm's settings apply to the next window. The same algorithm keeps what it
    ///   learned (its estimate, clamped to the new `min_limit`/`max_limit`, and its no-load
    ///   latency); another algorithm starts from the limit now, clamped, and learns afresh. A
    ///   limit outside the new bounds is resized at once, as a window's new limit is (growing
    ///   admits queued calls, shrinking waits for running calls to finish). `initial_limit`
    ///   is not applied: the limit is already running.
    /// - The window settings (`min_window`, `max_window`, `window_samples`, `min_rtt`) apply
    ///   from the next call that finishes.
    /// - The bulkhead's queue settings (`max_queued`, `max_wait`, `rejection_window`,
    ///   `sheddable_queue_share`, `starvation_bound`) apply as [`Bulkhead::reload`] applies
    ///   them; its `max_concurrent` does not (the algorithm owns the limit).
    /// - Fixed at build: the name, registrations, event capacity.
    ///
    /// ```
    /// use battlement_bulkhead::{Bulkhead, Limit};
    ///
    /// // (`initial_limit` must be within the bounds, though a reload does not apply it.)
    /// let settings = |max: usize| {
    ///     Bulkhead::builder("db").adaptive(Limit::vegas().initial_limit(max.min(20)).max_limit(max))
    /// };
    /// let limit = settings(100).build().unwrap();
    /// assert_eq!(limit.limit(), 20);
    /// limit.reload(&settings(10).max_window(std::time::Duration::from_secs(2))).unwrap();
    /// assert_eq!(limit.limit(), 10); // clamped to the new maximum at once
    /// let err = limit.reload(&Bulkhead::builder("db").adaptive(Limit::vegas().min_limit(0))).unwrap_err();
    /// assert_eq!(err.setting(), "min_limit");
    /// assert_eq!(limit.limit(), 10);
    /// ```
    ///
    /// # Errors
    ///
    /// The first setting refused.
    pub fn reload(&self, settings: &AdaptiveBuilder) -> Result<(), ConfigError> {
        settings.validate()?;
        let a = self.adaptive();
        let shared = self.bulkhead.shared();
        let ticks = |d: Duration| a.clock.nanos_to_ticks(crate::bulkhead::nanos(d));
        a.min_rtt.store(ticks(settings.min_rtt), Relaxed);
        a.min_window.store(ticks(settings.min_window), Relaxed);
        a.max_window.store(ticks(settings.max_window), Relaxed);
        a.window_samples.store(settings.window_samples, Relaxed);
        // Queue settings, as a bulkhead reload applies them, keeping the limit.
        self.bulkhead
            .reload(&settings.bulkhead.queue_settings(self.limit()))?;
        let mut state = a.state.lock().unwrap_or_else(|e| e.into_inner());
        let estimate = state.algorithm.retune(settings.limit.clone());
        a.algorithm.store(algorithm_index(&settings.limit), Relaxed);
        a.estimate.store(estimate.to_bits(), Relaxed);
        let limit = (estimate.floor() as usize).max(1);
        if limit != shared.max_concurrent.load(Acquire) {
            let _resizing = shared.resize.lock().unwrap_or_else(|e| e.into_inner());
            shared.resize_locked(limit);
        }
        drop(state);
        tracing::info!(
            bulkhead = %shared.name,
            algorithm = settings.limit.algorithm(),
            limit,
            "adaptive limit reloaded"
        );
        Ok(())
    }
}

impl fmt::Debug for AdaptiveLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("name", &self.name())
            .field("algorithm", &self.adaptive().algorithm())
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

/// A point-in-time view of an [`AdaptiveLimit`], from [`AdaptiveLimit::metrics`].
///
/// ```
/// use battlement_bulkhead::{Bulkhead, Limit};
///
/// let l = Bulkhead::builder("db").adaptive(Limit::aimd()).build().unwrap();
/// let m = l.metrics();
/// assert_eq!(m.bulkhead.max_concurrent, m.limit);
/// assert_eq!((m.drops, m.updates), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AdaptiveMetrics {
    /// The bulkhead's counts (in flight, queued, rejections, ...); its `max_concurrent` is the
    /// limit.
    pub bulkhead: BulkheadMetrics,
    /// The algorithm (`aimd`, `vegas`, `gradient2`).
    pub algorithm: &'static str,
    /// The limit now.
    pub limit: usize,
    /// The algorithm's estimate, which the limit is the integer part of.
    pub estimate: f64,
    /// The estimated no-load latency: Vegas's `rtt_noload`, Gradient2's long-term latency,
    /// AIMD's lowest window latency. Zero before the first window.
    pub rtt_noload: Duration,
    /// The last window's average latency.
    pub rtt: Duration,
    /// Calls sampled (finished, not cancelled, not faster than `min_rtt`).
    pub samples: u64,
    /// Of them, drops (the inner future failed).
    pub drops: u64,
    /// Windows the algorithm was fed.
    pub updates: u64,
}

/// A thread's cell of samples: counts only grow (a window is the difference of two reads).
#[derive(Debug, Default)]
struct Cell {
    count: AtomicU64,
    rtt: AtomicU64,
    drops: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    count: u64,
    rtt: u64,
    drops: u64,
}

struct State {
    algorithm: Algorithm,
    /// The totals when the last window closed.
    seen: Totals,
}

/// The sampler and the algorithm of an adaptive limit (in the bulkhead's [`Shared`]).
pub(crate) struct Adaptive {
    pub(crate) clock: HotClock,
    cells: Stripes<CachePadded<Cell>>,
    /// For threads without a cell of their own.
    overflow: CachePadded<Cell>,
    /// When the window may close, in clock ticks: read by every sample, written once a window.
    next_update: CachePadded<AtomicU64>,
    /// The window settings, in clock ticks (reloadable; read when a call finishes).
    min_rtt: AtomicU64,
    min_window: AtomicU64,
    max_window: AtomicU64,
    window_samples: AtomicU64,
    /// The algorithm's index in [`ALGORITHMS`] (reloadable).
    algorithm: AtomicU64,
    /// Taken only with `try_lock`, by the call that closes a window.
    state: std::sync::Mutex<State>,
    /// Read-outs, written when a window closes.
    estimate: AtomicU64,
    baseline_nanos: AtomicU64,
    rtt_nanos: AtomicU64,
    updates: AtomicU64,
}

/// The algorithms' names, by the index [`Adaptive::algorithm`] keeps.
const ALGORITHMS: [&str; 3] = ["aimd", "vegas", "gradient2"];

fn algorithm_index(limit: &Limit) -> u64 {
    match limit.algorithm() {
        "aimd" => 0,
        "vegas" => 1,
        _ => 2,
    }
}

impl Adaptive {
    /// The algorithm's name.
    pub(crate) fn algorithm(&self) -> &'static str {
        ALGORITHMS[(self.algorithm.load(Relaxed) as usize).min(2)]
    }

    /// Records a finished call that started at `start` (clock ticks).
    #[inline]
    pub(crate) fn record(&self, shared: &Shared, start: u64, dropped: bool) {
        let end = self.clock.raw();
        let rtt = end.saturating_sub(start);
        if rtt < self.min_rtt.load(Relaxed) {
            return;
        }
        match self.cells.owned() {
            Some(c) => {
                c.count.store(c.count.load(Relaxed) + 1, Relaxed);
                c.rtt.store(c.rtt.load(Relaxed).wrapping_add(rtt), Relaxed);
                if dropped {
                    c.drops.store(c.drops.load(Relaxed) + 1, Relaxed);
                }
            }
            None => self.record_shared(rtt, dropped),
        }
        if end >= self.next_update.load(Relaxed) {
            self.close_window(shared, end);
        }
    }

    #[cold]
    fn record_shared(&self, rtt: u64, dropped: bool) {
        let c = &self.overflow;
        c.count.fetch_add(1, Relaxed);
        c.rtt.fetch_add(rtt, Relaxed);
        if dropped {
            c.drops.fetch_add(1, Relaxed);
        }
    }

    fn totals(&self) -> Totals {
        self.cells
            .iter()
            .map(|c| &**c)
            .chain(std::iter::once(&*self.overflow))
            .fold(Totals::default(), |t, c| Totals {
                count: t.count.wrapping_add(c.count.load(Relaxed)),
                rtt: t.rtt.wrapping_add(c.rtt.load(Relaxed)),
                drops: t.drops.wrapping_add(c.drops.load(Relaxed)),
            })
    }

    /// Closes the window if it has its samples and no other call is closing it: feeds the
    /// algorithm, resizes the permits.
    #[cold]
    #[inline(never)]
    fn close_window(&self, shared: &Shared, end: u64) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        if end < self.next_update.load(Relaxed) {
            return; // closed meanwhile
        }
        let now = self.totals();
        let count = now.count.wrapping_sub(state.seen.count);
        if count < self.window_samples.load(Relaxed) {
            return;
        }
        let rtt_ticks = now.rtt.wrapping_sub(state.seen.rtt) / count;
        let dropped = now.drops != state.seen.drops;
        state.seen = now;
        let window = rtt_ticks
            .saturating_mul(2)
            .clamp(self.min_window.load(Relaxed), self.max_window.load(Relaxed));
        self.next_update.store(end.saturating_add(window), Relaxed);
        let rtt = self.clock.ticks_to_nanos(rtt_ticks);
        let inflight = if waiters(shared.word.load(Acquire)) > 0 {
            shared.max_concurrent.load(Acquire)
        } else {
            shared.in_flight()
        };
        let estimate = state.algorithm.update(Window {
            rtt: rtt as f64,
            inflight,
            dropped,
        });
        self.estimate.store(estimate.to_bits(), Relaxed);
        self.baseline_nanos
            .store(state.algorithm.baseline() as u64, Relaxed);
        self.rtt_nanos.store(rtt, Relaxed);
        self.updates.fetch_add(1, Relaxed);
        let limit = (estimate.floor() as usize).max(1);
        if limit != shared.max_concurrent.load(Acquire) {
            let _resizing = shared.resize.lock().unwrap_or_else(|e| e.into_inner());
            let old = shared.resize_locked(limit);
            tracing::debug!(
                bulkhead = %shared.name,
                algorithm = self.algorithm(),
                old,
                new = limit,
                rtt_ns = rtt,
                dropped,
                "adaptive limit changed"
            );
        }
        debug_assert!(state.algorithm.estimate() == estimate);
    }
}

impl fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adaptive")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}
