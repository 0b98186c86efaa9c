//! Standard pipelines: a well-chosen [`ResilienceStack`] in one call, for the two common cases.
//!
//! - [`client`]: in front of an outbound HTTP client (hyper-util's, or any Tower service of
//!   `http::Request`s).
//! - [`server`]: in front of an HTTP server's routes (axum, hyper).
//!
//! Each returns a builder whose defaults are documented below, line by line with why; every
//! default can be overridden from code (the builder's methods take the component's own builder
//! to adjust) and from a configuration file (feature `config`: `settings` applies an instance's
//! sections of battlement-config). `build` gives the stack, unbuilt (add a fallback, a health
//! probe, fault injection as on any stack, then `build()` or `build_direct()`), and the
//! handles of its stateful parts for operations and tests.
//!
//! # The client pipeline, compared with Microsoft's standard HTTP handler
//!
//! [Microsoft.Extensions.Http.Resilience]'s `AddStandardResilienceHandler` is the best-known
//! standard pipeline; [`client`] follows its order and defaults, and differs where noted.
//!
//! | stage (outermost first) | Microsoft's default | `pipeline::client` | why |
//! |---|---|---|---|
//! | concurrency limit | rate limiter: 1000 concurrent, no queue | bulkhead: 1000 concurrent, no queue | one bad dependency cannot hold every task of the process; past the limit a call fails at once (`BulkheadFull`) instead of queueing behind stuck calls |
//! | total timeout | 30 s | 30 s | bounds what the caller waits, every attempt and every retry wait included ([`Elapsed`] of scope `Total`) |
//! | retry | 3 retries, exponential with jitter from 2 s, `Retry-After` honoured, every method, 408/429/5xx/transport errors | 3 retries (4 attempts), exponential from 2 s (×2, capped at 30 s) with ±50 % jitter (median 2 s, 4 s, 8 s), `Retry-After` honoured up to 60 s, **idempotent methods only**, 429/502/503/504/timeouts/connection errors, **a retry budget** of 20 % of calls plus 10 per second | a `POST` may have taken effect before it failed, so it is not replayed; a 500 is usually a bug, not a transient state; the budget keeps retries from multiplying load on a dependency that is already failing (Microsoft's has none) |
//! | circuit breaker | failure ratio 10 % over 30 s, minimum throughput 100, break 5 s | failure rate 10 % over a 30 s time window (10 buckets), minimum 100 calls, open 5 s | stops sending to a dependency that fails one call in ten under real load; the minimum keeps a quiet period's few failures from opening it; 5 s is short enough that a recovered dependency is back quickly (half-open trials decide) |
//! | breaker's failures | 408, 429, 5xx, transport errors, timeouts | 429, 5xx, transport errors, timeouts (the default [`ResponseClassifier`](crate::core::ResponseClassifier)) | a 408 is the server timing out the client's request, not its own failure |
//! | attempt timeout | 10 s | 10 s | one slow attempt does not use up the whole 30 s; a timed-out attempt is a failure the breaker sees and the retry may retry ([`Elapsed`] of scope `Attempt`) |
//!
//! [Microsoft.Extensions.Http.Resilience]: https://learn.microsoft.com/dotnet/core/resilience/http-resilience
//! [`Elapsed`]: crate::core::error::Elapsed
//!
//! An attempt timeout longer than the total timeout is refused when the stack is built (a
//! [`ConfigError`]), as Microsoft's validation does.
//!
//! # The server pipeline
//!
//! | stage (outermost first) | default | why |
//! |---|---|---|
//! | error mapping | [`HttpErrorLayer`] | every refusal below becomes an HTTP answer (503 with `Retry-After` where known, 504 for a timeout), so the stack is infallible as axum requires |
//! | kill switch | running, critical | an operator stops the service's traffic in one call (`halt`), and readiness fails so the load balancer drains it |
//! | load shedding | bulkhead: 1000 concurrent, no queue, not critical | past its capacity a server answers 503 at once, cheaply, instead of queueing requests whose clients will have given up |
//! | timeout | 30 s | a stuck handler frees its permit and its connection; the client gets a 504 rather than nothing |
//!
//! Given a health registry ([`ServerPipeline::health`]), the kill switch and the bulkhead are
//! registered in it, so the health endpoint reports them and the metrics exporters (which read
//! the registry) export them.

