//! The probe's `tower::Service`.

use crate::probe::future::ProbeRecord;
use crate::probe::future::ResponseFuture;
use crate::HealthProbe;
use battlement_core::{ResponseClassifier, Settle};
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower_service::Service;

/// A service whose calls' outcomes are recorded into a [`HealthProbe`]; made by
/// [`HealthProbeLayer`](crate::HealthProbeLayer).
///
/// It changes nothing about the calls: same response (except under the `GrpcClassifier`, whose
/// responses' bodies record the outcome at end of stream), same error type (`S::Error`), same
/// readiness. Each call costs two clock reads and, when it ends, a few CAS operations on the
/// calling core's stripe of the probe's window; nothing is allocated. A call whose future is
/// dropped before it ends is not counted.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_core::HttpClassifier;
/// use battlement_health::{HealthProbe, HealthProbeService};
/// use http::{Request, Response, StatusCode};
/// use tower::{service_fn, ServiceExt};
///
/// let probe = HealthProbe::builder("upstream").build().unwrap();
/// let svc = HealthProbeService::new(
///     service_fn(|_req: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(
///             Response::builder().status(StatusCode::BAD_GATEWAY).body(()).unwrap(),
///         )
///     }),
///     probe.clone(),
///     HttpClassifier::new(),
/// );
/// let res = svc.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
/// assert_eq!(probe.metrics().failures, 1); // a 502 is a failure for the HTTP classifier
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HealthProbeService<S, C = ResponseClassifier> {
    inner: S,
    probe: HealthProbe,
    classifier: C,
}

impl<S, C> HealthProbeService<S, C> {
    /// Records the outcomes of `inner`'s calls into `probe`, classified by `classifier`.
    pub fn new(inner: S, probe: HealthProbe, classifier: C) -> Self {
        HealthProbeService {
            inner,
            probe,
            classifier,
        }
    }

    /// The probe.
    pub fn probe(&self) -> &HealthProbe {
        &self.probe
    }

    battlement_core::define_inner_service_accessors!();
}

impl<S, C, Req> Service<Req> for HealthProbeService<S, C>
where
    S: Service<Req>,
    C: Settle<S::Response, S::Error> + Clone,
{
    type Response = C::Response<ProbeRecord>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let stripe = self.probe.stripe();
        let start = Instant::now();
        let future = self.inner.call(req);
        ResponseFuture::new(future, stripe, self.classifier.clone(), start)
    }
}
