//! Where a fallback answer comes from: a value, a function, or another service.

use battlement_core::{BoxError, FailureKind};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tower::util::Oneshot;
use tower::ServiceExt;
use tower_service::Service;

/// What a fallback is given: the failed call's error, or the response the classifier counted as
/// a failure (an HTTP 503, say), with the failure's kind.
///
/// ```
/// use battlement_core::FailureKind;
/// use battlement_fallback::FallbackInput;
///
/// let input = FallbackInput::Response { response: 503u16, kind: FailureKind::ServerError };
/// assert_eq!(input.kind(), FailureKind::ServerError);
/// assert_eq!(input.response(), Some(&503));
/// assert!(input.error().is_none());
/// ```
#[derive(Debug)]
pub enum FallbackInput<Res> {
    /// The inner service failed with an error.
    Error {
        /// The error (the inner service's, boxed; downcast it to its concrete type).
        error: BoxError,
        /// Its kind, as the classifier read it.
        kind: FailureKind,
    },
    /// The inner service answered, but the classifier counted the answer as a failure.
    Response {
        /// The answer.
        response: Res,
        /// Its kind, as the classifier read it.
        kind: FailureKind,
    },
}

impl<Res> FallbackInput<Res> {
    /// The failure's kind.
    pub fn kind(&self) -> FailureKind {
        match self {
            FallbackInput::Error { kind, .. } | FallbackInput::Response { kind, .. } => *kind,
        }
    }

    /// The error, if the call failed with one.
    pub fn error(&self) -> Option<&BoxError> {
        match self {
            FallbackInput::Error { error, .. } => Some(error),
            FallbackInput::Response { .. } => None,
        }
    }

    /// The response, if the call answered with one counted as a failure.
    pub fn response(&self) -> Option<&Res> {
        match self {
            FallbackInput::Response { response, .. } => Some(response),
            FallbackInput::Error { .. } => None,
        }
    }

    /// The failure as a result: `Err(error)` or `Ok(response)`.
    pub fn into_result(self) -> Result<Res, BoxError> {
        match self {
            FallbackInput::Error { error, .. } => Err(error),
            FallbackInput::Response { response, .. } => Ok(response),
        }
    }
}

/// A source of fallback answers for calls of type `Req` answering `Res`.
///
/// [`prepare`](FallbackSource::prepare) runs in `call`, before the inner service takes the
/// request, and returns what the response future keeps until the outcome is known (a handle to
/// a value or a function, or a clone of the request and of the fallback service). Built-ins:
/// [`FallbackValue`], [`FallbackFn`], [`FallbackTo`]; implement it for anything else.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_core::FailureKind;
/// use battlement_fallback::{FallbackInput, FallbackSource, FallbackValue, PendingFallback};
///
/// let source = FallbackValue::new("cached".to_string());
/// let pending = FallbackSource::<u32, String>::prepare(&source, &7);
/// let input = FallbackInput::Error { error: "down".into(), kind: FailureKind::Connection };
/// assert_eq!(pending.fallback(input).await.unwrap(), "cached");
/// # }
/// ```
pub trait FallbackSource<Req, Res> {
    /// What the response future keeps for the fallback.
    type Pending: PendingFallback<Response = Res>;

    /// Called with each request before the inner service takes it.
    fn prepare(&self, req: &Req) -> Self::Pending;
}

/// A fallback ready to answer one failed call; made by [`FallbackSource::prepare`].
pub trait PendingFallback {
    /// The answer's type.
    type Response;
    /// The fallback's future.
    type Future: Future<Output = Result<Self::Response, BoxError>>;

    /// Answers the failed call.
    fn fallback(self, input: FallbackInput<Self::Response>) -> Self::Future;
}

/// Answers every failed call with a clone of one value.
///
/// The value is held behind an `Arc`: preparing a call clones the `Arc` (no allocation), and
/// only a fallback clones the value.
///
/// ```
/// use battlement_fallback::FallbackValue;
///
/// let v = FallbackValue::new(vec![1, 2, 3]);
/// assert_eq!(v.value(), &[1, 2, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct FallbackValue<T> {
    value: Arc<T>,
}

