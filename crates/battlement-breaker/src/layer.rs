//! The breaker's `tower::Layer`.

use crate::{CircuitBreaker, CircuitBreakerService};
use battlement_core::ResponseClassifier;
use tower_layer::Layer;

/// Guards services with a [`CircuitBreaker`], classifying outcomes with `C` (default
/// [`ResponseClassifier`]: HTTP responses by status, gRPC trailers-only responses by
/// `grpc-status`, errors by kind).
///
/// The layer only holds a handle to the breaker: `layer()` may be called any number of times
/// (axum calls it per request for a router without state) and every service it makes shares the
/// same state.
///
/// ```
/// use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer};
/// use battlement_core::HttpClassifier;
/// use tower::ServiceBuilder;
///
/// let breaker = CircuitBreaker::builder("upstream").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
///     .service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(()))
///     });
/// # drop(svc);
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = ResponseClassifier> {
    breaker: CircuitBreaker,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer for `breaker` with the [`ResponseClassifier`]: errors fail by their kind, and a
    /// response counts as its type says ([`ResponseOutcome`](battlement_core::ResponseOutcome)):
    /// an `http::Response` with a 5xx or 429 status fails, so does a gRPC trailers-only error.
    pub fn new(breaker: &CircuitBreaker) -> Self {
        CircuitBreakerLayer {
            breaker: breaker.clone(),
            classifier: ResponseClassifier,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Uses `classifier` to decide which outcomes are failures: an
    /// `HttpClassifier` with other status sets, a
    /// `GrpcClassifier` (judges gRPC streams at their end, from the trailers), a closure
    /// ([`classify_fn`](battlement_core::classify_fn)), or
    /// [`ResultClassifier`](battlement_core::ResultClassifier) for a response type that does not
    /// implement [`ResponseOutcome`](battlement_core::ResponseOutcome).
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The breaker this layer guards with.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// This layer with its breaker [leaked](CircuitBreaker::leak): the same breaker (state,
    /// metrics, health, reloads), kept for the rest of the program, so that the layer's clones,
    /// the services it makes and their clones copy a pointer instead of counting a reference
    /// that every core's clones share. For a layer made once, at start, and applied where
    /// services are cloned per request (axum's `Router::layer`).
    ///
    /// ```
    /// use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer};
    ///
    /// let breaker = CircuitBreaker::builder("catalog").build().unwrap();
    /// let layer = CircuitBreakerLayer::new(&breaker).leak();
    /// assert!(layer.is_leaked() && !breaker.is_leaked());
    /// layer.breaker().force_open("maintenance"); // the same breaker
    /// assert_eq!(breaker.state(), battlement_breaker::State::ForcedOpen);
    /// ```
    pub fn leak(self) -> Self {
        CircuitBreakerLayer {
            breaker: self.breaker.leak(),
            classifier: self.classifier,
        }
    }

    /// Whether this layer's breaker is [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.breaker.is_leaked()
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, self.breaker.clone(), self.classifier.clone())
    }
}

impl CircuitBreaker {
    /// A layer guarding services with this breaker and the default classifier
    /// ([`ResponseClassifier`]).
    pub fn layer(&self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(self)
    }
}
