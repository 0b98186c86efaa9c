//! The registry of named components built from a configuration.

use crate::load::{check_name, Configuration};
use crate::metrics::{ReloadCounts, ReloadMetrics, ReloadSource};
use crate::settings::InstanceSettings;
use battlement_breaker::CircuitBreaker;
use battlement_bulkhead::{AdaptiveLimit, Bulkhead};
use battlement_core::{ComponentKind, ConfigError};
use battlement_health::HealthRegistry;
use battlement_hedge::HedgeLayer;
use battlement_kill_switch::KillSwitch;
use battlement_rate_limit::{KeyExtractor, RateLimit, RateLimitBuilder};
use battlement_retry::RetryPolicy;
use battlement_throttle::Throttle;
use battlement_timeout::TimeoutLayer;
use std::any::Any;
use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

/// Why [`Resilience`] could not hand out a component.
///
/// ```
/// use battlement_config::{Configuration, Resilience, ResilienceError};
///
/// let resilience = Resilience::new(Configuration::default());
/// let err = resilience.breaker("payments").unwrap_err();
/// assert!(matches!(err, ResilienceError::UnknownInstance { .. }));
/// assert_eq!(err.to_string(), "no instance `payments` in the configuration (and unknown names are not allowed)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResilienceError {
    /// The configuration has no instance of that name, and the registry was not told to build
    /// unknown names from `defaults`.
    UnknownInstance {
        /// The kind asked for (`None` for the whole instance, as by
        /// [`Resilience::instance`]).
        kind: Option<ComponentKind>,
        /// The name asked for.
        name: String,
    },
    /// The name cannot name a component (letters, digits, `-` and `_` only).
    InvalidName {
        /// The name asked for.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The builder refused the settings, or the health registry already holds a component of
    /// that kind and name (one built outside this registry).
    Build(ConfigError),
    /// The rate limiter of that name was built with another key extractor (or unkeyed) than
    /// the lookup asks for.
    KeyMismatch {
        /// The name asked for.
        name: String,
        /// The key extractor's type the limiter was built with.
        built_with: &'static str,
    },
}

impl fmt::Display for ResilienceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResilienceError::UnknownInstance { name, .. } => write!(
                f,
                "no instance `{name}` in the configuration (and unknown names are not allowed)"
            ),
            ResilienceError::InvalidName { reason, .. } => write!(f, "invalid name: {reason}"),
            ResilienceError::Build(e) => e.fmt(f),
            ResilienceError::KeyMismatch { name, built_with } => write!(
                f,
                "rate limiter `{name}` was built with another key extractor (`{built_with}`)"
            ),
        }
    }
}