impl<T> FallbackValue<T> {
    /// Answers with clones of `value`.
    pub fn new(value: T) -> Self {
        FallbackValue {
            value: Arc::new(value),
        }
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<Req, T: Clone> FallbackSource<Req, T> for FallbackValue<T> {
    type Pending = FallbackValue<T>;

    #[inline]
    fn prepare(&self, _req: &Req) -> Self::Pending {
        self.clone()
    }
}

impl<T: Clone> PendingFallback for FallbackValue<T> {
    type Response = T;
    type Future = Ready<Result<T, BoxError>>;

    fn fallback(self, _input: FallbackInput<T>) -> Self::Future {
        ready(Ok(T::clone(&self.value)))
    }
}

/// Answers failed calls with a function of the failure: `Fn(FallbackInput<Res>) -> Result<Res,
/// BoxError>`.
///
/// The function sees the error (or the response counted as a failure) and may answer, or fail
/// with an error of its own (returning the input's error unchanged is common for failures it
/// does not cover).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_core::{error::BulkheadFull, BoxError, FailureKind};
/// use battlement_fallback::{FallbackFn, FallbackInput, FallbackService};
/// use tower::{service_fn, ServiceExt};
///
/// // Rejections get a polite answer; other failures stay failures.
/// let f = FallbackFn::new(|input: FallbackInput<String>| match input.kind() {
///     FailureKind::Rejected => Ok("busy, try later".to_string()),
///     _ => input.into_result(),
/// });
/// let full = service_fn(|_: ()| async { Err::<String, BoxError>(Box::new(BulkheadFull::new("db".into()))) });
/// assert_eq!(FallbackService::new(full, f.clone()).oneshot(()).await.unwrap(), "busy, try later");
/// let broken = service_fn(|_: ()| async { Err::<String, BoxError>("disk on fire".into()) });
/// let err = FallbackService::new(broken, f).oneshot(()).await.unwrap_err();
/// assert_eq!(err.to_string(), "disk on fire");
/// # }
/// ```
pub struct FallbackFn<F> {
    f: Arc<F>,
}

impl<F> FallbackFn<F> {
    /// Answers failed calls with `f`.
    pub fn new(f: F) -> Self {
        FallbackFn { f: Arc::new(f) }
    }
}

impl<F> Clone for FallbackFn<F> {
    fn clone(&self) -> Self {
        FallbackFn { f: self.f.clone() }
    }
}

impl<F> fmt::Debug for FallbackFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackFn").finish_non_exhaustive()
    }
}

impl<Req, Res, F> FallbackSource<Req, Res> for FallbackFn<F>
where
    F: Fn(FallbackInput<Res>) -> Result<Res, BoxError>,
{
    type Pending = PendingFn<F, Res>;

    #[inline]
    fn prepare(&self, _req: &Req) -> Self::Pending {
        PendingFn {
            f: self.f.clone(),
            _res: PhantomData,
        }
    }
}

/// A [`FallbackFn`] waiting for a call's outcome.
pub struct PendingFn<F, Res> {
    f: Arc<F>,
    _res: PhantomData<fn() -> Res>,
}

impl<F, Res> fmt::Debug for PendingFn<F, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingFn").finish_non_exhaustive()
    }
}

impl<F, Res> PendingFallback for PendingFn<F, Res>
where
    F: Fn(FallbackInput<Res>) -> Result<Res, BoxError>,
{
    type Response = Res;
    type Future = Ready<Result<Res, BoxError>>;

    fn fallback(self, input: FallbackInput<Res>) -> Self::Future {
        ready((self.f)(input))
    }
}

/// Answers failed calls by calling another service with the same request.
///
/// Every call clones the request and the fallback service before the inner service takes the
/// request (so this source needs `Req: Clone` and `S: Clone`; the others do not). The fallback
/// service's readiness is awaited only when it is needed. Its error, if it fails too, is the
/// call's error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_fallback::{FallbackService, FallbackTo};
/// use tower::{service_fn, ServiceExt};
///
/// let primary = service_fn(|_id: u32| async { Err::<String, _>(std::io::Error::other("down")) });
/// let replica = service_fn(|id: u32| async move { Ok::<_, std::io::Error>(format!("stale #{id}")) });
/// let svc = FallbackService::new(primary, FallbackTo::new(replica));
/// assert_eq!(svc.oneshot(7).await.unwrap(), "stale #7");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FallbackTo<S> {
    service: S,
}

impl<S> FallbackTo<S> {
    /// Falls back to `service`.
    pub fn new(service: S) -> Self {
        FallbackTo { service }
    }

    /// The fallback service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }
}

impl<Req, S> FallbackSource<Req, S::Response> for FallbackTo<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Pending = PendingService<S, Req>;

    #[inline]
    fn prepare(&self, req: &Req) -> Self::Pending {
        PendingService {
            service: self.service.clone(),
            req: req.clone(),
        }
    }
}

/// A [`FallbackTo`] waiting for a call's outcome: a clone of the service and of the request.
#[derive(Debug)]
pub struct PendingService<S, Req> {
    service: S,
    req: Req,
}

impl<S, Req> PendingFallback for PendingService<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Future = ServiceFallbackFuture<S, Req>;

    fn fallback(self, _input: FallbackInput<S::Response>) -> Self::Future {
        ServiceFallbackFuture {
            inner: self.service.oneshot(self.req),
        }
    }
}

pin_project! {
    /// The future of a [`FallbackTo`] service's call.
    pub struct ServiceFallbackFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        inner: Oneshot<S, Req>,
    }
}

impl<S, Req> fmt::Debug for ServiceFallbackFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceFallbackFuture")
            .finish_non_exhaustive()
    }
}

impl<S, Req> Future for ServiceFallbackFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(ready!(self.project().inner.poll(cx)).map_err(Into::into))
    }
}
