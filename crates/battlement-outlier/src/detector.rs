//! The detector handle, its pool of endpoints and the ejection rules.
//!
//! # What a call costs, and where the lock is
//!
//! Each endpoint keeps, in its own [`Endpoint`], the word its service's `poll_ready` reads
//! (`ejected_until`: zero while in service) and the counters its calls write (runs of 5xx and
//! gateway failures, successes and failures). A call reads that word and the tokio clock, and
//! its response writes its endpoint's counters: no lock, no allocation. (A run of failures is
//! an order across calls, so it is one shared word per endpoint, as in Envoy; the words are
//! per endpoint, not per pool.)
//!
//! The pool's lock (a `Mutex` around the endpoints' ejection state) is taken only to decide:
//! when a run reaches its threshold (to eject, under the pool's max-ejection rule), when an
//! ejected endpoint's time has passed (to readmit it), once per interval (to evaluate success
//! rates and decay multipliers), when an endpoint joins or leaves, and for read-outs.

use crate::config::Settings;
use crate::event::OutlierEvent;
use crate::OutlierDetectorBuilder;
use battlement_core::event::EventChannel;
use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Which rule ejected an endpoint.
///
/// ```
/// use battlement_outlier::Reason;
///
/// assert_eq!(Reason::SuccessRate.as_str(), "success_rate");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// [`consecutive_5xx`](crate::OutlierDetectorBuilder::consecutive_5xx) failures in a row.
    Consecutive5xx,
    /// [`consecutive_gateway_failures`](crate::OutlierDetectorBuilder::consecutive_gateway_failures)
    /// in a row.
    ConsecutiveGatewayFailure,
    /// A success rate below `mean − stdev × factor` of the pool's.
    SuccessRate,
}

impl Reason {
    /// Every reason, in the order metrics report them.
    pub const ALL: [Reason; 3] = [
        Reason::Consecutive5xx,
        Reason::ConsecutiveGatewayFailure,
        Reason::SuccessRate,
    ];