impl Error for ResilienceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ResilienceError::Build(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for ResilienceError {
    fn from(e: ConfigError) -> Self {
        ResilienceError::Build(e)
    }
}

pub(crate) type Handles<T> = RwLock<HashMap<String, T>>;

pub(crate) struct Inner {
    config: RwLock<Arc<Configuration>>,
    health: Option<HealthRegistry>,
    unknown_from_defaults: bool,
    /// Whether breakers, bulkheads and timeouts are leaked as they are built.
    leak: bool,
    reloads: Arc<ReloadCounts>,
    /// Serialises reloads (never taken by a lookup).
    reloading: Mutex<()>,
    // Every component handed out, kept by name: the same handle for the same name, and the
    // handles a reload will update in place.
    pub(crate) breakers: Handles<CircuitBreaker>,
    pub(crate) bulkheads: Handles<Bulkhead>,
    pub(crate) retries: Handles<RetryPolicy>,
    pub(crate) timeouts: Handles<TimeoutLayer>,
    /// The instances' total timeouts (`total_timeout`), by instance name.
    pub(crate) total_timeouts: Handles<TimeoutLayer>,
    pub(crate) hedges: Handles<HedgeLayer>,
    pub(crate) kill_switches: Handles<KillSwitch>,
    pub(crate) rate_limits: Handles<RateLimitHandle>,
    pub(crate) throttles: Handles<Throttle>,
    pub(crate) adaptive_limits: Handles<AdaptiveLimit>,
}

/// A rate limiter of any key extractor, as the registry keeps it: the handle (to hand out
/// again) and its reload.
#[derive(Clone)]
pub(crate) struct RateLimitHandle {
    any: Arc<dyn Any + Send + Sync>,
    reload: Arc<dyn Fn(&RateLimitBuilder) -> Result<(), ConfigError> + Send + Sync>,
    /// The extractor's type, for the error of a lookup with another one.
    key: &'static str,
}

impl RateLimitHandle {
    fn new<X: KeyExtractor>(limit: RateLimit<X>) -> Self {
        let for_reload = limit.clone();
        RateLimitHandle {
            any: Arc::new(limit),
            reload: Arc::new(move |b| for_reload.reload(b)),
            key: std::any::type_name::<X>(),
        }
    }

    pub(crate) fn reload(&self, settings: &RateLimitBuilder) -> Result<(), ConfigError> {
        (self.reload)(settings)
    }
}

/// A registry of named components built from a [`Configuration`]: `breaker("payments")`
/// builds the breaker of instance `payments` from its settings the first time it is asked for,
/// and returns that same shared handle every time after, from any thread.
///
/// Named `Resilience` (as the issue proposed), after Resilience4j's registries and the
/// facade's `ResilienceStack`: one word users search for; `Registry` alone would clash with
/// the `HealthRegistry` it is given.
///
/// - (kind, name) is unique: one breaker `payments`, one bulkhead `payments`, and so on.
///   Handles are cheap clones sharing one component.
/// - Names are validated once, when the configuration is loaded (an instance's name) or when an
///   unknown name is first asked for.
/// - A name that is not an instance is a [`ResilienceError::UnknownInstance`], unless the
///   registry was built with [`unknown_names_from_defaults`](ResilienceBuilder::unknown_names_from_defaults):
///   then it is built from `defaults`. An instance asked for a pattern it does not have gets
///   one built from `defaults` too (the instance is known).
/// - Given a health registry ([`registry`](ResilienceBuilder::registry)), every component it
///   creates (breaker, bulkhead, retry policy, timeout, hedge, kill switch) registers there as
///   it is built (through the builders' own `.registry(..)`), critical as its settings or its
///   kind say, so the health endpoint and the metrics exporters see it. The registry's reload
///   counts register there too (kind `other`, named `config` unless
///   [`name`](ResilienceBuilder::name) says otherwise).
/// - [`reload`](Self::reload) applies a new configuration to every component created so far,
///   all or nothing, without dropping or failing a call in flight; components created after
///   it are built from the new configuration.
/// - Get-or-create takes a read lock, and a write lock only to create: look components up when
///   you build your services, not per request.
///
/// ```
/// use battlement_breaker::State;
/// use battlement_config::{Configuration, Resilience};
/// use battlement_health::HealthRegistry;
///
/// let config = Configuration::from_toml(r#"
/// [instances.payments.breaker]
/// failure_rate = 0.3
/// [instances.payments.bulkhead]
/// max_concurrent = 10
/// "#).unwrap();
/// let health = HealthRegistry::new();
/// let resilience = Resilience::builder(config).registry(&health).build();
///
/// let breaker = resilience.breaker("payments").unwrap();
/// breaker.force_open("maintenance");
/// // The same breaker, whoever asks.
/// assert_eq!(resilience.breaker("payments").unwrap().state(), State::ForcedOpen);
/// assert_eq!(resilience.bulkhead("payments").unwrap().max_concurrent(), 10);
/// // The breaker, the bulkhead and the reload counts (`config`).
/// assert_eq!(health.names().len(), 3);
/// ```
#[derive(Clone)]
pub struct Resilience {
    inner: Arc<Inner>,
}

impl fmt::Debug for Resilience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience")
            .field(
                "instances",
                &self.configuration().instance_names().collect::<Vec<_>>(),
            )
            .field("breakers", &names_of(&self.inner.breakers))
            .field("bulkheads", &names_of(&self.inner.bulkheads))
            .field("retries", &names_of(&self.inner.retries))
            .field("timeouts", &names_of(&self.inner.timeouts))
            .field("total_timeouts", &names_of(&self.inner.total_timeouts))
            .field("hedges", &names_of(&self.inner.hedges))
            .field("kill_switches", &names_of(&self.inner.kill_switches))
            .field("rate_limits", &names_of(&self.inner.rate_limits))
            .field("throttles", &names_of(&self.inner.throttles))
            .field("adaptive_limits", &names_of(&self.inner.adaptive_limits))
            .field(
                "unknown_names_from_defaults",
                &self.inner.unknown_from_defaults,
            )
            .field("reloads", &self.reloads())
            .finish()
    }
}

