//! The policy's builder and its validation.

use crate::backoff::{Backoff, Jitter, COMPONENT};
use crate::budget::BudgetSlot;
use crate::event::RetryEvent;
use crate::metrics::Core;
use crate::policy::{RetryPolicy, Shared};
use crate::rules::{DefaultPredicate, PredicateFn, RetryContext, Rules};
use crate::settings::{LiveSettings, Settings};
use crate::RetryBudget;
use battlement_core::{ComponentKind, ConfigError, FailureKind, Registration};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tower::retry::budget::Budget;

/// The longest server-given delay a policy honours unless told otherwise.
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

pub(crate) mod sealed {
    use battlement_core::{ConfigError, FailureKind};

    /// Settings every rules type shares; sealed.
    pub trait RulesConfig {
        fn set_kind(&mut self, kind: FailureKind, retry: bool);
        fn validate(&self) -> Result<(), ConfigError>;
    }
}
use sealed::RulesConfig;

impl<C> RulesConfig for Rules<C> {
    fn set_kind(&mut self, kind: FailureKind, retry: bool) {
        self.kinds.set(kind, retry);
    }

    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[cfg(feature = "http")]
impl<C> RulesConfig for crate::http::HttpRules<C> {
    fn set_kind(&mut self, kind: FailureKind, retry: bool) {
        self.kinds.set(kind, retry);
    }

    fn validate(&self) -> Result<(), ConfigError> {
        Self::check_statuses(self.statuses).map(drop)
    }
}

pub(crate) type Callback = Arc<dyn Fn(&RetryEvent) + Send + Sync>;
type SharedBudget = Arc<dyn Budget + Send + Sync>;

enum BudgetSetting {
    None,
    Tps {
        ratio: f32,
        min_per_sec: u32,
        ttl: Duration,
    },
    Custom(SharedBudget),
}

impl BudgetSetting {
    /// The ratio-based budget's settings: (ratio, min_per_sec, ttl).
    fn tps(&self) -> Option<(f32, u32, Duration)> {
        match *self {
            BudgetSetting::Tps {
                ratio,
                min_per_sec,
                ttl,
            } => Some((ratio, min_per_sec, ttl)),
            _ => None,
        }
    }
}

/// Builds a [`RetryPolicy`], validating every setting.
///
/// Defaults: 3 attempts in all (the first and two retries); exponential backoff from 100 ms,
/// doubling, capped at 10 s; no jitter; no delay bounds; no time limit; no budget; server-given
/// delays honoured up to 60 s ([`max_retry_after`](Self::max_retry_after)); retry failures of kind
/// `Timeout`, `Connection` and `RateLimited` (and, with
/// [`http_builder`](RetryPolicy::http_builder), responses 429, 502, 503 and 504 to idempotent
/// requests); randomness seeded from the OS.
///
/// ```
/// use battlement_retry::{Backoff, Jitter, RetryPolicy};
/// use std::time::Duration;
///
/// let policy = RetryPolicy::builder()
///     .name("inventory")
///     .max_attempts(5)
///     .backoff(Backoff::exponential(Duration::from_millis(50), 2.0).with_cap(Duration::from_secs(2)))
///     .jitter(Jitter::Proportional(25.0))
///     .min_delay(Duration::from_millis(10))
///     .time_limit(Duration::from_secs(5))
///     .budget(0.2, 10)
///     .seed(42)
///     .build()
///     .unwrap();
/// assert_eq!(policy.name(), "inventory");
///
/// let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
/// assert_eq!(err.setting(), "max_attempts");
/// ```
#[must_use]
pub struct RetryPolicyBuilder<K = Rules, P = DefaultPredicate> {
    registration: Registration,
    max_attempts: u32,
    time_limit: Option<Duration>,
    backoff: Backoff,
    jitter: Jitter,
    min_delay: Duration,
    max_delay: Option<Duration>,
    max_retry_after: Duration,
    seed: Option<u64>,
    budget: BudgetSetting,
    on_retry: Option<Callback>,
    event_capacity: usize,
    rules: K,
    predicate: P,
}

impl<K: fmt::Debug, P: fmt::Debug> fmt::Debug for RetryPolicyBuilder<K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicyBuilder")
            .field("registration", &self.registration)
            .field("max_attempts", &self.max_attempts)
            .field("time_limit", &self.time_limit)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("max_retry_after", &self.max_retry_after)
            .field("seed", &self.seed)
            .field("rules", &self.rules)
            .field("predicate", &self.predicate)
            .finish_non_exhaustive()
    }
}

