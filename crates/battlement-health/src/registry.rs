//! The health registry: named components, aggregation and change notifications.

use crate::check::HealthCheck;
use crate::component::{CheckMetrics, Component, HistoryEntry, Source};
use crate::config::{HealthRegistryBuilder, RegistryConfig};
use crate::report::HealthReport;
use battlement_core::export::MetricsVisitor;
use battlement_core::{
    kind_of, ComponentKind, ConfigError, HealthSink, HealthSnapshot, HealthSource, HealthStatus,
};
use serde::Serialize;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;

/// The registry of a service's health: named components (breakers, bulkheads, probes, anything
/// that implements [`HealthSource`]) and custom [`HealthCheck`]s, each critical or not.
///
/// The handle is cheap to clone (an `Arc` inside); every clone is the same registry.
///
/// - Components register themselves when their builder is given the registry (it implements
///   [`HealthSink`]), or with [`register`](Self::register).
/// - Checks are added with [`add_check`](Self::add_check) and run by the
///   [monitor](Self::spawn_monitor) (or once, by [`run_checks`](Self::run_checks)).
/// - [`report`](Self::report) reads every component now and aggregates: `fail` if a critical
///   component fails; `warn` if a non-critical one fails or any warns (a half-open breaker, a
///   saturated bulkhead); `pass` otherwise.
/// - [`subscribe`](Self::subscribe) returns a `watch` receiver of the [`Aggregate`], updated
///   whenever the registry evaluates its components: after every check run, on every monitor
///   tick ([`refresh_interval`](HealthRegistryBuilder::refresh_interval)), on every report and
///   on every registration.
/// - [`service`](Self::service) is the HTTP endpoint.
///
/// Components are identified by (kind, name): a breaker and a bulkhead may share a name (the
/// report shows both), two breakers may not. Registering a second component of the same kind
/// and name is refused with a [`ConfigError`] (from [`register`](Self::register),
/// [`add_check`](Self::add_check), or the `build()` of the builder given the registry), and the
/// first stays registered: a duplicate never silently replaces a component, which would hide it
/// from readiness while it still rejects calls. Custom checks are of kind `check`.
///
/// The registry holds its components strongly: a registered component stays in every report, and
/// its (kind, name) stays taken, until it is [unregistered](Self::unregister), even once every
/// other handle to it is dropped. Dropping a component never makes it vanish from readiness;
/// to replace one (on a configuration reload, say), unregister the old one first.
///
/// ```
/// use battlement_core::{ComponentKind, HealthStatus, HealthSource, HealthSnapshot};
/// use battlement_health::HealthRegistry;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// // Anything that implements `HealthSource` can be registered; breakers and bulkheads do.
/// #[derive(Clone, Default)]
/// struct Cache(Arc<AtomicBool>);
/// impl HealthSource for Cache {
///     fn name(&self) -> &str { "cache" }
///     fn snapshot(&self) -> HealthSnapshot {
///         let (state, status) = if self.0.load(Ordering::Relaxed) {
///             ("down", HealthStatus::Fail)
///         } else {
///             ("up", HealthStatus::Pass)
///         };
///         HealthSnapshot::new("cache", ComponentKind::Other, state, status)
///     }
/// }
///
/// let registry = HealthRegistry::new();
/// let cache = Cache::default();
/// registry.register(&cache, false).unwrap(); // not critical
/// // A second component of the same kind and name is refused; the first stays.
/// assert_eq!(registry.register(&Cache::default(), true).unwrap_err().setting(), "name");
/// assert_eq!(registry.status(), HealthStatus::Pass);
///
/// cache.0.store(true, Ordering::Relaxed);
/// // A failing non-critical component degrades the service; it does not fail it.
/// let report = registry.report();
/// assert_eq!(report.status, HealthStatus::Warn);
/// assert_eq!(report.counts.fail, 1);
/// assert_eq!(report.component("cache").unwrap().snapshot.state, "down");
/// ```
#[derive(Clone)]
pub struct HealthRegistry {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RegistryConfig,
    components: RwLock<Vec<Arc<Component>>>,
    next_id: AtomicU64,
    /// Bumped whenever the set of components changes (the monitor re-syncs its check tasks).
    pub(crate) set_tx: watch::Sender<u64>,
    aggregate_tx: watch::Sender<Aggregate>,
    /// Serialises evaluate-and-publish, so an older evaluation never overwrites a newer one.
    publish_lock: Mutex<()>,
    pub(crate) monitors_started: AtomicU64,
    pub(crate) monitors_running: AtomicU64,
}

