//! The chaos handle: on/off switch, seeded random source, counters (read out in `metrics.rs`).

use crate::config::{ChaosBuilder, Latency};
use crate::response::NoResponse;
use battlement_core::error::InjectedFault;
use battlement_core::{BoxError, FailureKind};
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

/// The increment of the splitmix64 sequence (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output function: turns consecutive counter values into independent seeds.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fault injection handle shared by any number of [`ChaosLayer`](crate::ChaosLayer)s.
///
/// With the probabilities its [builder](ChaosBuilder) was given, each call through a guarded
/// service may be delayed (independently of the rest), and may be answered with an injected error
/// or an injected response instead of reaching the inner service (these two exclude each other).
///
/// It is **off** when built (unless [`ChaosBuilder::enabled`] says otherwise) and is switched at
/// run time with [`enable`](Self::enable) and [`disable`](Self::disable). While off, a call costs
/// one atomic load and goes straight to the inner service: the random source is not touched and
/// nothing is counted.
///
/// Randomness is seedable ([`ChaosBuilder::seed`]): every call takes the next value of one
/// splitmix64 sequence held in an atomic counter (no lock, no allocation), so with one caller at a
/// time a seed replays the same faults. Counters of injected faults: [`metrics`](Self::metrics).
///
/// `R` is what injected responses are made with: [`NoResponse`] by default, or a
/// [`ResponseFn`](crate::ResponseFn) set by [`ChaosBuilder::response`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_chaos::{Chaos, InjectedFault};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let chaos = Chaos::builder("db").seed(7).error(1.0).build().unwrap();
/// let svc = chaos.layer().layer(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
///
/// assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1); // off by default
/// chaos.enable();
/// let err = svc.clone().oneshot(2).await.unwrap_err();
/// assert!(err.downcast_ref::<InjectedFault>().is_some());
/// chaos.disable();
/// assert_eq!(svc.oneshot(3).await.unwrap(), 3);
/// assert_eq!(chaos.metrics().errors, 1);
/// # }
/// ```
pub struct Chaos<R = NoResponse> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) respond: R,
}

impl<R: Clone> Clone for Chaos<R> {
    fn clone(&self) -> Self {
        Chaos {
            shared: self.shared.clone(),
            respond: self.respond.clone(),
        }
    }
}

pub(crate) enum ErrorSource {
    /// An [`InjectedFault`] imitating this kind.
    Fault(FailureKind),
    Custom(Arc<dyn Fn() -> BoxError + Send + Sync>),
}

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) enabled: AtomicBool,
    /// The splitmix64 counter: advanced once per call while enabled.
    rng: AtomicU64,
    latency: Option<(f64, Latency)>,
    error: Option<(f64, ErrorSource)>,
    response: f64,
    pub(crate) calls: AtomicU64,
    pub(crate) latencies: AtomicU64,
    pub(crate) latency_nanos: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) responses: AtomicU64,
}

/// What to do with one call (besides a delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Pass,
    Error,
    Response,
}

impl Chaos {
    /// Starts building a chaos handle called `name`.
    pub fn builder(name: impl Into<String>) -> ChaosBuilder {
        ChaosBuilder::new(name)
    }
}

impl<R> Chaos<R> {
    pub(crate) fn from_parts(
        name: Arc<str>,
        enabled: bool,
        seed: u64,
        latency: Option<(f64, Latency)>,
        error: Option<(f64, ErrorSource)>,
        response: f64,
        respond: R,
    ) -> Self {
        Chaos {
            shared: Arc::new(Shared {
                name,
                enabled: AtomicBool::new(enabled),
                rng: AtomicU64::new(seed),
                latency,
                error,
                response,
                calls: AtomicU64::new(0),
                latencies: AtomicU64::new(0),
                latency_nanos: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                responses: AtomicU64::new(0),
            }),
            respond,
        }
    }

    /// The handle's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Turns fault injection on for every service guarded by this handle.
    pub fn enable(&self) {
        self.set_enabled(true);
    }

    /// Turns fault injection off: calls go straight to the inner services.
    pub fn disable(&self) {
        self.set_enabled(false);
    }

    /// Turns fault injection on or off.
    pub fn set_enabled(&self, on: bool) {
        if self.shared.enabled.swap(on, Relaxed) != on {
            tracing::info!(
                chaos = %self.shared.name,
                enabled = on,
                "fault injection {}",
                if on { "enabled" } else { "disabled" }
            );
        }
    }

    /// Whether fault injection is on.
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled.load(Relaxed)
    }

    /// The response maker.
    pub(crate) fn responder(&self) -> &R {
        &self.respond
    }

    #[cfg(test)]
    pub(crate) fn rng_state(&self) -> u64 {
        self.shared.rng.load(Relaxed)
    }
}

impl Shared {
    /// Decides one call's fate from the next value of the random sequence.
    pub(crate) fn draw(&self) -> (Option<Duration>, Action) {
        let mut rng = fastrand::Rng::with_seed(mix(self.rng.fetch_add(GAMMA, Relaxed)));
        self.calls.fetch_add(1, Relaxed);
        let delay = match &self.latency {
            Some((p, latency)) if rng.f64() < *p => Some(latency.sample(&mut rng)),
            _ => None,
        };
        let x = rng.f64();
        let error = self.error.as_ref().map_or(0.0, |(p, _)| *p);
        let action = if x < error {
            Action::Error
        } else if x < error + self.response {
            Action::Response
        } else {
            Action::Pass
        };
        (delay, action)
    }

    pub(crate) fn record_delay(&self, delay: Duration) {
        self.latencies.fetch_add(1, Relaxed);
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.fetch_add(nanos, Relaxed);
        tracing::debug!(chaos = %self.name, ?delay, "injected latency");
    }

    pub(crate) fn make_error(&self) -> BoxError {
        self.errors.fetch_add(1, Relaxed);
        tracing::debug!(chaos = %self.name, "injected error");
        match &self.error {
            Some((_, ErrorSource::Custom(make))) => make(),
            Some((_, ErrorSource::Fault(kind))) => {
                Box::new(InjectedFault::new(self.name.clone()).imitating(*kind))
            }
            None => Box::new(InjectedFault::new(self.name.clone())),
        }
    }

    pub(crate) fn record_response(&self) {
        self.responses.fetch_add(1, Relaxed);
        tracing::debug!(chaos = %self.name, "injected response");
    }
}

impl<R> fmt::Debug for Chaos<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Chaos")
            .field("name", &s.name)
            .field("enabled", &self.is_enabled())
            .field("latency", &s.latency)
            .field("error", &s.error.as_ref().map(|(p, _)| *p))
            .field("response", &s.response)
            .finish_non_exhaustive()
    }
}
