//! Turning battlement's errors into HTTP responses, so a stack is infallible without axum's
//! `HandleErrorLayer`.

use battlement_core::error::{
    BreakerOpen, BulkheadFull, BulkheadTimeout, Elapsed, Halted, RateLimited, Throttled,
};
use battlement_core::BoxError;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// The HTTP answer for a battlement error: status, optional `Retry-After`, other header fields
/// (a rate limiter's `RateLimit-Policy` and `RateLimit`), and a short message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRejection {
    /// The status to answer with.
    pub status: StatusCode,
    /// Seconds to put in `Retry-After`, when known.
    pub retry_after: Option<u64>,
    /// More header fields to send.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A one-line message for the body.
    pub message: String,
}

/// `RateLimit-Policy`, from draft-ietf-httpapi-ratelimit-headers (a structured field).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// `RateLimit`, from draft-ietf-httpapi-ratelimit-headers (a structured field).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The rate limiter's header fields, in the syntax of draft-ietf-httpapi-ratelimit-headers-09/10
/// (structured fields): the policy named after the limiter, its quota `q` per window `w`
/// seconds (a window that is not a whole number of seconds is rounded up and the quota scaled
/// down to it), and the call's remaining quota `r=0` with `t` the seconds until it resets
/// (`Retry-After`'s value).
fn rate_limit_fields(limited: &RateLimited) -> Vec<(HeaderName, HeaderValue)> {
    // An sf-string: printable ASCII, with `"` and `\` escaped.
    let mut name = String::with_capacity(limited.name().len() + 2);
    name.push('"');
    for c in limited.name().chars() {
        match c {
            '"' | '\\' => {
                name.push('\\');
                name.push(c);
            }
            ' '..='~' => name.push(c),
            _ => name.push('_'),
        }
    }
    name.push('"');
    let window = limited.window().max(Duration::from_nanos(1));
    let w = ceil_secs(window).max(1);
    let q = (u128::from(limited.quota()) * u128::from(w) * 1_000_000_000 / window.as_nanos())
        .min(u128::from(u64::MAX)) as u64;
    let policy = format!("{name};q={q};w={w}");
    let current = format!("{name};r=0;t={}", ceil_secs(limited.retry_after()));
    [(RATELIMIT_POLICY, policy), (RATELIMIT, current)]
        .into_iter()
        .filter_map(|(field, value)| Some((field, HeaderValue::from_str(&value).ok()?)))
        .collect()
}

/// How battlement's errors map to HTTP statuses.
///
/// | error | status |
/// |---|---|
/// | [`BreakerOpen`] | 503, with `Retry-After` when the breaker knows it (open, or forced open for a time; not forced open with no end) |
/// | [`BulkheadFull`], [`BulkheadTimeout`] | 503 (or 429 with [`bulkhead_as_too_many_requests`](Self::bulkhead_as_too_many_requests)) |
/// | [`Elapsed`] (and tower's / tokio's timeouts) | 504 |
/// | [`Halted`] | 503 |
/// | [`Throttled`] | 503, without `Retry-After` (the throttle does not know when its dependency will accept calls again); not 429, which would tell the caller that *it* sends too much, while the dependency behind this service is what refuses calls |
/// | [`RateLimited`] | 429, with `Retry-After` and the `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers (e.g. `RateLimit-Policy: "api";q=100;w=60` and `RateLimit: "api";r=0;t=3`) |
///
/// ```
/// use battlement::http_error::ErrorMapping;
/// use battlement::core::error::{BoxError, BreakerOpen};
/// use std::time::Duration;
///
/// let err: BoxError = Box::new(BreakerOpen::new("db".into(), Some(Duration::from_millis(1500))));
/// let r = ErrorMapping::new().map(&*err).unwrap();
/// assert_eq!(r.status, 503);
/// assert_eq!(r.retry_after, Some(2));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorMapping {
    bulkhead_429: bool,
}

impl ErrorMapping {
    /// The default mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer bulkhead rejections with 429 Too Many Requests instead of 503.
    pub fn bulkhead_as_too_many_requests(mut self, on: bool) -> Self {
        self.bulkhead_429 = on;
        self
    }

