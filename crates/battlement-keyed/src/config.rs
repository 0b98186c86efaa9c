//! The keyed table's builder.

use crate::component::Component;
use crate::keyed::{Keyed, Template};
use battlement_core::{ConfigError, Registration};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// The default [`max_keys`](KeyedBuilder::max_keys).
pub const DEFAULT_MAX_KEYS: usize = 10_000;
/// The default [`idle_timeout`](KeyedBuilder::idle_timeout).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// The most keys a table may hold.
pub const MAX_KEYS: usize = 1 << 26;

/// Builds a [`Keyed`] table; from [`Keyed::builder`].
///
/// ```
/// use battlement_bulkhead::Bulkhead;
/// use battlement_keyed::KeyedBulkhead;
///
/// // Four calls at a time per tenant.
/// let tenants = KeyedBulkhead::builder("tenants")
///     .template(|name| Bulkhead::builder(name).max_concurrent(4))
///     .max_keys(50_000)
///     .build()
///     .unwrap();
/// assert_eq!(tenants.max_keys(), 50_000);
///
/// let err = KeyedBulkhead::builder("tenants").max_keys(0).build().unwrap_err();
/// assert_eq!(err.setting(), "max_keys");
/// ```
pub struct KeyedBuilder<C: Component, K = String> {
    registration: Registration,
    template: Option<Template<C>>,
    max_keys: usize,
    idle_timeout: Duration,
    worst_keys: usize,
    per_key_metrics: usize,
    _key: PhantomData<fn() -> K>,
}

impl<C: Component, K> fmt::Debug for KeyedBuilder<C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("registration", &self.registration)
            .field("template", &self.template.is_some())
            .field("max_keys", &self.max_keys)
            .field("idle_timeout", &self.idle_timeout)
            .field("worst_keys", &self.worst_keys)
            .field("per_key_metrics", &self.per_key_metrics)
            .finish()
    }
}

impl<C: Component, K> KeyedBuilder<C, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// Starts building a table keyed by `K` called `name` (as [`Keyed::builder`], for keys
    /// other than strings).
    ///
    /// ```
    /// use battlement_breaker::CircuitBreaker;
    /// use battlement_keyed::KeyedBuilder;
    ///
    /// let agents = KeyedBuilder::<CircuitBreaker, u64>::new("agents").build().unwrap();
    /// agents.force_open(&7, "runaway");
    /// assert_eq!(agents.get(&7).unwrap().name(), "agents/7");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        KeyedBuilder {
            registration: Registration::new(C::KIND, name),
            template: None,
            max_keys: DEFAULT_MAX_KEYS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            worst_keys: 5,
            per_key_metrics: 0,
            _key: PhantomData,
        }
    }

    /// The settings of every key's component: a function from the component's name
    /// (`<name>/<key>`) to its builder, e.g.
    /// `|name| CircuitBreaker::builder(name).minimum_calls(5)`. Default: the component's
    /// defaults.
    ///
    /// Give the *table* a registry ([`registry`](Self::registry)), not the template: the group
    /// reports to health as one component; a template with a registry would register every key.
    pub fn template(
        mut self,
        template: impl Fn(String) -> C::Builder + Send + Sync + 'static,
    ) -> Self {
        self.template = Some(Box::new(template));
        self
    }

    /// The most keys the table holds (default [`DEFAULT_MAX_KEYS`], at most [`MAX_KEYS`]).
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    /// How long a key no call uses stays in the table (default [`DEFAULT_IDLE_TIMEOUT`]).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// How many of the worst keys (by failure rate) the group's health snapshot names (default
    /// 5; 0 names none).
    pub fn worst_keys(mut self, n: usize) -> Self {
        self.worst_keys = n;
        self
    }

    /// Exports per-key metrics (`battlement_keyed_key_*`, with a `key` label) for at most
    /// `limit` keys, the worst by failure rate. Off by default (0): a key label is unbounded
    /// cardinality, so it takes an explicit limit.
    pub fn per_key_metrics(mut self, limit: usize) -> Self {
        self.per_key_metrics = limit;
        self
    }

    battlement_core::define_registration_methods!();

    /// Checks the settings without building.
    ///
    /// # Errors
    ///
    /// The name is empty; `max_keys` is 0 or above [`MAX_KEYS`]; `idle_timeout` is zero; the
    /// template makes a builder its component refuses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.registration.require_name()?;
        if self.max_keys == 0 || self.max_keys > MAX_KEYS {
            return Err(self.registration.error(
                "max_keys",
                self.max_keys,
                format!("must be between 1 and {MAX_KEYS}"),
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(self.registration.error(
                "idle_timeout",
                self.idle_timeout,
                "must be above zero",
            ));
        }
        C::validate(&self.key_builder("*"))
    }

    fn key_builder(&self, key: &str) -> C::Builder {
        let name = format!("{}/{key}", self.registration.name());
        match &self.template {
            Some(t) => t(name),
            None => C::builder_named(name),
        }
    }

    /// Builds the table and registers the group with the registries given.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate); or a registry already holds a component of this kind
    /// and name.
    pub fn build(self) -> Result<Keyed<C, K>, ConfigError> {
        self.validate()?;
        let overflow = C::build_from(self.key_builder("*"))?;
        let template: Template<C> = match self.template {
            Some(t) => t,
            None => Box::new(C::builder_named),
        };
        let keyed = Keyed::from_parts(
            Arc::from(self.registration.name()),
            template,
            overflow,
            self.max_keys,
            self.idle_timeout,
            self.worst_keys,
            self.per_key_metrics,
        );
        self.registration.register(Arc::new(keyed.clone()))?;
        Ok(keyed)
    }
}