/// The aggregate health: the overall status, the counts of components per status, and each
/// component's status (no snapshots, no times: it changes only when a status does; the full,
/// time-stamped read with every component's snapshot is a [`HealthReport`](crate::HealthReport)).
///
/// This is what [`HealthRegistry::subscribe`] publishes; a new value is sent only when it
/// differs from the last one (the overall status, a count, or a component's status changed).
///
/// ```
/// use battlement_core::HealthStatus;
/// use battlement_health::HealthRegistry;
///
/// let registry = HealthRegistry::new();
/// let agg = registry.aggregate();
/// assert_eq!(agg.status, HealthStatus::Pass);
/// assert_eq!(agg.counts.total, 0);
/// assert!(agg.components.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Aggregate {
    /// The overall status.
    pub status: HealthStatus,
    /// How many components are in each status (their own status).
    pub counts: StatusCounts,
    /// Each component's status, in registration order.
    pub components: Vec<ComponentStatus>,
}

/// How many components are in each status (each component's *own* status: a failing
/// non-critical component counts as `fail` though it only makes the aggregate `warn`).
///
/// ```
/// use battlement_health::StatusCounts;
///
/// let s = StatusCounts::default();
/// assert_eq!((s.total, s.pass, s.warn, s.fail), (0, 0, 0, 0));
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"total":0,"pass":0,"warn":0,"fail":0}"#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct StatusCounts {
    /// Components registered.
    pub total: usize,
    /// Components passing.
    pub pass: usize,
    /// Components warning.
    pub warn: usize,
    /// Components failing.
    pub fail: usize,
}

impl StatusCounts {
    /// Counts one more component, whose own status is `status`.
    pub(crate) fn count(&mut self, status: HealthStatus) {
        self.total += 1;
        match status {
            HealthStatus::Pass => self.pass += 1,
            HealthStatus::Warn => self.warn += 1,
            HealthStatus::Fail => self.fail += 1,
        }
    }
}

/// One component's status within an [`Aggregate`] (its entry in a [`HealthReport`], which adds
/// the snapshot and its time, is a [`ComponentReport`](crate::ComponentReport)).
///
/// [`HealthReport`]: crate::HealthReport
///
/// ```
/// use battlement_core::{ComponentKind, HealthStatus, HealthSource, HealthSnapshot};
/// use battlement_health::HealthRegistry;
///
/// #[derive(Clone)]
/// struct Down;
/// impl HealthSource for Down {
///     fn name(&self) -> &str { "search" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("search", ComponentKind::Other, "down", HealthStatus::Fail)
///     }
/// }
/// let registry = HealthRegistry::new();
/// registry.register(&Down, false).unwrap();
/// let c = &registry.aggregate().components[0];
/// assert_eq!(&*c.name, "search");
/// assert_eq!(c.kind, ComponentKind::Other);
/// assert_eq!(c.status, HealthStatus::Fail);
/// assert_eq!(c.effective, HealthStatus::Warn); // not critical
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentStatus {
    /// The component's name.
    pub name: Arc<str>,
    /// Its kind (with the name, its identity).
    pub kind: ComponentKind,
    /// Whether it is critical.
    pub critical: bool,
    /// Its own status.
    pub status: HealthStatus,
    /// What it contributes to the aggregate: its status, except that a non-critical `fail`
    /// counts as `warn`.
    pub effective: HealthStatus,
}

/// What a component with `status` contributes to the aggregate.
pub(crate) fn effective(status: HealthStatus, critical: bool) -> HealthStatus {
    match status {
        HealthStatus::Fail if !critical => HealthStatus::Warn,
        s => s,
    }
}

