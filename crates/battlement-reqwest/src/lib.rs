//! Battlement for reqwest: a [`reqwest_middleware::Middleware`] that runs a retry, a circuit
//! breaker, a bulkhead and a per-attempt timeout around each request of a
//! [`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware).
//!
//! The middleware holds the components' handles, not copies of them: a [`CircuitBreaker`],
//! [`Bulkhead`], [`RetryPolicy`] or [`TimeoutLayer`] given to it shares its state, metrics,
//! health registration and events with every other user of the same handle (a Tower stack, the
//! `/health` endpoint, the Prometheus exporter).
//!
//! - **Order**, outermost first, as the project's recommended stack: retry → circuit breaker →
//!   bulkhead → timeout (per attempt) → the rest of the middleware chain and the client. An open
//!   breaker fails a retry fast; each attempt has its own deadline, and a timeout is a failure
//!   the breaker sees.
//! - **Classification** is [`HttpClassifier`]'s: 5xx and 429
//!   fail the breaker, other statuses succeed, and transport errors fail by kind
//!   ([`ReqwestClassifier`]: refused or reset connections are `Connection`, reqwest's and
//!   battlement's timeouts are `Timeout`).
//! - **Retry** uses the policy's [`HttpRules`]: by default 429, 502, 503, 504, timeouts and
//!   connection failures are retried, only for idempotent methods, after the server's
//!   `Retry-After` (seconds or HTTP date, capped by the policy's `max_retry_after`) or the
//!   backoff. A request whose body cannot be copied (a stream) is sent once.
//! - **Errors**: a rejection or timeout from a component comes back as
//!   [`reqwest_middleware::Error::Middleware`] holding battlement's typed error
//!   ([`BreakerOpen`],
//!   [`BulkheadFull`],
//!   [`Elapsed`], …), which `anyhow`'s `downcast_ref` finds;
//!   the client's own error comes back as [`reqwest_middleware::Error::Reqwest`], unchanged. An
//!   error of another type (from another middleware) is found in the error's `chain()`.
//! - Each attempt gets a copy of the request's [`Extensions`]; what a later middleware writes
//!   into them is not seen by earlier ones.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use battlement_breaker::CircuitBreaker;
//! use battlement_reqwest::BattlementMiddleware;
//! use battlement_retry::{Backoff, RetryPolicy};
//! use battlement_timeout::TimeoutLayer;
//! use std::time::Duration;
//!
//! let breaker = CircuitBreaker::builder("inventory").build()?;
//! let retry = RetryPolicy::http_builder()
//!     .name("inventory")
//!     .max_attempts(3)
//!     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0))
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(
//!         BattlementMiddleware::new()
//!             .retry(retry)
//!             .breaker(&breaker)
//!             .timeout(TimeoutLayer::new(Duration::from_secs(2))),
//!     )
//!     .build();
//! let stock = client.get("http://inventory.internal/items/7").send().await?;
//! println!("{}", stock.status());
//! # Ok(())
//! # }
//! ```

use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer};
use battlement_bulkhead::{Bulkhead, BulkheadLayer};
use battlement_core::error::{
    failure_kind, AsDynError, BoxError, BreakerOpen, BulkheadFull, BulkheadTimeout, Elapsed,
    Halted, InjectedFault, RateLimited, Throttled,
};
use battlement_core::{AtOnce, Classify, FailureKind, HttpClassifier, Outcome};
use battlement_retry::{HttpRules, RetryPolicy, RetryRules, Verdict};
use battlement_timeout::TimeoutLayer;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{ServiceBuilder, ServiceExt};

/// Runs battlement's retry, circuit breaker, bulkhead and per-attempt timeout around each
/// request of a reqwest-middleware client (see the [crate] docs for the order, classification
/// and errors). Each component is optional; with none the request passes through.
///
/// ```
/// use battlement_breaker::CircuitBreaker;
/// use battlement_bulkhead::Bulkhead;
/// use battlement_reqwest::BattlementMiddleware;
/// use battlement_retry::RetryPolicy;
///
/// let breaker = CircuitBreaker::builder("payments").build().unwrap();
/// let bulkhead = Bulkhead::builder("payments").max_concurrent(32).build().unwrap();
/// let middleware = BattlementMiddleware::new()
///     .retry(RetryPolicy::http_builder().build().unwrap())
///     .breaker(&breaker)
///     .bulkhead(&bulkhead);
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(middleware)
///     .build();
/// # drop(client);
/// ```
#[derive(Debug, Clone, Default)]
pub struct BattlementMiddleware {
    retry: Option<RetryPolicy<HttpRules>>,
    breaker: Option<CircuitBreaker>,
    bulkhead: Option<Bulkhead>,
    timeout: Option<TimeoutLayer>,
    classifier: ReqwestClassifier,
}

