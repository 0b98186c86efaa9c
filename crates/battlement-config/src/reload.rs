//! Live reload: a new configuration validated whole, then applied to the live components.

use crate::admission::{AdaptiveLimitSettings, RateLimitSettings, ThrottleSettings};
use crate::error::{LoadError, Problem};
use crate::load::{Configuration, Loader};
use crate::registry::{names_of, settings_in, Handles, RateLimitHandle, Resilience};
use crate::settings::{
    BreakerSettings, BulkheadSettings, HedgeSettings, InstanceSettings, RetrySettings,
    TimeoutSettings,
};
use battlement_breaker::CircuitBreaker;
use battlement_bulkhead::{AdaptiveLimit, Bulkhead};
use battlement_core::{ComponentKind, ConfigError};
use battlement_hedge::HedgeLayer;
use battlement_rate_limit::RateLimit;
use battlement_retry::RetryPolicy;
use battlement_throttle::Throttle;
use std::error::Error;
use std::fmt;
use std::sync::RwLockReadGuard;

/// A reload that was refused: every problem found, none applied. The configuration serving
/// before the reload keeps serving.
///
/// Problems have the shape of [`LoadError`]'s: a key path and what is wrong, and, for a file
/// that did not load ([`Resilience::reload_from`]), where the value came from. Problems the
/// reload itself finds (a live component the new configuration cannot rebuild) carry no
/// origin: a [`Configuration`] keeps no positions.
///
/// ```
/// use battlement_config::{Configuration, Resilience};
///
/// let old = Configuration::from_toml("[defaults.timeout]\nlimit = \"1s\"\n[instances.db.bulkhead]\n").unwrap();
/// let resilience = Resilience::new(old);
/// let timeout = resilience.timeout("db").unwrap(); // from `defaults`
/// // The new configuration has no default limit: the live timeout could not be rebuilt.
/// let new = Configuration::from_toml("[instances.db.bulkhead]\n").unwrap();
/// let err = resilience.reload(new).unwrap_err();
/// assert_eq!(err.problems()[0].key(), "defaults.timeout.limit");
/// assert_eq!(
///     err.to_string(),
///     "reload refused (the configuration serving is kept): defaults.timeout.limit: none must be set (e.g. \"2s\")"
/// );
/// assert_eq!(timeout.limit(), std::time::Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadError {
    problems: Vec<Problem>,
}

impl ReloadError {
    fn new(mut problems: Vec<Problem>) -> Self {
        let mut seen = std::collections::HashSet::new();
        problems.retain(|p| seen.insert((p.key().to_owned(), p.message().to_owned())));
        ReloadError { problems }
    }

