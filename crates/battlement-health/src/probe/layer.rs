//! The probe's `tower::Layer`.

use crate::{HealthProbe, HealthProbeService};
use battlement_core::ResponseClassifier;
use tower_layer::Layer;

/// Records the outcome of every call through the services it makes into a [`HealthProbe`].
///
/// Outcomes come from a [`Classify`](battlement_core::Classify)r: by default the
/// [`ResponseClassifier`] (every `Err` fails by its kind, and a response counts as its type says
/// through [`ResponseOutcome`](battlement_core::ResponseOutcome): an `http::Response` with a
/// 5xx or 429 status fails, so does a gRPC trailers-only error). A gRPC status sent in trailers,
/// after data, needs the `GrpcClassifier` (`.classifier(GrpcClassifier)`), which records at end
/// of stream; a response type without `ResponseOutcome` needs a classifier such as
/// [`ResultClassifier`](battlement_core::ResultClassifier) (every `Ok` succeeds).
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
/// assert_eq!((probe.metrics().successes, probe.metrics().failures), (1, 1));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HealthProbeLayer<C = ResponseClassifier> {
    probe: HealthProbe,
    classifier: C,
}

impl HealthProbeLayer {
    /// A layer recording into `probe` with the [`ResponseClassifier`].
    pub fn new(probe: &HealthProbe) -> Self {
        HealthProbeLayer {
            probe: probe.clone(),
            classifier: ResponseClassifier,
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
    /// A layer recording into this probe with the [`ResponseClassifier`].
    pub fn layer(&self) -> HealthProbeLayer {
        HealthProbeLayer::new(self)
    }
}
