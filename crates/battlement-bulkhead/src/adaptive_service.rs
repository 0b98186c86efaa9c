//! The adaptive limit's layer, service and response future: the bulkhead's, plus timing.

use crate::bulkhead::Admission;
use crate::permit::Permit;
use crate::queue::WaitFuture;
use crate::{AdaptiveLimit, Prioritize, PriorityFn};
use battlement_core::BoxError;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Guards services with an [`AdaptiveLimit`]; every service it makes shares the limit.
///
/// ```
/// use battlement_bulkhead::{AdaptiveLayer, Bulkhead, Limit};
/// use tower::ServiceBuilder;
///
/// let limit = Bulkhead::builder("db").adaptive(Limit::vegas()).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(AdaptiveLayer::new(&limit))
///     .service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) });
/// assert_eq!(svc.limit().name(), "db");
/// ```
#[derive(Debug, Clone)]
pub struct AdaptiveLayer<P = ()> {
    limit: AdaptiveLimit,
    priority: P,
}

impl AdaptiveLayer {
    /// A layer guarding services with `limit`.
    pub fn new(limit: &AdaptiveLimit) -> Self {
        AdaptiveLayer {
            limit: limit.clone(),
            priority: (),
        }
    }
}

impl<P> AdaptiveLayer<P> {
    /// Gives each request a [`Priority`](crate::Priority) with `f`, asked only when no permit
    /// is free; as [`BulkheadLayer::priority_fn`](crate::BulkheadLayer::priority_fn).
    ///
    /// ```
    /// use battlement_bulkhead::{Bulkhead, Limit, Priority};
    /// use tower::ServiceBuilder;
    ///
    /// let limit = Bulkhead::builder("db").max_queued(16).adaptive(Limit::vegas()).build().unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .layer(limit.layer().priority_fn(|q: &String| {
    ///         if q.starts_with("select") { Priority::Normal } else { Priority::Critical }
    ///     }))
    ///     .service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) });
    /// # drop(svc);
    /// ```
    pub fn priority_fn<F>(self, f: F) -> AdaptiveLayer<PriorityFn<F>> {
        AdaptiveLayer {
            limit: self.limit,
            priority: PriorityFn(f),
        }
    }
}

impl<S, P: Clone> Layer<S> for AdaptiveLayer<P> {
    type Service = AdaptiveService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveService {
            inner,
            limit: self.limit.clone(),
            priority: self.priority.clone(),
        }
    }
}

impl AdaptiveLimit {
    /// A layer guarding services with this limit.
    pub fn layer(&self) -> AdaptiveLayer {
        AdaptiveLayer::new(self)
    }
}

/// A service guarded by an [`AdaptiveLimit`]; made by [`AdaptiveLayer`].
///
/// Admission is the bulkhead's ([`BulkheadService`](crate::BulkheadService) says where the
/// permit is taken and why `S: Clone`); on top, the call is timed from when it holds its permit
/// until the inner future finishes, and the sample is recorded before the permit is released.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_bulkhead::{AdaptiveService, Bulkhead, Limit};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceExt};
///
/// let limit = Bulkhead::builder("db").adaptive(Limit::aimd()).min_rtt(Duration::ZERO).build().unwrap();
/// let svc = AdaptiveService::new(service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("down")) }), limit.clone());
/// assert!(svc.oneshot(()).await.is_err());
/// assert_eq!((limit.metrics().samples, limit.metrics().drops), (1, 1));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AdaptiveService<S, P = ()> {
    inner: S,
    limit: AdaptiveLimit,
    priority: P,
}

impl<S> AdaptiveService<S> {
    /// Guards `inner` with `limit`.
    pub fn new(inner: S, limit: AdaptiveLimit) -> Self {
        AdaptiveService {
            inner,
            limit,
            priority: (),
        }
    }
}

impl<S, P> AdaptiveService<S, P> {
    /// The limit.
    pub fn limit(&self) -> &AdaptiveLimit {
        &self.limit
    }

    battlement_core::define_inner_service_accessors!();
}

/// The clock reading a call admitted now starts from.
#[inline]
fn start(permit: &Permit) -> u64 {
    permit
        .shared()
        .adaptive
        .as_deref()
        .map_or(0, |a| a.clock.raw())
}

impl<S, P, Req> Service<Req> for AdaptiveService<S, P>
where
    S: Service<Req> + Clone,
    P: Prioritize<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AdaptiveResponseFuture<S::Future, S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let priority = &self.priority;
        let kind = match self.limit.bulkhead.admit(|| priority.priority(&req)) {
            Admission::Now(permit) => Kind::Admitted {
                start: start(&permit),
                future: self.inner.call(req),
                permit: Some(permit),
            },
            Admission::Wait(wait) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                Kind::Waiting {
                    wait,
                    queued: Some(Box::new((ready, req))),
                }
            }
            Admission::Rejected(error) => Kind::Rejected { error: Some(error) },
        };
        AdaptiveResponseFuture { kind }
    }
}

pin_project! {
    /// The future of a call through an [`AdaptiveService`]: the bulkhead's
    /// [`ResponseFuture`](crate::ResponseFuture), which also times the call.
    ///
    /// Dropping it releases everything it holds (its permit, or its place in the queue) and
    /// records no sample.
    pub struct AdaptiveResponseFuture<F, S, Req> {
        #[pin]
        kind: Kind<F, S, Req>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req> {
        Admitted {
            #[pin]
            future: F,
            permit: Option<Permit>,
            start: u64,
        },
        Waiting {
            wait: WaitFuture,
            queued: Option<Box<(S, Req)>>,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

impl<F, S, Req> AdaptiveResponseFuture<F, S, Req> {
    /// Whether the call is waiting in the queue.
    pub fn is_waiting(&self) -> bool {
        matches!(self.kind, Kind::Waiting { .. })
    }

    /// Whether the call was rejected (the inner service was not called).
    pub fn is_rejected(&self) -> bool {
        matches!(self.kind, Kind::Rejected { .. })
    }
}

impl<F, S, Req, T, E> Future for AdaptiveResponseFuture<F, S, Req>
where
    S: Service<Req, Future = F, Response = T, Error = E>,
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Admitted {
                    future,
                    permit,
                    start,
                } => {
                    let output = ready!(future.poll(cx));
                    if let Some(permit) = permit.take() {
                        if let Some(a) = permit.shared().adaptive.as_deref() {
                            a.record(permit.shared(), *start, output.is_err());
                        }
                    }
                    return Poll::Ready(output.map_err(Into::into));
                }
                KindProj::Waiting { wait, queued } => {
                    let permit = match ready!(wait.as_mut().poll(cx)) {
                        Ok(permit) => permit,
                        Err(error) => return Poll::Ready(Err(error)),
                    };
                    let Some(queued) = queued.take() else {
                        unreachable!("AdaptiveResponseFuture polled after completion");
                    };
                    let (mut service, request) = *queued;
                    let start = start(&permit);
                    let future = service.call(request);
                    kind.set(Kind::Admitted {
                        future,
                        permit: Some(permit),
                        start,
                    });
                }
                KindProj::Rejected { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .expect("AdaptiveResponseFuture polled after completion")));
                }
            }
        }
    }
}

impl<F, S, Req> fmt::Debug for AdaptiveResponseFuture<F, S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Admitted { .. } => "admitted",
            Kind::Waiting { .. } => "waiting",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("AdaptiveResponseFuture")
            .field("state", &state)
            .finish()
    }
}