/// A component read now.
pub(crate) struct Evaluated {
    pub(crate) component: Arc<Component>,
    pub(crate) snapshot: HealthSnapshot,
    /// The time the snapshot describes, when not now (a check's last run).
    pub(crate) time: Option<SystemTime>,
    pub(crate) duration: Duration,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        HealthRegistry::new()
    }
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .components()
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        f.debug_struct("HealthRegistry")
            .field("components", &names)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl HealthRegistry {
    /// A registry with the default settings (history of 16 entries per component, monitor
    /// refresh every second, no persistence).
    pub fn new() -> Self {
        HealthRegistry::builder()
            .build()
            .expect("the default settings are valid")
    }

    /// Starts building a registry with custom settings.
    pub fn builder() -> HealthRegistryBuilder {
        HealthRegistryBuilder::new()
    }

    pub(crate) fn from_config(config: RegistryConfig) -> Self {
        HealthRegistry {
            inner: Arc::new(Inner {
                config,
                components: RwLock::new(Vec::new()),
                next_id: AtomicU64::new(0),
                set_tx: watch::Sender::new(0),
                aggregate_tx: watch::Sender::new(Aggregate::default()),
                publish_lock: Mutex::new(()),
                monitors_started: AtomicU64::new(0),
                monitors_running: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn components(&self) -> Vec<Arc<Component>> {
        self.inner
            .components
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn component(&self, name: &str) -> Option<Arc<Component>> {
        self.inner
            .components
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|c| &*c.name == name)
            .cloned()
    }

    fn insert(
        &self,
        name: Arc<str>,
        kind: ComponentKind,
        critical: bool,
        source: Source,
    ) -> Result<(), ConfigError> {
        {
            let mut list = self
                .inner
                .components
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if list.iter().any(|c| c.kind == kind && c.name == name) {
                return Err(ConfigError::scoped(
                    kind,
                    &name,
                    "name",
                    &*name,
                    format!(
                        "a {} of this name is already registered with this health registry \
                         (components are identified by kind and name): give it another name, \
                         or unregister the first",
                        kind.describe()
                    ),
                ));
            }
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            list.push(Arc::new(Component::new(
                id,
                name.clone(),
                kind,
                critical,
                source,
                self.inner.config.history_len,
            )));
        }
        tracing::debug!(component = %name, kind = %kind, critical, "health component registered");
        self.inner.set_tx.send_modify(|g| *g += 1);
        self.refresh();
        Ok(())
    }

    /// Removes the components for which `remove` is true; returns whether it removed any.
    fn remove(&self, what: &str, remove: impl Fn(&Component) -> bool) -> bool {
        let removed = {
            let mut list = self
                .inner
                .components
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let before = list.len();
            list.retain(|c| !remove(c));
            list.len() != before
        };
        if removed {
            tracing::debug!(component = %what, "health component unregistered");
            self.inner.set_tx.send_modify(|g| *g += 1);
            self.refresh();
        }
        removed
    }

    /// Registers `component` (anything that implements [`HealthSource`] and `Clone`: a breaker, a
    /// bulkhead, a [`HealthProbe`](crate::HealthProbe), an `Arc<impl HealthSource>`) under its
    /// [`kind`](HealthSource::kind) and [`name`](HealthSource::name). A `critical` component that fails
    /// fails the aggregate.
    ///
    /// # Errors
    ///
    /// A component of the same kind and name is already registered (it stays registered).
    ///
    /// ```
    /// use battlement_health::{HealthProbe, HealthRegistry};
    ///
    /// let registry = HealthRegistry::new();
    /// let probe = HealthProbe::builder("upstream").build().unwrap();
    /// registry.register(&probe, true).unwrap();
    /// assert_eq!(registry.names(), ["upstream"]);
    /// assert!(registry.register(&probe, true).is_err(), "once only");
    /// ```
    pub fn register<O>(&self, component: &O, critical: bool) -> Result<(), ConfigError>
    where
        O: HealthSource + Clone,
    {
        self.register_component(Arc::new(component.clone()), critical)
    }

    /// Adds a custom check (of kind `check`); the [monitor](Self::spawn_monitor) runs it on its
    /// interval.
    ///
    /// # Errors
    ///
    /// A check of the same name is already registered (it stays registered).
    ///
    /// ```
    /// use battlement_health::{CheckResult, HealthCheck, HealthRegistry};
    ///
    /// let registry = HealthRegistry::new();
    /// let check = || HealthCheck::builder("db", || async { CheckResult::pass() }).build().unwrap();
    /// registry.add_check(check()).unwrap();
    /// assert_eq!(registry.names(), ["db"]);
    /// assert!(registry.add_check(check()).is_err());
    /// ```
    pub fn add_check(&self, check: HealthCheck) -> Result<(), ConfigError> {
        self.insert(
            check.name.clone(),
            ComponentKind::Check,
            check.critical,
            Source::Check(check),
        )
    }

    /// Removes every component and check named `name`, whatever its kind; returns whether there
    /// was one. [`HealthSink::unregister_component`] removes one kind only.
    ///
    /// ```
    /// use battlement_health::{CheckResult, HealthCheck, HealthRegistry};
    ///
    /// let registry = HealthRegistry::new();
    /// registry.add_check(HealthCheck::builder("db", || async { CheckResult::pass() }).build().unwrap()).unwrap();
    /// assert!(registry.unregister("db"));
    /// assert!(!registry.unregister("db"));
    /// ```
    pub fn unregister(&self, name: &str) -> bool {
        self.remove(name, |c| &*c.name == name)
    }

    /// The names of the registered components, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.components()
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    }

    /// Reads every component now and returns the full report (this also publishes the
    /// aggregate to [subscribers](Self::subscribe)).
    pub fn report(&self) -> HealthReport {
        let (evaluated, aggregate) = self.refresh();
        HealthReport::new(&self.inner.config, evaluated, aggregate)
    }

    /// Reads every component now and returns the aggregate (also published to
    /// [subscribers](Self::subscribe)).
    pub fn aggregate(&self) -> Aggregate {
        self.refresh().1
    }

    /// The overall status now: `self.aggregate().status`.
    pub fn status(&self) -> HealthStatus {
        self.aggregate().status
    }

    /// Liveness: `pass` unless a [monitor](Self::spawn_monitor) was started and none is running
    /// any more (it was shut down, or its task died).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_core::HealthStatus;
    /// use battlement_health::HealthRegistry;
    ///
    /// let registry = HealthRegistry::new();
    /// assert_eq!(registry.liveness(), HealthStatus::Pass);
    /// let monitor = registry.spawn_monitor();
    /// assert_eq!(registry.liveness(), HealthStatus::Pass);
    /// monitor.shutdown().await;
    /// assert_eq!(registry.liveness(), HealthStatus::Fail);
    /// # }
    /// ```
    pub fn liveness(&self) -> HealthStatus {
        let started = self.inner.monitors_started.load(Ordering::Acquire);
        let running = self.inner.monitors_running.load(Ordering::Acquire);
        if started > 0 && running == 0 {
            HealthStatus::Fail
        } else {
            HealthStatus::Pass
        }
    }

    /// Startup: `fail` until every check marked [`startup`](crate::HealthCheckBuilder::startup)
    /// has passed once (a run that did not fail), `pass` from then on; `pass` if there is no
    /// startup check.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_core::HealthStatus;
    /// use battlement_health::{CheckResult, HealthCheck, HealthRegistry};
    ///
    /// let registry = HealthRegistry::new();
    /// assert_eq!(registry.startup(), HealthStatus::Pass);
    /// registry
    ///     .add_check(HealthCheck::builder("warm", || async { CheckResult::pass() }).startup(true).build().unwrap())
    ///     .unwrap();
    /// assert_eq!(registry.startup(), HealthStatus::Fail); // not run yet
    /// registry.run_checks().await;
    /// assert_eq!(registry.startup(), HealthStatus::Pass);
    /// # }
    /// ```
    pub fn startup(&self) -> HealthStatus {
        let waiting = self
            .components()
            .iter()
            .any(|c| c.check().is_some_and(|k| k.startup) && !c.has_started());
        if waiting {
            HealthStatus::Fail
        } else {
            HealthStatus::Pass
        }
    }

    /// A receiver of the [`Aggregate`]; it is notified when the aggregate changes.
    ///
    /// The registry evaluates its components after every check run, on every monitor tick, on
    /// every report and registration; breakers and bulkheads do not push their changes, so run
    /// a [monitor](Self::spawn_monitor) to be told of them within its refresh interval.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_core::HealthStatus;
    /// use battlement_health::{CheckResult, HealthCheck, HealthRegistry};
    ///
    /// let registry = HealthRegistry::new();
    /// let mut rx = registry.subscribe();
    /// registry.add_check(HealthCheck::builder("db", || async { CheckResult::fail("down") }).build().unwrap()).unwrap();
    /// registry.run_checks().await;
    /// assert!(rx.has_changed().unwrap());
    /// assert_eq!(rx.borrow_and_update().status, HealthStatus::Fail);
    /// # }
    /// ```
    pub fn subscribe(&self) -> watch::Receiver<Aggregate> {
        self.inner.aggregate_tx.subscribe()
    }

    /// Runs every check once, concurrently, records the results and publishes the aggregate.
    ///
    /// The monitor does this on each check's interval; call this to check without a monitor.
    pub async fn run_checks(&self) -> Aggregate {
        let runs = self.components().into_iter().filter_map(|c| {
            let check = c.check()?.clone();
            Some(async move {
                let run = check.run().await;
                c.record_run(run);
            })
        });
        futures::future::join_all(runs).await;
        self.aggregate()
    }

    /// The bounded history of the component `name`, oldest first: check runs, or an observed
    /// component's state changes. `None` if there is no such component; of several components
    /// of that name (of different kinds), the first registered.
    pub fn history(&self, name: &str) -> Option<Vec<HistoryEntry>> {
        self.component(name).map(|c| c.history())
    }

    /// The run counters of the component `name`. `None` if there is no such component; of
    /// several components of that name (of different kinds), the first registered.
    pub fn check_metrics(&self, name: &str) -> Option<CheckMetrics> {
        self.component(name).map(|c| c.metrics())
    }

    /// Visits every registered component, in registration order, for a metrics exporter: its
    /// kind, name and critical flag, its [status](RegisteredComponent::status) and its
    /// [`export`](RegisteredComponent::export).
    ///
    /// The registry's lock is held only to copy the list of components (one allocation per
    /// walk, none per component); `visit` and every component's snapshot and export run without
    /// it, so a walk never blocks registration or a report. Unlike [`report`](Self::report), a
    /// walk publishes nothing and records no history.
    ///
    /// ```
    /// use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
    /// use battlement_health::HealthRegistry;
    ///
    /// #[derive(Clone)]
    /// struct Db;
    /// impl HealthSource for Db {
    ///     fn name(&self) -> &str { "db" }
    ///     fn snapshot(&self) -> HealthSnapshot {
    ///         HealthSnapshot::new("db", ComponentKind::Other, "down", HealthStatus::Fail)
    ///     }
    /// }
    /// let registry = HealthRegistry::new();
    /// registry.register(&Db, true).unwrap();
    /// let mut seen = Vec::new();
    /// registry.for_each_component(|c| seen.push((c.kind(), c.name().to_owned(), c.critical(), c.status())));
    /// assert_eq!(seen, [(ComponentKind::Other, "db".to_owned(), true, HealthStatus::Fail)]);
    /// ```
    pub fn for_each_component(&self, mut visit: impl FnMut(&RegisteredComponent<'_>)) {
        for component in &self.components() {
            visit(&RegisteredComponent { component });
        }
    }

    /// Reads every component, publishes the aggregate, and returns both.
    pub(crate) fn refresh(&self) -> (Vec<Evaluated>, Aggregate) {
        let _serial = self
            .inner
            .publish_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let evaluated: Vec<Evaluated> = self
            .components()
            .into_iter()
            .map(|component| {
                let start = Instant::now();
                let (snapshot, time) = component.snapshot();
                let duration = start.elapsed();
                component.note_state(&snapshot);
                Evaluated {
                    component,
                    snapshot,
                    time,
                    duration,
                }
            })
            .collect();
        let aggregate = aggregate_of(&evaluated);
        self.inner.aggregate_tx.send_if_modified(|current| {
            if *current == aggregate {
                return false;
            }
            log_changes(current, &aggregate);
            *current = aggregate.clone();
            true
        });
        (evaluated, aggregate)
    }
}

/// One registered component, as [`HealthRegistry::for_each_component`] visits it.
///
/// ```
/// use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
/// use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
/// use battlement_health::HealthRegistry;
///
/// static CALLS: Family = Family::counter("battlement_other_calls", "Calls.", "calls");
/// #[derive(Clone)]
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass)
///     }
///     fn export(&self, out: &mut dyn MetricsVisitor) {
///         out.counter(&CALLS, &[("outcome", "success")], 7);
///     }
/// }
/// struct Sum(u64);
/// impl MetricsVisitor for Sum {
///     fn counter(&mut self, _: &'static Family, _: Labels<'_>, v: u64) { self.0 += v }
///     fn gauge(&mut self, _: &'static Family, _: Labels<'_>, _: f64) {}
///     fn histogram(&mut self, _: &'static Family, _: Labels<'_>, _: &HistogramSnapshot) {}
/// }
/// let registry = HealthRegistry::new();
/// registry.register(&Db, false).unwrap();
/// let mut sum = Sum(0);
/// registry.for_each_component(|c| c.export(&mut sum));
/// assert_eq!(sum.0, 7);
/// ```
pub struct RegisteredComponent<'a> {
    component: &'a Component,
}

impl fmt::Debug for RegisteredComponent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredComponent")
            .field("kind", &self.component.kind)
            .field("name", &self.component.name)
            .field("critical", &self.component.critical)
            .finish()
    }
}

