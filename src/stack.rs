//! A stack builder that composes battlement's layers in the recommended order.

use crate::Leak;
use battlement_core::{register_all_with, ConfigError, HealthSink, HealthSource};
use std::fmt;
use std::sync::Arc;
use tower::layer::util::{Identity, Stack};

/// Builds one [`Layer`](tower::Layer) from the battlement layers you configure, composed in the recommended
/// order whatever order you configure them in (outermost first):
///
/// ```text
/// health probe → kill switch → rate limit → fallback → total timeout → retry → hedge →
/// adaptive throttle → circuit breaker → bulkhead → timeout (per try) → fault injection → service
/// ```
///
/// The total timeout bounds all attempts and the waits between them; retry sits outside the breaker, so an open breaker fails a retry fast instead of being
/// hammered; the timeout sits inside, so each attempt has its own deadline and a timeout is a
/// failure the breaker sees; fault injection sits innermost, where the real dependency's faults
/// would come from. The adaptive throttle (client-side, Google SRE's rule) judges each attempt
/// the dependency would see, so it sits inside the retry and the hedge (a throttled attempt
/// fails with a `Rejected` error, which the retry policy does not retry by default), and
/// outside the breaker (its local rejections are not the dependency's refusals, and a
/// throttled call must not count as a breaker failure) and the per-try timeout (a timeout is a
/// refusal it must see). A layer you do not configure costs nothing (it is tower's `Identity`).
///
/// Given a registry ([`registry`](Self::registry)), [`build`](Self::build) registers the
/// stack's stateful parts (breaker, bulkhead, kill switch, rate limiter, throttle) so the health endpoint reports them,
/// each critical or not as its kind is by default, as its own builder would register it
/// ([`ComponentKind::critical_by_default`](battlement_core::ComponentKind::critical_by_default));
/// a part the registry already holds (the same kind and name, e.g. a breaker built with
/// `.registry(&r)` and given to a stack with `.registry(&r)` too) is a [`ConfigError`] from
/// `build`, and then nothing is registered.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), battlement::core::BoxError> {
/// use battlement::prelude::*;
/// use battlement::ResilienceStack;
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let breaker = CircuitBreaker::builder("upstream").build()?;
/// let retry = RetryPolicy::builder().max_attempts(3).build()?;
/// let stack = ResilienceStack::new()
///     .timeout_per_try(Duration::from_millis(250)) // configured first, still innermost
///     .circuit_breaker(&breaker)
///     .retry_policy(retry)
///     .build()?;
/// let svc = ServiceBuilder::new()
///     .layer(stack)
///     .service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) });
/// assert_eq!(svc.oneshot(41).await?, 42);
/// # Ok(())
/// # }
/// ```
pub struct ResilienceStack<
    Probe = Identity,
    KillSwitch = Identity,
    RateLimit = Identity,
    Fallback = Identity,
    TotalTimeout = Identity,
    Retry = Identity,
    Hedge = Identity,
    Throttle = Identity,
    Breaker = Identity,
    Bulkhead = Identity,
    Timeout = Identity,
    Chaos = Identity,
> {
    probe: Probe,
    kill_switch: KillSwitch,
    rate_limit: RateLimit,
    fallback: Fallback,
    total_timeout: TotalTimeout,
    retry: Retry,
    hedge: Hedge,
    throttle: Throttle,
    breaker: Breaker,
    bulkhead: Bulkhead,
    timeout: Timeout,
    chaos: Chaos,
    components: Vec<(Arc<dyn HealthSource>, bool)>,
    registries: Vec<Box<dyn HealthSink + Send + Sync>>,
    limits: Limits,
    /// Set by [`leak`](ResilienceStack::leak): the breaker, bulkhead, timeout and retry layers
    /// given afterwards are leaked too.
    leak: bool,
}

/// The limits of the stack's timeouts, as configured, for validation at build.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    attempt: Option<std::time::Duration>,
    total: Option<std::time::Duration>,
}

impl Limits {
    /// An attempt may not be allowed longer than the whole call (Microsoft's standard pipeline
    /// refuses the same): its timeout could never fire.
    fn validate(&self) -> Result<(), ConfigError> {
        match (self.attempt, self.total) {
            (Some(attempt), Some(total)) if attempt > total => Err(ConfigError::new(
                "resilience stack",
                "timeout_per_try",
                attempt,
                format!(
                    "an attempt's timeout must not be longer than the total timeout ({total:?})"
                ),
            )),
            (_, Some(total)) if total.is_zero() => Err(ConfigError::new(
                "resilience stack",
                "total_timeout",
                total,
                "must be greater than zero",
            )),
            _ => Ok(()),
        }
    }
}

impl<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch> fmt::Debug
    for ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceStack").finish_non_exhaustive()
    }
}

impl Default for ResilienceStack {
    fn default() -> Self {
        Self::new()
    }
}

impl ResilienceStack {
    /// An empty stack.
    pub fn new() -> Self {
        ResilienceStack {
            probe: Identity::new(),
            kill_switch: Identity::new(),
            rate_limit: Identity::new(),
            fallback: Identity::new(),
            total_timeout: Identity::new(),
            retry: Identity::new(),
            hedge: Identity::new(),
            throttle: Identity::new(),
            breaker: Identity::new(),
            bulkhead: Identity::new(),
            timeout: Identity::new(),
            chaos: Identity::new(),
            components: Vec::new(),
            registries: Vec::new(),
            limits: Limits::default(),
            leak: false,
        }
    }
}

/// The layer [`ResilienceStack::build`] returns.
pub type ResilienceLayer<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch> = Stack<
    Ch,
    Stack<
        Ti,
        Stack<
            Bu,
            Stack<
                Br,
                Stack<
                    Th,
                    Stack<
                        He,
                        Stack<Re, Stack<Tt, Stack<Fa, Stack<Rl, Stack<Ha, Stack<Pr, Identity>>>>>>,
                    >,
                >,
            >,
        >,
    >,
>;

