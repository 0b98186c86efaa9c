//! The throttle's `tower::Layer`.

use crate::{Throttle, ThrottleService};
use battlement_core::ResponseClassifier;
use tower_layer::Layer;

/// Throttles services with a [`Throttle`], judging which calls the dependency accepted with `C`
/// (default [`ResponseClassifier`]: a response counts as its type says — an `http::Response`
/// with a 5xx or 429 status, or a gRPC trailers-only error, was refused — and errors were
/// refused, by their kind).
///
/// The layer only holds a handle: every service it makes shares the throttle's window.
///
/// ```
/// use battlement_throttle::{Throttle, ThrottleLayer};
/// use battlement_core::HttpClassifier;
/// use tower::ServiceBuilder;
///
/// let throttle = Throttle::builder("search").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(ThrottleLayer::new(&throttle).classifier(HttpClassifier::new()))
///     .service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(()))
///     });
/// assert_eq!(svc.throttle().name(), "search");
/// ```
#[derive(Debug, Clone)]
pub struct ThrottleLayer<C = ResponseClassifier> {
    throttle: Throttle,
    classifier: C,
}

impl ThrottleLayer {
    /// A layer for `throttle` with the [`ResponseClassifier`].
    pub fn new(throttle: &Throttle) -> Self {
        ThrottleLayer {
            throttle: throttle.clone(),
            classifier: ResponseClassifier,
        }
    }
}

impl<C> ThrottleLayer<C> {
    /// Uses `classifier` to decide which calls the dependency accepted (`Success`) or refused
    /// (`Failure`): an `HttpClassifier` with other status sets, a `GrpcClassifier` (judges
    /// gRPC streams at their end), a closure ([`classify_fn`](battlement_core::classify_fn)),
    /// or [`ResultClassifier`](battlement_core::ResultClassifier) for a response type that does
    /// not implement [`ResponseOutcome`](battlement_core::ResponseOutcome).
    pub fn classifier<C2>(self, classifier: C2) -> ThrottleLayer<C2> {
        ThrottleLayer {
            throttle: self.throttle,
            classifier,
        }
    }

    /// The throttle.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }
}

impl<S, C: Clone> Layer<S> for ThrottleLayer<C> {
    type Service = ThrottleService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ThrottleService::new(inner, self.throttle.clone(), self.classifier.clone())
    }
}

impl Throttle {
    /// A layer throttling services with this throttle and the default classifier
    /// ([`ResponseClassifier`]).
    pub fn layer(&self) -> ThrottleLayer {
        ThrottleLayer::new(self)
    }
}
