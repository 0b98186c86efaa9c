//! The throttle handle and its sliding window: striped cumulative counters, a ring of their
//! totals at bucket boundaries, and the rejection probability computed at each boundary.
//!
//! # How the window works
//!
//! Every call writes only the calling thread's cell ([`Stripes::owned`]; threads without a cell
//! of their own share one overflow cell): `requests` when the call is made, `accepts` when the
//! dependency accepted it, `discarded` when it left the count (cancelled, ignored, or rejected
//! by an inner layer). The cells are cumulative and never reset.
//!
//! Time is cut into buckets of `window / buckets`. The first call (or read-out) of a new bucket
//! takes the roll-over (a compare-and-swap on the epoch word: one writer per bucket, nobody
//! waits for it) and sums the cells: the totals now, minus the totals at the boundary one
//! window ago (kept in a ring), are the window's requests and accepts; from them it computes
//! the rejection probability, which every call of the next bucket reads. So a call reads two
//! shared words (the epoch and the probability) and writes its own cell: no lock, no
//! allocation, no shared word written per call. The probability is at most one bucket old.
//!
//! Calls between two roll-overs all happened in the first of the buckets between them (a call
//! in any later bucket would have rolled it over), so boundaries skipped while no call came
//! take the totals of the next roll-over: a window with no calls counts zero.

use crate::config::ThrottleBuilder;
use crate::event::ThrottleEvent;
use battlement_core::error::Throttled;
use battlement_core::event::EventChannel;
use battlement_core::stripe::{CachePadded, Stripes};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The epoch word while a roll-over runs.
const ROLLING: u64 = u64::MAX;

/// One thread's counts (or the overflow cell's).
#[derive(Debug)]
pub(crate) struct Cell {
    requests: AtomicU64,
    accepts: AtomicU64,
    discarded: AtomicU64,
    throttled: AtomicU64,
    rng: AtomicU64,
}

impl Cell {
    fn new(seed: u64) -> Self {
        Cell {
            requests: AtomicU64::new(0),
            accepts: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
        }
    }