use crate::breaker::{CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerLayer, SlidingWindow};
use crate::bulkhead::{Bulkhead, BulkheadBuilder, BulkheadLayer};
use crate::health::HealthRegistry;
use crate::http_error::HttpErrorLayer;
use crate::kill_switch::{KillSwitch, KillSwitchBuilder, KillSwitchLayer};
use crate::retry::{Backoff, HttpRules, Jitter, RetryLayer, RetryPolicy, RetryPolicyBuilder};
use crate::timeout::TimeoutLayer;
use crate::ResilienceStack;
use battlement_core::ConfigError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tower::layer::util::Identity;

/// The client pipeline's stack (see [`client`]): concurrency limit (in the rate-limit slot,
/// outermost after the kill switch) → total timeout → retry → circuit breaker → attempt
/// timeout.
pub type ClientStack = ResilienceStack<
    Identity,
    Identity,
    BulkheadLayer,
    Identity,
    TimeoutLayer,
    RetryLayer<HttpRules>,
    Identity,
    Identity,
    CircuitBreakerLayer,
    Identity,
    TimeoutLayer,
    Identity,
>;

/// The server pipeline's stack (see [`server`]): error mapping (outermost) → kill switch →
/// load shedding (bulkhead) → timeout.
pub type ServerStack<B> = ResilienceStack<
    HttpErrorLayer<B>,
    KillSwitchLayer,
    Identity,
    Identity,
    Identity,
    Identity,
    Identity,
    Identity,
    Identity,
    BulkheadLayer,
    TimeoutLayer,
    Identity,
>;

/// The standard pipeline for an outbound HTTP client, named `name` (its components' name):
/// concurrency limit → total timeout → retry → circuit breaker → attempt timeout, with the
/// defaults of the [module's table](self#the-client-pipeline-compared-with-microsofts-standard-http-handler).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), battlement::core::BoxError> {
/// use battlement::pipeline;
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
///
/// let github = pipeline::client("github")
///     .attempt_timeout(Duration::from_secs(5)) // an override from code
///     .breaker(|b| b.minimum_calls(20))
///     .build()?;
/// // Any Tower service of `http::Request`s: here a stand-in for hyper-util's client.
/// let upstream = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
///     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::from("ok"))))
/// });
/// let svc = github.stack.build()?.layer(upstream);
/// let res = svc.oneshot(http::Request::new(Full::new(Bytes::new()))).await?;
/// assert_eq!(res.status(), 200);
/// assert_eq!(github.breaker.metrics().successes, 1);
/// # Ok(())
/// # }
/// ```
pub fn client(name: impl Into<String>) -> ClientPipeline {
    ClientPipeline::new(name.into())
}

/// The standard pipeline in front of an HTTP server's routes, named `name`: error mapping →
/// kill switch → load shedding → timeout, with the defaults of the
/// [module's table](self#the-server-pipeline).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), battlement::core::BoxError> {
/// use battlement::health::HealthRegistry;
/// use battlement::pipeline;
/// use tower::{Layer, ServiceExt};
///
/// let health = HealthRegistry::new();
/// let api = pipeline::server("api").health(&health).build::<String>()?;
/// let svc = api.stack.build()?.layer(tower::service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
/// }));
/// api.kill_switch.halt("incident 42");
/// let res = svc.oneshot(http::Request::new(String::new())).await.unwrap();
/// assert_eq!(res.status(), 503); // the refusal, mapped to an HTTP answer
/// // The kill switch is registered as critical: the service reports itself failing.
/// assert_eq!(health.status(), battlement::core::HealthStatus::Fail);
/// # Ok(())
/// # }
/// ```
pub fn server(name: impl Into<String>) -> ServerPipeline {
    ServerPipeline::new(name.into())
}

/// Adjusts a component's builder (an override from code).
type Adjust<B> = Box<dyn FnOnce(B) -> B + Send>;

/// The builder of the client pipeline; made by [`client`].
#[must_use]
pub struct ClientPipeline {
    name: String,
    concurrency: BulkheadBuilder,
    total_timeout: Duration,
    attempt_timeout: Duration,
    retry: RetryPolicyBuilder<HttpRules>,
    breaker: CircuitBreakerBuilder,
    health: Option<HealthRegistry>,
}