impl<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
    ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
{
    /// Registers the stack's stateful parts with `registry` when it is built.
    pub fn registry<R>(mut self, registry: &R) -> Self
    where
        R: HealthSink + Clone + Send + Sync + 'static,
    {
        self.registries.push(Box::new(registry.clone()));
        self
    }

    /// Composes the layers in the recommended order and registers the stateful parts with every
    /// registry given, all or none.
    ///
    /// # Errors
    ///
    /// A registry already holds a component of the same kind and name as one of the parts; the
    /// per-try timeout is longer than the total timeout.
    // Twelve type parameters are the stack's twelve layers; an alias would only rename them.
    #[allow(clippy::type_complexity)]
    pub fn build(
        self,
    ) -> Result<ResilienceLayer<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>, ConfigError> {
        self.limits.validate()?;
        register_all_with(&self.registries, &self.components)?;
        let outer = Stack::new(
            self.total_timeout,
            Stack::new(
                self.fallback,
                Stack::new(
                    self.rate_limit,
                    Stack::new(self.kill_switch, Stack::new(self.probe, Identity::new())),
                ),
            ),
        );
        Ok(Stack::new(
            self.chaos,
            Stack::new(
                self.timeout,
                Stack::new(
                    self.bulkhead,
                    Stack::new(
                        self.breaker,
                        Stack::new(
                            self.throttle,
                            Stack::new(self.hedge, Stack::new(self.retry, outer)),
                        ),
                    ),
                ),
            ),
        ))
    }

    /// Records every call's outcome into a passive health probe, outermost (the probe registers
    /// itself when its builder is given a registry).
    #[cfg(feature = "health")]
    pub fn health_probe(
        self,
        probe: &crate::health::HealthProbe,
    ) -> ResilienceStack<crate::health::HealthProbeLayer, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
    {
        self.outermost(crate::health::HealthProbeLayer::new(probe))
    }

    /// Adds any layer in the outermost slot (where `health_probe` goes): a layer of your own that
    /// must see every call, retries and rejections included.
    pub fn outermost<L>(
        self,
        layer: L,
    ) -> ResilienceStack<L, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch> {
        self.set_probe(layer)
    }

    /// Adds any layer in the fallback slot (under the kill switch, over the retry).
    pub fn fallback<L>(
        self,
        layer: L,
    ) -> ResilienceStack<Pr, Ha, Rl, L, Tt, Re, He, Th, Br, Bu, Ti, Ch> {
        self.set_fallback(layer)
    }

    /// Adds any layer in the hedging slot (under the retry, over the breaker).
    pub fn hedge<L>(
        self,
        layer: L,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, L, Th, Br, Bu, Ti, Ch> {
        self.set_hedge(layer)
    }

    /// Adds any layer in the bulkhead slot (under the breaker, over the timeout).
    pub fn bulkhead_layer<L>(
        self,
        layer: L,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, L, Ti, Ch> {
        self.set_bulkhead(layer)
    }

    /// Registers `component` (as critical or not) when the stack is built with a registry.
    pub fn component(mut self, component: Arc<dyn HealthSource>, critical: bool) -> Self {
        self.components.push((component, critical));
        self
    }

    /// Registers a stateful part, critical as its kind is by default.
    #[cfg(any(
        feature = "breaker",
        feature = "bulkhead",
        feature = "kill-switch",
        feature = "rate-limit",
        feature = "throttle"
    ))]
    pub(crate) fn part(self, component: Arc<dyn HealthSource>) -> Self {
        let critical = battlement_core::kind_of(&*component).critical_by_default();
        self.component(component, critical)
    }

    /// Guards calls with a circuit breaker and the default classifier
    /// ([`ResponseClassifier`](crate::core::ResponseClassifier): HTTP responses by status, gRPC
    /// trailers-only responses by `grpc-status`, errors by kind); registered as critical (a
    /// breaker's default).
    #[cfg(feature = "breaker")]
    pub fn circuit_breaker(
        self,
        breaker: &crate::breaker::CircuitBreaker,
    ) -> ResilienceStack<
        Pr,
        Ha,
        Rl,
        Fa,
        Tt,
        Re,
        He,
        Th,
        crate::breaker::CircuitBreakerLayer,
        Bu,
        Ti,
        Ch,
    > {
        self.circuit_breaker_with(breaker, battlement_core::ResponseClassifier)
    }

    /// Guards calls with a circuit breaker and a classifier; registered as critical (a
    /// breaker's default).
    #[cfg(feature = "breaker")]
    pub fn circuit_breaker_with<C>(
        self,
        breaker: &crate::breaker::CircuitBreaker,
        classifier: C,
    ) -> ResilienceStack<
        Pr,
        Ha,
        Rl,
        Fa,
        Tt,
        Re,
        He,
        Th,
        crate::breaker::CircuitBreakerLayer<C>,
        Bu,
        Ti,
        Ch,
    > {
        let layer = crate::breaker::CircuitBreakerLayer::new(breaker).classifier(classifier);
        let layer = if self.leak { layer.leak() } else { layer };
        self.part(Arc::new(breaker.clone())).set_breaker(layer)
    }

    /// Limits concurrent calls with a bulkhead; registered as non-critical (a bulkhead's
    /// default: its status is at worst `warn`).
    #[cfg(feature = "bulkhead")]
    pub fn bulkhead(
        self,
        bulkhead: &crate::bulkhead::Bulkhead,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, crate::bulkhead::BulkheadLayer, Ti, Ch>
    {
        let layer = crate::bulkhead::BulkheadLayer::new(bulkhead);
        let layer = if self.leak { layer.leak() } else { layer };
        self.part(Arc::new(bulkhead.clone())).bulkhead_layer(layer)
    }

    /// Limits concurrent calls with an adaptive limit, in the bulkhead slot (it is a bulkhead
    /// whose limit moves with the latency and failures of the calls it admits); registered as
    /// non-critical (a bulkhead's default).
    ///
    /// ```
    /// use battlement::bulkhead::{Bulkhead, Limit};
    /// use battlement::ResilienceStack;
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limit = Bulkhead::builder("search").adaptive(Limit::aimd()).build().unwrap();
    /// let svc = ResilienceStack::new()
    ///     .adaptive_limit(&limit)
    ///     .build()
    ///     .unwrap()
    ///     .layer(tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
    /// assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    /// assert_eq!(limit.metrics().bulkhead.accepted, 1);
    /// # }
    /// ```
    #[cfg(feature = "bulkhead")]
    pub fn adaptive_limit(
        self,
        limit: &crate::bulkhead::AdaptiveLimit,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, crate::bulkhead::AdaptiveLayer, Ti, Ch>
    {
        self.part(Arc::new(limit.clone()))
            .set_bulkhead(crate::bulkhead::AdaptiveLayer::new(limit))
    }

    /// Retries with a battlement retry policy.
    #[cfg(feature = "retry")]
    pub fn retry_policy<K, P>(
        self,
        policy: crate::retry::RetryPolicy<K, P>,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, crate::retry::RetryLayer<K, P>, He, Th, Br, Bu, Ti, Ch>
    {
        self.retry_layer(crate::retry::RetryLayer::new(policy))
    }

    /// Retries with a retry layer made beforehand: a [leaked](crate::retry::RetryLayer::leak)
    /// one, whose services' requests copy a pointer instead of counting a reference.
    ///
    /// ```
    /// use battlement::retry::{RetryLayer, RetryPolicy};
    /// use battlement::ResilienceStack;
    ///
    /// let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    /// let layer = ResilienceStack::new()
    ///     .retry_layer(RetryLayer::new(policy).leak())
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    #[cfg(feature = "retry")]
    pub fn retry_layer<K, P>(
        self,
        layer: crate::retry::RetryLayer<K, P>,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, crate::retry::RetryLayer<K, P>, He, Th, Br, Bu, Ti, Ch>
    {
        let layer = if self.leak { layer.leak() } else { layer };
        self.set_retry(layer)
    }

    /// Limits each attempt to `limit` (inside the retry: each attempt has its own deadline,
    /// and a timed-out attempt is a failure the breaker sees and the retry may retry). Its
    /// [`Elapsed`](crate::core::error::Elapsed) has the scope
    /// [`Attempt`](crate::core::error::TimeoutScope::Attempt). With a
    /// [`total_timeout`](Self::total_timeout), a longer limit is a [`ConfigError`] from
    /// [`build`](Self::build).
    #[cfg(feature = "timeout")]
    pub fn timeout_per_try(
        self,
        limit: std::time::Duration,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, crate::timeout::TimeoutLayer, Ch>
    {
        self.timeout_layer(crate::timeout::TimeoutLayer::new(limit))
    }

    /// Limits each attempt with a configured timeout layer (name, per-request policy).
    #[cfg(feature = "timeout")]
    pub fn timeout_layer<P>(
        mut self,
        layer: crate::timeout::TimeoutLayer<P>,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, crate::timeout::TimeoutLayer<P>, Ch>
    {
        self.limits.attempt = Some(layer.limit());
        let layer = if self.leak { layer.leak() } else { layer };
        self.set_timeout(layer)
    }

    /// Bounds the whole call, every attempt and every wait between them, to `limit`: a timeout
    /// outside the retry (under the rate limit and the fallback), named `total`, whose
    /// [`Elapsed`](crate::core::error::Elapsed) has the scope
    /// [`Total`](crate::core::error::TimeoutScope::Total), so a caller tells it from an
    /// attempt's timeout. When it fires, the attempt in flight and any retry wait are dropped
    /// (a dropped attempt counts as neither success nor failure in the breaker).
    ///
    /// With a [`timeout_per_try`](Self::timeout_per_try) longer than `limit`,
    /// [`build`](Self::build) returns a [`ConfigError`] (the attempt's timeout could never
    /// fire), as Microsoft's standard pipeline's validation does; a zero `limit` is one too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement::core::error::{Elapsed, TimeoutScope};
    /// use battlement::retry::{Backoff, RetryPolicy};
    /// use battlement::ResilienceStack;
    /// use std::time::Duration;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// let retry = RetryPolicy::builder()
    ///     .max_attempts(10)
    ///     .backoff(Backoff::fixed(Duration::from_secs(1)))
    ///     .build()
    ///     .unwrap();
    /// let stack = ResilienceStack::new()
    ///     .total_timeout(Duration::from_secs(5))
    ///     .retry_policy(retry)
    ///     .timeout_per_try(Duration::from_secs(2))
    ///     .build()
    ///     .unwrap();
    /// // Every attempt hangs: each times out after 2 s, the retry waits 1 s, and after 5 s in all
    /// // the total timeout ends the call.
    /// let svc = stack.layer(service_fn(|_: ()| std::future::pending::<Result<(), std::io::Error>>()));
    /// let err = svc.oneshot(()).await.unwrap_err();
    /// let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    /// assert_eq!((elapsed.scope(), elapsed.limit()), (TimeoutScope::Total, Duration::from_secs(5)));
    ///
    /// let err = ResilienceStack::new()
    ///     .total_timeout(Duration::from_secs(1))
    ///     .timeout_per_try(Duration::from_secs(2))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "timeout_per_try");
    /// # }
    /// ```
    #[cfg(feature = "timeout")]
    pub fn total_timeout(
        self,
        limit: std::time::Duration,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, crate::timeout::TimeoutLayer, Re, He, Th, Br, Bu, Ti, Ch>
    {
        self.total_timeout_layer(crate::timeout::TimeoutLayer::new(limit).name("total"))
    }

    /// Bounds the whole call with a configured timeout layer (a name of your own, a
    /// per-request policy); its errors get the scope
    /// [`Total`](crate::core::error::TimeoutScope::Total).
    #[cfg(feature = "timeout")]
    pub fn total_timeout_layer<P>(
        mut self,
        layer: crate::timeout::TimeoutLayer<P>,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, crate::timeout::TimeoutLayer<P>, Re, He, Th, Br, Bu, Ti, Ch>
    {
        self.limits.total = Some(layer.limit());
        let layer = layer.scope(crate::core::error::TimeoutScope::Total);
        let layer = if self.leak { layer.leak() } else { layer };
        self.set_total_timeout(layer)
    }

    /// Rejects every call while the kill switch is halted; registered as critical (a kill
    /// switch's default).
    #[cfg(feature = "kill-switch")]
    pub fn kill_switch(
        self,
        switch: &crate::kill_switch::KillSwitch,
    ) -> ResilienceStack<
        Pr,
        crate::kill_switch::KillSwitchLayer,
        Rl,
        Fa,
        Tt,
        Re,
        He,
        Th,
        Br,
        Bu,
        Ti,
        Ch,
    > {
        self.part(Arc::new(switch.clone()))
            .set_kill_switch(crate::kill_switch::KillSwitchLayer::new(switch))
    }

    /// Limits the rate of calls (per key, if the limiter is keyed), under the kill switch and
    /// over everything else: a call over the rate costs nothing downstream. Registered as
    /// non-critical (a rate limiter's default: its status is at worst `warn`).
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit<X: crate::rate_limit::KeyExtractor>(
        self,
        limit: &crate::rate_limit::RateLimit<X>,
    ) -> ResilienceStack<
        Pr,
        Ha,
        crate::rate_limit::RateLimitLayer<X>,
        Fa,
        Tt,
        Re,
        He,
        Th,
        Br,
        Bu,
        Ti,
        Ch,
    > {
        self.part(Arc::new(limit.clone()))
            .set_rate_limit(crate::rate_limit::RateLimitLayer::new(limit))
    }

    /// Throttles each attempt adaptively (Google SRE's rule), under the retry and the hedge
    /// and over the breaker, with the default classifier
    /// ([`ResponseClassifier`](crate::core::ResponseClassifier): a 5xx or 429 response or an
    /// error is a refusal); registered as non-critical (a throttle's default: its status is at
    /// worst `warn`).
    #[cfg(feature = "throttle")]
    pub fn throttle(
        self,
        throttle: &crate::throttle::Throttle,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, crate::throttle::ThrottleLayer, Br, Bu, Ti, Ch>
    {
        self.throttle_with(throttle, battlement_core::ResponseClassifier)
    }

    /// Throttles each attempt adaptively with a classifier; registered as non-critical.
    #[cfg(feature = "throttle")]
    pub fn throttle_with<C>(
        self,
        throttle: &crate::throttle::Throttle,
        classifier: C,
    ) -> ResilienceStack<
        Pr,
        Ha,
        Rl,
        Fa,
        Tt,
        Re,
        He,
        crate::throttle::ThrottleLayer<C>,
        Br,
        Bu,
        Ti,
        Ch,
    > {
        self.part(Arc::new(throttle.clone()))
            .set_throttle(crate::throttle::ThrottleLayer::new(throttle).classifier(classifier))
    }

    /// Injects faults innermost while the chaos handle is enabled.
    #[cfg(feature = "chaos")]
    pub fn chaos<R: Clone>(
        self,
        chaos: &crate::chaos::Chaos<R>,
    ) -> ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, crate::chaos::ChaosLayer<R>>
    {
        self.set_chaos(crate::chaos::ChaosLayer::new(chaos))
    }
}

impl<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
    ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
where
    Tt: Leak,
    Re: Leak,
    Br: Leak,
    Bu: Leak,
    Ti: Leak,
{
    /// Leaks the stack's breaker, bulkhead, timeouts and retry, those given before and those
    /// given after: the same components (state, metrics, health, reloads), kept for the rest of
    /// the program, so that the stack's services and their clones copy pointers instead of
    /// counting references that every core's clones share. One call instead of
    /// [`CircuitBreaker::leak`](crate::breaker::CircuitBreaker::leak),
    /// [`Bulkhead::leak`](crate::bulkhead::Bulkhead::leak),
    /// [`TimeoutLayer::leak`](crate::timeout::TimeoutLayer::leak) and
    /// [`RetryLayer::leak`](crate::retry::RetryLayer::leak) on each part.
    ///
    /// For a stack made once, at start, and applied where services are cloned for every request
    /// (axum's `Router::layer`, see the README's "Serving on many cores"): every `leak` keeps
    /// one more reference on each part for good. The handles given to the stack are not changed
    /// (a breaker passed by reference stays counted), and layers of other kinds (an adaptive
    /// limit, a hedge, a fallback) are kept as they are; with an adaptive limit in the bulkhead
    /// slot, call `leak` before [`adaptive_limit`](Self::adaptive_limit).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), battlement::core::BoxError> {
    /// use battlement::prelude::*;
    /// use battlement::ResilienceStack;
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    ///
    /// let breaker = CircuitBreaker::builder("catalog").build()?;
    /// let bulkhead = Bulkhead::builder("catalog").max_concurrent(32).build()?;
    /// let stack = ResilienceStack::new()
    ///     .circuit_breaker(&breaker)
    ///     .bulkhead(&bulkhead)
    ///     .leak() // the parts above, and those below
    ///     .timeout_per_try(Duration::from_secs(2))
    ///     .build()?;
    /// let svc = stack.layer(tower::service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
    /// assert_eq!(svc.clone().oneshot(7).await?, 7); // a clone copies pointers
    /// assert_eq!(breaker.metrics().successes, 1); // the same breaker
    /// assert!(!breaker.is_leaked());
    /// # Ok(())
    /// # }
    /// ```
    pub fn leak(mut self) -> Self {
        self.leak = true;
        self.total_timeout = self.total_timeout.leak();
        self.retry = self.retry.leak();
        self.breaker = self.breaker.leak();
        self.bulkhead = self.bulkhead.leak();
        self.timeout = self.timeout.leak();
        self
    }
}

/// Defines `fn $setter<L>(self, layer: L)`: the stack with `layer` in slot `$slot` and every
/// other slot and the registration carried over (the slot's type parameter becomes `L`).
macro_rules! slot_setter {
    ($setter:ident, $slot:ident, [$($other:ident),*], <$($ty:ident),*>) => {
        pub(crate) fn $setter<L>(self, layer: L) -> ResilienceStack<$($ty),*> {
            let ResilienceStack { $($other,)* components, registries, limits, leak, .. } = self;
            ResilienceStack { $slot: layer, $($other,)* components, registries, limits, leak }
        }
    };
}

// Some slots are set only by methods behind features.
#[allow(dead_code)]
impl<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
    ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
{
    slot_setter!(set_probe, probe, [kill_switch, rate_limit, fallback, total_timeout, retry, hedge, throttle, breaker, bulkhead, timeout, chaos], <L, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>);
    slot_setter!(set_kill_switch, kill_switch, [probe, rate_limit, fallback, total_timeout, retry, hedge, throttle, breaker, bulkhead, timeout, chaos], <Pr, L, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>);
    slot_setter!(set_rate_limit, rate_limit, [probe, kill_switch, fallback, total_timeout, retry, hedge, throttle, breaker, bulkhead, timeout, chaos], <Pr, Ha, L, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>);
    slot_setter!(set_fallback, fallback, [probe, kill_switch, rate_limit, total_timeout, retry, hedge, throttle, breaker, bulkhead, timeout, chaos], <Pr, Ha, Rl, L, Tt, Re, He, Th, Br, Bu, Ti, Ch>);
    slot_setter!(set_retry, retry, [probe, kill_switch, rate_limit, fallback, total_timeout, hedge, throttle, breaker, bulkhead, timeout, chaos], <Pr, Ha, Rl, Fa, Tt, L, He, Th, Br, Bu, Ti, Ch>);
    slot_setter!(set_total_timeout, total_timeout, [probe, kill_switch, rate_limit, fallback, retry, hedge, throttle, breaker, bulkhead, timeout, chaos], <Pr, Ha, Rl, Fa, L, Re, He, Th, Br, Bu, Ti, Ch>);
    slot_setter!(set_hedge, hedge, [probe, kill_switch, rate_limit, fallback, total_timeout, retry, throttle, breaker, bulkhead, timeout, chaos], <Pr, Ha, Rl, Fa, Tt, Re, L, Th, Br, Bu, Ti, Ch>);
    slot_setter!(set_throttle, throttle, [probe, kill_switch, rate_limit, fallback, total_timeout, retry, hedge, breaker, bulkhead, timeout, chaos], <Pr, Ha, Rl, Fa, Tt, Re, He, L, Br, Bu, Ti, Ch>);
    slot_setter!(set_breaker, breaker, [probe, kill_switch, rate_limit, fallback, total_timeout, retry, hedge, throttle, bulkhead, timeout, chaos], <Pr, Ha, Rl, Fa, Tt, Re, He, Th, L, Bu, Ti, Ch>);
    slot_setter!(set_bulkhead, bulkhead, [probe, kill_switch, rate_limit, fallback, total_timeout, retry, hedge, throttle, breaker, timeout, chaos], <Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, L, Ti, Ch>);
    slot_setter!(set_timeout, timeout, [probe, kill_switch, rate_limit, fallback, total_timeout, retry, hedge, throttle, breaker, bulkhead, chaos], <Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, L, Ch>);
    slot_setter!(set_chaos, chaos, [probe, kill_switch, rate_limit, fallback, total_timeout, retry, hedge, throttle, breaker, bulkhead, timeout], <Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, L>);
}

/// The stack [`ResilienceStack::from_config`] builds: each slot holds the instance's layer
/// when the instance has that pattern, else passes calls through.
#[cfg(feature = "config")]
pub type ConfiguredStack = ResilienceStack<
    Identity,
    tower::util::Either<crate::kill_switch::KillSwitchLayer, Identity>,
    Identity,
    Identity,
    tower::util::Either<crate::timeout::TimeoutLayer, Identity>,
    tower::util::Either<crate::retry::RetryLayer, Identity>,
    tower::util::Either<crate::hedge::HedgeLayer, Identity>,
    Identity,
    tower::util::Either<crate::breaker::CircuitBreakerLayer, Identity>,
    tower::util::Either<crate::bulkhead::BulkheadLayer, Identity>,
    tower::util::Either<crate::timeout::TimeoutLayer, Identity>,
    Identity,
>;

#[cfg(feature = "config")]
impl ResilienceStack {
    /// The stack of instance `name` of a [`Resilience`](crate::config::Resilience) registry:
    /// each pattern the instance has (kill switch, retry, hedge, breaker, bulkhead, timeout),
    /// taken from the registry (so the same shared components its `breaker(name)` and
    /// `bulkhead(name)` return), in the recommended order. Add a fallback, a probe or chaos as
    /// on any stack. The components are registered by the registry, with its health registry;
    /// the stack's own [`registry`](Self::registry) adds nothing for them.
    ///
    /// A slot whose pattern the instance lacks passes calls through. The slots are
    /// `tower::util::Either`s, whose two sides must fail with one error type: the battlement
    /// layers fail with `BoxError`, so the wrapped service's error must be `BoxError` too
    /// (map it with `ServiceBuilder::map_err(Into::into)` if it is not).
    ///
    /// # Errors
    ///
    /// The registry's: an unknown name (unless it builds unknown names from `defaults`, then
    /// the stack has the patterns `defaults` has), or a component it cannot build.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), battlement::core::BoxError> {
    /// use battlement::config::{Configuration, Resilience};
    /// use battlement::ResilienceStack;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// let config = Configuration::from_toml(r#"
    /// [instances.payments]
    /// breaker = { failure_rate = 0.3 }
    /// retry = { max_attempts = 2 }
    /// timeout = { limit = "250ms" }
    /// "#)?;
    /// let resilience = Resilience::new(config);
    /// let stack = ResilienceStack::from_config(&resilience, "payments")?.build()?;
    /// let svc = ServiceBuilder::new()
    ///     .layer(stack)
    ///     .service_fn(|x: u32| async move { Ok::<_, battlement::core::BoxError>(x + 1) });
    /// assert_eq!(svc.oneshot(41).await?, 42);
    /// // The stack's breaker is the registry's.
    /// assert_eq!(resilience.breaker("payments")?.metrics().successes, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_config(
        resilience: &crate::config::Resilience,
        name: &str,
    ) -> Result<ConfiguredStack, crate::config::ResilienceError> {
        use tower::util::Either;
        fn slot<L>(layer: Option<L>) -> Either<L, Identity> {
            match layer {
                Some(layer) => Either::Left(layer),
                None => Either::Right(Identity::new()),
            }
        }
        let instance = resilience.instance(name)?;
        let kill_switch = match instance.kill_switch {
            Some(_) => Some(crate::kill_switch::KillSwitchLayer::new(
                &resilience.kill_switch(name)?,
            )),
            None => None,
        };
        let retry = match instance.retry {
            Some(_) => {
                let layer = crate::retry::RetryLayer::new(resilience.retry(name)?);
                Some(if resilience.leaks() {
                    layer.leak()
                } else {
                    layer
                })
            }
            None => None,
        };
        let hedge = match instance.hedge {
            Some(_) => Some(resilience.hedge(name)?),
            None => None,
        };
        let breaker = match instance.breaker {
            Some(_) => Some(crate::breaker::CircuitBreakerLayer::new(
                &resilience.breaker(name)?,
            )),
            None => None,
        };
        let bulkhead = match instance.bulkhead {
            Some(_) => Some(crate::bulkhead::BulkheadLayer::new(
                &resilience.bulkhead(name)?,
            )),
            None => None,
        };
        let timeout = match instance.timeout {
            Some(_) => Some(resilience.timeout(name)?),
            None => None,
        };
        let total_timeout = match instance.total_timeout {
            Some(_) => Some(resilience.total_timeout(name)?),
            None => None,
        };
        Ok(ResilienceStack {
            probe: Identity::new(),
            kill_switch: slot(kill_switch),
            rate_limit: Identity::new(),
            fallback: Identity::new(),
            limits: Limits {
                attempt: timeout.as_ref().map(|t| t.limit()),
                total: total_timeout.as_ref().map(|t| t.limit()),
            },
            total_timeout: slot(total_timeout),
            retry: slot(retry),
            hedge: slot(hedge),
            throttle: Identity::new(),
            breaker: slot(breaker),
            bulkhead: slot(bulkhead),
            timeout: slot(timeout),
            chaos: Identity::new(),
            components: Vec::new(),
            registries: Vec::new(),
            leak: resilience.leaks(),
        })
    }
}

#[cfg(all(test, feature = "breaker", feature = "retry", feature = "timeout"))]
mod tests {
    use super::*;
    use crate::breaker::CircuitBreaker;
    use crate::retry::{Backoff, RetryPolicy};
    use battlement_core::BoxError;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Mutex;
    use std::time::Duration;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    #[derive(Clone, Default)]
    struct Names(Arc<Mutex<Vec<(String, bool)>>>);
    impl HealthSink for Names {
        fn register_component(
            &self,
            component: Arc<dyn HealthSource>,
            critical: bool,
        ) -> Result<(), ConfigError> {
            self.0
                .lock()
                .unwrap()
                .push((component.name().to_owned(), critical));
            Ok(())
        }
        fn unregister_component(&self, _: battlement_core::ComponentKind, name: &str) -> bool {
            let mut names = self.0.lock().unwrap();
            let before = names.len();
            names.retain(|(n, _)| n != name);
            names.len() != before
        }
    }

    #[tokio::test(start_paused = true)]
    async fn layers_compose_in_the_recommended_order_and_register() {
        let calls = Arc::new(AtomicUsize::new(0));
        let breaker = CircuitBreaker::builder("upstream").build().unwrap();
        let names = Names::default();
        // Configured innermost-first on purpose.
        let stack = ResilienceStack::new()
            .timeout_per_try(Duration::from_millis(100))
            .circuit_breaker(&breaker)
            .retry_policy(
                RetryPolicy::builder()
                    .max_attempts(2)
                    .backoff(Backoff::fixed(Duration::from_millis(10)))
                    .build()
                    .unwrap(),
            )
            .registry(&names)
            .build()
            .unwrap();
        assert_eq!(
            *names.0.lock().unwrap(),
            vec![("upstream".to_owned(), true)]
        );
        let svc = ServiceBuilder::new().layer(stack).service(service_fn({
            let calls = calls.clone();
            move |_: ()| {
                let n = calls.fetch_add(1, SeqCst);
                async move {
                    if n == 0 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Ok::<_, BoxError>(n)
                }
            }
        }));
        // The first attempt times out (timeout inside retry: per try), the retry succeeds.
        assert_eq!(svc.clone().oneshot(()).await.unwrap(), 1);
        let m = breaker.metrics();
        assert_eq!(
            (m.failures, m.successes),
            (1, 1),
            "the breaker saw both attempts"
        );

        // An open breaker is not retried and never reaches the service.
        breaker.force_open("test");
        let err = svc.oneshot(()).await.unwrap_err();
        assert!(err.is::<crate::core::error::BreakerOpen>());
        assert_eq!(calls.load(SeqCst), 2);
    }

    /// The stack registers each part as critical or not as that part's own builder would by
    /// default: one default per kind, so a bulkhead is not critical in either.
    #[cfg(feature = "bulkhead")]
    #[test]
    fn parts_register_with_their_kinds_default_criticality() {
        use crate::bulkhead::Bulkhead;
        let breaker = CircuitBreaker::builder("db").build().unwrap();
        let bulkhead = Bulkhead::builder("pool").build().unwrap();
        let (stacked, built) = (Names::default(), Names::default());
        ResilienceStack::new()
            .circuit_breaker(&breaker)
            .bulkhead(&bulkhead)
            .registry(&stacked)
            .build()
            .unwrap();
        Bulkhead::builder("pool").registry(&built).build().unwrap();
        assert_eq!(
            *stacked.0.lock().unwrap(),
            [("db".to_owned(), true), ("pool".to_owned(), false)]
        );
        assert_eq!(*built.0.lock().unwrap(), [("pool".to_owned(), false)]);
    }

    /// An adaptive limit fills the bulkhead slot and registers as a bulkhead (not critical).
    #[cfg(feature = "bulkhead")]
    #[tokio::test(start_paused = true)]
    async fn an_adaptive_limit_fills_the_bulkhead_slot_and_registers() {
        use crate::bulkhead::{Bulkhead, Limit};
        let limit = Bulkhead::builder("search")
            .adaptive(Limit::aimd())
            .build()
            .unwrap();
        let names = Names::default();
        let stack = ResilienceStack::new()
            .adaptive_limit(&limit)
            .registry(&names)
            .build()
            .unwrap();
        assert_eq!(*names.0.lock().unwrap(), [("search".to_owned(), false)]);
        let svc = ServiceBuilder::new()
            .layer(stack)
            .service(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
        assert_eq!(svc.oneshot(3).await.unwrap(), 3);
        assert_eq!(limit.metrics().bulkhead.accepted, 1);
    }

    /// The rate limit sits outside the retry: a call retried inside counts once against the
    /// rate, and a call over the rate is not retried; registered as non-critical.
    #[cfg(feature = "rate-limit")]
    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_counts_a_call_once_however_often_it_is_retried() {
        use crate::rate_limit::{RateLimit, RateLimited};
        let limit = RateLimit::builder("api")
            .rate(1, Duration::from_secs(3600))
            .build()
            .unwrap();
        let names = Names::default();
        let attempts = Arc::new(AtomicUsize::new(0));
        let stack = ResilienceStack::new()
            .retry_policy(
                RetryPolicy::builder()
                    .max_attempts(3)
                    .backoff(Backoff::fixed(Duration::from_millis(10)))
                    .build()
                    .unwrap(),
            )
            .rate_limit(&limit)
            .registry(&names)
            .build()
            .unwrap();
        assert_eq!(*names.0.lock().unwrap(), [("api".to_owned(), false)]);
        let svc = ServiceBuilder::new().layer(stack).service(service_fn({
            let attempts = attempts.clone();
            move |_: ()| {
                let n = attempts.fetch_add(1, SeqCst);
                async move {
                    if n < 2 {
                        Err::<usize, BoxError>(
                            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
                        )
                    } else {
                        Ok(n)
                    }
                }
            }
        }));
        assert_eq!(svc.clone().oneshot(()).await.unwrap(), 2);
        assert_eq!(limit.metrics().admitted, 1, "three attempts, one call");
        let err = svc.oneshot(()).await.unwrap_err();
        assert!(err.is::<RateLimited>());
        assert_eq!(attempts.load(SeqCst), 3, "a rejected call is not retried");
    }

    /// The throttle sits inside the retry and outside the breaker and the per-try timeout:
    /// each attempt is a request; a timed-out attempt is a refusal; a throttled attempt is not
    /// retried; the breaker's local rejections leave the throttle's count; registered as
    /// non-critical.
    #[cfg(feature = "throttle")]
    #[tokio::test(start_paused = true)]
    async fn the_throttle_judges_each_attempt_inside_the_retry_and_outside_the_breaker() {
        use crate::throttle::{Throttle, Throttled};
        let throttle = Throttle::builder("dep")
            .window(Duration::from_secs(10))
            .buckets(10)
            .seed(5)
            .build()
            .unwrap();
        let breaker = CircuitBreaker::builder("dep")
            .minimum_calls(100)
            .build()
            .unwrap();
        let names = Names::default();
        let attempts = Arc::new(AtomicUsize::new(0));
        let stack = ResilienceStack::new()
            .timeout_per_try(Duration::from_millis(100))
            .circuit_breaker(&breaker)
            .throttle(&throttle)
            .retry_policy(
                RetryPolicy::builder()
                    .max_attempts(3)
                    .backoff(Backoff::fixed(Duration::from_millis(10)))
                    .build()
                    .unwrap(),
            )
            .registry(&names)
            .build()
            .unwrap();
        assert_eq!(
            *names.0.lock().unwrap(),
            [("dep".to_owned(), true), ("dep".to_owned(), false)],
            "the breaker critical, the throttle not"
        );
        let svc = ServiceBuilder::new().layer(stack).service(service_fn({
            let attempts = attempts.clone();
            move |_: ()| {
                attempts.fetch_add(1, SeqCst);
                async move {
                    // Every attempt times out.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok::<_, BoxError>(())
                }
            }
        }));
        svc.clone().oneshot(()).await.unwrap_err();
        let m = throttle.metrics();
        assert_eq!(
            (m.requests, m.accepts),
            (3, 0),
            "three attempts, each a request, each timed out: refused"
        );

        // The throttle is rejecting now: a throttled attempt ends the call (not retried).
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(throttle.rejection_probability() > 0.7);
        let before = attempts.load(SeqCst);
        let mut throttled_calls = 0;
        for _ in 0..20 {
            let err = svc.clone().oneshot(()).await.unwrap_err();
            if err.is::<Throttled>() {
                throttled_calls += 1;
            }
        }
        assert!(throttled_calls > 0);
        let m = throttle.metrics();
        assert_eq!(
            m.throttled, throttled_calls,
            "each throttled attempt ended its call: none was retried"
        );
        let sent = (attempts.load(SeqCst) - before) as u64;
        assert_eq!(m.requests - 3, m.throttled + sent + m.discarded);

        // An open breaker's rejections never reached the dependency: they leave the count.
        breaker.force_open("test");
        let m = throttle.metrics();
        for _ in 0..10 {
            svc.clone().oneshot(()).await.unwrap_err();
        }
        let after = throttle.metrics();
        assert_eq!(
            after.requests - after.discarded,
            m.requests - m.discarded + (after.throttled - m.throttled)
        );
    }

    /// `retry_layer` keeps the layer it is given (a leaked one stays leaked), where
    /// `retry_policy` makes a counted one; both retry.
    #[tokio::test(start_paused = true)]
    async fn retry_layer_keeps_a_leaked_layer() {
        let policy = || RetryPolicy::builder().max_attempts(2).build().unwrap();
        let given =
            ResilienceStack::new().retry_layer(crate::retry::RetryLayer::new(policy()).leak());
        let made = ResilienceStack::new().retry_policy(policy());
        assert!(given.retry.is_leaked() && !made.retry.is_leaked());
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = given.build().unwrap();
        let counter = calls.clone();
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(move |x: u32| {
                let n = counter.fetch_add(1, SeqCst);
                async move {
                    if n == 0 {
                        Err::<u32, BoxError>(Box::new(std::io::Error::from(
                            std::io::ErrorKind::ConnectionReset,
                        )))
                    } else {
                        Ok(x)
                    }
                }
            }));
        assert_eq!(svc.oneshot(7).await.unwrap(), 7);
        assert_eq!(calls.load(SeqCst), 2, "retried once");
    }

    /// A registry that leaks what it builds gives `from_config` stacks leaked retry services.
    #[cfg(feature = "config")]
    #[test]
    fn a_leaking_registrys_stack_leaks_its_retry_layer() {
        use crate::config::{Configuration, Resilience};
        let config =
            Configuration::from_toml("[instances.db]\nretry = { max_attempts = 2 }\n").unwrap();
        for leak in [false, true] {
            let resilience = Resilience::builder(config.clone()).leak(leak).build();
            assert_eq!(resilience.leaks(), leak);
            let stack = ResilienceStack::from_config(&resilience, "db").unwrap();
            match &stack.retry {
                tower::util::Either::Left(layer) => assert_eq!(layer.is_leaked(), leak),
                tower::util::Either::Right(_) => panic!("the instance has a retry"),
            }
        }
    }

    /// `leak` on a `from_config` stack of a registry that does not leak leaks every slot the
    /// instance fills (the `Either`s' left sides) and leaves the empty ones passing through.
    #[cfg(feature = "config")]
    #[test]
    fn leak_on_a_configured_stack_leaks_the_instances_parts() {
        use crate::config::{Configuration, Resilience};
        use tower::util::Either;
        let config = Configuration::from_toml(
            "[instances.db]\nretry = { max_attempts = 2 }\nbreaker = {}\nbulkhead = {}\ntimeout = { limit = \"1s\" }\n",
        )
        .unwrap();
        let resilience = Resilience::new(config);
        let stack = ResilienceStack::from_config(&resilience, "db").unwrap();
        fn is_left<A, B>(e: &Either<A, B>, f: impl Fn(&A) -> bool) -> bool {
            matches!(e, Either::Left(a) if f(a))
        }
        assert!(!is_left(&stack.breaker, |b| b.is_leaked()));
        let stack = stack.leak();
        assert!(is_left(&stack.retry, |r| r.is_leaked()), "retry");
        assert!(is_left(&stack.breaker, |b| b.is_leaked()), "breaker");
        assert!(is_left(&stack.bulkhead, |b| b.is_leaked()), "bulkhead");
        assert!(is_left(&stack.timeout, |t| t.is_leaked()), "timeout");
        assert!(matches!(stack.total_timeout, Either::Right(_)));
        // The registry's own breaker is the same component, and stays counted.
        assert!(!resilience.breaker("db").unwrap().is_leaked());
        assert!(stack.build().is_ok());
    }

    #[cfg(feature = "bulkhead")]
    #[tokio::test(start_paused = true)]
    async fn leak_leaks_the_parts_given_before_and_after_it_and_they_are_the_same_components() {
        use crate::bulkhead::Bulkhead;
        let breaker = CircuitBreaker::builder("leaked-breaker").build().unwrap();
        let bulkhead = Bulkhead::builder("leaked-bulkhead")
            .max_concurrent(4)
            .build()
            .unwrap();
        let names = Names::default();
        let stack = ResilienceStack::new()
            .circuit_breaker(&breaker)
            .total_timeout(Duration::from_secs(5))
            .leak()
            .bulkhead(&bulkhead)
            .timeout_per_try(Duration::from_secs(1))
            .retry_policy(RetryPolicy::builder().max_attempts(2).build().unwrap())
            .registry(&names);
        assert!(stack.breaker.is_leaked() && stack.total_timeout.is_leaked());
        assert!(stack.bulkhead.is_leaked() && stack.timeout.is_leaked());
        assert!(stack.retry.is_leaked());
        // The handles given stay counted; the layers' are new handles on the same state.
        assert!(!breaker.is_leaked() && !bulkhead.is_leaked());
        let layer = stack.build().unwrap();
        assert_eq!(
            *names.0.lock().unwrap(),
            vec![
                ("leaked-breaker".to_owned(), true),
                ("leaked-bulkhead".to_owned(), false)
            ]
        );
        let svc = tower::Layer::layer(
            &layer,
            service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }),
        );
        for i in 0..3 {
            assert_eq!(svc.clone().oneshot(i).await.unwrap(), i);
        }
        assert_eq!(breaker.metrics().successes, 3);
        assert_eq!(bulkhead.metrics().accepted, 3);
        // Forced open through the handle given, the leaked layer's breaker refuses.
        breaker.force_open("test");
        let err = svc.oneshot(9).await.unwrap_err();
        assert!(err.is::<crate::breaker::BreakerOpen>(), "{err}");
    }

    #[test]
    fn a_stack_not_leaked_keeps_its_parts_counted() {
        let breaker = CircuitBreaker::builder("counted").build().unwrap();
        let stack = ResilienceStack::new()
            .circuit_breaker(&breaker)
            .timeout_per_try(Duration::from_secs(1))
            .retry_policy(RetryPolicy::builder().build().unwrap());
        assert!(!stack.breaker.is_leaked() && !stack.timeout.is_leaked());
        assert!(!stack.retry.is_leaked());
    }
}
