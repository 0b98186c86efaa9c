//! The fallback `tower::Layer`.

use crate::source::{FallbackFn, FallbackTo, FallbackValue};
use crate::FallbackService;
use battlement_core::ResultClassifier;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services with a fallback: when a call's outcome is a failure (per the classifier), the
/// answer comes from the fallback source instead.
///
/// Constructors: [`value`](FallbackLayer::value), [`from_fn`](FallbackLayer::from_fn),
/// [`service`](FallbackLayer::service), or [`new`](FallbackLayer::new) with any
/// [`FallbackSource`](crate::FallbackSource). The default classifier is
/// [`ResultClassifier`] (every error fails, `Ok` succeeds); by default a rejection by a
/// breaker, bulkhead or kill switch (`FailureKind::Rejected`) falls back too
/// ([`on_rejected`](FallbackLayer::on_rejected)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_core::{classify_ok, FailureKind, Outcome};
/// use battlement_fallback::FallbackLayer;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// // A negative balance means the ledger is unavailable: answer with the last known one.
/// let layer = FallbackLayer::value(100i64)
///     .name("balance")
///     .classifier(classify_ok(|b: &i64| if *b < 0 { Outcome::Failure(FailureKind::ServerError) } else { Outcome::Success }));
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|_acct: u32| async { Ok::<i64, std::io::Error>(-1) }));
/// assert_eq!(svc.oneshot(7).await.unwrap(), 100);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FallbackLayer<F, C = ResultClassifier> {
    source: F,
    name: Arc<str>,
    classifier: C,
    on_rejected: bool,
}

impl<F> FallbackLayer<F> {
    /// Falls back to `source`, with the default classifier.
    pub fn new(source: F) -> Self {
        FallbackLayer {
            source,
            name: Arc::from("fallback"),
            classifier: ResultClassifier,
            on_rejected: true,
        }
    }
}

impl<T> FallbackLayer<FallbackValue<T>> {
    /// Falls back to clones of `value`.
    pub fn value(value: T) -> Self {
        FallbackLayer::new(FallbackValue::new(value))
    }
}

impl<G> FallbackLayer<FallbackFn<G>> {
    /// Falls back to `f(input)`, a function of the failure
    /// (`Fn(FallbackInput<Res>) -> Result<Res, BoxError>`).
    pub fn from_fn(f: G) -> Self {
        FallbackLayer::new(FallbackFn::new(f))
    }
}

impl<S> FallbackLayer<FallbackTo<S>> {
    /// Falls back to calling `service` with a clone of the request (needs `Req: Clone` and
    /// `S: Clone`).
    pub fn service(service: S) -> Self {
        FallbackLayer::new(FallbackTo::new(service))
    }
}

impl<F, C> FallbackLayer<F, C> {
    /// Names the layer in `tracing` events (default `fallback`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Decides what counts as a failure (default: [`ResultClassifier`]).
    pub fn classifier<C2>(self, classifier: C2) -> FallbackLayer<F, C2> {
        FallbackLayer {
            source: self.source,
            name: self.name,
            classifier,
            on_rejected: self.on_rejected,
        }
    }

    /// Whether a rejection (`FailureKind::Rejected`: an open breaker, a full bulkhead, a halted
    /// kill switch) falls back (default `true`). With `false` the rejection is returned as is.
    pub fn on_rejected(mut self, fall_back: bool) -> Self {
        self.on_rejected = fall_back;
        self
    }

    /// The fallback source.
    pub fn source(&self) -> &F {
        &self.source
    }
}

impl<S, F: Clone, C: Clone> Layer<S> for FallbackLayer<F, C> {
    type Service = FallbackService<S, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService::from_parts(
            inner,
            self.source.clone(),
            self.name.clone(),
            self.classifier.clone(),
            self.on_rejected,
        )
    }
}