    /// A stable snake_case name (the `reason` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Consecutive5xx => "consecutive_5xx",
            Reason::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Reason::SuccessRate => "success_rate",
        }
    }

    fn index(self) -> usize {
        match self {
            Reason::Consecutive5xx => 0,
            Reason::ConsecutiveGatewayFailure => 1,
            Reason::SuccessRate => 2,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One endpoint's words on the call path.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) label: Arc<str>,
    /// Zero while in service; else the detector's clock (ns since its origin, at least 1) at
    /// which the ejection ends. Written under the pool's lock.
    pub(crate) ejected_until: AtomicU64,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    successes: AtomicU64,
    failures: AtomicU64,
}

/// An endpoint's ejection state, under the pool's lock.
#[derive(Debug)]
struct Entry {
    id: u64,
    endpoint: Arc<Endpoint>,
    /// `Some((reason, since, until))` while ejected.
    ejected: Option<(Reason, u64, u64)>,
    /// The ejection multiplier (Envoy's backoff): grows with each ejection while the next
    /// ejection time is below the max, decays once per interval while healthy.
    multiplier: u32,
    /// Ejections so far.
    ejections: u64,
    /// When it was last readmitted.
    readmitted_at: Option<u64>,
    /// Its successes and failures at the last evaluation.
    seen: (u64, u64),
    /// Its success rate over the interval just evaluated, while the evaluation runs.
    rate: Option<f64>,
}

#[derive(Debug, Default)]
struct Pool {
    entries: Vec<Entry>,
    next_id: u64,
}

impl Pool {
    fn ejected(&self) -> usize {
        self.entries.iter().filter(|e| e.ejected.is_some()).count()
    }
}

pub(crate) struct Inner {
    pub(crate) name: Arc<str>,
    pub(crate) settings: Settings,
    origin: Instant,
    /// The clock at which the next evaluation is due.
    next_evaluation: AtomicU64,
    pool: Mutex<Pool>,
    pub(crate) ejections: [AtomicU64; 3],
    /// Ejections the max-ejection rule refused.
    pub(crate) overflow: AtomicU64,
    pub(crate) readmissions: AtomicU64,
    events: EventChannel<OutlierEvent>,
}

/// Outlier detection for a pool of endpoints balanced by `tower::balance`: Envoy's rules
/// (consecutive 5xx, consecutive gateway failures, success-rate outliers), ejection for
/// `base × multiplier` capped at a max, a maximum ejected percentage, readmission after the
/// ejection time.
///
/// The handle is cheap to clone (an `Arc` inside); every clone is the same detector. Endpoints
/// join it through [`OutlierLayer`](crate::OutlierLayer) (a `Discover` wrapper) or
/// [`endpoint`](Self::endpoint); see the [crate docs](crate) for why an ejected endpoint is
/// one whose `poll_ready` is pending.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_outlier::OutlierDetector;
/// use std::time::Duration;
/// use tower::{service_fn, Service, ServiceExt};
///
/// let detector = OutlierDetector::builder("pool").consecutive_5xx(3).build().unwrap();
/// let ok = |_: ()| async { Ok::<_, std::io::Error>(http::Response::new(())) };
/// let fail = |_: ()| async {
///     Ok::<_, std::io::Error>(http::Response::builder().status(500).body(()).unwrap())
/// };
/// let _a = detector.endpoint("a", service_fn(ok));
/// let mut b = detector.endpoint("b", service_fn(fail));
/// for _ in 0..3 {
///     let _ = b.ready().await.unwrap().call(()).await;
/// }
/// assert!(detector.is_ejected("b"));
/// // Ejected: not ready (a balancer leaves it aside) until its time has passed.
/// assert!(futures::poll!(b.ready()).is_pending());
/// tokio::time::advance(Duration::from_secs(30)).await;
/// b.ready().await.unwrap();
/// assert!(!detector.is_ejected("b"));
/// # }
/// ```
pub struct OutlierDetector {
    pub(crate) inner: Arc<Inner>,
}

impl Clone for OutlierDetector {
    fn clone(&self) -> Self {
        OutlierDetector {
            inner: self.inner.clone(),
        }
    }
}

impl fmt::Debug for OutlierDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDetector")
            .field("name", &self.inner.name)
            .field("settings", &self.inner.settings)
            .finish()
    }
}

/// An endpoint's membership of a detector: made when its service is wrapped, shared by the
/// service's clones and its calls in flight; the last one dropped removes it from the pool.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) detector: OutlierDetector,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut pool = self.detector.lock();
        pool.entries.retain(|e| e.id != self.id);
    }
}

impl Membership {
    /// Records a finished call's verdict; ejects on a run reaching its threshold.
    #[inline]
    pub(crate) fn record(&self, verdict: crate::Verdict) {
        use crate::Verdict;
        let ep = &*self.endpoint;
        let s = &self.detector.inner.settings;
        match verdict {
            Verdict::Success => {
                ep.successes.fetch_add(1, Relaxed);
                if ep.consecutive_5xx.load(Relaxed) != 0 {
                    ep.consecutive_5xx.store(0, Relaxed);
                }
                if ep.consecutive_gateway.load(Relaxed) != 0 {
                    ep.consecutive_gateway.store(0, Relaxed);
                }
            }
            Verdict::Failure | Verdict::GatewayFailure => {
                ep.failures.fetch_add(1, Relaxed);
                let run = ep.consecutive_5xx.fetch_add(1, Relaxed) + 1;
                if s.consecutive_5xx > 0 && run >= s.consecutive_5xx {
                    self.detector.eject(self.id, Reason::Consecutive5xx);
                }
                if verdict == Verdict::GatewayFailure {
                    let run = ep.consecutive_gateway.fetch_add(1, Relaxed) + 1;
                    if s.consecutive_gateway > 0 && run >= s.consecutive_gateway {
                        self.detector
                            .eject(self.id, Reason::ConsecutiveGatewayFailure);
                    }
                } else if ep.consecutive_gateway.load(Relaxed) != 0 {
                    ep.consecutive_gateway.store(0, Relaxed);
                }
            }
            Verdict::Ignored => {}
        }
    }
}

