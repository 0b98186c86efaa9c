//! HTTP awareness (feature `http`): idempotency, `Retry-After`, request body cloning.

use crate::rules::{judge_by_kind, KindSet, RetryRules, Verdict};
use battlement_core::error::AsDynError;
use battlement_core::{Classify, ConfigError, HttpClassifier, Outcome, StatusSet};
use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::time::{Duration, SystemTime};

/// A request body that can be copied for a retry.
///
/// Implemented for `()`, `String`, `Vec<u8>`, `&'static str`, [`Bytes`],
/// [`http_body_util::Full`] and [`http_body_util::Empty`] (copied) and for
/// `http_body_util`'s boxed bodies (which cannot be copied: such requests are sent once).
/// Implement it for your own body type; return `None` when a body cannot be replayed.
///
/// ```
/// use battlement_retry::CloneBody;
/// use bytes::Bytes;
/// use http_body_util::Full;
///
/// let body = Full::new(Bytes::from_static(b"{}"));
/// assert!(body.clone_body().is_some());
///
/// // A streaming body of your own cannot be replayed.
/// struct Stream;
/// impl CloneBody for Stream {
///     fn clone_body(&self) -> Option<Self> { None }
/// }
/// assert!(Stream.clone_body().is_none());
/// ```
pub trait CloneBody: Sized {
    /// A copy of the body, or `None` if it cannot be copied.
    fn clone_body(&self) -> Option<Self>;

    /// Whether a copy made earlier can no longer send the body whole: a
    /// [`ReplayBody`](crate::ReplayBody) that outgrew its cap. The policy then gives up instead
    /// of retrying, with reason `body_too_large`. `false` by default.
    #[inline]
    fn replay_refused(&self) -> bool {
        false
    }
}

macro_rules! clone_body_by_clone {
    ($($ty:ty),* $(,)?) => {
        $(
            impl CloneBody for $ty {
                #[inline]
                fn clone_body(&self) -> Option<Self> {
                    Some(self.clone())
                }
            }
        )*
    };
}