    /// A uniform draw in `[0, 1)`: splitmix64 over the cell's state. The owner is the state's
    /// only writer; in the overflow cell two threads may draw the same number, which is harmless.
    #[inline]
    fn draw(&self) -> f64 {
        let state = self.rng.load(Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.rng.store(state, Relaxed);
        (mix(state) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Adds one to `counter`: a plain load and store for the cell's owner, else a locked add.
    #[inline]
    fn bump(counter: &AtomicU64, owned: bool) {
        if owned {
            counter.store(counter.load(Relaxed) + 1, Relaxed);
        } else {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// The dependency accepted the call.
    #[inline]
    pub(crate) fn accept(&self) {
        // Possibly from another thread than the cell's owner: a locked add.
        self.accepts.fetch_add(1, Relaxed);
    }

    /// The call leaves the count.
    #[inline]
    pub(crate) fn discard(&self) {
        self.discarded.fetch_add(1, Relaxed);
    }
}

/// splitmix64's output function.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Totals of every cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Requests made, minus those discarded.
    pub(crate) requests: u64,
    pub(crate) accepts: u64,
}

pub(crate) struct Inner {
    pub(crate) name: Arc<str>,
    /// `K` (`f64` bits; reloadable). Read once per bucket.
    pub(crate) k: AtomicU64,
    pub(crate) window: Duration,
    pub(crate) buckets: usize,
    bucket_nanos: u64,
    origin: tokio::time::Instant,
    cells: Stripes<Arc<CachePadded<Cell>>>,
    overflow: Arc<CachePadded<Cell>>,
    /// The bucket the probability was computed at, or [`ROLLING`]. Written once per bucket.
    epoch: CachePadded<AtomicU64>,
    /// The rejection probability (`f64` bits). Written once per bucket.
    probability: AtomicU64,
    /// The window's requests and accepts at the last roll-over.
    window_requests: AtomicU64,
    window_accepts: AtomicU64,
    /// Totals at the boundaries of the last `buckets` buckets, by epoch modulo `buckets`.
    /// Written by the roll-over only.
    ring: Box<[(AtomicU64, AtomicU64)]>,
    pub(crate) events: EventChannel<ThrottleEvent>,
}

/// A client-side adaptive throttle (Google SRE's rule), shared by any number of
/// [`ThrottleLayer`](crate::ThrottleLayer)s.
///
/// Over a sliding window it counts the calls made (`requests`, those it rejected included) and
/// the calls the dependency accepted (`accepts`), and rejects each new call locally, with the
/// typed [`Throttled`] error, with probability
/// `max(0, (requests − K × accepts) / (requests + 1))`. While the dependency accepts every call
/// that probability is 0; once it refuses more than `1 − 1/K` of them, the client stops sending
/// the excess instead of spending the dependency's capacity on refusals.
///
/// The handle is cheap to clone (an `Arc` inside); every clone is the same throttle. Built with
/// [`Throttle::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_throttle::Throttle;
/// use std::time::Duration;
/// use tower::{service_fn, ServiceExt};
///
/// let throttle = Throttle::builder("search")
///     .window(Duration::from_secs(10))
///     .buckets(10)
///     .seed(7)
///     .build()
///     .unwrap();
/// // A dependency that refuses everything.
/// let svc = throttle.layer().layer(service_fn(|_: ()| async {
///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
/// }));
/// for _ in 0..100 {
///     let _ = svc.clone().oneshot(()).await;
/// }
/// tokio::time::advance(Duration::from_secs(1)).await; // the next bucket: the window is read
/// let m = throttle.metrics();
/// assert_eq!((m.window_requests, m.window_accepts), (100, 0));
/// assert!((m.rejection_probability - 100.0 / 101.0).abs() < 1e-9);
/// # use tower::Layer;
/// # }
/// ```
pub struct Throttle {
    pub(crate) inner: Arc<Inner>,
}

impl Clone for Throttle {
    fn clone(&self) -> Self {
        Throttle {
            inner: self.inner.clone(),
        }
    }
}

/// What [`Throttle::admit`] decided.
pub(crate) enum Admit {
    /// Send the call; record its outcome into the cell.
    Send(Arc<CachePadded<Cell>>),
    /// Rejected locally with this probability.
    Reject(f64),
}

impl Throttle {
    /// Starts building a throttle called `name`.
    pub fn builder(name: impl Into<String>) -> ThrottleBuilder {
        ThrottleBuilder::new(name)
    }

    pub(crate) fn new(
        name: Arc<str>,
        k: f64,
        window: Duration,
        buckets: usize,
        seed: u64,
        events: EventChannel<ThrottleEvent>,
    ) -> Self {
        let bucket_nanos = u64::try_from((window / buckets as u32).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let cell = |i: usize| Cell::new(mix(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407)));
        Throttle {
            inner: Arc::new(Inner {
                name,
                k: AtomicU64::new(k.to_bits()),
                window,
                buckets,
                bucket_nanos,
                origin: tokio::time::Instant::now(),
                cells: Stripes::new_shared(cell),
                overflow: Arc::new(CachePadded::new(cell(usize::MAX))),
                epoch: CachePadded::new(AtomicU64::new(0)),
                probability: AtomicU64::new(0f64.to_bits()),
                window_requests: AtomicU64::new(0),
                window_accepts: AtomicU64::new(0),
                ring: (0..buckets)
                    .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                    .collect(),
                events,
            }),
        }
    }

    /// The throttle's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The multiplier `K`: the dependency may refuse calls until `requests` reaches `K` times
    /// `accepts`.
    pub fn k(&self) -> f64 {
        f64::from_bits(self.inner.k.load(Relaxed))
    }

    /// The sliding window's length.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// How many buckets the window is cut into (the probability is recomputed once per bucket).
    pub fn buckets(&self) -> usize {
        self.inner.buckets
    }

    /// The rejection probability now (recomputed first if a bucket has ended since the last
    /// call).
    pub fn rejection_probability(&self) -> f64 {
        self.roll_to_now();
        f64::from_bits(self.inner.probability.load(Relaxed))
    }

    /// Subscribes to typed events ([`ThrottleEvent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<ThrottleEvent> {
        self.inner.events.subscribe()
    }

    /// The current bucket.
    #[inline]
    fn now_epoch(&self) -> u64 {
        let nanos = u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        nanos / self.inner.bucket_nanos
    }

    /// Rolls the window over if a bucket has ended since the last roll-over.
    pub(crate) fn roll_to_now(&self) {
        let now = self.now_epoch();
        let last = self.inner.epoch.load(Relaxed);
        if last != ROLLING && now > last {
            self.roll(now);
        }
    }

    /// Decides one call: counts it as a request, and rejects it with the current probability.
    #[inline]
    pub(crate) fn admit(&self) -> Admit {
        let inner = &*self.inner;
        let now = self.now_epoch();
        let last = inner.epoch.load(Relaxed);
        if last != ROLLING && now > last {
            self.roll(now);
        }
        let (cell, owned) = match inner.cells.owned() {
            Some(cell) => (cell, true),
            None => (&inner.overflow, false),
        };
        Cell::bump(&cell.requests, owned);
        let p = f64::from_bits(inner.probability.load(Relaxed));
        if p > 0.0 && cell.draw() < p {
            Cell::bump(&cell.throttled, owned);
            return Admit::Reject(p);
        }
        Admit::Send(cell.clone())
    }

    /// Makes the error of a call rejected with probability `p`.
    #[cold]
    pub(crate) fn reject(&self, p: f64) -> Throttled {
        tracing::debug!(name = %self.inner.name, kind = "throttle", probability = p, "call rejected by adaptive throttle");
        Throttled::new(self.inner.name.clone(), p)
    }

    /// Sums every cell: (requests − discarded, accepts, raw requests, discarded, throttled).
    pub(crate) fn sums(&self) -> (Totals, u64, u64, u64) {
        let inner = &*self.inner;
        let (mut requests, mut accepts, mut discarded, mut throttled) = (0u64, 0u64, 0u64, 0u64);
        for cell in inner.cells.iter().chain(std::iter::once(&inner.overflow)) {
            requests = requests.wrapping_add(cell.requests.load(Relaxed));
            accepts = accepts.wrapping_add(cell.accepts.load(Relaxed));
            discarded = discarded.wrapping_add(cell.discarded.load(Relaxed));
            throttled = throttled.wrapping_add(cell.throttled.load(Relaxed));
        }
        (
            Totals {
                requests: requests.wrapping_sub(discarded),
                accepts,
            },
            requests,
            discarded,
            throttled,
        )
    }

    /// The window's requests and accepts at the last roll-over.
    pub(crate) fn window_counts(&self) -> (u64, u64) {
        (
            self.inner.window_requests.load(Relaxed),
            self.inner.window_accepts.load(Relaxed),
        )
    }

    /// Rolls the window over to bucket `now`: one caller does it, the others go on with the
    /// probability as it is.
    #[cold]
    #[inline(never)]
    fn roll(&self, now: u64) {
        let inner = &*self.inner;
        let last = inner.epoch.load(Acquire);
        if last == ROLLING || now <= last {
            return;
        }
        // Acquire: this roll-over sees the ring as the last one left it.
        if inner
            .epoch
            .compare_exchange(last, ROLLING, Acquire, Relaxed)
            .is_err()
        {
            return;
        }
        let (totals, ..) = self.sums();
        let n = inner.buckets as u64;
        let slot = |epoch: u64| &inner.ring[(epoch % n) as usize];
        // The totals at the boundary one window ago: kept in the ring if that boundary is after
        // the last roll-over's, else (no call came since) the totals now; before the first
        // window, zero.
        let start = if now < n {
            Totals::default()
        } else if now - n > last {
            totals
        } else {
            let (requests, accepts) = slot(now - n);
            Totals {
                requests: requests.load(Relaxed),
                accepts: accepts.load(Relaxed),
            }
        };
        // Boundaries last+1 ..= now all take the totals now (the ring holds at most n).
        let first = (last + 1).max(now.saturating_sub(n - 1));
        for epoch in first..=now {
            let (requests, accepts) = slot(epoch);
            requests.store(totals.requests, Relaxed);
            accepts.store(totals.accepts, Relaxed);
        }
        let requests = totals.requests.saturating_sub(start.requests);
        let accepts = totals.accepts.saturating_sub(start.accepts);
        let p = probability(requests, accepts, f64::from_bits(inner.k.load(Relaxed)));
        let before = f64::from_bits(inner.probability.swap(p.to_bits(), Relaxed));
        inner.window_requests.store(requests, Relaxed);
        inner.window_accepts.store(accepts, Relaxed);
        // Release: the next roll-over sees this one's ring.
        inner.epoch.store(now, Release);
        if before == 0.0 && p > 0.0 {
            tracing::info!(name = %inner.name, kind = "throttle", probability = p, requests, accepts, "adaptive throttle started rejecting calls");
            inner.events.send(ThrottleEvent::Started {
                name: inner.name.clone(),
                probability: p,
                requests,
                accepts,
            });
        } else if before > 0.0 && p == 0.0 {
            tracing::info!(name = %inner.name, kind = "throttle", requests, accepts, "adaptive throttle stopped rejecting calls");
            inner.events.send(ThrottleEvent::Stopped {
                name: inner.name.clone(),
            });
        }
    }
}

/// Google SRE's client-side throttling rule: `max(0, (requests − K × accepts) / (requests + 1))`.
///
/// ```
/// use battlement_throttle::probability;
///
/// assert_eq!(probability(100, 100, 2.0), 0.0); // a healthy dependency
/// assert_eq!(probability(100, 50, 2.0), 0.0);  // refusing half: still within K = 2
/// assert!((probability(100, 30, 2.0) - 40.0 / 101.0).abs() < 1e-12);
/// assert!((probability(100, 0, 2.0) - 100.0 / 101.0).abs() < 1e-12);
/// ```
pub fn probability(requests: u64, accepts: u64, k: f64) -> f64 {
    let requests = requests as f64;
    (k.mul_add(-(accepts as f64), requests) / (requests + 1.0)).max(0.0)
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("name", &self.inner.name)
            .field("k", &self.k())
            .field("window", &self.inner.window)
            .field("buckets", &self.inner.buckets)
            .finish()
    }
}