/// One endpoint as a read-out reports it, from [`OutlierDetector::endpoints`].
///
/// ```
/// use battlement_outlier::OutlierDetector;
/// use tower::service_fn;
///
/// let detector = OutlierDetector::builder("pool").build().unwrap();
/// let _svc = detector.endpoint("10.0.0.1:80", service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
/// let e = &detector.endpoints()[0];
/// assert_eq!((&*e.label, e.ejected, e.ejections, e.multiplier), ("10.0.0.1:80", None, 0, 0));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointMetrics {
    /// The endpoint's label (its `Discover` key, formatted with `Display`).
    pub label: Arc<str>,
    /// While ejected: why, and how much longer.
    pub ejected: Option<(Reason, Duration)>,
    /// Times ejected so far.
    pub ejections: u64,
    /// The ejection multiplier now: the next ejection lasts `base × (multiplier + 1)`, capped.
    pub multiplier: u32,
    /// Calls that counted as successes, since it joined.
    pub successes: u64,
    /// Calls that counted as failures, since it joined.
    pub failures: u64,
}

impl OutlierDetector {
    /// Starts building a detector called `name`.
    pub fn builder(name: impl Into<String>) -> OutlierDetectorBuilder {
        OutlierDetectorBuilder::new(name)
    }

    pub(crate) fn new(
        name: Arc<str>,
        settings: Settings,
        events: EventChannel<OutlierEvent>,
    ) -> Self {
        let first = nanos(settings.interval);
        OutlierDetector {
            inner: Arc::new(Inner {
                name,
                settings,
                origin: Instant::now(),
                next_evaluation: AtomicU64::new(first),
                pool: Mutex::new(Pool::default()),
                ejections: Default::default(),
                overflow: AtomicU64::new(0),
                readmissions: AtomicU64::new(0),
                events,
            }),
        }
    }

    /// The detector's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Subscribes to typed events ([`OutlierEvent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<OutlierEvent> {
        self.inner.events.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // A panic under the lock leaves the pool consistent enough to go on.
        self.inner.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The detector's clock: ns since its origin.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant of the detector's clock `at`.
    pub(crate) fn instant(&self, at: u64) -> Instant {
        self.inner.origin + Duration::from_nanos(at)
    }