clone_body_by_clone!((), String, Vec<u8>, &'static str, Bytes);

impl<D: Clone> CloneBody for http_body_util::Full<D> {
    #[inline]
    fn clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> CloneBody for http_body_util::Empty<D> {
    #[inline]
    fn clone_body(&self) -> Option<Self> {
        Some(http_body_util::Empty::new())
    }
}

impl<D, E> CloneBody for http_body_util::combinators::BoxBody<D, E> {
    #[inline]
    fn clone_body(&self) -> Option<Self> {
        None
    }
}

impl<D, E> CloneBody for http_body_util::combinators::UnsyncBoxBody<D, E> {
    #[inline]
    fn clone_body(&self) -> Option<Self> {
        None
    }
}

/// Copies a request (method, URI, version, headers, extensions and body) if its body can be
/// copied.
///
/// ```
/// use battlement_retry::clone_request;
/// use http::Request;
///
/// let req = Request::put("http://example.com/a").header("x-id", "7").body(String::from("v")).unwrap();
/// let copy = clone_request(&req).unwrap();
/// assert_eq!(copy.method(), "PUT");
/// assert_eq!(copy.headers()["x-id"], "7");
/// assert_eq!(copy.body(), "v");
/// ```
pub fn clone_request<B: CloneBody>(req: &Request<B>) -> Option<Request<B>> {
    let body = req.body().clone_body()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    Some(copy)
}

pub use battlement_core::is_idempotent;

/// Reads a `Retry-After` value: delta-seconds (`"120"`) or an HTTP date, relative to `now`.
///
/// A date in the past gives `Duration::ZERO`; a value that is neither gives `None`.
///
/// ```
/// use battlement_retry::parse_retry_after;
/// use http::HeaderValue;
/// use std::time::{Duration, SystemTime};
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("3"), now), Some(Duration::from_secs(3)));
/// let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:30 GMT");
/// assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("soon"), now), None);
/// ```
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Delta-seconds; an absurdly long number saturates.
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Rules for HTTP clients: `http::Request<B>` in, `http::Response<R>` out.
///
/// - A response is retried when its status is in the retry set (by default 429, 502, 503, 504);
///   an error when its kind is retryable (by default `Timeout`, `Connection`, `RateLimited`; a
///   breaker's `Rejected` only when asked, honouring its retry-after).
/// - Only idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) are retried unless
///   [`retry_non_idempotent`](crate::RetryPolicyBuilder::retry_non_idempotent) is set: other
///   requests are not even copied, and are sent once.
/// - A request is retried only if its body can be copied ([`CloneBody`]); otherwise it is sent
///   once. A [`ReplayBody`](crate::ReplayBody) that outgrew its cap is not retried (reason
///   `body_too_large`).
/// - A `Retry-After` header (seconds or HTTP date) on a 429 or 503 sets the next delay, up to the
///   policy's [`max_retry_after`](crate::RetryPolicyBuilder::max_retry_after) (default 60 s): a
///   longer one (a far-future date included) ends the retries at once with that response. A date
///   in the past means "now"; a value that is neither seconds nor a date (a negative number,
///   garbage) is ignored, and the backoff decides.
/// - Outcomes come from the classifier (by default [`HttpClassifier`]: 5xx and 429 fail).
///
/// ```
/// use battlement_core::error::BoxError;
/// use battlement_retry::{HttpRules, RetryRules};
/// use http::{Request, Response};
/// use std::time::Duration;
///
/// let rules = HttpRules::default();
/// let get = Request::get("/").body(()).unwrap();
/// let busy = Response::builder().status(503).header("retry-after", "2").body(()).unwrap();
/// let v = RetryRules::<_, _, BoxError>::judge(&rules, &get, Ok(&busy));
/// assert!(v.should_retry());
/// assert_eq!(v.retry_after(), Some(Duration::from_secs(2)));
///
/// let post = Request::post("/").body(()).unwrap();
/// assert!(RetryRules::<_, Response<()>, BoxError>::clone_request(&rules, &post).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct HttpRules<C = HttpClassifier> {
    pub(crate) classifier: C,
    pub(crate) kinds: KindSet,
    pub(crate) statuses: StatusSet,
    pub(crate) any_method: bool,
    pub(crate) honour_retry_after: bool,
    pub(crate) wall_clock: fn() -> SystemTime,
}

impl Default for HttpRules {
    fn default() -> Self {
        HttpRules::new(HttpClassifier::new())
    }
}

fn default_statuses() -> StatusSet {
    StatusSet::of([429, 502, 503, 504]).unwrap_or_default()
}

impl<C> HttpRules<C> {
    /// Rules classifying with `classifier`, with the default statuses, kinds and methods.
    pub fn new(classifier: C) -> Self {
        HttpRules {
            classifier,
            kinds: KindSet::transient(),
            statuses: default_statuses(),
            any_method: false,
            honour_retry_after: true,
            wall_clock: SystemTime::now,
        }
    }

    /// The classifier.
    pub fn classifier(&self) -> &C {
        &self.classifier
    }

    /// The statuses that are retried.
    pub fn statuses(&self) -> StatusSet {
        self.statuses
    }

    pub(crate) fn check_statuses(statuses: StatusSet) -> Result<StatusSet, ConfigError> {
        if let Some(code) = statuses.iter().find(|c| *c < 400) {
            return Err(ConfigError::new(
                crate::backoff::COMPONENT,
                "retry_statuses",
                code,
                "only error statuses (400..=999) can be retried",
            ));
        }
        Ok(statuses)
    }
}

impl<C> HttpRules<C> {
    /// Whether a request with `method` may be copied for a retry: an idempotent method, or any
    /// with [`retry_non_idempotent`](crate::RetryPolicyBuilder::retry_non_idempotent).
    ///
    /// With [`judge_head`](Self::judge_head) and [`judge_error`](Self::judge_error), this is what
    /// the rules do for `http::Request`/`http::Response`, for a client whose types are not those
    /// (the reqwest middleware), so both judge alike.
    ///
    /// ```
    /// use battlement_retry::HttpRules;
    /// use http::Method;
    ///
    /// let rules = HttpRules::default();
    /// assert!(rules.may_copy(&Method::PUT));
    /// assert!(!rules.may_copy(&Method::POST));
    /// ```
    #[inline]
    pub fn may_copy(&self, method: &Method) -> bool {
        self.any_method || is_idempotent(method)
    }