    /// Every problem, in the order found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl From<LoadError> for ReloadError {
    fn from(e: LoadError) -> Self {
        ReloadError::new(e.problems().to_vec())
    }
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(
                f,
                "reload refused (the configuration serving is kept): {one}"
            ),
            all => {
                write!(
                    f,
                    "reload refused (the configuration serving is kept), {} problems:",
                    all.len()
                )?;
                for p in all {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl Error for ReloadError {}

/// What a reload did to the live components, each named by (kind, name), sorted by kind
/// then name.
///
/// ```
/// use battlement_config::{Configuration, Resilience};
/// use battlement_core::ComponentKind;
///
/// let resilience = Resilience::new(Configuration::from_toml("[instances.db.bulkhead]\nmax_concurrent = 4\n").unwrap());
/// resilience.bulkhead("db").unwrap();
/// let report = resilience
///     .reload(Configuration::from_toml("[instances.db.bulkhead]\nmax_concurrent = 8\n").unwrap())
///     .unwrap();
/// assert_eq!(report.applied, [(ComponentKind::Bulkhead, "db".to_owned())]);
/// assert!(report.kept.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Components that took their settings from the new configuration.
    pub applied: Vec<(ComponentKind, String)>,
    /// Components whose instance is not in the new configuration: kept as they were (they
    /// may still be in use; the registry keeps handing them out).
    pub kept: Vec<(ComponentKind, String)>,
}

/// One live component's new settings, validated, to apply once all are.
type Apply = Box<dyn FnOnce() -> Result<(), ConfigError>>;

/// The problem of a builder's refusal of `pattern` settings at `section` (`instances.db` or
/// `defaults`).
fn problem(
    section: &str,
    pattern: &str,
    key_of: fn(&str) -> Option<&'static str>,
    err: ConfigError,
) -> Problem {
    let message = format!("{} {}", err.value(), err.reason());
    let key = match key_of(err.setting()) {
        Some(field) => format!("{section}.{pattern}.{field}"),
        None => section.to_owned(),
    };
    Problem::new(key, message).refused(err)
}

/// Validates each pattern `settings` has, through the builders' `validate`.
fn validate_instance(
    settings: &InstanceSettings,
    name: &str,
    section: &str,
    problems: &mut Vec<Problem>,
) {
    if let Some(s) = &settings.breaker {
        if let Err(e) = s.apply(CircuitBreaker::builder(name)).validate() {
            problems.push(problem(section, "breaker", BreakerSettings::key_of, e));
        }
    }
    if let Some(s) = &settings.bulkhead {
        if let Err(e) = s.apply(Bulkhead::builder(name)).validate() {
            problems.push(problem(section, "bulkhead", BulkheadSettings::key_of, e));
        }
    }
    if let Some(s) = &settings.retry {
        if let Err(e) = s.apply(RetryPolicy::builder().name(name)).validate() {
            problems.push(problem(section, "retry", RetrySettings::key_of, e));
        }
    }
    if let Some(s) = &settings.timeout {
        if let Err(e) = s.builder(name).and_then(|b| b.validate()) {
            problems.push(problem(section, "timeout", TimeoutSettings::key_of, e));
        }
    }
    if let Some(s) = &settings.hedge {
        if let Err(e) = s.apply(HedgeLayer::builder().name(name)).validate() {
            problems.push(problem(section, "hedge", HedgeSettings::key_of, e));
        }
    }
    for (pattern, key_of, result) in crate::admission::check(settings, name) {
        if let Err(e) = result {
            problems.push(problem(section, pattern, key_of, e));
        }
    }
}

/// What becomes of the live components of one kind.
struct Plan<'a> {
    old: &'a Configuration,
    new: &'a Configuration,
    unknown_from_defaults: bool,
    problems: Vec<Problem>,
    apply: Vec<Apply>,
    report: ReloadReport,
}

impl Plan<'_> {
    /// For each live component in `map`: kept (its instance vanished), or its new settings
    /// validated and queued, with `make` turning settings into the validated application.
    fn kind<H: Clone + 'static, T: Clone + Default>(
        &mut self,
        map: &RwLockReadGuard<'_, std::collections::HashMap<String, H>>,
        kind: ComponentKind,
        pattern: &str,
        pick: fn(&InstanceSettings) -> Option<&T>,
        key_of: fn(&str) -> Option<&'static str>,
        make: impl Fn(&H, &str, &T) -> Result<Apply, ConfigError>,
    ) {
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for name in names {
            let handle = &map[name];
            let in_new = self.new.instance(name);
            if in_new.is_none() && self.old.instance(name).is_some() {
                self.report.kept.push((kind, name.clone()));
                continue;
            }
            // The section the settings come from, for the problems' key paths.
            let section = match in_new {
                Some(instance) if pick(instance).is_some() => format!("instances.{name}"),
                _ => "defaults".to_owned(),
            };
            let settings = match settings_in(self.new, self.unknown_from_defaults, kind, name, pick)
            {
                Ok(s) => s,
                Err(e) => {
                    // Cannot happen for a live component (its name was checked when it was
                    // built); said rather than hidden.
                    self.problems
                        .push(Problem::new(format!("instances.{name}"), e.to_string()));
                    continue;
                }
            };
            match make(handle, name, &settings) {
                Ok(apply) => {
                    self.apply.push(apply);
                    self.report.applied.push((kind, name.clone()));
                }
                Err(e) => self.problems.push(problem(&section, pattern, key_of, e)),
            }
        }
    }
}

