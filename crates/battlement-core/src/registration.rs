//! What a builder knows about the component it builds, beyond its settings: who it is (kind,
//! name), which health registries it joins, and whether it is critical there.

use crate::observe::{register_with, ComponentKind, HealthSink, HealthSource};
use crate::ConfigError;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A component's identity (kind, name) and its registration: the health registries it joins
/// when built and whether it is critical there.
///
/// Every builder of a stateful component keeps one: its `registry` and `critical` methods
/// delegate here, its errors are [scoped](Self::error) to the component, and `build` ends with
/// [`register`](Self::register), which registers the component with every registry or with
/// none. `critical` starts at the kind's default,
/// [`ComponentKind::critical_by_default`] (the table of defaults is there).
///
/// ```
/// use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Registration};
/// use std::sync::Arc;
///
/// let mut registration = Registration::new(ComponentKind::Bulkhead, "db-pool");
/// assert!(!registration.critical()); // a bulkhead's default
/// registration.set_critical(true);
///
/// let err = registration.error("max_concurrent", 0, "must be at least 1");
/// assert_eq!(err.component(), "bulkhead `db-pool`");
///
/// // With no registry given, registering does nothing.
/// struct Pool;
/// impl HealthSource for Pool {
///     fn name(&self) -> &str { "db-pool" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("db-pool", ComponentKind::Bulkhead, "idle", HealthStatus::Pass)
///     }
/// }
/// registration.register(Arc::new(Pool)).unwrap();
/// ```
pub struct Registration {
    kind: ComponentKind,
    name: String,
    registries: Vec<Box<dyn HealthSink + Send + Sync>>,
    critical: bool,
}

impl Registration {
    /// The registration of the component of `kind` named `name`: no registry yet, critical as
    /// the kind is by default.
    pub fn new(kind: ComponentKind, name: impl Into<String>) -> Self {
        Registration {
            kind,
            name: name.into(),
            registries: Vec::new(),
            critical: kind.critical_by_default(),
        }
    }

    /// The component's kind.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the component (for builders that take the name as a setting).
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Whether the component registers as critical.
    pub fn critical(&self) -> bool {
        self.critical
    }

    /// Sets whether the component registers as critical.
    pub fn set_critical(&mut self, critical: bool) {
        self.critical = critical;
    }

    /// Adds a registry the component joins when it is built.
    pub fn add_registry<R>(&mut self, registry: &R)
    where
        R: HealthSink + Clone + Send + Sync + 'static,
    {
        self.registries.push(Box::new(registry.clone()));
    }

    /// How many registries the component joins.
    pub fn registries(&self) -> usize {
        self.registries.len()
    }

    /// A refused `setting` of this component ([`ConfigError::scoped`] to its kind and name).
    pub fn error(
        &self,
        setting: &'static str,
        value: impl fmt::Debug,
        reason: impl Into<Cow<'static, str>>,
    ) -> ConfigError {
        ConfigError::scoped(self.kind, &self.name, setting, value, reason)
    }

    /// `Err` unless the component's name is set: a nameless component could not be told apart
    /// in a health report, a metric or an error.
    ///
    /// # Errors
    ///
    /// The name is empty (setting `name`).
    pub fn require_name(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(self.error("name", &self.name, "must not be empty"));
        }
        Ok(())
    }

    /// Registers `component` with every registry given, as critical or not, or with none
    /// ([`register_with`]).
    ///
    /// # Errors
    ///
    /// A registry already holds a component of the same kind and name; then no registry holds
    /// this one.
    pub fn register(&self, component: Arc<dyn HealthSource>) -> Result<(), ConfigError> {
        register_with(&self.registries, component, self.critical)
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("registries", &self.registries.len())
            .field("critical", &self.critical)
            .finish()
    }
}

