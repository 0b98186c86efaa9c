//! `ServiceBuilder` methods for battlement's layers.

#[cfg(any(
    feature = "breaker",
    feature = "bulkhead",
    feature = "chaos",
    feature = "health",
    feature = "kill-switch",
    feature = "rate-limit",
    feature = "retry",
    feature = "throttle",
    feature = "timeout"
))]
use tower::layer::util::Stack;
use tower::ServiceBuilder;

/// Adds battlement's layers to `tower::ServiceBuilder`, so stacks read top-down in the
/// recommended order (outermost first):
///
/// ```
/// use battlement::prelude::*;
/// use tower::ServiceBuilder;
///
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder("upstream").build().unwrap();
/// let bulkhead = Bulkhead::builder("upstream").max_concurrent(8).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .circuit_breaker(&breaker)
///     .bulkhead(&bulkhead)
///     .timeout_per_try(Duration::from_millis(500))
///     .service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
/// # drop(svc);
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Guards the service with a circuit breaker, classifying with the default classifier,
    /// [`ResponseClassifier`](crate::core::ResponseClassifier): errors by kind, responses by
    /// their type ([`ResponseOutcome`](crate::core::ResponseOutcome)) — an `http::Response` with
    /// a 5xx or 429 status fails, so does a gRPC trailers-only error. gRPC statuses sent in
    /// trailers need `circuit_breaker_with(&breaker, GrpcClassifier)`; a response type without
    /// `ResponseOutcome` needs a classifier (`ResultClassifier`: every `Ok` succeeds).
    #[cfg(feature = "breaker")]
    fn circuit_breaker(
        self,
        breaker: &crate::breaker::CircuitBreaker,
    ) -> ServiceBuilder<Stack<crate::breaker::CircuitBreakerLayer, L>>;

    /// Guards the service with a circuit breaker and a classifier (`HttpClassifier` with other
    /// status sets, `GrpcClassifier` to judge gRPC streams at their end, `ResultClassifier`, a
    /// closure through `classify_fn`).
    #[cfg(feature = "breaker")]
    fn circuit_breaker_with<C: Clone>(
        self,
        breaker: &crate::breaker::CircuitBreaker,
        classifier: C,
    ) -> ServiceBuilder<Stack<crate::breaker::CircuitBreakerLayer<C>, L>>;

    /// Limits concurrent calls with a bulkhead (permits taken in the response future).
    #[cfg(feature = "bulkhead")]
    fn bulkhead(
        self,
        bulkhead: &crate::bulkhead::Bulkhead,
    ) -> ServiceBuilder<Stack<crate::bulkhead::BulkheadLayer, L>>;

    /// Limits concurrent calls with an adaptive limit (a bulkhead whose limit moves with the
    /// latency and failures of the calls it admits; permits taken in the response future).
    ///
    /// ```
    /// use battlement::bulkhead::Limit;
    /// use battlement::prelude::*;
    /// use tower::ServiceBuilder;
    ///
    /// let limit = Bulkhead::builder("search").adaptive(Limit::vegas()).build().unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .adaptive_limit(&limit)
    ///     .service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) });
    /// assert_eq!(svc.limit().name(), "search");
    /// ```
    #[cfg(feature = "bulkhead")]
    fn adaptive_limit(
        self,
        limit: &crate::bulkhead::AdaptiveLimit,
    ) -> ServiceBuilder<Stack<crate::bulkhead::AdaptiveLayer, L>>;

    /// Limits each call (each attempt, when placed under a retry) to `limit`, failing it with a
    /// typed [`Elapsed`](crate::core::error::Elapsed).
    #[cfg(feature = "timeout")]
    fn timeout_per_try(
        self,
        limit: std::time::Duration,
    ) -> ServiceBuilder<Stack<crate::timeout::TimeoutLayer, L>>;

    /// Records the outcomes of every call into a passive health probe (outermost), classified by
    /// the default [`ResponseClassifier`](crate::core::ResponseClassifier) (an HTTP service's
    /// 5xx and 429 responses are failures).
    #[cfg(feature = "health")]
    fn health_probe(
        self,
        probe: &crate::health::HealthProbe,
    ) -> ServiceBuilder<Stack<crate::health::HealthProbeLayer, L>>;

    /// Retries with a battlement [`RetryPolicy`](crate::retry::RetryPolicy), through its own
    /// [`Retry`](crate::retry::Retry) service (which, unlike tower's, does not clone the policy
    /// for every request).
    #[cfg(feature = "retry")]
    fn retry_policy<K, P>(
        self,
        policy: crate::retry::RetryPolicy<K, P>,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer<K, P>, L>>;

    /// Rejects every call while the kill switch is halted.
    #[cfg(feature = "kill-switch")]
    fn kill_switch(
        self,
        switch: &crate::kill_switch::KillSwitch,
    ) -> ServiceBuilder<Stack<crate::kill_switch::KillSwitchLayer, L>>;

    /// Injects faults while the chaos handle is enabled (development and staging).
    #[cfg(feature = "chaos")]
    fn chaos<R: Clone>(
        self,
        chaos: &crate::chaos::Chaos<R>,
    ) -> ServiceBuilder<Stack<crate::chaos::ChaosLayer<R>, L>>;

    /// Limits the rate of calls (per key, if the limiter is keyed), failing the excess with a
    /// typed [`RateLimited`](crate::core::error::RateLimited) (or letting it wait, up to the
    /// limiter's `max_delay`).
    ///
    /// Not called `rate_limit`: tower's `ServiceBuilder` has an inherent `rate_limit(num, per)`
    /// (feature `limit`), which would shadow it (as `timeout` would `timeout_per_try`).
    #[cfg(feature = "rate-limit")]
    fn rate_limiter<X: crate::rate_limit::KeyExtractor>(
        self,
        limit: &crate::rate_limit::RateLimit<X>,
    ) -> ServiceBuilder<Stack<crate::rate_limit::RateLimitLayer<X>, L>>;

    /// Throttles outbound calls adaptively (Google SRE's rule): while the dependency refuses
    /// calls, rejects some locally with a typed [`Throttled`](crate::core::error::Throttled).
    /// Which calls it accepted is read by the default classifier,
    /// [`ResponseClassifier`](crate::core::ResponseClassifier) (a 5xx or 429 response, or an
    /// error, is a refusal). Place it per attempt: under the retry and the hedge, over the
    /// breaker and the per-try timeout.
    #[cfg(feature = "throttle")]
    fn throttle(
        self,
        throttle: &crate::throttle::Throttle,
    ) -> ServiceBuilder<Stack<crate::throttle::ThrottleLayer, L>>;

    /// Throttles outbound calls adaptively, judging with `classifier` which calls the
    /// dependency accepted.
    #[cfg(feature = "throttle")]
    fn throttle_with<C: Clone>(
        self,
        throttle: &crate::throttle::Throttle,
        classifier: C,
    ) -> ServiceBuilder<Stack<crate::throttle::ThrottleLayer<C>, L>>;
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "breaker")]
    fn circuit_breaker(
        self,
        breaker: &crate::breaker::CircuitBreaker,
    ) -> ServiceBuilder<Stack<crate::breaker::CircuitBreakerLayer, L>> {
        self.layer(crate::breaker::CircuitBreakerLayer::new(breaker))
    }

    #[cfg(feature = "breaker")]
    fn circuit_breaker_with<C: Clone>(
        self,
        breaker: &crate::breaker::CircuitBreaker,
        classifier: C,
    ) -> ServiceBuilder<Stack<crate::breaker::CircuitBreakerLayer<C>, L>> {
        self.layer(crate::breaker::CircuitBreakerLayer::new(breaker).classifier(classifier))
    }

    #[cfg(feature = "bulkhead")]
    fn bulkhead(
        self,
        bulkhead: &crate::bulkhead::Bulkhead,
    ) -> ServiceBuilder<Stack<crate::bulkhead::BulkheadLayer, L>> {
        self.layer(crate::bulkhead::BulkheadLayer::new(bulkhead))
    }

    #[cfg(feature = "bulkhead")]
    fn adaptive_limit(
        self,
        limit: &crate::bulkhead::AdaptiveLimit,
    ) -> ServiceBuilder<Stack<crate::bulkhead::AdaptiveLayer, L>> {
        self.layer(crate::bulkhead::AdaptiveLayer::new(limit))
    }

    #[cfg(feature = "timeout")]
    fn timeout_per_try(
        self,
        limit: std::time::Duration,
    ) -> ServiceBuilder<Stack<crate::timeout::TimeoutLayer, L>> {
        self.layer(crate::timeout::TimeoutLayer::new(limit))
    }

    #[cfg(feature = "health")]
    fn health_probe(
        self,
        probe: &crate::health::HealthProbe,
    ) -> ServiceBuilder<Stack<crate::health::HealthProbeLayer, L>> {
        self.layer(crate::health::HealthProbeLayer::new(probe))
    }

    #[cfg(feature = "retry")]
    fn retry_policy<K, P>(
        self,
        policy: crate::retry::RetryPolicy<K, P>,
    ) -> ServiceBuilder<Stack<crate::retry::RetryLayer<K, P>, L>> {
        self.layer(crate::retry::RetryLayer::new(policy))
    }

    #[cfg(feature = "kill-switch")]
    fn kill_switch(
        self,
        switch: &crate::kill_switch::KillSwitch,
    ) -> ServiceBuilder<Stack<crate::kill_switch::KillSwitchLayer, L>> {
        self.layer(crate::kill_switch::KillSwitchLayer::new(switch))
    }

    #[cfg(feature = "chaos")]
    fn chaos<R: Clone>(
        self,
        chaos: &crate::chaos::Chaos<R>,
    ) -> ServiceBuilder<Stack<crate::chaos::ChaosLayer<R>, L>> {
        self.layer(crate::chaos::ChaosLayer::new(chaos))
    }

    #[cfg(feature = "rate-limit")]
    fn rate_limiter<X: crate::rate_limit::KeyExtractor>(
        self,
        limit: &crate::rate_limit::RateLimit<X>,
    ) -> ServiceBuilder<Stack<crate::rate_limit::RateLimitLayer<X>, L>> {
        self.layer(crate::rate_limit::RateLimitLayer::new(limit))
    }

    #[cfg(feature = "throttle")]
    fn throttle(
        self,
        throttle: &crate::throttle::Throttle,
    ) -> ServiceBuilder<Stack<crate::throttle::ThrottleLayer, L>> {
        self.layer(crate::throttle::ThrottleLayer::new(throttle))
    }

    #[cfg(feature = "throttle")]
    fn throttle_with<C: Clone>(
        self,
        throttle: &crate::throttle::Throttle,
        classifier: C,
    ) -> ServiceBuilder<Stack<crate::throttle::ThrottleLayer<C>, L>> {
        self.layer(crate::throttle::ThrottleLayer::new(throttle).classifier(classifier))
    }
}