fn read<H>(map: &Handles<H>) -> RwLockReadGuard<'_, std::collections::HashMap<String, H>> {
    map.read().unwrap_or_else(|e| e.into_inner())
}

impl Resilience {
    /// Applies `new` to every live component, or, if anything in it is invalid, changes
    /// nothing and returns every problem: all or nothing.
    ///
    /// 1. Validation: every instance of `new` (and its `defaults`) is turned into the
    ///    builders' settings and checked with each builder's `validate`; then each live
    ///    component's settings in `new` (its instance's pattern, or `defaults`' for a pattern
    ///    the instance lacks or a name built from defaults) are checked the same way. Any
    ///    problem refuses the whole reload ([`ReloadError`]), which counts as `refused`.
    /// 2. Application: each live component takes its new settings through its own `reload`
    ///    ([`CircuitBreaker::reload`], [`Bulkhead::reload`], [`RetryPolicy::reload`],
    ///    [`TimeoutLayer::reload`](battlement_timeout::TimeoutLayer::reload) for the
    ///    attempt and the [total](Resilience::total_timeout) timeouts,
    ///    [`HedgeLayer::reload`]; their docs say what each keeps), and `new` becomes the
    ///    configuration components created later are built from. No call in flight is
    ///    dropped or failed. It counts as `applied`.
    ///
    /// A live component whose instance is not in `new` is kept as it is (listed in
    /// [`ReloadReport::kept`]). Kill switches are not reloaded (their settings, `critical` and
    /// `event_capacity`, are fixed at build), nor is any component's name, `critical` flag or
    /// event capacity, nor a retry policy's `retry_rejected` or `seed`.
    ///
    /// Components are created while a reload runs only before or after it: one is either
    /// built from the old configuration and then reloaded, or built from the new one. Reloads
    /// run one at a time. Each is a `tracing` event (info when applied, warn when refused).
    ///
    /// ```
    /// use battlement_config::{Configuration, Resilience};
    ///
    /// let config = |n: usize| {
    ///     Configuration::from_toml(&format!("[instances.db.bulkhead]\nmax_concurrent = {n}\n")).unwrap()
    /// };
    /// let resilience = Resilience::new(config(4));
    /// let bulkhead = resilience.bulkhead("db")?;
    /// resilience.reload(config(16)).unwrap();
    /// assert_eq!(bulkhead.max_concurrent(), 16);
    /// assert_eq!(resilience.reloads().applied, 1);
    /// # Ok::<(), battlement_config::ResilienceError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Every problem found; nothing was changed.
    pub fn reload(&self, new: Configuration) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reload_guard();
        let inner = self.inner();
        // Holding every map's read lock until the configuration is swapped: a component is
        // created (under its map's write lock) either before the reload sees the map, so it is
        // reloaded, or after the swap, from the new configuration.
        let breakers = read(&inner.breakers);
        let bulkheads = read(&inner.bulkheads);
        let retries = read(&inner.retries);
        let timeouts = read(&inner.timeouts);
        let total_timeouts = read(&inner.total_timeouts);
        let hedges = read(&inner.hedges);
        let kill_switches = read(&inner.kill_switches);
        let rate_limits = read(&inner.rate_limits);
        let throttles = read(&inner.throttles);
        let adaptive_limits = read(&inner.adaptive_limits);
        let old = self.configuration();