    /// Adds an endpoint labelled `label`.
    pub(crate) fn join(&self, label: Arc<str>) -> Membership {
        let endpoint = Arc::new(Endpoint {
            label,
            ejected_until: AtomicU64::new(0),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        let mut pool = self.lock();
        let id = pool.next_id;
        pool.next_id += 1;
        pool.entries.push(Entry {
            id,
            endpoint: endpoint.clone(),
            ejected: None,
            multiplier: 0,
            ejections: 0,
            readmitted_at: None,
            seen: (0, 0),
            rate: None,
        });
        drop(pool);
        Membership {
            detector: self.clone(),
            endpoint,
            id,
        }
    }

    /// Evaluates if an interval has passed since the last evaluation: the call path's check
    /// (one load of a word written once per interval).
    #[inline]
    pub(crate) fn tick(&self, now: u64) {
        let due = self.inner.next_evaluation.load(Relaxed);
        if now >= due {
            self.tick_slow(now, due);
        }
    }

    #[cold]
    #[inline(never)]
    fn tick_slow(&self, now: u64, due: u64) {
        let next = now.saturating_add(nanos(self.inner.settings.interval));
        if self
            .inner
            .next_evaluation
            .compare_exchange(due, next, AcqRel, Relaxed)
            .is_ok()
        {
            self.evaluate_at(now);
        }
    }

    /// Evaluates now: readmits endpoints whose ejection time has passed, decays the
    /// multipliers of endpoints healthy for `base_ejection_time` since their readmission, and
    /// ejects success-rate outliers. Calls do this on their own once per
    /// [`interval`](crate::OutlierDetectorBuilder::interval); this is for a timer of your own
    /// or a test. The next automatic evaluation is an interval from now.
    pub fn evaluate(&self) {
        let now = self.now();
        self.inner.next_evaluation.store(
            now.saturating_add(nanos(self.inner.settings.interval)),
            Relaxed,
        );
        self.evaluate_at(now);
    }

    /// One evaluation, under the pool's lock. It allocates nothing (the calls that run it are
    /// on the call path): each endpoint's rate for the interval is kept in its entry.
    fn evaluate_at(&self, now: u64) {
        let s = &self.inner.settings;
        let mut pool = self.lock();
        self.readmit_due(&mut pool, now);
        let base = nanos(s.base_ejection);
        // Decay, and this interval's rates.
        let (mut n, mut sum) = (0usize, 0.0f64);
        for e in pool.entries.iter_mut() {
            let counts = (
                e.endpoint.successes.load(Relaxed),
                e.endpoint.failures.load(Relaxed),
            );
            let (ds, df) = (
                counts.0.wrapping_sub(e.seen.0),
                counts.1.wrapping_sub(e.seen.1),
            );
            e.seen = counts;
            e.rate = None;
            if e.ejected.is_some() {
                continue;
            }
            if e.multiplier > 0
                && e.readmitted_at
                    .is_some_and(|at| now.saturating_sub(at) >= base)
            {
                e.multiplier -= 1;
            }
            let volume = ds.saturating_add(df);
            if s.success_rate && volume >= s.sr_request_volume {
                let rate = ds as f64 / volume as f64;
                e.rate = Some(rate);
                n += 1;
                sum += rate;
            }
        }
        if !s.success_rate || n < s.sr_minimum_hosts {
            return;
        }
        let mean = sum / n as f64;
        let variance = pool
            .entries
            .iter()
            .filter_map(|e| e.rate)
            .map(|r| (r - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let threshold = variance.sqrt().mul_add(-s.sr_stdev_factor, mean);
        // Worst first, so that when the max-ejection rule stops ejections the worst are out.
        loop {
            let worst = pool
                .entries
                .iter()
                .filter_map(|e| e.rate.filter(|r| *r < threshold).map(|r| (e.id, r)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let Some((id, rate)) = worst else {
                break;
            };
            if let Some(e) = pool.entries.iter_mut().find(|e| e.id == id) {
                e.rate = None;
            }
            tracing::debug!(name = %self.inner.name, kind = "outlier_detection", rate, mean, threshold, "success-rate outlier");
            self.eject_locked(&mut pool, id, Reason::SuccessRate, now);
        }
    }

    /// Ejects endpoint `id` for `reason`, if the pool's max-ejection rule allows it.
    #[cold]
    #[inline(never)]
    pub(crate) fn eject(&self, id: u64, reason: Reason) {
        let now = self.now();
        let mut pool = self.lock();
        self.eject_locked(&mut pool, id, reason, now);
    }

    fn eject_locked(&self, pool: &mut Pool, id: u64, reason: Reason, now: u64) {
        let s = &self.inner.settings;
        let total = pool.entries.len();
        let ejected = pool.ejected();
        let Some(i) = pool.entries.iter().position(|e| e.id == id) else {
            return;
        };
        if pool.entries[i].ejected.is_some() {
            return;
        }
        // The run that asked is spent either way (Envoy resets it after an attempt).
        let ep = &pool.entries[i].endpoint;
        match reason {
            Reason::Consecutive5xx => ep.consecutive_5xx.store(0, Relaxed),
            Reason::ConsecutiveGatewayFailure => ep.consecutive_gateway.store(0, Relaxed),
            Reason::SuccessRate => {}
        }
        // At most max_ejection_percent of the pool, but one always may be (unless told
        // otherwise), and never the last endpoint in service.
        let within = (ejected + 1) * 100 <= usize::from(s.max_ejection_percent) * total;
        let first = ejected == 0 && s.always_eject_one;
        if !((within || first) && ejected + 1 < total) {
            self.inner.overflow.fetch_add(1, Relaxed);
            tracing::debug!(name = %self.inner.name, kind = "outlier_detection", endpoint = %ep.label, reason = reason.as_str(), ejected, total, "ejection refused: the pool's max ejection percent is reached");
            return;
        }
        let e = &mut pool.entries[i];
        let base = s.base_ejection;
        if base.saturating_mul(e.multiplier) < s.max_ejection {
            e.multiplier += 1;
        }
        e.ejections += 1;
        let duration = base.saturating_mul(e.multiplier).min(s.max_ejection);
        let until = now.saturating_add(nanos(duration)).max(1);
        e.ejected = Some((reason, now, until));
        e.endpoint.ejected_until.store(until, Release);
        self.inner.ejections[reason.index()].fetch_add(1, Relaxed);
        tracing::warn!(name = %self.inner.name, kind = "outlier_detection", endpoint = %e.endpoint.label, reason = reason.as_str(), ejections = e.ejections, ?duration, "endpoint ejected");
        self.inner.events.send(OutlierEvent::Ejected {
            name: self.inner.name.clone(),
            endpoint: e.endpoint.label.clone(),
            reason,
            ejections: e.ejections,
            duration,
        });
    }

    /// Readmits endpoint `id` if its ejection time has passed (its service's `poll_ready`).
    #[cold]
    #[inline(never)]
    pub(crate) fn readmit(&self, id: u64) {
        let now = self.now();
        let mut pool = self.lock();
        if let Some(e) = pool.entries.iter_mut().find(|e| e.id == id) {
            self.readmit_entry(e, now);
        }
    }

    fn readmit_due(&self, pool: &mut Pool, now: u64) {
        for e in pool.entries.iter_mut() {
            self.readmit_entry(e, now);
        }
    }

    fn readmit_entry(&self, e: &mut Entry, now: u64) {
        let Some((_, _, until)) = e.ejected else {
            return;
        };
        if now < until {
            return;
        }
        e.ejected = None;
        e.readmitted_at = Some(now);
        let ep = &e.endpoint;
        ep.consecutive_5xx.store(0, Relaxed);
        ep.consecutive_gateway.store(0, Relaxed);
        ep.ejected_until.store(0, Release);
        self.inner.readmissions.fetch_add(1, Relaxed);
        tracing::info!(name = %self.inner.name, kind = "outlier_detection", endpoint = %ep.label, "endpoint readmitted");
        self.inner.events.send(OutlierEvent::Readmitted {
            name: self.inner.name.clone(),
            endpoint: ep.label.clone(),
        });
    }

    /// Whether an endpoint labelled `label` is ejected now (its ejection time not yet passed).
    pub fn is_ejected(&self, label: &str) -> bool {
        let now = self.now();
        let pool = self.lock();
        pool.entries.iter().any(|e| {
            &*e.endpoint.label == label && e.ejected.is_some_and(|(_, _, until)| now < until)
        })
    }

    /// Every endpoint in the pool now, in the order they joined. Endpoints whose ejection
    /// time has passed are readmitted first.
    pub fn endpoints(&self) -> Vec<EndpointMetrics> {
        let now = self.now();
        let mut pool = self.lock();
        self.readmit_due(&mut pool, now);
        pool.entries
            .iter()
            .map(|e| EndpointMetrics {
                label: e.endpoint.label.clone(),
                ejected: e.ejected.map(|(reason, _, until)| {
                    (reason, Duration::from_nanos(until.saturating_sub(now)))
                }),
                ejections: e.ejections,
                multiplier: e.multiplier,
                successes: e.endpoint.successes.load(Relaxed),
                failures: e.endpoint.failures.load(Relaxed),
            })
            .collect()
    }
}

/// A duration in ns, saturating.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