impl fmt::Debug for ClientPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPipeline")
            .field("name", &self.name)
            .field("total_timeout", &self.total_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

/// The client pipeline's defaults (see the [module's table](self)).
impl ClientPipeline {
    /// At most this many calls in flight.
    pub const MAX_CONCURRENT: usize = 1000;
    /// The total timeout.
    pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
    /// The attempt timeout.
    pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Attempts in all: the first and three retries.
    pub const MAX_ATTEMPTS: u32 = 4;
    /// The first retry's median delay (doubling for each retry after).
    pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
    /// The breaker's failure-rate threshold.
    pub const FAILURE_RATE: f64 = 0.1;
    /// The breaker's window.
    pub const BREAKER_WINDOW: Duration = Duration::from_secs(30);
    /// The calls the breaker's window needs before it judges.
    pub const MINIMUM_CALLS: u64 = 100;
    /// How long the breaker stays open before its trials.
    pub const OPEN_WAIT: Duration = Duration::from_secs(5);

    fn new(name: String) -> Self {
        let concurrency = Bulkhead::builder(name.clone())
            // One bad dependency cannot hold every task of the process.
            .max_concurrent(Self::MAX_CONCURRENT)
            // Past the limit, fail at once rather than queue behind stuck calls.
            .max_queued(0);
        let retry = RetryPolicy::http_builder()
            .name(&name)
            // Three retries: enough to ride out a blip, few enough to give up within the
            // total timeout.
            .max_attempts(Self::MAX_ATTEMPTS)
            // Exponential from 2 s: a dependency that is restarting gets time to come back.
            .backoff(
                Backoff::exponential(Self::BACKOFF_BASE, 2.0).with_cap(Duration::from_secs(30)),
            )
            // ±50 %: clients that failed together do not retry together.
            .jitter(Jitter::Proportional(50.0))
            // Retries may add at most 20 % to the calls (plus 10 a second when quiet), so a
            // failing dependency does not receive three times its load.
            .budget(0.2, 10);
        let breaker = CircuitBreaker::builder(name.clone())
            // Judged over the last 30 s, in ten 3 s buckets.
            .sliding_window(SlidingWindow::Time {
                length: Self::BREAKER_WINDOW,
                buckets: 10,
            })
            // One failure in ten under real load opens it...
            .failure_rate_threshold(Self::FAILURE_RATE)
            // ...but not a handful of failures in a quiet period.
            .minimum_calls(Self::MINIMUM_CALLS)
            // Short: half-open trials find a recovered dependency quickly.
            .fixed_open_wait(Self::OPEN_WAIT);
        ClientPipeline {
            name,
            concurrency,
            total_timeout: Self::TOTAL_TIMEOUT,
            attempt_timeout: Self::ATTEMPT_TIMEOUT,
            retry,
            breaker,
            health: None,
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The total timeout: all attempts and their waits (default 30 s).
    pub fn total_timeout(mut self, limit: Duration) -> Self {
        self.total_timeout = limit;
        self
    }

    /// The attempt timeout (default 10 s); longer than the total timeout is a [`ConfigError`]
    /// from the stack's `build`.
    pub fn attempt_timeout(mut self, limit: Duration) -> Self {
        self.attempt_timeout = limit;
        self
    }

    /// Adjusts the concurrency limit's builder (e.g. `|b| b.max_concurrent(100)`).
    pub fn concurrency(mut self, adjust: impl FnOnce(BulkheadBuilder) -> BulkheadBuilder) -> Self {
        self.concurrency = adjust(self.concurrency);
        self
    }

    /// Adjusts the retry policy's builder (e.g. `|r| r.max_attempts(2)`).
    pub fn retry(
        mut self,
        adjust: impl FnOnce(RetryPolicyBuilder<HttpRules>) -> RetryPolicyBuilder<HttpRules>,
    ) -> Self {
        self.retry = adjust(self.retry);
        self
    }

    /// Adjusts the circuit breaker's builder (e.g. `|b| b.minimum_calls(20)`).
    pub fn breaker(
        mut self,
        adjust: impl FnOnce(CircuitBreakerBuilder) -> CircuitBreakerBuilder,
    ) -> Self {
        self.breaker = adjust(self.breaker);
        self
    }

    /// Registers the breaker (critical) and the concurrency limit (not critical) with
    /// `registry` when the stack is built, for the health endpoint and the metrics exporters.
    pub fn health(mut self, registry: &HealthRegistry) -> Self {
        self.health = Some(registry.clone());
        self
    }

    /// Applies an instance's settings from a configuration file over the defaults: its
    /// `breaker`, `bulkhead` (the concurrency limit), `retry`, `timeout` (the attempt timeout)
    /// and `total_timeout` sections, each field set overriding the pipeline's default for it.
    ///
    /// ```
    /// use battlement::config::Configuration;
    /// use battlement::pipeline;
    /// use std::time::Duration;
    ///
    /// let config = Configuration::from_toml(r#"
    /// [instances.github]
    /// retry = { max_attempts = 2 }
    /// timeout = { limit = "3s" }
    /// breaker = { minimum_calls = 20 }
    /// "#).unwrap();
    /// let github = pipeline::client("github")
    ///     .settings(config.instance("github").unwrap())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(github.retry.max_attempts(), 2);
    /// ```
    #[cfg(feature = "config")]
    pub fn settings(mut self, settings: &crate::config::InstanceSettings) -> Self {
        if let Some(s) = &settings.breaker {
            self.breaker = s.apply(self.breaker);
        }
        if let Some(s) = &settings.bulkhead {
            self.concurrency = s.apply(self.concurrency);
        }
        if let Some(s) = &settings.retry {
            self.retry = s.apply_http(self.retry);
        }
        if let Some(limit) = settings.timeout.as_ref().and_then(|t| t.limit) {
            self.attempt_timeout = limit;
        }
        if let Some(limit) = settings.total_timeout.as_ref().and_then(|t| t.limit) {
            self.total_timeout = limit;
        }
        self
    }

    /// Builds the components and composes the stack.
    ///
    /// # Errors
    ///
    /// A component's settings are invalid (the component builder's [`ConfigError`]).
    pub fn build(self) -> Result<Client, ConfigError> {
        let concurrency = self.concurrency.build()?;
        let breaker = self.breaker.build()?;
        let retry = self.retry.build()?;
        let stack = ResilienceStack::new()
            .part(Arc::new(concurrency.clone()))
            .set_rate_limit(BulkheadLayer::new(&concurrency))
            .total_timeout(self.total_timeout)
            .retry_policy(retry.clone())
            .circuit_breaker(&breaker)
            .timeout_per_try(self.attempt_timeout);
        let stack = match &self.health {
            Some(registry) => stack.registry(registry),
            None => stack,
        };
        Ok(Client {
            stack,
            breaker,
            concurrency,
            retry,
        })
    }
}

/// A built client pipeline: the stack and the handles of its parts.
#[derive(Debug)]
#[non_exhaustive]
pub struct Client {
    /// The stack: add more layers if you like, then `build()` (a Tower layer) or
    /// `build_direct()`.
    pub stack: ClientStack,
    /// The circuit breaker (its state, metrics, `force_open`, …).
    pub breaker: CircuitBreaker,
    /// The concurrency limit.
    pub concurrency: Bulkhead,
    /// The retry policy (its metrics and events).
    pub retry: RetryPolicy<HttpRules>,
}

/// The builder of the server pipeline; made by [`server`].
#[must_use]
pub struct ServerPipeline {
    name: String,
    kill_switch: KillSwitchBuilder,
    shedding: BulkheadBuilder,
    timeout: Duration,
    health: Option<HealthRegistry>,
    adjust_errors: Option<Adjust<crate::http_error::ErrorMapping>>,
}

impl fmt::Debug for ServerPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPipeline")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The server pipeline's defaults (see the [module's table](self#the-server-pipeline)).
impl ServerPipeline {
    /// At most this many requests in flight.
    pub const MAX_CONCURRENT: usize = 1000;
    /// The timeout of a request.
    pub const TIMEOUT: Duration = Duration::from_secs(30);

    fn new(name: String) -> Self {
        ServerPipeline {
            kill_switch: KillSwitch::builder(name.clone()),
            shedding: Bulkhead::builder(name.clone())
                .max_concurrent(Self::MAX_CONCURRENT)
                .max_queued(0),
            timeout: Self::TIMEOUT,
            health: None,
            adjust_errors: None,
            name,
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The timeout of a request (default 30 s).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Adjusts the kill switch's builder.
    pub fn kill_switch(
        mut self,
        adjust: impl FnOnce(KillSwitchBuilder) -> KillSwitchBuilder,
    ) -> Self {
        self.kill_switch = adjust(self.kill_switch);
        self
    }

    /// Adjusts the load-shedding bulkhead's builder (e.g. `|b| b.max_concurrent(200)`).
    pub fn shedding(mut self, adjust: impl FnOnce(BulkheadBuilder) -> BulkheadBuilder) -> Self {
        self.shedding = adjust(self.shedding);
        self
    }

    /// Adjusts how errors map to HTTP answers (e.g. a full bulkhead as 429).
    pub fn error_mapping(
        mut self,
        adjust: impl FnOnce(crate::http_error::ErrorMapping) -> crate::http_error::ErrorMapping
            + Send
            + 'static,
    ) -> Self {
        self.adjust_errors = Some(Box::new(adjust));
        self
    }

    /// Registers the kill switch (critical: halted, readiness fails) and the bulkhead (not
    /// critical: saturated, it warns) with `registry` when the stack is built, for the health
    /// endpoint and the metrics exporters.
    pub fn health(mut self, registry: &HealthRegistry) -> Self {
        self.health = Some(registry.clone());
        self
    }

    /// Applies an instance's settings from a configuration file over the defaults: its
    /// `kill_switch`, `bulkhead` (the load shedding) and `timeout` sections.
    ///
    /// ```
    /// use battlement::config::Configuration;
    /// use battlement::pipeline;
    ///
    /// let config = Configuration::from_toml(r#"
    /// [instances.api]
    /// bulkhead = { max_concurrent = 64 }
    /// timeout = { limit = "5s" }
    /// "#).unwrap();
    /// let api = pipeline::server("api").settings(config.instance("api").unwrap()).build::<String>().unwrap();
    /// assert_eq!(api.shedding.max_concurrent(), 64);
    /// ```
    #[cfg(feature = "config")]
    pub fn settings(mut self, settings: &crate::config::InstanceSettings) -> Self {
        if let Some(s) = &settings.kill_switch {
            self.kill_switch = s.apply(self.kill_switch);
        }
        if let Some(s) = &settings.bulkhead {
            self.shedding = s.apply(self.shedding);
        }
        if let Some(limit) = settings.timeout.as_ref().and_then(|t| t.limit) {
            self.timeout = limit;
        }
        self
    }

    /// Builds the components and composes the stack; `B` is the response body type the error
    /// mapping writes its answers in (axum's `Body`, `String`, `Full<Bytes>`, …).
    ///
    /// # Errors
    ///
    /// A component's settings are invalid (the component builder's [`ConfigError`]), or the
    /// timeout is zero.
    pub fn build<B: From<String> + 'static>(self) -> Result<Server<B>, ConfigError> {
        let kill_switch = self.kill_switch.build()?;
        let shedding = self.shedding.build()?;
        let timeout = TimeoutLayer::try_new(self.timeout)?.name(&self.name);
        let mut errors = HttpErrorLayer::new();
        if let Some(adjust) = self.adjust_errors {
            errors = errors.mapping(adjust(crate::http_error::ErrorMapping::new()));
        }
        let stack = ResilienceStack::new()
            .outermost(errors)
            .kill_switch(&kill_switch)
            .bulkhead(&shedding)
            .timeout_layer(timeout);
        let stack = match &self.health {
            Some(registry) => stack.registry(registry),
            None => stack,
        };
        Ok(Server {
            stack,
            kill_switch,
            shedding,
        })
    }
}

/// A built server pipeline: the stack and the handles of its parts.
#[derive(Debug)]
#[non_exhaustive]
pub struct Server<B> {
    /// The stack: add more layers if you like (a rate limit, a health probe in place of the
    /// error mapping's slot is not possible: the mapping is outermost), then `build()`.
    pub stack: ServerStack<B>,
    /// The kill switch (`halt`, `resume`).
    pub kill_switch: KillSwitch,
    /// The load-shedding bulkhead.
    pub shedding: Bulkhead,
}