/// Defines a builder's `registry` and `critical` methods over its field `registration` (a
/// [`Registration`]). Used inside an `impl XBuilder`.
#[doc(hidden)]
#[macro_export]
macro_rules! define_registration_methods {
    () => {
        /// Registers the component with a health registry when it is built (with every
        /// registry given, or with none: a registry that already holds a component of the
        /// same kind and name makes `build` fail).
        pub fn registry(
            mut self,
            registry: &(impl $crate::HealthSink + Clone + Send + Sync + 'static),
        ) -> Self {
            self.registration.add_registry(registry);
            self
        }

        /// Whether the component is critical for the registries it is given: a critical
        /// component that fails fails the health aggregate. The default depends on the kind
        /// (see the table at `ComponentKind::critical_by_default` in `battlement-core`).
        pub fn critical(mut self, critical: bool) -> Self {
            self.registration.set_critical(critical);
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HealthSnapshot, HealthStatus};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(ComponentKind, String, bool)>>>);
    impl HealthSink for Log {
        fn register_component(
            &self,
            c: Arc<dyn HealthSource>,
            critical: bool,
        ) -> Result<(), ConfigError> {
            let mut log = self.0.lock().unwrap();
            if log
                .iter()
                .any(|(k, n, _)| (*k, n.as_str()) == (c.kind(), c.name()))
            {
                return Err(ConfigError::scoped(
                    c.kind(),
                    c.name(),
                    "name",
                    c.name(),
                    "is already registered",
                ));
            }
            log.push((c.kind(), c.name().to_owned(), critical));
            Ok(())
        }
        fn unregister_component(&self, kind: ComponentKind, name: &str) -> bool {
            let mut log = self.0.lock().unwrap();
            let before = log.len();
            log.retain(|(k, n, _)| (*k, n.as_str()) != (kind, name));
            log.len() != before
        }
    }

    struct Part(ComponentKind);
    impl HealthSource for Part {
        fn name(&self) -> &str {
            "p"
        }
        fn snapshot(&self) -> HealthSnapshot {
            HealthSnapshot::new("p", self.0, "up", HealthStatus::Pass)
        }
    }

    #[test]
    fn registers_everywhere_with_the_kinds_default_or_the_flag_given() {
        let (a, b) = (Log::default(), Log::default());
        let mut r = Registration::new(ComponentKind::Hedge, "p");
        r.add_registry(&a);
        r.add_registry(&b);
        r.register(Arc::new(Part(ComponentKind::Hedge))).unwrap();
        let mut r = Registration::new(ComponentKind::CircuitBreaker, "p");
        r.add_registry(&a);
        r.register(Arc::new(Part(ComponentKind::CircuitBreaker)))
            .unwrap();
        let mut r = Registration::new(ComponentKind::Bulkhead, "p");
        r.add_registry(&a);
        r.set_critical(true);
        r.register(Arc::new(Part(ComponentKind::Bulkhead))).unwrap();
        assert_eq!(
            *a.0.lock().unwrap(),
            [
                (ComponentKind::Hedge, "p".to_owned(), false),
                (ComponentKind::CircuitBreaker, "p".to_owned(), true),
                (ComponentKind::Bulkhead, "p".to_owned(), true),
            ]
        );
        assert_eq!(b.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_duplicate_anywhere_registers_nowhere() {
        let (free, taken) = (Log::default(), Log::default());
        taken
            .register_component(Arc::new(Part(ComponentKind::Chaos)), false)
            .unwrap();
        let mut r = Registration::new(ComponentKind::Chaos, "p");
        r.add_registry(&free);
        r.add_registry(&taken);
        let err = r
            .register(Arc::new(Part(ComponentKind::Chaos)))
            .unwrap_err();
        assert_eq!(err.component(), "chaos `p`");
        assert!(free.0.lock().unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_component() {
        let r = Registration::new(ComponentKind::Fallback, "");
        let err = r.require_name().unwrap_err();
        assert_eq!(err.setting(), "name");
        assert_eq!(err.component(), "fallback chain ``");
        assert_eq!(err.kind(), Some(ComponentKind::Fallback));
        assert!(Registration::new(ComponentKind::Fallback, "x")
            .require_name()
            .is_ok());
    }
}
