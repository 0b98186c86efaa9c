//! The probe's `tower::Layer`.

use crate::{HealthProbe, HealthProbeService};
use battlement_core::DefaultClassifier;
use tower_layer::Layer;

/// Records the outcome of every call through the services it makes into a [`HealthProbe`].
///
/// Outcomes come from a [`Classify`](battlement_core::Classify)r: by default
/// [`DefaultClassifier`] (every `Err` fails); give an
/// `battlement_core::HttpClassifier` (core feature `http`) to count 5xx and 429 responses as
/// failures.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_health::{HealthProbe, HealthProbeLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let probe = HealthProbe::builder("geo-api").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(HealthProbeLayer::new(&probe))
///     .service_fn(|q: &'static str| async move {
///         if q.is_empty() { Err(std::io::Error::other("empty query")) } else { Ok(q.len()) }
///     });
/// assert_eq!(svc.clone().oneshot("paris").await.unwrap(), 5);
/// assert!(svc.oneshot("").await.is_err());
/// assert_eq!((probe.stats().successes, probe.stats().failures), (1, 1));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HealthProbeLayer<C = DefaultClassifier> {
    probe: HealthProbe,
    classifier: C,
}

impl HealthProbeLayer {
    /// A layer recording into `probe` with the [`DefaultClassifier`].
    pub fn new(probe: &HealthProbe) -> Self {
        HealthProbeLayer {
            probe: probe.clone(),
            classifier: DefaultClassifier,
        }
    }
}

impl<C> HealthProbeLayer<C> {
    /// Classifies outcomes with `classifier` instead.
    pub fn classifier<C2>(self, classifier: C2) -> HealthProbeLayer<C2> {
        HealthProbeLayer {
            probe: self.probe,
            classifier,
        }
    }

    /// The probe this layer records into.
    pub fn probe(&self) -> &HealthProbe {
        &self.probe
    }
}

impl<S, C: Clone> Layer<S> for HealthProbeLayer<C> {
    type Service = HealthProbeService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        HealthProbeService::new(inner, self.probe.clone(), self.classifier.clone())
    }
}

impl HealthProbe {
    /// A layer recording into this probe with the [`DefaultClassifier`].
    pub fn layer(&self) -> HealthProbeLayer {
        HealthProbeLayer::new(self)
    }
}
