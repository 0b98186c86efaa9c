//! The hedging `tower::Layer`.

use crate::config::HedgeBuilder;
use crate::handle::{HedgeHandle, Shared};
use crate::policy::Always;
use crate::Hedge;
use battlement_core::ConfigError;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tower_layer::Layer;

/// Hedges calls: sends another attempt when the ones in flight have not answered after a
/// delay, and answers with the first success.
///
/// Every service a layer makes shares its metrics, latency window and budget (see
/// [`handle`](HedgeLayer::handle)). Build one with [`HedgeLayer::builder`] (or
/// [`HedgeLayer::http_builder`] for HTTP clients).
///
/// ```
/// use battlement_hedge::HedgeLayer;
/// use std::time::Duration;
/// use tower::ServiceBuilder;
///
/// let layer = HedgeLayer::builder().delay(Duration::from_millis(50)).max_attempts(3).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service_fn(|key: u64| async move { Ok::<_, std::io::Error>(key) });
/// assert_eq!(svc.handle().max_attempts(), 3);
/// ```
#[derive(Clone)]
pub struct HedgeLayer<P = Always> {
    shared: Arc<Shared>,
    policy: P,
}

impl HedgeLayer {
    /// A builder with the defaults (see [`HedgeBuilder`]).
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::new()
    }

    /// A builder for HTTP clients: hedges only requests with an idempotent method
    /// ([`IdempotentMethods`](crate::IdempotentMethods)). The requests' bodies must be `Clone`.
    #[cfg(feature = "http")]
    pub fn http_builder() -> HedgeBuilder<crate::IdempotentMethods> {
        HedgeBuilder::new().policy(crate::IdempotentMethods)
    }
}

impl<P> HedgeLayer<P> {
    pub(crate) fn from_parts(shared: Arc<Shared>, policy: P) -> Self {
        HedgeLayer { shared, policy }
    }

    /// A handle to the layer's metrics.
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle {
            shared: self.shared.clone(),
        }
    }

    /// Applies the settings of `settings` to this live layer, its clones and the services they
    /// made, or, if any is invalid, changes nothing and returns the error
    /// ([`HedgeBuilder::validate`]'s).
    ///
    /// The builder's name, registries (and `critical`) and policy are not applied: the layer
    /// keeps its identity, its registrations and the policy it was built with (a policy is
    /// code, and part of the layer's type). No call is dropped or failed. The rest applies to
    /// new requests:
    ///
    /// - `max_attempts` applies to calls that start after the reload: a call in flight keeps
    ///   the limit it started with.
    /// - The delay (fixed, or the percentile with its window, minimum of samples, initial
    ///   delay and bounds) applies to each delay timer armed after the reload, so a call in
    ///   flight waits its current delay out and uses the new one for its next hedge. A
    ///   percentile window, once built, keeps its memory: a reload to a longer window keeps
    ///   the length it was built with (and logs a warning); one to another percentile
    ///   recomputes it at once over the latencies held. Switching from a fixed delay to a
    ///   percentile builds the window then, and starts from the initial delay.
    /// - The budget's ratio and burst apply from the next hedge decision; the tokens saved up
    ///   are kept (capped by the new burst). A budget turned on by a reload starts empty, as a
    ///   new layer's does; turned off, every hedge is allowed.
    ///
    /// Each setting is published on its own: a call racing the reload may see some of the new
    /// settings and some of the old ones, never one that was not valid. A reload is a
    /// `tracing` info event and counts in [`HedgeMetrics::reloads`](crate::HedgeMetrics::reloads).
    ///
    /// ```
    /// use battlement_hedge::HedgeLayer;
    /// use std::time::Duration;
    ///
    /// let layer = HedgeLayer::builder().name("search").delay(Duration::from_millis(50)).build().unwrap();
    /// let same = layer.clone();
    /// layer
    ///     .reload(&HedgeLayer::builder().name("search").delay(Duration::from_millis(20)).max_attempts(3))
    ///     .unwrap();
    /// assert_eq!(same.handle().current_delay(), Duration::from_millis(20));
    /// assert_eq!(same.handle().max_attempts(), 3);
    ///
    /// let err = layer.reload(&HedgeLayer::builder().max_attempts(0)).unwrap_err();
    /// assert_eq!(err.setting(), "max_attempts");
    /// assert_eq!(same.handle().max_attempts(), 3); // nothing changed
    /// assert_eq!(same.handle().metrics().reloads, 1);
    /// ```
    pub fn reload<P2>(&self, settings: &HedgeBuilder<P2>) -> Result<(), ConfigError> {
        settings.validate()?;
        let s = &self.shared;
        let _one_at_a_time = s.reload.lock().unwrap_or_else(|e| e.into_inner());
        let delay = settings.delay_setting();
        s.delay.set(delay);
        let max_attempts = settings.max_attempts_setting();
        s.max_attempts.store(max_attempts, Ordering::Relaxed);
        let budget = settings.budget_setting();
        s.budget.set(budget, s.requests.sum());
        s.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            hedge = %s.name,
            ?delay,
            max_attempts,
            ?budget,
            "hedge settings reloaded"
        );
        Ok(())
    }
}

impl<P> fmt::Debug for HedgeLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("name", &self.shared.name)
            .field("delay", &self.shared.delay())
            .field("max_attempts", &self.shared.max_attempts())
            .finish_non_exhaustive()
    }
}

impl<S, P: Clone> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_parts(inner, self.policy.clone(), self.shared.clone())
    }
}