    /// Judges a response by its status and headers, `outcome` being the classifier's: retried
    /// if the status is in the retry set, with the `Retry-After` of a 429 or 503.
    ///
    /// ```
    /// use battlement_core::{FailureKind, Outcome};
    /// use battlement_retry::HttpRules;
    /// use http::{HeaderMap, StatusCode};
    /// use std::time::Duration;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("retry-after", "2".parse().unwrap());
    /// let outcome = Outcome::Failure(FailureKind::ServerError);
    /// let v = HttpRules::default().judge_head(StatusCode::SERVICE_UNAVAILABLE, &headers, outcome);
    /// assert!(v.should_retry());
    /// assert_eq!(v.retry_after(), Some(Duration::from_secs(2)));
    /// ```
    pub fn judge_head(&self, status: StatusCode, headers: &HeaderMap, outcome: Outcome) -> Verdict {
        let status = status.as_u16();
        let verdict = if self.statuses.contains(status) {
            Verdict::retry(outcome)
        } else {
            Verdict::stop(outcome)
        };
        let after = if self.honour_retry_after && (status == 429 || status == 503) {
            headers
                .get(RETRY_AFTER)
                .and_then(|v| parse_retry_after(v, (self.wall_clock)()))
        } else {
            None
        };
        verdict.with_status(Some(status)).with_retry_after(after)
    }

    /// Judges an error, `outcome` being the classifier's: retried if its failure kind is (by
    /// default `Timeout`, `Connection`, `RateLimited`).
    ///
    /// ```
    /// use battlement_core::{error::BoxError, FailureKind, Outcome};
    /// use battlement_retry::HttpRules;
    ///
    /// let err: BoxError = "refused".into();
    /// let v = HttpRules::default().judge_error(Outcome::Failure(FailureKind::Connection), &err);
    /// assert!(v.should_retry());
    /// ```
    pub fn judge_error<E: AsDynError>(&self, outcome: Outcome, error: &E) -> Verdict {
        judge_by_kind(self.kinds, outcome, Some(error))
    }
}

