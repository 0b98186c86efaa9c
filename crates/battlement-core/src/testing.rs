//! Test doubles for code that registers components (feature `testing`).

use crate::{ComponentKind, ConfigError, HealthSink, HealthSource};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a [`RecordingSink`] keeps: each component, with its `critical` flag.
pub type Registered = (Arc<dyn HealthSource>, bool);

/// A [`HealthSink`] that keeps what registers with it, with its `critical` flag: for testing
/// that a builder registers its component (and how), without the health crate.
///
/// ```
/// use battlement_core::testing::RecordingSink;
/// use battlement_core::{ComponentKind, HealthSink, HealthSnapshot, HealthSource, HealthStatus};
/// use std::sync::Arc;
///
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass)
///     }
/// }
///
/// let sink = RecordingSink::new();
/// sink.register_component(Arc::new(Db), true).unwrap();
/// assert_eq!(sink.registered().len(), 1);
/// assert!(sink.registered()[0].1);
/// assert!(sink.unregister_component(ComponentKind::Other, "db"));
/// assert!(sink.registered().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct RecordingSink(Arc<Mutex<Vec<Registered>>>);

impl RecordingSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// What is registered now, in the order it registered.
    pub fn registered(&self) -> Vec<Registered> {
        self.list().clone()
    }

    fn list(&self) -> MutexGuard<'_, Vec<Registered>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for RecordingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .list()
            .iter()
            .map(|(c, _)| c.name().to_owned())
            .collect();
        f.debug_tuple("RecordingSink").field(&names).finish()
    }
}

impl HealthSink for RecordingSink {
    fn register_component(
        &self,
        component: Arc<dyn HealthSource>,
        critical: bool,
    ) -> Result<(), ConfigError> {
        self.list().push((component, critical));
        Ok(())
    }

    fn unregister_component(&self, kind: ComponentKind, name: &str) -> bool {
        let mut list = self.list();
        let before = list.len();
        list.retain(|(c, _)| !(c.kind() == kind && c.name() == name));
        list.len() != before
    }
}
