//! A retry policy for Tower.
//!
//! [`RetryPolicy`] holds the settings; stack it with `.layer(policy.into_layer())` (a
//! [`RetryLayer`], whose [`Retry`] service keeps each request's state in its response future and
//! reaches the policy through a handle of the calling thread's own, so a request writes no word
//! that other cores share; [`RetryLayer::leak`] makes that handle a pointer copy), or plug it into tower's own [`tower::retry::Retry`] with
//! `ServiceBuilder::retry(policy)`: it implements [`tower::retry::Policy`], and decides the same
//! way there, but tower's service clones the policy (one shared reference count) for every
//! request.
//!
//! - **How long to wait**: a [`Backoff`] strategy (fixed, linear, exponential with a cap,
//!   Fibonacci, decorrelated jitter), a [`Jitter`] kind on top (none, full, equal, ±p %), and a
//!   min/max bound on every delay. Randomness comes from a seedable source
//!   ([`seed`](RetryPolicyBuilder::seed)), so tests are exact.
//! - **How often**: at most [`max_attempts`](RetryPolicyBuilder::max_attempts) in all, no new
//!   attempt after a [`time_limit`](RetryPolicyBuilder::time_limit), and an optional retry
//!   [`budget`](RetryPolicyBuilder::budget) ([`RetryBudget`]: tower's `TpsBudget` arithmetic,
//!   without its lock) so a struggling upstream is not multiplied by retries.
//! - **What is retried**: classification uses battlement's [`Classify`](battlement_core::Classify)
//!   vocabulary. By default failures of kind `Timeout`, `Connection` and `RateLimited` are
//!   retried; rejections by battlement's own breaker or bulkhead (`Rejected`) are not, unless
//!   [`retry_rejected`](RetryPolicyBuilder::retry_rejected), which then honours an open breaker's
//!   retry-after. A [`retry_if`](RetryPolicyBuilder::retry_if) predicate over the request and
//!   the result widens or narrows this.
//! - **HTTP** (feature `http`, on by default): [`RetryPolicy::http_builder`] retries 429, 502,
//!   503 and 504 and transport failures, only for idempotent methods unless asked, honours
//!   `Retry-After` (seconds or HTTP date) on 429/503, and copies request bodies that can be copied
//!   ([`CloneBody`]); a request that cannot be copied is sent once.
//! - **Safe by default**: a delay the server gives (a `Retry-After`, an open breaker's
//!   retry-after) is honoured only up to [`max_retry_after`](RetryPolicyBuilder::max_retry_after)
//!   (default 60 s); beyond it the policy gives up at once and returns that answer, rather than
//!   wait for as long as the input says or retry sooner than the server asked. A
//!   [`time_limit`](RetryPolicyBuilder::time_limit) bounds every wait the same way: a wait that
//!   would end past it is not taken.
//! - **Observability**: a `tracing` event per retry and per give-up, an
//!   [`on_retry`](RetryPolicyBuilder::on_retry) callback and typed [`RetryEvent`]s through
//!   [`RetryPolicy::subscribe`]; counters read with [`RetryPolicy::metrics`] ([`RetryMetrics`])
//!   and exported under the [`FAMILIES`] by a policy built with a health
//!   [`registry`](RetryPolicyBuilder::registry).
//! - **Live reload**: [`RetryPolicy::reload`] applies new attempts, delays, limits and budget
//!   settings to every clone, from each request's next retry decision.
//!
//! The error after the last attempt is that attempt's own error, unchanged, so callers can still
//! downcast it (a [`BreakerOpen`](battlement_core::error::BreakerOpen), a timeout's `Elapsed`, …).
//!
//! Place the retry outside the circuit breaker and the per-try timeout (see the project's
//! recommended stack order): an open breaker then fails a retry fast, and each attempt gets its
//! own deadline.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_core::error::BoxError;
//! use battlement_retry::{Backoff, Jitter, RetryPolicy};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let policy = RetryPolicy::builder()
//!     .name("inventory")
//!     .max_attempts(4)
//!     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0).with_cap(Duration::from_secs(1)))
//!     .jitter(Jitter::Equal)
//!     .budget(0.2, 10)
//!     .build()
//!     .unwrap();
//!
//! // An upstream whose connection is reset twice, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = calls.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(policy.into_layer())
//!     .timeout(Duration::from_secs(2)) // per attempt
//!     .service_fn(move |item: &'static str| {
//!         let n = counter.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             if n < 2 {
//!                 Err::<String, BoxError>(Box::new(std::io::Error::from(
//!                     std::io::ErrorKind::ConnectionReset,
//!                 )))
//!             } else {
//!                 Ok(format!("{item}: 3 in stock"))
//!             }
//!         }
//!     });
//!
//! assert_eq!(svc.oneshot("widget").await.unwrap(), "widget: 3 in stock");
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # }
//! ```
//!
//! # HTTP
//!
//! ```
//! # #[cfg(feature = "http")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use battlement_retry::{Backoff, RetryPolicy};
//! use http::{Request, Response, StatusCode};
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let policy = RetryPolicy::http_builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::fixed(Duration::from_millis(200)))
//!     .max_retry_after(Duration::from_secs(30)) // a longer Retry-After: give up at once
//!     .build()
//!     .unwrap();
//!
//! // A server that is busy once and says when to come back.
//! let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
//! let svc = ServiceBuilder::new().layer(policy.into_layer()).service_fn(move |_req: Request<String>| {
//!     let first = busy.swap(false, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         let res = if first {
//!             Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).header("retry-after", "5")
//!         } else {
//!             Response::builder().status(StatusCode::OK)
//!         };
//!         Ok::<_, Infallible>(res.body(String::new()).unwrap())
//!     }
//! });
//!
//! let start = Instant::now();
//! let req = Request::put("http://inventory/items/7").body("{\"count\":3}".to_string()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(start.elapsed(), Duration::from_secs(5)); // the server's Retry-After, not 200 ms
//! # }
//! # #[cfg(not(feature = "http"))]
//! # fn main() {}
//! ```

mod backoff;
pub mod budget;
mod config;
mod direct;
mod event;
mod future;
#[cfg(feature = "http")]
mod http;
mod layer;
mod metrics;
mod policy;
#[cfg(feature = "http")]
mod replay;
mod rules;
mod seq;
mod service;
mod settings;

pub use backoff::{Backoff, Jitter};
pub use battlement_core::ConfigError;
pub use budget::RetryBudget;
pub use config::RetryPolicyBuilder;
pub use event::{DelaySource, RetryEvent};
pub use future::{ResponseFuture, RetryDelay};
#[cfg(feature = "http")]
pub use http::{clone_request, is_idempotent, parse_retry_after, CloneBody, HttpRules};
pub use layer::RetryLayer;
pub use metrics::{
    RetryMetrics, BUDGET_REFUSING, CALLS, FAMILIES, GAVE_UP, MAX_ATTEMPTS, RETRIES, SENT_ONCE,
};
pub use policy::RetryPolicy;
#[cfg(feature = "http")]
pub use replay::{ReplayBody, ReplayBodyLayer, ReplayBodyService, ReplayError, DEFAULT_REPLAY_CAP};
pub use rules::{
    DefaultPredicate, PredicateFn, RetryContext, RetryPredicate, RetryRules, Rules, Verdict,
};
pub use service::Retry;

#[cfg(test)]
mod tests;