    /// The answer for `err`, walking its source chain; `None` if it is not one of battlement's.
    pub fn map(&self, err: &(dyn Error + 'static)) -> Option<HttpRejection> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(r) = self.map_one(e) {
                return Some(r);
            }
            // `io::Error::source` skips the error it wraps; look at that error itself.
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                return self.map(inner);
            }
            current = e.source();
        }
        None
    }

    fn map_one(&self, e: &(dyn Error + 'static)) -> Option<HttpRejection> {
        let reject = |status, retry_after: Option<Duration>| HttpRejection {
            status,
            retry_after: retry_after.map(ceil_secs),
            headers: Vec::new(),
            message: e.to_string(),
        };
        let bulkhead = if self.bulkhead_429 {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        if let Some(limited) = e.downcast_ref::<RateLimited>() {
            return Some(HttpRejection {
                headers: rate_limit_fields(limited),
                ..reject(StatusCode::TOO_MANY_REQUESTS, Some(limited.retry_after()))
            });
        }
        if let Some(open) = e.downcast_ref::<BreakerOpen>() {
            Some(reject(StatusCode::SERVICE_UNAVAILABLE, open.retry_after()))
        } else if e.is::<BulkheadFull>() || e.is::<BulkheadTimeout>() {
            Some(reject(bulkhead, None))
        } else if e.is::<Elapsed>()
            || e.is::<tower::timeout::error::Elapsed>()
            || e.is::<tokio::time::error::Elapsed>()
        {
            Some(reject(StatusCode::GATEWAY_TIMEOUT, None))
        } else if e.is::<Halted>() || e.is::<Throttled>() {
            Some(reject(StatusCode::SERVICE_UNAVAILABLE, None))
        } else {
            None
        }
    }

    /// Builds the response for `err`, or `None` if it is not one of battlement's.
    pub fn response<B: From<String>>(&self, err: &(dyn Error + 'static)) -> Option<Response<B>> {
        self.map(err).map(|r| r.into_response())
    }
}

impl HttpRejection {
    /// The response: the status, `Retry-After` when known, the other header fields, and the
    /// message as a text body.
    pub fn into_response<B: From<String>>(self) -> Response<B> {
        let mut res = Response::new(B::from(self.message));
        *res.status_mut() = self.status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

/// Maps an error to a response: battlement's errors by [`ErrorMapping`], others with a function.
///
/// ```
/// use battlement::http_error::error_response;
/// use battlement::core::error::{BoxError, Elapsed};
/// use std::time::Duration;
///
/// let err: BoxError = Box::new(Elapsed::new("upstream".into(), Duration::from_secs(1)));
/// let res: http::Response<String> = error_response(err);
/// assert_eq!(res.status(), 504);
/// ```
pub fn error_response<B: From<String>>(err: BoxError) -> Response<B> {
    ErrorMapping::new()
        .response(&*err)
        .unwrap_or_else(|| internal_error(err))
}

fn internal_error<B: From<String>>(err: BoxError) -> Response<B> {
    tracing::error!(error = %err, "unhandled error in service stack");
    let mut res = Response::new(B::from("internal server error".to_owned()));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}

/// What answers errors that are not battlement's: the default is a plain function, so cloning it
/// into every call's future touches no shared reference count.
enum Fallback<B> {
    Default,
    Custom(Arc<dyn Fn(BoxError) -> Response<B> + Send + Sync>),
}

impl<B> Clone for Fallback<B> {
    fn clone(&self) -> Self {
        match self {
            Fallback::Default => Fallback::Default,
            Fallback::Custom(f) => Fallback::Custom(f.clone()),
        }
    }
}

impl<B: From<String>> Fallback<B> {
    fn answer(&self, err: BoxError) -> Response<B> {
        match self {
            Fallback::Default => internal_error(err),
            Fallback::Custom(f) => f(err),
        }
    }
}

/// A layer that answers battlement's errors with HTTP responses and passes every other error to
/// a function, making the stack infallible (`Error = Infallible`), as axum routes require.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement::http_error::HttpErrorLayer;
/// use battlement::core::error::{BoxError, BulkheadFull};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let svc = ServiceBuilder::new()
///     .layer(HttpErrorLayer::new())
///     .service(service_fn(|_req: http::Request<()>| async {
///         Err::<http::Response<String>, BoxError>(Box::new(BulkheadFull::new("db".into())))
///     }));
/// let res = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(res.status(), 503);
/// # }
/// ```
pub struct HttpErrorLayer<B> {
    mapping: ErrorMapping,
    other: Fallback<B>,
}

impl<B> Clone for HttpErrorLayer<B> {
    fn clone(&self) -> Self {
        HttpErrorLayer {
            mapping: self.mapping,
            other: self.other.clone(),
        }
    }
}

impl<B> fmt::Debug for HttpErrorLayer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpErrorLayer")
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

impl<B: From<String> + 'static> Default for HttpErrorLayer<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: From<String> + 'static> HttpErrorLayer<B> {
    /// Battlement's errors by the default [`ErrorMapping`]; others become a logged 500.
    pub fn new() -> Self {
        HttpErrorLayer {
            mapping: ErrorMapping::new(),
            other: Fallback::Default,
        }
    }
}

impl<B> HttpErrorLayer<B> {
    /// Uses `mapping` for battlement's errors.
    pub fn mapping(mut self, mapping: ErrorMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Answers errors that are not battlement's with `f`.
    pub fn other_errors<F>(mut self, f: F) -> Self
    where
        F: Fn(BoxError) -> Response<B> + Send + Sync + 'static,
    {
        self.other = Fallback::Custom(Arc::new(f));
        self
    }
}

impl<S, B> Layer<S> for HttpErrorLayer<B> {
    type Service = HttpError<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpError {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`HttpErrorLayer`].
pub struct HttpError<S, B> {
    inner: S,
    layer: HttpErrorLayer<B>,
}

impl<S: Clone, B> Clone for HttpError<S, B> {
    fn clone(&self) -> Self {
        HttpError {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, B> fmt::Debug for HttpError<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpError")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req, B> Service<Req> for HttpError<S, B>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: From<String>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = HttpErrorFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A service that cannot become ready is answered per call instead.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        HttpErrorFuture {
            inner: self.inner.call(req),
            layer: Some(self.layer.clone()),
        }
    }
}

pin_project! {
    /// The future of [`HttpError`].
    pub struct HttpErrorFuture<F, B> {
        #[pin]
        inner: F,
        layer: Option<HttpErrorLayer<B>>,
    }
}

impl<F, B> fmt::Debug for HttpErrorFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpErrorFuture").finish_non_exhaustive()
    }
}

impl<F, E, B> Future for HttpErrorFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: From<String>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match ready!(this.inner.poll(cx)) {
            Ok(res) => Poll::Ready(Ok(res)),
            Err(e) => {
                let err: BoxError = e.into();
                let layer = this.layer.take().expect("polled after completion");
                Poll::Ready(Ok(match layer.mapping.response(&*err) {
                    Some(res) => res,
                    None => layer.other.answer(err),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{service_fn, ServiceExt};

    fn map(err: BoxError, m: ErrorMapping) -> Option<HttpRejection> {
        m.map(&*err)
    }

    #[test]
    fn statuses() {
        let m = ErrorMapping::new();
        let open = map(
            Box::new(BreakerOpen::new("b".into(), Some(Duration::from_secs(3)))),
            m,
        )
        .unwrap();
        assert_eq!(
            (open.status, open.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, Some(3))
        );
        let full = map(Box::new(BulkheadFull::new("b".into())), m).unwrap();
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        let full = map(
            Box::new(BulkheadTimeout::new("b".into(), Duration::ZERO)),
            m.bulkhead_as_too_many_requests(true),
        )
        .unwrap();
        assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS);
        let t = map(Box::new(Elapsed::new("t".into(), Duration::ZERO)), m).unwrap();
        assert_eq!(t.status, StatusCode::GATEWAY_TIMEOUT);
        let t = map(Box::new(tower::timeout::error::Elapsed::new()), m).unwrap();
        assert_eq!(t.status, StatusCode::GATEWAY_TIMEOUT);
        let h = map(
            Box::new(Halted::new(
                "k".into(),
                "r".into(),
                std::time::SystemTime::UNIX_EPOCH,
            )),
            m,
        )
        .unwrap();
        assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
        // A throttled call: 503 (the dependency refuses calls), no Retry-After.
        let th = map(Box::new(Throttled::new("t".into(), 0.5)), m).unwrap();
        assert_eq!(
            (th.status, th.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, None)
        );
        assert!(th.message.contains("adaptive throttle `t`"));
        assert!(map("other".into(), m).is_none());
        // Wrapped in an io::Error's source chain.
        let wrapped = std::io::Error::other(BulkheadFull::new("b".into()));
        assert_eq!(
            m.map(&wrapped).unwrap().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn rate_limited_is_429_with_the_ratelimit_fields() {
        let m = ErrorMapping::new();
        let err = RateLimited::new(
            "api".into(),
            Duration::from_millis(2_100),
            100,
            Duration::from_secs(60),
        );
        let res: Response<String> = m.response(&err).unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "3");
        assert_eq!(res.headers()["ratelimit-policy"], r#""api";q=100;w=60"#);
        assert_eq!(res.headers()["ratelimit"], r#""api";r=0;t=3"#);
        // A sub-second window is stated per second; a name is quoted and escaped.
        let err = RateLimited::new(
            "a \"b\"\u{e9}".into(),
            Duration::from_millis(10),
            5,
            Duration::from_millis(100),
        );
        let r = m.map(&err).unwrap();
        assert_eq!(r.retry_after, Some(1));
        assert_eq!(r.headers[0].1, r#""a \"b\"_";q=50;w=1"#);
        assert_eq!(r.headers[1].1, r#""a \"b\"_";r=0;t=1"#);
    }

    #[tokio::test]
    async fn layer_maps_and_delegates() {
        let svc = HttpErrorLayer::<String>::new()
            .other_errors(|e| {
                let mut r = Response::new(format!("custom: {e}"));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                r
            })
            .layer(service_fn(|fail: u8| async move {
                match fail {
                    0 => Ok(Response::new("ok".to_owned())),
                    1 => Err::<_, BoxError>(Box::new(BreakerOpen::new(
                        "b".into(),
                        Some(Duration::from_millis(200)),
                    ))),
                    _ => Err("boom".into()),
                }
            }));
        let ok = svc.clone().oneshot(0).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let open = svc.clone().oneshot(1).await.unwrap();
        assert_eq!(open.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(open.headers()[header::RETRY_AFTER], "1");
        let other = svc.oneshot(2).await.unwrap();
        assert_eq!(other.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(other.body(), "custom: boom");
    }

    /// A breaker forced open for a time answers 503 with `Retry-After` (the time left, in whole
    /// seconds rounded up); forced open with no end, 503 without it.
    #[cfg(feature = "breaker")]
    #[tokio::test(start_paused = true)]
    async fn a_forced_open_breaker_sends_retry_after_only_when_it_has_an_end() {
        use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer};
        let breaker = CircuitBreaker::builder("db").build().unwrap();
        let svc = tower::ServiceBuilder::new()
            .layer(HttpErrorLayer::<String>::new())
            .layer(CircuitBreakerLayer::new(&breaker))
            .service(service_fn(|_: ()| async {
                Ok::<_, BoxError>(Response::new("ok".to_owned()))
            }));

        breaker.force_open_for("migration", Duration::from_millis(2_500));
        tokio::time::advance(Duration::from_millis(1_000)).await;
        let res = svc.clone().oneshot(()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
        assert!(res.body().contains("forced: migration"), "{}", res.body());

        breaker.force_open("incident 7");
        let res = svc.clone().oneshot(()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().get(header::RETRY_AFTER).is_none());

        // A deadline: the same, and once it has passed a trial call goes through.
        breaker.force_open_until(
            "deploy",
            tokio::time::Instant::now() + Duration::from_secs(30),
        );
        let res = svc.clone().oneshot(()).await.unwrap();
        assert_eq!(res.headers()[header::RETRY_AFTER], "30");
        tokio::time::advance(Duration::from_secs(30)).await;
        let res = svc.oneshot(()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}