        let mut problems = Vec::new();
        validate_instance(new.defaults(), "defaults", "defaults", &mut problems);
        for name in new.instance_names() {
            if let Some(instance) = new.instance(name) {
                validate_instance(instance, name, &format!("instances.{name}"), &mut problems);
            }
        }
        let mut plan = Plan {
            old: &old,
            new: &new,
            unknown_from_defaults: self.unknown_from_defaults(),
            problems,
            apply: Vec::new(),
            report: ReloadReport::default(),
        };
        plan.kind(
            &breakers,
            ComponentKind::CircuitBreaker,
            "breaker",
            |i| i.breaker.as_ref(),
            BreakerSettings::key_of,
            |h: &CircuitBreaker, name, s: &BreakerSettings| {
                let b = s.apply(CircuitBreaker::builder(name));
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        plan.kind(
            &bulkheads,
            ComponentKind::Bulkhead,
            "bulkhead",
            |i| i.bulkhead.as_ref(),
            BulkheadSettings::key_of,
            |h: &Bulkhead, name, s: &BulkheadSettings| {
                let b = s.apply(Bulkhead::builder(name));
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        plan.kind(
            &retries,
            ComponentKind::Retry,
            "retry",
            |i| i.retry.as_ref(),
            RetrySettings::key_of,
            |h: &RetryPolicy, name, s: &RetrySettings| {
                let b = s.apply(RetryPolicy::builder().name(name));
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        plan.kind(
            &timeouts,
            ComponentKind::Timeout,
            "timeout",
            |i| i.timeout.as_ref(),
            TimeoutSettings::key_of,
            |h: &battlement_timeout::TimeoutLayer, name, s: &TimeoutSettings| {
                let b = s.builder(name)?;
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        let (applied, kept) = (plan.report.applied.len(), plan.report.kept.len());
        plan.kind(
            &total_timeouts,
            ComponentKind::Timeout,
            "total_timeout",
            |i| i.total_timeout.as_ref(),
            TimeoutSettings::key_of,
            |h: &battlement_timeout::TimeoutLayer, name, s: &TimeoutSettings| {
                let b = s.builder(&format!("{name}-total"))?;
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        // Reported under the component's own name, as `components` lists it.
        let report = &mut plan.report;
        for (_, name) in report.applied[applied..]
            .iter_mut()
            .chain(report.kept[kept..].iter_mut())
        {
            name.push_str("-total");
        }
        plan.kind(
            &hedges,
            ComponentKind::Hedge,
            "hedge",
            |i| i.hedge.as_ref(),
            HedgeSettings::key_of,
            |h: &HedgeLayer, name, s: &HedgeSettings| {
                let b = s.apply(HedgeLayer::builder().name(name));
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        plan.kind(
            &rate_limits,
            ComponentKind::RateLimit,
            "rate_limit",
            |i| i.rate_limit.as_ref(),
            RateLimitSettings::key_of,
            |h: &RateLimitHandle, name, s: &RateLimitSettings| {
                let b = s.apply(RateLimit::builder(name));
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        plan.kind(
            &throttles,
            ComponentKind::Throttle,
            "throttle",
            |i| i.throttle.as_ref(),
            ThrottleSettings::key_of,
            |h: &Throttle, name, s: &ThrottleSettings| {
                let b = s.apply(Throttle::builder(name));
                b.validate()?;
                h.check_reload(&b)?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        plan.kind(
            &adaptive_limits,
            ComponentKind::Bulkhead,
            "adaptive_limit",
            |i| i.adaptive_limit.as_ref(),
            AdaptiveLimitSettings::key_of,
            |h: &AdaptiveLimit, name, s: &AdaptiveLimitSettings| {
                let b = s.builder(name)?;
                b.validate()?;
                let h = h.clone();
                Ok(Box::new(move || h.reload(&b)))
            },
        );
        // Kill switches are not reloaded; one whose instance vanished is still reported kept.
        let mut switches: Vec<&String> = kill_switches.keys().collect();
        switches.sort();
        for name in switches {
            if new.instance(name).is_none() && old.instance(name).is_some() {
                plan.report
                    .kept
                    .push((ComponentKind::KillSwitch, name.clone()));
            }
        }

        let Plan {
            problems,
            apply,
            report,
            ..
        } = plan;
        if !problems.is_empty() {
            let err = ReloadError::new(problems);
            self.reload_counts().refused();
            tracing::warn!(problems = err.problems().len(), error = %err, "configuration reload refused");
            return Err(err);
        }
        self.set_configuration(new);
        for apply in apply {
            // Validated above with the same checks; a refusal here would be a bug, said loudly
            // rather than hidden (the other components are still reloaded).
            if let Err(e) = apply() {
                tracing::error!(error = %e, "a validated setting was refused while reloading");
            }
        }
        drop((
            breakers,
            bulkheads,
            retries,
            timeouts,
            total_timeouts,
            hedges,
            kill_switches,
            rate_limits,
            throttles,
            adaptive_limits,
        ));
        self.reload_counts().applied();
        tracing::info!(
            applied = report.applied.len(),
            kept = ?report.kept,
            "configuration reloaded"
        );
        Ok(report)
    }

    /// Loads the configuration `loader` reads and [`reload`](Self::reload)s it. A
    /// configuration that does not load is refused as an invalid one is (counted `refused`,
    /// nothing changed), with the load's problems: key paths, sources and lines.
    ///
    /// ```
    /// use battlement_config::{Configuration, Loader, Resilience};
    ///
    /// figment::Jail::expect_with(|jail| {
    ///     jail.create_file("battlement.toml", "[instances.db.bulkhead]\nmax_concurrent = 4\n")?;
    ///     let resilience = Resilience::new(Loader::new().load().unwrap());
    ///     let bulkhead = resilience.bulkhead("db").unwrap();
    ///     jail.create_file("battlement.toml", "[instances.db.bulkhead]\nmax_concurrent = 0\n[instances.db.breaker]\nfailure_rate = 2.0\n")?;
    ///     let err = resilience.reload_from(&Loader::new()).unwrap_err();
    ///     assert_eq!(err.problems().len(), 2);
    ///     assert_eq!(err.problems()[0].line(), Some(4));
    ///     assert_eq!(bulkhead.max_concurrent(), 4);
    ///     assert_eq!(resilience.reloads().refused, 1);
    ///     Ok(())
    /// });
    /// ```
    ///
    /// # Errors
    ///
    /// The load's problems, or the reload's.
    pub fn reload_from(&self, loader: &Loader) -> Result<ReloadReport, ReloadError> {
        match loader.load() {
            Ok(config) => self.reload(config),
            Err(e) => Err(self.refuse_load(e)),
        }
    }

    /// Counts and logs a configuration that did not load as a refused reload.
    pub(crate) fn refuse_load(&self, e: LoadError) -> ReloadError {
        let err = ReloadError::from(e);
        self.reload_counts().refused();
        tracing::warn!(problems = err.problems().len(), error = %err, "configuration reload refused: it did not load");
        err
    }

    /// The names of the live components, by kind (for reports and tests).
    pub fn components(&self) -> Vec<(ComponentKind, String)> {
        let inner = self.inner();
        let mut all = Vec::new();
        let mut add = |kind, names: Vec<String>| all.extend(names.into_iter().map(|n| (kind, n)));
        add(ComponentKind::CircuitBreaker, names_of(&inner.breakers));
        add(ComponentKind::Bulkhead, names_of(&inner.bulkheads));
        add(ComponentKind::Retry, names_of(&inner.retries));
        add(ComponentKind::Timeout, names_of(&inner.timeouts));
        add(
            ComponentKind::Timeout,
            names_of(&inner.total_timeouts)
                .into_iter()
                .map(|n| format!("{n}-total"))
                .collect(),
        );
        add(ComponentKind::Hedge, names_of(&inner.hedges));
        add(ComponentKind::KillSwitch, names_of(&inner.kill_switches));
        add(ComponentKind::RateLimit, names_of(&inner.rate_limits));
        add(ComponentKind::Throttle, names_of(&inner.throttles));
        add(ComponentKind::Bulkhead, names_of(&inner.adaptive_limits));
        all
    }
}