impl RegisteredComponent<'_> {
    /// Its kind, as registered.
    pub fn kind(&self) -> ComponentKind {
        self.component.kind
    }

    /// Its name, as registered.
    pub fn name(&self) -> &str {
        &self.component.name
    }

    /// Whether it is critical.
    pub fn critical(&self) -> bool {
        self.component.critical
    }

    /// Its own status now (not the effective one: a failing non-critical component is `fail`):
    /// each call reads it anew, as a report would (a check's from its last run, `warn` before
    /// its first; a component whose snapshot panics, `fail`).
    pub fn status(&self) -> HealthStatus {
        self.component.snapshot().0.status
    }

    /// Asks it to report its metrics ([`HealthSource::export`]) into `out`. A custom check
    /// reports none; an export that panics is logged and ends that component's report (the
    /// values it reported before stay in `out`).
    pub fn export(&self, out: &mut dyn MetricsVisitor) {
        if let Source::Observed(source) = &self.component.source {
            if std::panic::catch_unwind(AssertUnwindSafe(|| source.export(out))).is_err() {
                tracing::error!(
                    component = %self.component.name,
                    kind = %self.component.kind,
                    "component metrics export panicked"
                );
            }
        }
    }
}

fn aggregate_of(evaluated: &[Evaluated]) -> Aggregate {
    let mut agg = Aggregate::default();
    for e in evaluated {
        let status = e.snapshot.status;
        let eff = effective(status, e.component.critical);
        agg.status = agg.status.max(eff);
        agg.counts.count(status);
        agg.components.push(ComponentStatus {
            name: e.component.name.clone(),
            kind: e.component.kind,
            critical: e.component.critical,
            status,
            effective: eff,
        });
    }
    agg
}