pub(crate) fn names_of<T>(m: &Handles<T>) -> Vec<String> {
    let mut names: Vec<String> = m
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// Builds a [`Resilience`].
///
/// ```
/// use battlement_config::{Configuration, Resilience};
///
/// let resilience = Resilience::builder(Configuration::default())
///     .unknown_names_from_defaults(true)
///     .build();
/// assert!(resilience.bulkhead("anything").is_ok());
/// assert!(resilience.bulkhead("not a name").is_err());
/// ```
#[must_use]
pub struct ResilienceBuilder {
    config: Configuration,
    health: Option<HealthRegistry>,
    unknown_from_defaults: bool,
    leak: bool,
    name: String,
}

impl fmt::Debug for ResilienceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceBuilder")
            .field("config", &self.config)
            .field("health", &self.health.is_some())
            .field("unknown_from_defaults", &self.unknown_from_defaults)
            .field("leak", &self.leak)
            .field("name", &self.name)
            .finish()
    }
}

impl ResilienceBuilder {
    /// Every component created registers with `registry` as it is built.
    pub fn registry(mut self, registry: &HealthRegistry) -> Self {
        self.health = Some(registry.clone());
        self
    }

    /// Whether a name the configuration does not have is built from `defaults` (default
    /// `false`: it is a [`ResilienceError::UnknownInstance`], so a typo in code is an error,
    /// not a component with default settings).
    pub fn unknown_names_from_defaults(mut self, allow: bool) -> Self {
        self.unknown_from_defaults = allow;
        self
    }

    /// Whether the breakers, bulkheads and timeouts (per try and total) the registry builds are
    /// leaked as they are built (default `false`): kept for the rest of the program, as handles
    /// whose clones, and the clones of the layers and services made from them (a stack from
    /// `ResilienceStack::from_config` inside axum's router, cloned for every request), copy a
    /// pointer instead of writing a reference count every core's clones share. See
    /// `CircuitBreaker::leak`. `ResilienceStack::from_config` also leaks the retry services it
    /// makes from such a registry (`RetryLayer::leak`), so that a request copies a pointer
    /// instead of counting a reference. For a registry that lives as long as the program, as most
    /// do, and stacks made once.
    ///
    /// ```
    /// use battlement_config::{Configuration, Resilience};
    ///
    /// let config = Configuration::from_toml("[instances.db]\nbreaker = {}\n").unwrap();
    /// let resilience = Resilience::builder(config).leak(true).build();
    /// assert!(resilience.breaker("db").unwrap().is_leaked());
    /// ```
    pub fn leak(mut self, leak: bool) -> Self {
        self.leak = leak;
        self
    }

    /// The name the registry's reload counts have in the health registry and the metrics
    /// (default `config`; kind `other`). Two registries on one health registry need two
    /// names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The registry (it builds nothing yet: components are built when first asked for). With
    /// a health registry, its reload counts register there now; if that registry already
    /// holds a component of kind `other` with the same [`name`](Self::name), they are not
    /// registered, and a `tracing` warning says so (components are still registered).
    pub fn build(self) -> Resilience {
        let reloads = Arc::new(ReloadCounts::default());
        if let Some(health) = &self.health {
            let source = ReloadSource {
                name: self.name.as_str().into(),
                counts: reloads.clone(),
            };
            if let Err(e) = health.register(&source, false) {
                tracing::warn!(name = %self.name, error = %e, "configuration reload counts not registered");
            }
        }
        Resilience {
            inner: Arc::new(Inner {
                config: RwLock::new(Arc::new(self.config)),
                health: self.health,
                unknown_from_defaults: self.unknown_from_defaults,
                leak: self.leak,
                reloads,
                reloading: Mutex::new(()),
                breakers: RwLock::default(),
                bulkheads: RwLock::default(),
                retries: RwLock::default(),
                timeouts: RwLock::default(),
                total_timeouts: RwLock::default(),
                hedges: RwLock::default(),
                kill_switches: RwLock::default(),
                rate_limits: RwLock::default(),
                throttles: RwLock::default(),
                adaptive_limits: RwLock::default(),
            }),
        }
    }
}