impl BattlementMiddleware {
    /// A middleware with no component yet: requests pass through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retries each request by `policy` (built with [`RetryPolicy::http_builder`]), outermost.
    pub fn retry(mut self, policy: RetryPolicy<HttpRules>) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Guards each attempt with `breaker` (a handle: its state is shared).
    pub fn breaker(mut self, breaker: &CircuitBreaker) -> Self {
        self.breaker = Some(breaker.clone());
        self
    }

    /// Admits each attempt through `bulkhead` (a handle: its permits are shared).
    pub fn bulkhead(mut self, bulkhead: &Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead.clone());
        self
    }

    /// Limits each attempt with `timeout` (a handle: its limit and metrics are shared).
    pub fn timeout(mut self, timeout: TimeoutLayer) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Classifies attempts for the breaker with `classifier` (by default
    /// [`ReqwestClassifier::new`]: [`HttpClassifier`]'s statuses).
    pub fn classifier(mut self, classifier: ReqwestClassifier) -> Self {
        self.classifier = classifier;
        self
    }
}

#[async_trait::async_trait]
impl Middleware for BattlementMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let attempt = Chain {
            next,
            extensions: &*extensions,
        };
        let svc = ServiceBuilder::new()
            // tower's `Retry`, which clones the policy for this one request: battlement's keeps
            // state per stripe of threads for a service that serves many requests, which this
            // one, made for each request around its borrowed chain, does not.
            .option_layer(self.retry.clone().map(tower::retry::RetryLayer::new))
            .option_layer(
                self.breaker
                    .as_ref()
                    .map(|b| CircuitBreakerLayer::new(b).classifier(self.classifier.clone())),
            )
            .option_layer(self.bulkhead.as_ref().map(BulkheadLayer::new))
            .option_layer(self.timeout.clone())
            .service(attempt);
        svc.oneshot(Attempt(req)).await.map_err(from_box)
    }
}

/// The rest of the middleware chain, as the innermost service: each attempt runs it with a
/// copy of the request's extensions.
#[derive(Clone)]
struct Chain<'a> {
    next: Next<'a>,
    extensions: &'a Extensions,
}

impl<'a> tower::Service<Attempt> for Chain<'a> {
    type Response = Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send + 'a>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, Attempt(req): Attempt) -> Self::Future {
        let next = self.next.clone();
        let mut extensions = self.extensions.clone();
        Box::pin(async move {
            match next.run(req, &mut extensions).await {
                Ok(res) => Ok(res),
                Err(e) => Err(into_box(e)),
            }
        })
    }
}

/// The client's error as a [`BoxError`]: a reqwest error as itself, a middleware's as its
/// `anyhow` error's.
fn into_box(err: reqwest_middleware::Error) -> BoxError {
    match err {
        reqwest_middleware::Error::Reqwest(e) => Box::new(e),
        reqwest_middleware::Error::Middleware(e) => e.into_boxed_dyn_error(),
    }
}

/// A [`BoxError`] back as the middleware's error: reqwest's unchanged, battlement's (and any
/// other) as a middleware error that downcasts to it.
fn from_box(err: BoxError) -> reqwest_middleware::Error {
    let err = match err.downcast::<reqwest::Error>() {
        Ok(e) => return reqwest_middleware::Error::Reqwest(*e),
        Err(e) => e,
    };
    // Battlement's errors go into `anyhow` by value, so `downcast_ref` finds them.
    macro_rules! by_value {
        ($err:ident, $($ty:ty),*) => {
            $(
                let $err = match $err.downcast::<$ty>() {
                    Ok(e) => return reqwest_middleware::Error::Middleware(anyhow::Error::new(*e)),
                    Err(e) => e,
                };
            )*
        };
    }
    by_value!(
        err,
        BreakerOpen,
        BulkheadFull,
        BulkheadTimeout,
        Elapsed,
        Halted,
        RateLimited,
        Throttled,
        InjectedFault
    );
    reqwest_middleware::Error::Middleware(anyhow::Error::from_boxed(err))
}

/// One attempt of a request through the middleware's stack: what the retry rules and a
/// [`retry_if`](battlement_retry::RetryPolicyBuilder::retry_if) predicate see.
///
/// ```
/// use battlement_reqwest::Attempt;
///
/// let req = reqwest::Request::new(reqwest::Method::GET, "http://example.com/".parse().unwrap());
/// let attempt = Attempt::new(req);
/// assert_eq!(attempt.request().method(), "GET");
/// ```
#[derive(Debug)]
pub struct Attempt(Request);