impl<K> RetryPolicyBuilder<K, DefaultPredicate> {
    pub(crate) fn with_rules(rules: K) -> Self {
        RetryPolicyBuilder {
            registration: Registration::new(ComponentKind::Retry, "retry"),
            max_attempts: 3,
            time_limit: None,
            backoff: Backoff::default(),
            jitter: Jitter::None,
            min_delay: Duration::ZERO,
            max_delay: None,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            seed: None,
            budget: BudgetSetting::None,
            on_retry: None,
            event_capacity: battlement_core::event::DEFAULT_EVENT_CAPACITY,
            rules,
            predicate: DefaultPredicate,
        }
    }
}

impl<K, P> RetryPolicyBuilder<K, P> {
    /// The policy's name, used in `tracing` events, [`RetryEvent`]s, health reports and metrics
    /// (default `"retry"`).
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.registration.set_name(name.as_ref());
        self
    }

    battlement_core::define_registration_methods!();

    /// The most attempts in all, the first included (at least 1; 1 never retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// No attempt starts later than `limit` after the first one started: a retry whose delay
    /// would end at or past the limit is not made, and the last result is returned at once (the
    /// wait is not shortened to fit). This bounds every wait, a server-given one included.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// The backoff strategy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The jitter applied to every backoff delay (not to a `Retry-After` the server asked for).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// No delay is shorter than `min` (applied after jitter, and to a server-given delay).
    pub fn min_delay(mut self, min: Duration) -> Self {
        self.min_delay = min;
        self
    }

    /// No backoff delay is longer than `max` (applied after jitter). A server-given delay is
    /// bounded by [`max_retry_after`](Self::max_retry_after) instead.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = Some(max);
        self
    }

    /// The longest server-given delay the policy waits for (default 60 s; above zero): an HTTP
    /// `Retry-After` (seconds or date), or an open breaker's
    /// [`retry_after`](battlement_core::error::BreakerOpen::retry_after) when rejections are
    /// retried.
    ///
    /// A server-given delay up to this ceiling is waited for exactly (raised to
    /// [`min_delay`](Self::min_delay)). One beyond it is never waited for, nor cut short: the
    /// policy gives up at once and returns that answer (the response with its header, the
    /// breaker's error), because retrying sooner than the server asked adds load it asked to be
    /// spared, and waiting longer would hold the caller for as long as the input says.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_core::error::{BoxError, BreakerOpen};
    /// use battlement_retry::{Backoff, RetryPolicy};
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// let policy = RetryPolicy::builder()
    ///     .retry_rejected(true)
    ///     .backoff(Backoff::fixed(Duration::from_millis(100)))
    ///     .max_retry_after(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// // A breaker that stays open for ten minutes.
    /// let svc = ServiceBuilder::new().layer(policy.into_layer()).service_fn(|_: ()| async {
    ///     Err::<(), BoxError>(Box::new(BreakerOpen::new("db".into(), Some(Duration::from_secs(600)))))
    /// });
    /// let start = Instant::now();
    /// let err = svc.oneshot(()).await.unwrap_err();
    /// assert!(err.downcast_ref::<BreakerOpen>().is_some());
    /// assert_eq!(start.elapsed(), Duration::ZERO); // gave up at once
    ///
    /// let err = RetryPolicy::builder().max_retry_after(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err.setting(), "max_retry_after");
    /// # }
    /// ```
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Seeds the randomness (jitter, decorrelated backoff), so delays are reproducible: the
    /// `n`-th request that needs random numbers (counting from 0) draws from
    /// `fastrand::Rng::with_seed(seed + n)`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// A retry budget ([`RetryBudget`]: tower's `TpsBudget` without its lock): every request
    /// deposits, every retry withdraws;
    /// `ratio` retries are allowed per request (`0.0 ..= 1000.0`, e.g. `0.2` for one retry per
    /// five requests) plus `min_per_sec` retries per second regardless. Deposits count for
    /// 10 s unless [`budget_ttl`](Self::budget_ttl) says otherwise.
    ///
    /// The budget is shared by every service and every clone of the built policy.
    pub fn budget(mut self, ratio: f32, min_per_sec: u32) -> Self {
        let ttl = match self.budget {
            BudgetSetting::Tps { ttl, .. } => ttl,
            _ => Duration::from_secs(10),
        };
        self.budget = BudgetSetting::Tps {
            ratio,
            min_per_sec,
            ttl,
        };
        self
    }

    /// How long a deposit in the [`budget`](Self::budget) counts (1 s ..= 60 s; default 10 s).
    pub fn budget_ttl(mut self, ttl: Duration) -> Self {
        self.budget = match self.budget {
            BudgetSetting::Tps {
                ratio, min_per_sec, ..
            } => BudgetSetting::Tps {
                ratio,
                min_per_sec,
                ttl,
            },
            _ => BudgetSetting::Tps {
                ratio: 0.2,
                min_per_sec: 10,
                ttl,
            },
        };
        self
    }

    /// Uses a budget of your own (any [`tower::retry::budget::Budget`]), e.g. one
    /// [`RetryBudget`] shared by several policies.
    pub fn custom_budget<B>(mut self, budget: Arc<B>) -> Self
    where
        B: Budget + Send + Sync + 'static,
    {
        self.budget = BudgetSetting::Custom(budget);
        self
    }

    /// Calls `f` before every retry (after the decision, before the wait).
    pub fn on_retry<F>(mut self, f: F) -> Self
    where
        F: Fn(&RetryEvent) + Send + Sync + 'static,
    {
        self.on_retry = Some(Arc::new(f));
        self
    }

    battlement_core::define_event_capacity_method!();

    /// Decides with a closure instead of the rules: the closure sees the request, the result,
    /// its outcome and the rules' decision ([`RetryContext::default_decision`]), and returns
    /// whether to retry, so it can widen or narrow the rules. The attempt limit, the time limit,
    /// the budget and (for HTTP) the idempotency and body rules still apply.
    ///
    /// ```
    /// use battlement_core::{error::BoxError, FailureKind, Outcome};
    /// use battlement_retry::{RetryContext, RetryPolicy};
    ///
    /// // Also retry `Other` failures, except for requests marked "once".
    /// let policy = RetryPolicy::builder()
    ///     .retry_if(|cx: &RetryContext<'_, &'static str, (), BoxError>| {
    ///         *cx.request() != "once"
    ///             && (cx.default_decision() || cx.outcome() == Outcome::Failure(FailureKind::Other))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(policy);
    /// ```
    pub fn retry_if<F, Req, Res, E>(
        self,
        f: F,
    ) -> RetryPolicyBuilder<K, PredicateFn<F, Req, Res, E>>
    where
        F: Fn(&RetryContext<'_, Req, Res, E>) -> bool,
    {
        RetryPolicyBuilder {
            registration: self.registration,
            max_attempts: self.max_attempts,
            time_limit: self.time_limit,
            backoff: self.backoff,
            jitter: self.jitter,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            max_retry_after: self.max_retry_after,
            seed: self.seed,
            budget: self.budget,
            on_retry: self.on_retry,
            event_capacity: self.event_capacity,
            rules: self.rules,
            predicate: PredicateFn {
                f,
                _types: PhantomData,
            },
        }
    }

    fn map_rules<K2>(self, f: impl FnOnce(K) -> K2) -> RetryPolicyBuilder<K2, P> {
        RetryPolicyBuilder {
            registration: self.registration,
            max_attempts: self.max_attempts,
            time_limit: self.time_limit,
            backoff: self.backoff,
            jitter: self.jitter,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            max_retry_after: self.max_retry_after,
            seed: self.seed,
            budget: self.budget,
            on_retry: self.on_retry,
            event_capacity: self.event_capacity,
            rules: f(self.rules),
            predicate: self.predicate,
        }
    }
}