/// The settings of `kind` for `name` in `config`: the instance's, else `defaults`', else none.
pub(crate) fn settings_in<T: Clone + Default>(
    config: &Configuration,
    unknown_from_defaults: bool,
    kind: ComponentKind,
    name: &str,
    pick: impl Fn(&InstanceSettings) -> Option<&T>,
) -> Result<T, ResilienceError> {
    let defaults = pick(config.defaults());
    match config.instance(name) {
        Some(instance) => Ok(pick(instance).or(defaults).cloned().unwrap_or_default()),
        None if unknown_from_defaults => {
            check_name(name).map_err(|reason| ResilienceError::InvalidName {
                name: name.to_owned(),
                reason,
            })?;
            Ok(defaults.cloned().unwrap_or_default())
        }
        None => Err(ResilienceError::UnknownInstance {
            kind: Some(kind),
            name: name.to_owned(),
        }),
    }
}

/// The handle stored under `name`, or the one `make` builds, stored under the write lock, so
/// concurrent first calls build one component.
fn get_or_create<T: Clone>(
    map: &Handles<T>,
    name: &str,
    make: impl FnOnce() -> Result<T, ResilienceError>,
) -> Result<T, ResilienceError> {
    if let Some(found) = map.read().unwrap_or_else(|e| e.into_inner()).get(name) {
        return Ok(found.clone());
    }
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = map.get(name) {
        return Ok(found.clone());
    }
    let made = make()?;
    map.insert(name.to_owned(), made.clone());
    Ok(made)
}

impl Resilience {
    /// A registry over `config`, with no health registry and unknown names refused.
    pub fn new(config: Configuration) -> Self {
        Self::builder(config).build()
    }

    /// A builder of a registry over `config`.
    pub fn builder(config: Configuration) -> ResilienceBuilder {
        ResilienceBuilder {
            config,
            health: None,
            unknown_from_defaults: false,
            leak: false,
            name: "config".to_owned(),
        }
    }

    /// Whether the registry leaks what it builds ([`ResilienceBuilder::leak`]); stacks made
    /// from it then leak their retry services too.
    pub fn leaks(&self) -> bool {
        self.inner.leak
    }

    /// The configuration the registry builds from now (the last one a
    /// [`reload`](Self::reload) applied).
    pub fn configuration(&self) -> Arc<Configuration> {
        self.inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Replaces the configuration (by a reload, which holds every handle map's read lock).
    pub(crate) fn set_configuration(&self, config: Configuration) {
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// Whether unknown names are built from `defaults`.
    pub(crate) fn unknown_from_defaults(&self) -> bool {
        self.inner.unknown_from_defaults
    }

    pub(crate) fn reload_counts(&self) -> &ReloadCounts {
        &self.inner.reloads
    }

    /// How many reloads were applied and refused.
    pub fn reloads(&self) -> ReloadMetrics {
        self.inner.reloads.read()
    }

    /// Held by a reload for its whole length.
    pub(crate) fn reload_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .reloading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The health registry components register with, if one was given.
    pub fn health(&self) -> Option<&HealthRegistry> {
        self.inner.health.as_ref()
    }

    /// Whether the configuration has an instance `name`.
    pub fn has_instance(&self, name: &str) -> bool {
        self.configuration().instance(name).is_some()
    }

    /// The patterns of `name`: the instance's resolved settings, or, for a name the
    /// configuration does not have when unknown names are allowed, `defaults` (which patterns
    /// a stack of that name has).
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), or an invalid one.
    pub fn instance(&self, name: &str) -> Result<InstanceSettings, ResilienceError> {
        let config = self.configuration();
        match config.instance(name) {
            Some(instance) => Ok(instance.clone()),
            None if self.inner.unknown_from_defaults => {
                check_name(name).map_err(|reason| ResilienceError::InvalidName {
                    name: name.to_owned(),
                    reason,
                })?;
                Ok(config.defaults().clone())
            }
            None => Err(ResilienceError::UnknownInstance {
                kind: None,
                name: name.to_owned(),
            }),
        }
    }

    /// `layer`, leaked if the registry leaks what it builds.
    fn kept(&self, layer: TimeoutLayer) -> TimeoutLayer {
        if self.inner.leak {
            layer.leak()
        } else {
            layer
        }
    }

    /// The settings of `kind` for `name` in the configuration serving now.
    fn settings<T: Clone + Default>(
        &self,
        kind: ComponentKind,
        name: &str,
        pick: impl Fn(&InstanceSettings) -> Option<&T>,
    ) -> Result<T, ResilienceError> {
        settings_in(
            &self.configuration(),
            self.inner.unknown_from_defaults,
            kind,
            name,
            pick,
        )
    }

    /// The circuit breaker `name`, built on first use.
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), or a build or registration error.
    pub fn breaker(&self, name: &str) -> Result<CircuitBreaker, ResilienceError> {
        get_or_create(&self.inner.breakers, name, || {
            let s = self.settings(ComponentKind::CircuitBreaker, name, |i| i.breaker.as_ref())?;
            let mut b = s.apply(CircuitBreaker::builder(name));
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            let breaker = b.build()?;
            Ok(if self.inner.leak {
                breaker.leak()
            } else {
                breaker
            })
        })
    }

    /// The bulkhead `name`, built on first use.
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), or a build or registration error.
    pub fn bulkhead(&self, name: &str) -> Result<Bulkhead, ResilienceError> {
        get_or_create(&self.inner.bulkheads, name, || {
            let s = self.settings(ComponentKind::Bulkhead, name, |i| i.bulkhead.as_ref())?;
            let mut b = s.apply(Bulkhead::builder(name));
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            let bulkhead = b.build()?;
            Ok(if self.inner.leak {
                bulkhead.leak()
            } else {
                bulkhead
            })
        })
    }