impl Attempt {
    /// An attempt of `req`.
    pub fn new(req: Request) -> Self {
        Attempt(req)
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.0
    }

    /// The request, unwrapped.
    pub fn into_request(self) -> Request {
        self.0
    }
}

/// The policy's HTTP rules for reqwest: the same steps as for `http::Request`/`http::Response`
/// ([`HttpRules::may_copy`], [`HttpRules::judge_head`], [`HttpRules::judge_error`]), with
/// [`ReqwestClassifier`]'s outcomes for the rules' classifier statuses. A request is copied with
/// `reqwest::Request::try_clone` (a streamed body cannot be: it is sent once).
impl<E: AsDynError> RetryRules<Attempt, Response, E> for HttpRules<HttpClassifier> {
    fn clone_request(&self, req: &Attempt) -> Option<Attempt> {
        if !self.may_copy(req.0.method()) {
            return None;
        }
        req.0.try_clone().map(Attempt)
    }

    fn judge(&self, _req: &Attempt, result: Result<&Response, &E>) -> Verdict {
        match result {
            Ok(res) => {
                let outcome = self.classifier().classify_status(res.status());
                self.judge_head(res.status(), res.headers(), outcome)
            }
            Err(e) => {
                let outcome = Outcome::Failure(reqwest_failure_kind(e.as_dyn_error()));
                self.judge_error(outcome, e)
            }
        }
    }
}

/// Classifies reqwest's results as [`HttpClassifier`] does `http::Response`s: by status (its
/// failure and ignored sets), and errors by kind ([`reqwest_failure_kind`]).
///
/// ```
/// use battlement_core::{error::BoxError, Classify, FailureKind, HttpClassifier, Outcome};
/// use battlement_reqwest::ReqwestClassifier;
///
/// let classifier = ReqwestClassifier::new();
/// let res = reqwest::Response::from(http::Response::builder().status(503).body("").unwrap());
/// assert_eq!(
///     Classify::<_, BoxError>::classify(&classifier, Ok(&res)),
///     Outcome::Failure(FailureKind::ServerError)
/// );
/// // Other statuses fail with your own sets.
/// let strict = ReqwestClassifier::from(HttpClassifier::new().fail(404).unwrap());
/// let missing = reqwest::Response::from(http::Response::builder().status(404).body("").unwrap());
/// assert!(Classify::<_, BoxError>::classify(&strict, Ok(&missing)).is_failure());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReqwestClassifier {
    http: HttpClassifier,
}

impl ReqwestClassifier {
    /// With [`HttpClassifier::new`]'s sets: 5xx and 429 fail.
    pub fn new() -> Self {
        Self::default()
    }

    /// The status classifier.
    pub fn http(&self) -> &HttpClassifier {
        &self.http
    }
}

impl From<HttpClassifier> for ReqwestClassifier {
    fn from(http: HttpClassifier) -> Self {
        ReqwestClassifier { http }
    }
}

impl<E: AsDynError> Classify<Response, E> for ReqwestClassifier {
    #[inline]
    fn classify(&self, result: Result<&Response, &E>) -> Outcome {
        match result {
            Ok(res) => self.http.classify_status(res.status()),
            Err(e) => Outcome::Failure(reqwest_failure_kind(e.as_dyn_error())),
        }
    }
}

impl AtOnce for ReqwestClassifier {}

/// The failure kind of an error from a reqwest client: battlement's own reading of its source
/// chain ([`failure_kind`]: rejections, timeouts, refused or reset connections), and where that
/// finds nothing, reqwest's: a timeout (`is_timeout`) is `Timeout`, a failure to connect
/// (`is_connect`) is `Connection`.
///
/// ```
/// use battlement_core::FailureKind;
/// use battlement_reqwest::reqwest_failure_kind;
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(reqwest_failure_kind(&refused), FailureKind::Connection);
/// ```
pub fn reqwest_failure_kind(err: &(dyn Error + 'static)) -> FailureKind {
    let kind = failure_kind(err);
    if kind != FailureKind::Other {
        return kind;
    }
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(e) = e.downcast_ref::<reqwest::Error>() {
            if e.is_timeout() {
                return FailureKind::Timeout;
            }
            if e.is_connect() {
                return FailureKind::Connection;
            }
        }
        current = e.source();
    }
    FailureKind::Other
}