fn log_changes(old: &Aggregate, new: &Aggregate) {
    for c in &new.components {
        let before = old
            .components
            .iter()
            .find(|o| o.kind == c.kind && o.name == c.name);
        match before {
            Some(o) if o.status == c.status => {}
            Some(o) => tracing::info!(
                component = %c.name,
                kind = %c.kind,
                from = %o.status,
                to = %c.status,
                critical = c.critical,
                "health component status changed"
            ),
            None => {}
        }
    }
    if old.status != new.status {
        if new.status == HealthStatus::Pass {
            tracing::info!(from = %old.status, to = %new.status, "health aggregate changed");
        } else {
            tracing::warn!(from = %old.status, to = %new.status, "health aggregate changed");
        }
    }
}

/// Registration by the builders of breakers, bulkheads, probes and the rest: refused with a
/// [`ConfigError`] when a component of the same kind and name is registered.
impl HealthSink for HealthRegistry {
    fn register_component(
        &self,
        component: Arc<dyn HealthSource>,
        critical: bool,
    ) -> Result<(), ConfigError> {
        let name: Arc<str> = component.name().into();
        let kind = kind_of(&*component);
        self.insert(name, kind, critical, Source::Observed(component))
    }

    fn unregister_component(&self, kind: ComponentKind, name: &str) -> bool {
        self.remove(name, |c| c.kind == kind && &*c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckResult;
    use crate::test_util::Fake;
    use battlement_core::ComponentKind;

    fn statuses(agg: &Aggregate) -> Vec<(String, HealthStatus, HealthStatus)> {
        agg.components
            .iter()
            .map(|c| (c.name.to_string(), c.status, c.effective))
            .collect()
    }

    #[test]
    fn aggregation_rules() {
        use HealthStatus::*;
        let registry = HealthRegistry::new();
        assert_eq!(registry.status(), Pass, "empty registry passes");

        let critical = Fake::new("db", ComponentKind::CircuitBreaker);
        let optional = Fake::new("cache", ComponentKind::Bulkhead);
        registry.register(&critical, true).unwrap();
        registry.register(&optional, false).unwrap();
        assert_eq!(registry.status(), Pass);

        // A non-critical failure degrades.
        optional.set("open", Fail);
        let agg = registry.aggregate();
        assert_eq!(agg.status, Warn);
        assert_eq!(
            statuses(&agg),
            [("db".into(), Pass, Pass), ("cache".into(), Fail, Warn)]
        );
        assert_eq!(
            agg.counts,
            StatusCounts {
                total: 2,
                pass: 1,
                warn: 0,
                fail: 1
            }
        );

        // Any warn warns, critical or not.
        optional.set("ok", Pass);
        critical.set("half_open", Warn);
        assert_eq!(registry.status(), Warn);

        // A critical failure fails, whatever the rest.
        critical.set("open", Fail);
        optional.set("saturated", Warn);
        let agg = registry.aggregate();
        assert_eq!(agg.status, Fail);
        assert_eq!(
            agg.counts,
            StatusCounts {
                total: 2,
                pass: 0,
                warn: 1,
                fail: 1
            }
        );

        critical.set("closed", Pass);
        optional.set("ok", Pass);
        assert_eq!(registry.status(), Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn checks_are_components_too() {
        let registry = HealthRegistry::new();
        let check = |name: &str, critical: bool| {
            let name2 = name.to_owned();
            HealthCheck::builder(name, move || {
                let n = name2.clone();
                async move { CheckResult::fail(format!("{n} is down")) }
            })
            .critical(critical)
            .build()
            .unwrap()
        };
        registry.add_check(check("optional", false)).unwrap();
        // Never run: pending, which warns.
        let report = registry.report();
        assert_eq!(report.status, HealthStatus::Warn);
        assert_eq!(report.components[0].snapshot.state, "pending");

        registry.run_checks().await;
        assert_eq!(registry.status(), HealthStatus::Warn);
        registry.add_check(check("critical", true)).unwrap();
        let agg = registry.run_checks().await;
        assert_eq!(agg.status, HealthStatus::Fail);
        assert_eq!(registry.check_metrics("optional").unwrap().runs, 2);
        assert_eq!(registry.check_metrics("critical").unwrap().runs, 1);
        assert_eq!(
            registry.report().component("critical").unwrap().output(),
            "critical is down"
        );
        assert!(registry.unregister("critical"));
        assert_eq!(registry.status(), HealthStatus::Warn);
    }

    #[test]
    fn a_second_component_of_the_same_kind_and_name_is_refused_not_swapped_in() {
        let registry = HealthRegistry::new();
        let open = Fake::new("db", ComponentKind::CircuitBreaker);
        open.set("open", HealthStatus::Fail);
        HealthSink::register_component(&registry, Arc::new(open), true).unwrap();
        assert_eq!(registry.status(), HealthStatus::Fail);

        // Before: the second breaker silently replaced the open one and readiness passed.
        let closed = Fake::new("db", ComponentKind::CircuitBreaker);
        let err =
            HealthSink::register_component(&registry, Arc::new(closed.clone()), true).unwrap_err();
        assert_eq!(err.setting(), "name");
        assert_eq!(err.component(), "circuit breaker `db`");
        assert!(err.reason().contains("already registered"), "{err}");
        assert_eq!(registry.names(), ["db"]);
        assert_eq!(
            registry.status(),
            HealthStatus::Fail,
            "the open breaker still counts"
        );
        assert!(
            registry.register(&closed, true).is_err(),
            "`register` refuses too"
        );

        // Another kind may share the name: both are reported.
        let pool = Fake::new("db", ComponentKind::Bulkhead);
        registry.register(&pool, false).unwrap();
        let check = || {
            HealthCheck::builder("db", || async { CheckResult::pass() })
                .build()
                .unwrap()
        };
        registry.add_check(check()).unwrap();
        assert_eq!(registry.add_check(check()).unwrap_err().setting(), "name");
        let kinds: Vec<_> = registry
            .aggregate()
            .components
            .iter()
            .map(|c| (c.kind, c.name.to_string()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ComponentKind::CircuitBreaker, "db".to_owned()),
                (ComponentKind::Bulkhead, "db".to_owned()),
                (ComponentKind::Check, "db".to_owned()),
            ]
        );

        // Unregistering one kind frees that (kind, name) only.
        assert!(registry.unregister_component(ComponentKind::CircuitBreaker, "db"));
        assert!(!registry.unregister_component(ComponentKind::CircuitBreaker, "db"));
        assert_eq!(registry.names(), ["db", "db"]);
        registry.register(&closed, true).unwrap();
        // `unregister` by name removes every kind.
        assert!(registry.unregister("db"));
        assert!(registry.names().is_empty());

        // An `Arc<impl HealthSource>` registers too.
        registry
            .register(&Arc::new(Fake::new("arc", ComponentKind::Other)), false)
            .unwrap();
        assert_eq!(registry.names(), ["arc"]);
    }

    #[test]
    fn a_dropped_component_stays_reported_and_keeps_its_name() {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("db", ComponentKind::CircuitBreaker);
        breaker.set("open", HealthStatus::Fail);
        registry.register(&breaker, true).unwrap();
        drop(breaker);
        assert_eq!(registry.status(), HealthStatus::Fail);
        let again = Fake::new("db", ComponentKind::CircuitBreaker);
        assert!(registry.register(&again, true).is_err());
        assert!(registry.unregister_component(ComponentKind::CircuitBreaker, "db"));
        registry.register(&again, true).unwrap();
        assert_eq!(registry.status(), HealthStatus::Pass);
    }

    #[test]
    fn builders_register_everywhere_or_nowhere() {
        let (free, taken) = (HealthRegistry::new(), HealthRegistry::new());
        let first = || {
            crate::HealthProbe::builder("geo")
                .registry(&free)
                .registry(&taken)
        };
        first().build().unwrap();
        assert!(free.unregister("geo"));
        // `taken` refuses the second probe: `free` must not keep it.
        let err = first().build().unwrap_err();
        assert_eq!(err.setting(), "name");
        assert!(free.names().is_empty(), "rolled back");
        assert_eq!(taken.names(), ["geo"]);
        // The same registry twice is a duplicate too.
        let other = HealthRegistry::new();
        assert!(crate::HealthProbe::builder("x")
            .registry(&other)
            .registry(&other)
            .build()
            .is_err());
        assert!(other.names().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn watch_notifies_on_change_only() {
        let registry = HealthRegistry::new();
        let mut rx = registry.subscribe();
        let db = Fake::new("db", ComponentKind::CircuitBreaker);
        registry.register(&db, true).unwrap();
        assert!(
            rx.has_changed().unwrap(),
            "registration changes the aggregate"
        );
        assert_eq!(rx.borrow_and_update().counts.total, 1);

        // Re-evaluating without a change sends nothing.
        registry.report();
        registry.aggregate();
        assert!(!rx.has_changed().unwrap());

        // A state change that keeps the status (closed -> disabled) sends nothing either.
        db.set("disabled", HealthStatus::Pass);
        registry.report();
        assert!(!rx.has_changed().unwrap());

        let waiter = tokio::spawn({
            let mut rx = rx.clone();
            async move {
                rx.changed().await.unwrap();
                rx.borrow_and_update().status
            }
        });
        tokio::task::yield_now().await;
        db.set("open", HealthStatus::Fail);
        registry.report();
        assert_eq!(waiter.await.unwrap(), HealthStatus::Fail);
        assert!(rx.has_changed().unwrap());
        let agg = rx.borrow_and_update().clone();
        assert_eq!(agg.status, HealthStatus::Fail);
        assert_eq!(agg.components[0].status, HealthStatus::Fail);
    }

    #[test]
    fn observed_history_records_state_changes_and_is_bounded() {
        let registry = HealthRegistry::builder().history_len(3).build().unwrap();
        let db = Fake::new("db", ComponentKind::CircuitBreaker);
        registry.register(&db, true).unwrap();
        registry.report();
        registry.report(); // no change, no entry
        assert_eq!(registry.history("db").unwrap().len(), 1);
        for state in ["open", "half_open", "closed", "open"] {
            db.set(state, HealthStatus::Warn);
            registry.report();
        }
        let states: Vec<_> = registry
            .history("db")
            .unwrap()
            .into_iter()
            .map(|h| h.state)
            .collect();
        assert_eq!(states, ["half_open", "closed", "open"]);
        assert!(registry.history("nope").is_none());
    }

    #[test]
    fn the_walk_visits_every_component_with_its_identity_status_and_export() {
        use battlement_core::export::{Family, HistogramSnapshot, Labels};
        static CALLS: Family = Family::counter("battlement_other_calls", "Calls.", "calls");
        struct Exports(&'static str, u64, bool);
        impl HealthSource for Exports {
            fn name(&self) -> &str {
                self.0
            }
            fn snapshot(&self) -> HealthSnapshot {
                HealthSnapshot::new(self.0, ComponentKind::Other, "x", HealthStatus::Fail)
            }
            fn export(&self, out: &mut dyn MetricsVisitor) {
                out.counter(&CALLS, &[], self.1);
                if self.2 {
                    panic!("export panics");
                }
            }
        }
        #[derive(Default)]
        struct Seen(Vec<(&'static str, u64)>);
        impl MetricsVisitor for Seen {
            fn counter(&mut self, f: &'static Family, _: Labels<'_>, v: u64) {
                self.0.push((f.name, v));
            }
            fn gauge(&mut self, _: &'static Family, _: Labels<'_>, _: f64) {}
            fn histogram(&mut self, _: &'static Family, _: Labels<'_>, _: &HistogramSnapshot) {}
        }
        let registry = HealthRegistry::new();
        let breaker = Fake::new("db", ComponentKind::CircuitBreaker);
        breaker.set("half_open", HealthStatus::Warn);
        registry.register(&breaker, true).unwrap();
        registry
            .register_component(Arc::new(Exports("a", 3, false)), false)
            .unwrap();
        registry
            .register_component(Arc::new(Exports("b", 4, true)), false)
            .unwrap();
        registry
            .add_check(
                HealthCheck::builder("c", || async { CheckResult::pass() })
                    .build()
                    .unwrap(),
            )
            .unwrap();
        let mut seen = Vec::new();
        let mut values = Seen::default();
        registry.for_each_component(|c| {
            seen.push((c.kind(), c.name().to_owned(), c.critical(), c.status()));
            c.export(&mut values);
        });
        assert_eq!(
            seen,
            [
                (
                    ComponentKind::CircuitBreaker,
                    "db".to_owned(),
                    true,
                    HealthStatus::Warn
                ),
                (
                    ComponentKind::Other,
                    "a".to_owned(),
                    false,
                    HealthStatus::Fail
                ),
                (
                    ComponentKind::Other,
                    "b".to_owned(),
                    false,
                    HealthStatus::Fail
                ),
                // never run: pending
                (
                    ComponentKind::Check,
                    "c".to_owned(),
                    true,
                    HealthStatus::Warn
                ),
            ]
        );
        // The panicking export keeps what it reported and does not end the walk.
        assert_eq!(
            values.0,
            [("battlement_other_calls", 3), ("battlement_other_calls", 4)]
        );
        // A visit may use the registry (no lock is held while it runs).
        registry.for_each_component(|c| {
            if c.name() == "a" {
                registry.unregister("a");
            }
        });
        assert_eq!(registry.names(), ["db", "b", "c"]);
    }

    #[test]
    fn a_panicking_snapshot_fails_the_component_not_the_registry() {
        struct Bad;
        impl HealthSource for Bad {
            fn name(&self) -> &str {
                "bad"
            }
            fn snapshot(&self) -> HealthSnapshot {
                panic!("bad snapshot")
            }
        }
        let registry = HealthRegistry::new();
        registry.register_component(Arc::new(Bad), false).unwrap();
        let report = registry.report();
        assert_eq!(report.status, HealthStatus::Warn);
        assert_eq!(report.components[0].snapshot.status, HealthStatus::Fail);
    }
}