impl<B, R, E, C> RetryRules<Request<B>, Response<R>, E> for HttpRules<C>
where
    B: CloneBody,
    E: AsDynError,
    C: Classify<Response<R>, E>,
{
    fn clone_request(&self, req: &Request<B>) -> Option<Request<B>> {
        if !self.may_copy(req.method()) {
            return None;
        }
        clone_request(req)
    }

    fn judge(&self, req: &Request<B>, result: Result<&Response<R>, &E>) -> Verdict {
        let outcome = self.classifier.classify(result);
        let verdict = match result {
            Ok(res) => self.judge_head(res.status(), res.headers(), outcome),
            Err(e) => self.judge_error(outcome, e),
        };
        verdict.with_body_too_large(req.body().replay_refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use battlement_core::error::{BoxError, BreakerOpen};
    use battlement_core::{FailureKind, Outcome};
    use http::Method;

    fn res(code: u16, retry_after: Option<&'static str>) -> Response<()> {
        let mut b = Response::builder().status(code);
        if let Some(v) = retry_after {
            b = b.header(RETRY_AFTER, v);
        }
        b.body(()).unwrap()
    }

    fn judge(rules: &HttpRules, method: Method, res: &Response<()>) -> Verdict {
        let req = Request::builder().method(method).body(()).unwrap();
        RetryRules::<_, _, BoxError>::judge(rules, &req, Ok(res))
    }

    #[test]
    fn statuses_retried_by_default() {
        let rules = HttpRules::default();
        for code in [429u16, 502, 503, 504] {
            let v = judge(&rules, Method::GET, &res(code, None));
            assert!(v.should_retry(), "{code}");
            assert_eq!(v.status(), Some(code));
        }
        for code in [200u16, 201, 400, 404, 408, 500, 501, 505] {
            assert!(
                !judge(&rules, Method::GET, &res(code, None)).should_retry(),
                "{code}"
            );
        }
        assert_eq!(
            judge(&rules, Method::GET, &res(503, None)).outcome(),
            Outcome::Failure(FailureKind::ServerError)
        );
        assert_eq!(
            judge(&rules, Method::GET, &res(429, None)).outcome(),
            Outcome::Failure(FailureKind::RateLimited)
        );
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut rules = HttpRules::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 07:28:00
        fn fixed_now() -> SystemTime {
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
        }
        rules.wall_clock = fixed_now;
        let v = judge(&rules, Method::GET, &res(503, Some("7")));
        assert_eq!(v.retry_after(), Some(Duration::from_secs(7)));
        let v = judge(
            &rules,
            Method::GET,
            &res(429, Some("Wed, 21 Oct 2015 07:28:45 GMT")),
        );
        assert_eq!(v.retry_after(), Some(Duration::from_secs(45)));
        // A date in the past: retry at once.
        let v = judge(
            &rules,
            Method::GET,
            &res(503, Some("Wed, 21 Oct 2015 07:00:00 GMT")),
        );
        assert_eq!(v.retry_after(), Some(Duration::ZERO));
        // Only on 429 and 503.
        let v = judge(&rules, Method::GET, &res(502, Some("7")));
        assert!(v.should_retry());
        assert_eq!(v.retry_after(), None);
        // Garbage is ignored.
        assert_eq!(
            judge(&rules, Method::GET, &res(503, Some("later"))).retry_after(),
            None
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static(" 12 "), now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("-1"), now),
            None
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("99999999999999999999999"), now),
            Some(Duration::from_secs(u64::MAX))
        );
        // Switched off.
        rules.honour_retry_after = false;
        assert_eq!(
            judge(&rules, Method::GET, &res(503, Some("7"))).retry_after(),
            None
        );
    }

    #[test]
    fn idempotency_rules() {
        let mut rules = HttpRules::default();
        let copy = |rules: &HttpRules, m: Method| {
            let req = Request::builder().method(m).body(()).unwrap();
            RetryRules::<_, Response<()>, BoxError>::clone_request(rules, &req).is_some()
        };
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(copy(&rules, m.clone()), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!copy(&rules, m.clone()), "{m}");
        }
        rules.any_method = true;
        assert!(copy(&rules, Method::POST));
        assert!(copy(&rules, Method::PATCH));
    }

    #[tokio::test]
    async fn body_cloning() {
        use http_body_util::{BodyExt, Empty, Full};
        let req = Request::put("http://h/p")
            .version(http::Version::HTTP_2)
            .header("a", "b")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let mut req = req;
        req.extensions_mut().insert(42u32);
        let copy = clone_request(&req).unwrap();
        assert_eq!(copy.method(), Method::PUT);
        assert_eq!(copy.uri(), "http://h/p");
        assert_eq!(copy.version(), http::Version::HTTP_2);
        assert_eq!(copy.headers()["a"], "b");
        assert_eq!(copy.extensions().get::<u32>(), Some(&42));
        let bytes = copy.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, Bytes::from_static(b"payload"));

        assert!(clone_request(&Request::new(String::from("s"))).is_some());
        assert!(clone_request(&Request::new(Bytes::from_static(b"b"))).is_some());
        assert!(clone_request(&Request::new(())).is_some());
        assert!(clone_request(&Request::new(Empty::<Bytes>::new())).is_some());
        let boxed = Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed();
        let boxed: http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible> = boxed;
        assert!(clone_request(&Request::new(boxed)).is_none());
    }

    #[test]
    fn errors_by_kind() {
        let rules = HttpRules::default();
        let req = Request::get("/").body(()).unwrap();
        let refused: BoxError =
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let v = RetryRules::<_, Response<()>, _>::judge(&rules, &req, Err(&refused));
        assert!(v.should_retry());
        assert_eq!(v.status(), None);
        let open: BoxError = Box::new(BreakerOpen::new("b".into(), None));
        let v = RetryRules::<_, Response<()>, _>::judge(&rules, &req, Err(&open));
        assert!(!v.should_retry());
    }

    #[test]
    fn status_validation() {
        assert!(HttpRules::<()>::check_statuses(StatusSet::of([200, 503]).unwrap()).is_err());
        assert!(HttpRules::<()>::check_statuses(StatusSet::of([409, 503]).unwrap()).is_ok());
    }
}
