//! The per-endpoint service: not ready while its endpoint is ejected.

use crate::detector::Membership;
use crate::future::ResponseFuture;
use crate::{ClassifyEndpoint, EndpointClassifier, OutlierDetector};
use battlement_core::BoxError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Acquire;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Sleep;
use tower::load::Load;
use tower_service::Service;

/// One endpoint of a pool, watched by an [`OutlierDetector`]: made by
/// [`OutlierLayer`](crate::OutlierLayer) for each endpoint a `Discover` inserts, or by
/// [`OutlierDetector::endpoint`].
///
/// `poll_ready` is pending while the endpoint is ejected (with a timer that wakes the task when
/// the ejection time ends, which readmits it), and the inner service's otherwise: so
/// `tower::balance`'s ready cache leaves an ejected endpoint in its pending set, and its
/// power-of-two-choices never picks it. `call` calls the inner service; its response future
/// records how the call counts ([`ClassifyEndpoint`], default [`EndpointClassifier`]) and
/// ejects the endpoint when a rule says so. [`Load`] is the inner service's, so it composes
/// with `tower::load` (`PendingRequests`, `PeakEwma`) on either side.
///
/// The endpoint leaves the detector's pool when the service, its clones and its calls in
/// flight are all dropped (a `Discover` removing it, a balancer dropping it).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_outlier::OutlierDetector;
/// use tower::{service_fn, ServiceExt};
///
/// let detector = OutlierDetector::builder("pool").build().unwrap();
/// let svc = detector.endpoint("a", service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) }));
/// assert_eq!(svc.oneshot(21).await.unwrap(), 42);
/// assert!(detector.endpoints().is_empty()); // the service is gone, and so is the endpoint
/// # }
/// ```
pub struct OutlierService<S, C = EndpointClassifier> {
    inner: S,
    membership: Arc<Membership>,
    classifier: C,
    /// Wakes the task when the ejection ends; made on the first ejection, reset after.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Clone, C: Clone> Clone for OutlierService<S, C> {
    fn clone(&self) -> Self {
        OutlierService {
            inner: self.inner.clone(),
            membership: self.membership.clone(),
            classifier: self.classifier.clone(),
            sleep: None,
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for OutlierService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierService")
            .field("inner", &self.inner)
            .field("endpoint", &self.membership.endpoint.label)
            .field("classifier", &self.classifier)
            .finish()
    }
}

impl<S, C> OutlierService<S, C> {
    pub(crate) fn new(inner: S, membership: Membership, classifier: C) -> Self {
        OutlierService {
            inner,
            membership: Arc::new(membership),
            classifier,
            sleep: None,
        }
    }

    /// The endpoint's label.
    pub fn label(&self) -> &str {
        &self.membership.endpoint.label
    }

    /// The detector.
    pub fn detector(&self) -> &OutlierDetector {
        &self.membership.detector
    }

    battlement_core::define_inner_service_accessors!();
}

impl OutlierDetector {
    /// Adds an endpoint labelled `label` to the pool, wrapping its service `inner` with the
    /// default classifier ([`EndpointClassifier`]): for a pool you assemble yourself (the
    /// [`OutlierLayer`](crate::OutlierLayer) does it for a `Discover`).
    pub fn endpoint<S>(&self, label: impl fmt::Display, inner: S) -> OutlierService<S> {
        self.endpoint_with(label, inner, EndpointClassifier)
    }

    /// [`endpoint`](Self::endpoint) with another classifier.
    pub fn endpoint_with<S, C>(
        &self,
        label: impl fmt::Display,
        inner: S,
        classifier: C,
    ) -> OutlierService<S, C> {
        let membership = self.join(Arc::from(label.to_string()));
        OutlierService::new(inner, membership, classifier)
    }
}

impl<S, C, Req> Service<Req> for OutlierService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: ClassifyEndpoint<S::Response, BoxError> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            let until = self.membership.endpoint.ejected_until.load(Acquire);
            if until == 0 {
                break;
            }
            let detector = &self.membership.detector;
            if detector.now() >= until {
                detector.readmit(self.membership.id);
                continue;
            }
            let deadline = detector.instant(until);
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let detector = &self.membership.detector;
        detector.tick(detector.now());
        ResponseFuture::new(
            self.inner.call(req),
            self.membership.clone(),
            self.classifier.clone(),
        )
    }
}

impl<S: Load, C> Load for OutlierService<S, C> {
    type Metric = S::Metric;

    fn load(&self) -> Self::Metric {
        self.inner.load()
    }
}
