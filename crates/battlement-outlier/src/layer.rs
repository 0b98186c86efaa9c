//! The detector's layer over a `tower::discover::Discover`, and the `Discover` it makes.

use crate::{EndpointClassifier, OutlierDetector, OutlierService};
use futures_core::Stream;
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower::discover::{Change, Discover};
use tower_layer::Layer;

/// Watches every endpoint of a `tower::discover::Discover` with an [`OutlierDetector`]: a
/// layer over the `Discover` (not over a service), whose [`OutlierDiscover`] wraps each
/// inserted endpoint's service in an [`OutlierService`] labelled with its key (`Display`).
/// Give the result to `tower::balance::p2c::Balance`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_outlier::OutlierDetector;
/// use tower::balance::p2c::Balance;
/// use tower::discover::ServiceList;
/// use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let detector = OutlierDetector::builder("backends").build().unwrap();
/// let endpoints = (0..3).map(|i| service_fn(move |_: ()| async move { Ok::<_, std::io::Error>(i) }));
/// let discover = detector.layer().layer(ServiceList::new(endpoints));
/// let pool = Balance::new(PendingRequestsDiscover::new(discover, CompleteOnResponse::default()));
/// assert!(pool.oneshot(()).await.unwrap() < 3);
/// assert_eq!(detector.endpoints().len(), 0); // the pool is gone
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OutlierLayer<C = EndpointClassifier> {
    detector: OutlierDetector,
    classifier: C,
}

impl OutlierLayer {
    /// A layer for `detector` with the default classifier ([`EndpointClassifier`]).
    pub fn new(detector: &OutlierDetector) -> Self {
        OutlierLayer {
            detector: detector.clone(),
            classifier: EndpointClassifier,
        }
    }
}

impl<C> OutlierLayer<C> {
    /// Uses `classifier` to judge calls ([`ClassifyEndpoint`](crate::ClassifyEndpoint)):
    /// [`Outcomes`](crate::Outcomes) over a battlement-core classifier, or a closure
    /// ([`verdict_fn`](crate::verdict_fn)).
    pub fn classifier<C2>(self, classifier: C2) -> OutlierLayer<C2> {
        OutlierLayer {
            detector: self.detector,
            classifier,
        }
    }

    /// The detector.
    pub fn detector(&self) -> &OutlierDetector {
        &self.detector
    }
}

impl<D, C: Clone> Layer<D> for OutlierLayer<C> {
    type Service = OutlierDiscover<D, C>;

    fn layer(&self, discover: D) -> Self::Service {
        OutlierDiscover {
            discover,
            detector: self.detector.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl OutlierDetector {
    /// A layer watching the endpoints of a `Discover` with this detector and the default
    /// classifier ([`EndpointClassifier`]).
    pub fn layer(&self) -> OutlierLayer {
        OutlierLayer::new(self)
    }
}

pin_project! {
    /// A `tower::discover::Discover` whose endpoints are watched by an [`OutlierDetector`]:
    /// each `Change::Insert(key, service)` of the inner one comes out as
    /// `Change::Insert(key, OutlierService)`; removals pass through (the balancer drops the
    /// service, which leaves the pool). Made by [`OutlierLayer`].
    pub struct OutlierDiscover<D, C = EndpointClassifier> {
        #[pin]
        discover: D,
        detector: OutlierDetector,
        classifier: C,
    }
}

impl<D: fmt::Debug, C: fmt::Debug> fmt::Debug for OutlierDiscover<D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDiscover")
            .field("discover", &self.discover)
            .field("detector", &self.detector)
            .field("classifier", &self.classifier)
            .finish()
    }
}

impl<D, C> Stream for OutlierDiscover<D, C>
where
    D: Discover,
    D::Key: fmt::Display,
    C: Clone,
{
    type Item = Result<Change<D::Key, OutlierService<D::Service, C>>, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let change = match ready!(this.discover.poll_discover(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            Some(Ok(change)) => change,
        };
        Poll::Ready(Some(Ok(match change {
            Change::Insert(key, service) => {
                let service = this
                    .detector
                    .endpoint_with(&key, service, this.classifier.clone());
                Change::Insert(key, service)
            }
            Change::Remove(key) => Change::Remove(key),
        })))
    }
}
