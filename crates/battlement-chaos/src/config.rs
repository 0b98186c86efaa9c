//! The chaos handle's builder and its validation.

use crate::chaos::{Chaos, ErrorSource};
use crate::response::{NoResponse, ResponseFn};
use battlement_core::{BoxError, ComponentKind, ConfigError, FailureKind, Registration};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Slack allowed when checking that the error and response probabilities sum to at most 1, for
/// sums such as `0.7 + 0.3` that floating point rounds up.
const SUM_EPSILON: f64 = 1e-9;

/// How long an injected delay lasts.
///
/// ```
/// use battlement_chaos::Latency;
/// use std::time::Duration;
///
/// let fixed = Latency::Fixed(Duration::from_millis(250));
/// let range = Latency::Uniform { min: Duration::from_millis(50), max: Duration::from_millis(500) };
/// assert_ne!(fixed, range);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly distributed within `min..=max` (drawn with nanosecond resolution; tokio's
    /// timer then rounds the sleep up to the millisecond).
    Uniform {
        /// The shortest delay.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Latency {
    pub(crate) fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => Duration::from_nanos(rng.u64(nanos(min)..=nanos(max))),
        }
    }
}

/// Builds a [`Chaos`] handle, validating every setting.
///
/// Probabilities are within `0.0..=1.0`. Latency is drawn independently of the rest; an injected
/// error and an injected response exclude each other, so their probabilities must sum to at most
/// 1.
///
/// Defaults: nothing injected, off, seeded from a random source; with every registry given
/// ([`registry`](Self::registry)), registered as a non-critical component (chaos's default: its
/// status is always `pass`, the faults it injects show in the components they exercise).
///
/// ```
/// use battlement_chaos::{Chaos, Latency};
/// use std::time::Duration;
///
/// let chaos = Chaos::builder("inventory")
///     .seed(42)
///     .latency(0.2, Latency::Uniform { min: Duration::from_millis(50), max: Duration::from_millis(300) })
///     .error(0.05)
///     .response(0.05, || http::Response::builder().status(503).body(()).unwrap())
///     .build()
///     .unwrap();
/// assert!(!chaos.is_enabled());
///
/// let err = Chaos::builder("x").error(0.7).response(0.4, || ()).build().unwrap_err();
/// assert_eq!(err.setting(), "response");
/// ```
#[must_use]
pub struct ChaosBuilder<R = NoResponse> {
    registration: Registration,
    seed: Option<u64>,
    enabled: bool,
    latency: Option<(f64, Latency)>,
    error: Option<(f64, ErrorSource)>,
    error_kind: FailureKind,
    response: Option<f64>,
    respond: R,
}

impl<R> fmt::Debug for ChaosBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosBuilder")
            .field("registration", &self.registration)
            .field("seed", &self.seed)
            .field("enabled", &self.enabled)
            .field("latency", &self.latency)
            .field("error", &self.error.as_ref().map(|(p, _)| *p))
            .field("error_kind", &self.error_kind)
            .field("response", &self.response)
            .finish()
    }
}

impl ChaosBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        ChaosBuilder {
            registration: Registration::new(ComponentKind::Chaos, name),
            seed: None,
            enabled: false,
            latency: None,
            error: None,
            error_kind: FailureKind::Connection,
            response: None,
            respond: NoResponse,
        }
    }
}

impl<R> ChaosBuilder<R> {
    /// Seeds the random source, so a run can be replayed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether the handle starts enabled (default `false`: off until
    /// [`enable`](Chaos::enable)d).
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Delays a call by `latency` with `probability`, independently of injected errors and
    /// responses (a delayed call then reaches the inner service, or gets its injected error or
    /// response, when the delay has passed).
    pub fn latency(mut self, probability: f64, latency: Latency) -> Self {
        self.latency = Some((probability, latency));
        self
    }

    /// Answers a call with an [`InjectedFault`](crate::InjectedFault) error with `probability`,
    /// without calling the inner service. The fault imitates a failure of
    /// [`error_kind`](Self::error_kind) (by default `Connection`), and every component's default
    /// classification reads it as that kind.
    pub fn error(mut self, probability: f64) -> Self {
        self.error = Some((probability, ErrorSource::Fault(FailureKind::Connection)));
        self
    }

    /// The kind of failure an injected [`InjectedFault`](crate::InjectedFault) imitates (default
    /// [`FailureKind::Connection`]: an error, rather than a response, is what a transport returns
    /// when the upstream cannot be reached). The breaker, the retry policy and the health probe
    /// classify the fault as this kind, so an experiment sees the stack react as it would to the
    /// real failure. Errors made by [`error_with`](Self::error_with) are classified as they are.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_chaos::{Chaos, InjectedFault};
    /// use battlement_core::{error::failure_kind, FailureKind};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// let chaos = Chaos::builder("db")
    ///     .enabled(true)
    ///     .error(1.0)
    ///     .error_kind(FailureKind::Timeout)
    ///     .build()
    ///     .unwrap();
    /// let svc = chaos.layer().layer(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
    /// let err = svc.oneshot(1).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<InjectedFault>().unwrap().kind(), FailureKind::Timeout);
    /// assert_eq!(failure_kind(&*err), FailureKind::Timeout);
    /// # }
    /// ```
    pub fn error_kind(mut self, kind: FailureKind) -> Self {
        self.error_kind = kind;
        self
    }