    /// The retry policy `name`, built on first use (its clones share one budget).
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), or a build or registration error.
    pub fn retry(&self, name: &str) -> Result<RetryPolicy, ResilienceError> {
        get_or_create(&self.inner.retries, name, || {
            let s = self.settings(ComponentKind::Retry, name, |i| i.retry.as_ref())?;
            let mut b = s.apply(RetryPolicy::builder().name(name));
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            Ok(b.build()?)
        })
    }

    /// The timeout `name`, built on first use.
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), no limit set, or a registration error.
    pub fn timeout(&self, name: &str) -> Result<TimeoutLayer, ResilienceError> {
        get_or_create(&self.inner.timeouts, name, || {
            let s = self.settings(ComponentKind::Timeout, name, |i| i.timeout.as_ref())?;
            let mut b = s.builder(name)?;
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            Ok(self.kept(b.build()?))
        })
    }

    /// The total timeout of instance `name` (its `total_timeout` section), built on first use:
    /// a timeout named `{name}-total` whose [`Elapsed`](battlement_timeout::Elapsed) errors
    /// have the scope [`Total`](battlement_core::error::TimeoutScope::Total), meant outside the
    /// retry (as the facade's `ResilienceStack::from_config` puts it). A reload changes its
    /// limit.
    ///
    /// ```
    /// use battlement_config::{Configuration, Resilience};
    /// use std::time::Duration;
    ///
    /// let config = Configuration::from_toml(r#"
    /// [instances.payments]
    /// total_timeout = { limit = "2s" }
    /// "#).unwrap();
    /// let resilience = Resilience::new(config);
    /// let total = resilience.total_timeout("payments").unwrap();
    /// assert_eq!(total.limit(), Duration::from_secs(2));
    /// resilience.reload(Configuration::from_toml(r#"
    /// [instances.payments]
    /// total_timeout = { limit = "3s" }
    /// "#).unwrap()).unwrap();
    /// assert_eq!(total.limit(), Duration::from_secs(3));
    /// ```
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), no limit set, or a registration error.
    pub fn total_timeout(&self, name: &str) -> Result<TimeoutLayer, ResilienceError> {
        get_or_create(&self.inner.total_timeouts, name, || {
            let s = self.settings(ComponentKind::Timeout, name, |i| i.total_timeout.as_ref())?;
            let mut b = s
                .builder(&format!("{name}-total"))?
                .scope(battlement_core::error::TimeoutScope::Total);
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            // The scope set on the builder: the layer that registers is the one returned, so
            // health reports the limit a reload sets.
            Ok(self.kept(b.build()?))
        })
    }

    /// The hedge `name`, built on first use (its clones share one latency window and budget).
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), or a build or registration error.
    pub fn hedge(&self, name: &str) -> Result<HedgeLayer, ResilienceError> {
        get_or_create(&self.inner.hedges, name, || {
            let s = self.settings(ComponentKind::Hedge, name, |i| i.hedge.as_ref())?;
            let mut b = s.apply(HedgeLayer::builder().name(name));
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            Ok(b.build()?)
        })
    }

    /// The kill switch `name`, built on first use (with no limits: add them in code).
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), or a build or registration error.
    pub fn kill_switch(&self, name: &str) -> Result<KillSwitch, ResilienceError> {
        get_or_create(&self.inner.kill_switches, name, || {
            let s = self.settings(ComponentKind::KillSwitch, name, |i| i.kill_switch.as_ref())?;
            let mut b = s.apply(KillSwitch::builder(name));
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            Ok(b.build()?)
        })
    }

    /// The rate limiter `name` (unkeyed: one limit for every call), built on first use.
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), no `quota` set or another build or registration
    /// error, or a limiter of that name built keyed ([`ResilienceError::KeyMismatch`]).
    pub fn rate_limit(&self, name: &str) -> Result<RateLimit, ResilienceError> {
        self.keyed_rate_limit(name, battlement_rate_limit::Unkeyed)
    }

    /// The rate limiter `name`, counting calls per key read by `extractor` (a file cannot name
    /// one: it is code), built on first use with the instance's `rate_limit` settings. The
    /// first lookup's extractor is the limiter's; later lookups get the same limiter, and
    /// must name the same extractor type.
    ///
    /// ```
    /// use battlement_config::{Configuration, Resilience};
    /// use battlement_rate_limit::key_fn;
    ///
    /// let config = Configuration::from_toml("[instances.api.rate_limit]\nquota = 10\nmax_keys = 1000\n").unwrap();
    /// let resilience = Resilience::new(config);
    /// let by_tenant = key_fn(|req: &(String, u32)| Some(req.0.clone()));
    /// let limit = resilience.keyed_rate_limit("api", by_tenant).unwrap();
    /// assert!(limit.is_keyed());
    /// assert_eq!(limit.metrics().max_keys, Some(1000));
    /// // Asked for unkeyed, the same name is refused.
    /// assert!(resilience.rate_limit("api").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`rate_limit`](Self::rate_limit).
    pub fn keyed_rate_limit<X: KeyExtractor>(
        &self,
        name: &str,
        extractor: X,
    ) -> Result<RateLimit<X>, ResilienceError> {
        let handle = get_or_create(&self.inner.rate_limits, name, || {
            let s = self.settings(ComponentKind::RateLimit, name, |i| i.rate_limit.as_ref())?;
            let mut b = s.apply(RateLimit::builder(name));
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            // Keyed or not as the extractor says.
            let limit = if std::any::TypeId::of::<X>()
                == std::any::TypeId::of::<battlement_rate_limit::Unkeyed>()
            {
                let unkeyed: Box<dyn Any> = Box::new(b.build()?);
                match unkeyed.downcast::<RateLimit<X>>() {
                    Ok(limit) => *limit,
                    Err(_) => unreachable!("X is Unkeyed"),
                }
            } else {
                b.keyed(extractor).build()?
            };
            Ok(RateLimitHandle::new(limit))
        })?;
        handle
            .any
            .downcast_ref::<RateLimit<X>>()
            .cloned()
            .ok_or_else(|| ResilienceError::KeyMismatch {
                name: name.to_owned(),
                built_with: handle.key,
            })
    }

    /// The client-side adaptive throttle `name`, built on first use.
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), or a build or registration error.
    pub fn throttle(&self, name: &str) -> Result<Throttle, ResilienceError> {
        get_or_create(&self.inner.throttles, name, || {
            let s = self.settings(ComponentKind::Throttle, name, |i| i.throttle.as_ref())?;
            let mut b = s.apply(Throttle::builder(name));
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            Ok(b.build()?)
        })
    }

    /// The adaptive concurrency limit `name`, built on first use (it registers as the
    /// bulkhead `name`: an instance has a `bulkhead` or an `adaptive_limit`, not both).
    ///
    /// # Errors
    ///
    /// An unknown name (unless allowed), a setting of another algorithm, or a build or
    /// registration error.
    pub fn adaptive_limit(&self, name: &str) -> Result<AdaptiveLimit, ResilienceError> {
        get_or_create(&self.inner.adaptive_limits, name, || {
            let s = self.settings(ComponentKind::Bulkhead, name, |i| i.adaptive_limit.as_ref())?;
            let mut b = s.builder(name)?;
            if let Some(health) = &self.inner.health {
                b = b.registry(health);
            }
            Ok(b.build()?)
        })
    }
}