impl<K: RulesConfig, P> RetryPolicyBuilder<K, P> {
    /// Also retries failures of `kind`.
    pub fn retry_on(mut self, kind: FailureKind) -> Self {
        self.rules.set_kind(kind, true);
        self
    }

    /// Never retries failures of `kind` (for HTTP: errors of that kind; statuses are set with
    /// `retry_statuses`).
    pub fn dont_retry_on(mut self, kind: FailureKind) -> Self {
        self.rules.set_kind(kind, false);
        self
    }

    /// Retries rejections by battlement's own components (an open breaker, a full bulkhead):
    /// off by default. When on, an open breaker's `retry_after` sets the next delay (up to
    /// [`max_retry_after`](Self::max_retry_after); beyond it the policy gives up at once).
    pub fn retry_rejected(self, yes: bool) -> Self {
        if yes {
            self.retry_on(FailureKind::Rejected)
        } else {
            self.dont_retry_on(FailureKind::Rejected)
        }
    }

    /// Runs every check [`build`](Self::build) runs, except registration (which needs the
    /// registries): what a [`reload`](RetryPolicy::reload) with these settings would accept.
    ///
    /// ```
    /// use battlement_retry::RetryPolicy;
    ///
    /// assert!(RetryPolicy::builder().max_attempts(4).validate().is_ok());
    /// let err = RetryPolicy::builder().max_attempts(0).validate().unwrap_err();
    /// assert_eq!(err.setting(), "max_attempts");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "max_attempts",
                self.max_attempts,
                "must be at least 1 (the first attempt counts)",
            ));
        }
        if let Some(limit) = self.time_limit {
            if limit.is_zero() {
                return Err(ConfigError::new(
                    COMPONENT,
                    "time_limit",
                    limit,
                    "must be above zero",
                ));
            }
        }
        self.backoff.validate()?;
        self.jitter.validate()?;
        if let Some(max) = self.max_delay {
            if max < self.min_delay {
                return Err(ConfigError::new(
                    COMPONENT,
                    "max_delay",
                    max,
                    format!("must not be below min_delay ({:?})", self.min_delay),
                ));
            }
        }
        if self.max_retry_after.is_zero() {
            return Err(ConfigError::new(
                COMPONENT,
                "max_retry_after",
                self.max_retry_after,
                "must be above zero (to ignore `Retry-After`, use honour_retry_after(false))",
            ));
        }
        battlement_core::event::EventChannel::<RetryEvent>::new(self.event_capacity)
            .map_err(|e| e.of(COMPONENT))?;
        self.rules.validate()?;
        if let Some((ratio, min_per_sec, ttl)) = self.budget.tps() {
            RetryBudget::check(ttl, min_per_sec, ratio)?;
        }
        Ok(())
    }

    /// The settings a reload replaces.
    fn settings(&self) -> Settings {
        Settings {
            max_attempts: self.max_attempts,
            time_limit: self.time_limit,
            backoff: self.backoff,
            jitter: self.jitter,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            max_retry_after: self.max_retry_after,
        }
    }

    /// Validates the settings and builds the policy, registering it with the registries given
    /// ([`registry`](Self::registry)).
    pub fn build(self) -> Result<RetryPolicy<K, P>, ConfigError> {
        self.validate()?;
        let events = battlement_core::event::EventChannel::new(self.event_capacity)
            .map_err(|e| e.of(COMPONENT))?;
        let settings = LiveSettings::new(&self.settings());
        let budget = match self.budget {
            BudgetSetting::Custom(b) => BudgetSlot::Custom(b),
            ref own => BudgetSlot::own(own.tps())?,
        };
        let name: Arc<str> = Arc::from(self.registration.name());
        let core = Arc::new(Core::new(name, settings, budget));
        self.registration.register(core.clone())?;
        let shared = Shared {
            core,
            seed: self.seed.unwrap_or_else(|| fastrand::u64(..)),
            next_stream: AtomicU64::new(0),
            on_retry: self.on_retry,
            events,
            rules: self.rules,
            predicate: self.predicate,
        };
        Ok(RetryPolicy::from_shared(Arc::new(shared)))
    }
}