    /// Answers a call with an error made by `make` with `probability`, without calling the inner
    /// service (replaces [`error`](Self::error)).
    pub fn error_with<F, E>(mut self, probability: f64, make: F) -> Self
    where
        F: Fn() -> E + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.error = Some((
            probability,
            ErrorSource::Custom(Arc::new(move || make().into())),
        ));
        self
    }

    /// Answers a call with a response made by `make` (e.g. an HTTP 503) with `probability`,
    /// without calling the inner service. The handle then guards services whose response type is
    /// `Res`.
    pub fn response<Res, F>(self, probability: f64, make: F) -> ChaosBuilder<ResponseFn<Res>>
    where
        F: Fn() -> Res + Send + Sync + 'static,
    {
        ChaosBuilder {
            registration: self.registration,
            seed: self.seed,
            enabled: self.enabled,
            latency: self.latency,
            error: self.error,
            error_kind: self.error_kind,
            response: Some(probability),
            respond: ResponseFn::new(make),
        }
    }

    battlement_core::define_registration_methods!();

    fn err(&self, setting: &'static str, value: impl fmt::Debug, why: &'static str) -> ConfigError {
        self.registration.error(setting, value, why)
    }

    fn check_probability(&self, setting: &'static str, p: f64) -> Result<(), ConfigError> {
        if (0.0..=1.0).contains(&p) {
            Ok(())
        } else {
            Err(self.err(setting, p, "must be within 0..=1"))
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.registration.require_name()?;
        if let Some((p, latency)) = self.latency {
            self.check_probability("latency.probability", p)?;
            match latency {
                Latency::Fixed(d) if d.is_zero() => {
                    return Err(self.err("latency", latency, "must be greater than zero"))
                }
                Latency::Uniform { min, max } if min > max => {
                    return Err(self.err("latency", latency, "min must not exceed max"))
                }
                Latency::Uniform { max, .. } if max.is_zero() => {
                    return Err(self.err("latency", latency, "max must be greater than zero"))
                }
                Latency::Fixed(d) | Latency::Uniform { max: d, .. }
                    if d.as_nanos() > u128::from(u64::MAX) =>
                {
                    return Err(self.err("latency", latency, "at most u64::MAX nanoseconds"))
                }
                _ => {}
            }
        }
        let error = match &self.error {
            Some((p, _)) => {
                self.check_probability("error", *p)?;
                *p
            }
            None => 0.0,
        };
        if let Some(p) = self.response {
            self.check_probability("response", p)?;
            if error + p > 1.0 + SUM_EPSILON {
                return Err(self.err(
                    "response",
                    p,
                    "error and response probabilities exclude each other and must sum to at most 1",
                ));
            }
        }
        Ok(())
    }

    /// Validates the settings, builds the handle and registers it with every registry given, or
    /// with none: a registry that already holds chaos of the same name makes it fail.
    pub fn build(self) -> Result<Chaos<R>, ConfigError> {
        self.validate()?;
        let seed = self.seed.unwrap_or_else(|| fastrand::u64(..));
        let mut error = self.error;
        // Past the check, a sum a hair above 1 only starves `Pass`; clamp the shares.
        let response = self.response.unwrap_or(0.0);
        if let Some((p, source)) = &mut error {
            *p = p.min(1.0 - response).max(0.0);
            if let ErrorSource::Fault(kind) = source {
                *kind = self.error_kind;
            }
        }
        let chaos = Chaos::from_parts(
            self.registration.name().into(),
            self.enabled,
            seed,
            self.latency,
            error,
            response,
            self.respond,
        );
        // The health view needs only the shared state, whatever responses the handle makes.
        self.registration.register(Arc::new(Chaos {
            shared: chaos.shared.clone(),
            respond: NoResponse,
        }))?;
        Ok(chaos)
    }
}

#[cfg(test)]
mod tests {
    use crate::Chaos;
    use battlement_core::testing::RecordingSink;
    use battlement_core::{ComponentKind, HealthSource};

    #[test]
    fn chaos_registers_as_itself_not_critical_by_default() {
        let sink = RecordingSink::new();
        let chaos = Chaos::builder("inventory")
            .response(0.1, || 503u16)
            .registry(&sink)
            .build()
            .unwrap();
        Chaos::builder("orders")
            .registry(&sink)
            .critical(true)
            .build()
            .unwrap();
        let got = sink.registered();
        let seen: Vec<_> = got
            .iter()
            .map(|(c, critical)| (c.kind(), c.name().to_owned(), *critical))
            .collect();
        assert_eq!(
            seen,
            [
                (ComponentKind::Chaos, "inventory".to_owned(), false),
                (ComponentKind::Chaos, "orders".to_owned(), true),
            ]
        );
        // The registered view reports the handle's own state.
        assert_eq!(got[0].0.snapshot().state, "disabled");
        chaos.enable();
        assert_eq!(got[0].0.snapshot().state, "enabled");
    }
}