impl<K, P> RetryPolicy<K, P> {
    /// Applies `settings` to the live policy, shared by every clone: the attempt limit, the
    /// backoff, the jitter, the delay bounds, the time limit, `max_retry_after` and the budget's
    /// ratio, reserve and ttl (or turning the budget on or off). Not the name, the
    /// registries, the rules, the classifier, the predicate, the seed or the callback.
    ///
    /// A request in flight picks the new settings up at its next retry decision, keeping its
    /// attempt count: after a reload to `max_attempts(2)`, a request that has made two attempts
    /// makes no third. (Settings are read at each decision, so a request never holds a copy.)
    /// A time limit that a reload sets applies to requests that start after it. Budget
    /// deposits made so far keep counting until they age out.
    ///
    /// All or nothing: invalid settings ([`RetryPolicyBuilder::validate`]) change nothing and
    /// return the error. A policy built with a
    /// [`custom_budget`](RetryPolicyBuilder::custom_budget) keeps it: a reload must give the
    /// same one (or its ratio-based budget settings are refused), and a policy with its own
    /// budget cannot be given a custom one by a reload.
    ///
    /// ```
    /// use battlement_retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().name("inventory").max_attempts(3).build().unwrap();
    /// let same = policy.clone();
    /// policy.reload(&RetryPolicy::builder().max_attempts(5)).unwrap();
    /// assert_eq!(same.max_attempts(), 5);
    ///
    /// let err = policy.reload(&RetryPolicy::builder().max_attempts(0)).unwrap_err();
    /// assert_eq!(err.setting(), "max_attempts");
    /// assert_eq!(same.max_attempts(), 5); // unchanged
    /// ```
    pub fn reload<K2: RulesConfig, P2>(
        &self,
        settings: &RetryPolicyBuilder<K2, P2>,
    ) -> Result<(), ConfigError> {
        settings.validate()?;
        let core = self.core();
        let budget = match (&core.budget, &settings.budget) {
            (BudgetSlot::Custom(live), BudgetSetting::Custom(new))
                if std::ptr::addr_eq(Arc::as_ptr(live), Arc::as_ptr(new)) =>
            {
                None
            }
            (BudgetSlot::Own { .. }, BudgetSetting::None | BudgetSetting::Tps { .. }) => {
                Some(settings.budget.tps())
            }
            (BudgetSlot::Custom(_), _) => {
                return Err(ConfigError::new(
                    COMPONENT,
                    "budget",
                    "custom",
                    "the policy was built with a custom budget, which a reload cannot replace",
                ))
            }
            (BudgetSlot::Own { .. }, BudgetSetting::Custom(_)) => {
                return Err(ConfigError::new(
                    COMPONENT,
                    "budget",
                    "custom",
                    "a reload cannot give a policy a custom budget",
                ))
            }
        };
        core.settings.set(&settings.settings());
        if let Some(budget) = budget {
            core.budget.set(budget);
        }
        core.refresh();
        tracing::info!(retry = &*core.name, "settings reloaded");
        Ok(())
    }
}

impl<C, P> RetryPolicyBuilder<Rules<C>, P> {
    /// Classifies outcomes with `classifier` (any [`battlement_core::Classify`]), e.g. the one
    /// the breaker uses.
    pub fn classifier<C2>(self, classifier: C2) -> RetryPolicyBuilder<Rules<C2>, P> {
        self.map_rules(|rules| Rules {
            classifier,
            kinds: rules.kinds,
        })
    }
}

#[cfg(feature = "http")]
impl<C, P> RetryPolicyBuilder<crate::http::HttpRules<C>, P> {
    /// Classifies outcomes with `classifier` (default [`battlement_core::HttpClassifier`]).
    pub fn classifier<C2>(
        self,
        classifier: C2,
    ) -> RetryPolicyBuilder<crate::http::HttpRules<C2>, P> {
        self.map_rules(|rules| crate::http::HttpRules {
            classifier,
            kinds: rules.kinds,
            statuses: rules.statuses,
            any_method: rules.any_method,
            honour_retry_after: rules.honour_retry_after,
            wall_clock: rules.wall_clock,
        })
    }

    /// The response statuses that are retried (default 429, 502, 503, 504); only error
    /// statuses (400 and above) are accepted.
    pub fn retry_statuses(mut self, statuses: battlement_core::StatusSet) -> Self {
        self.rules.statuses = statuses;
        self
    }

    /// Retries requests of every method, not only idempotent ones (off by default: a POST or
    /// PATCH is sent once).
    pub fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.rules.any_method = yes;
        self
    }

    /// Whether a `Retry-After` header on a 429 or 503 sets the next delay (default on; up to
    /// [`max_retry_after`](Self::max_retry_after), beyond which the policy gives up at once).
    pub fn honour_retry_after(mut self, yes: bool) -> Self {
        self.rules.honour_retry_after = yes;
        self
    }

    /// The wall clock `Retry-After` dates are read against (tests pin it).
    #[cfg(test)]
    pub(crate) fn wall_clock(mut self, now: fn() -> std::time::SystemTime) -> Self {
        self.rules.wall_clock = now;
        self
    }
}
