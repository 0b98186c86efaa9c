//! The kill switch handle and its state (read-out and health snapshot in `metrics.rs`).

use crate::config::KillSwitchBuilder;
use crate::event::KillSwitchEvent;
use crate::limit::{Limit, LimitMonitor, LimitStatus};
use battlement_core::error::Halted;
use battlement_core::event::EventChannel;
use battlement_core::{ComponentKind, ConfigError};
use std::fmt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A kill switch shared by any number of [`KillSwitchLayer`](crate::KillSwitchLayer)s: while it is halted,
/// every guarded service rejects each call at once with a typed [`Halted`] error, without calling
/// its inner service.
///
/// The handle is cheap to clone (an `Arc` inside); every clone is the same switch.
///
/// - By hand: [`halt`](Self::halt) with a reason, [`resume`](Self::resume).
/// - Automatically: limits ([`add_limit`](Self::add_limit)) are closures over counters the
///   application feeds; [`check_limits`](Self::check_limits) (called by the application, or every
///   period by a [`spawn_limit_monitor`](Self::spawn_limit_monitor) task) halts the switch with the
///   first breached limit's name as the reason.
/// - Observability: every halt and resume is a `tracing` event and a typed [`KillSwitchEvent`]
///   ([`subscribe`](Self::subscribe)); the switch implements [`HealthSource`](battlement_core::HealthSource): state `running` or
///   `halted`, status `fail` while halted, so registered as critical (the default) it fails the
///   health aggregate.
///
/// While running, a call through a guarded service costs one atomic load.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_kill_switch::{Halted, KillSwitch};
/// use tower::{service_fn, ServiceExt};
///
/// let switch = KillSwitch::builder("trading").build().unwrap();
/// let svc = tower::ServiceBuilder::new()
///     .layer(switch.layer())
///     .service(service_fn(|order: u32| async move { Ok::<_, std::io::Error>(order) }));
///
/// assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
///
/// switch.halt("exchange outage");
/// let err = svc.clone().oneshot(8).await.unwrap_err();
/// let halted = err.downcast_ref::<Halted>().unwrap();
/// assert_eq!(halted.name(), "trading");
/// assert_eq!(halted.reason(), "exchange outage");
///
/// switch.resume();
/// assert_eq!(svc.oneshot(9).await.unwrap(), 9);
/// # }
/// ```
#[derive(Clone)]
pub struct KillSwitch {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    name: Arc<str>,
    /// The only thing a call reads while running.
    halted: AtomicBool,
    /// The current halt; written on halt and resume (which it also serialises), read only on the
    /// halted path.
    state: RwLock<Option<Halt>>,
    pub(crate) limits: Mutex<Vec<Arc<Limit>>>,
    rejected: AtomicU64,
    halts: AtomicU64,
    events: EventChannel<KillSwitchEvent>,
}

/// A halt in force: why, since when, and which limit tripped it.
///
/// ```
/// use battlement_kill_switch::KillSwitch;
///
/// let switch = KillSwitch::builder("s").build().unwrap();
/// assert!(switch.halt_info().is_none());
/// switch.halt("maintenance");
/// let info = switch.halt_info().unwrap();
/// assert_eq!(info.reason(), "maintenance");
/// assert_eq!(info.limit(), None);
/// assert!(info.since() <= std::time::SystemTime::now());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    reason: Arc<str>,
    since: SystemTime,
    at: Instant,
    limit: Option<Arc<str>>,
}

impl Halt {
    /// Why the switch was halted.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When (wall-clock time).
    pub fn since(&self) -> SystemTime {
        self.since
    }

    /// How long it has been halted (measured with `tokio::time`).
    pub fn halted_for(&self) -> Duration {
        self.at.elapsed()
    }

    /// The name of the limit that tripped it; `None` when halted by hand.
    pub fn limit(&self) -> Option<&str> {
        self.limit.as_deref()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KillSwitch {
    /// Starts building a kill switch called `name`.
    pub fn builder(name: impl Into<String>) -> KillSwitchBuilder {
        KillSwitchBuilder::new(name)
    }

    pub(crate) fn from_parts(
        name: Arc<str>,
        limits: Vec<Arc<Limit>>,
        events: EventChannel<KillSwitchEvent>,
    ) -> Self {
        KillSwitch {
            inner: Arc::new(Inner {
                name,
                halted: AtomicBool::new(false),
                state: RwLock::new(None),
                limits: Mutex::new(limits),
                rejected: AtomicU64::new(0),
                halts: AtomicU64::new(0),
                events,
            }),
        }
    }

    /// The switch's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Halts the switch: from now on every guarded service rejects each call with [`Halted`]
    /// carrying `reason`. Returns `false` (and changes nothing) if it was already halted.
    pub fn halt(&self, reason: impl Into<Arc<str>>) -> bool {
        self.inner.halt(reason.into(), None)
    }

    /// Lifts the halt: guarded services call through again. Returns `false` if it was not halted.
    pub fn resume(&self) -> bool {
        self.inner.resume()
    }

    /// Whether the switch is halted.
    pub fn is_halted(&self) -> bool {
        self.inner.halted.load(Acquire)
    }

    /// The halt in force, if any.
    pub fn halt_info(&self) -> Option<Halt> {
        read(&self.inner.state).clone()
    }

    /// The error a guarded call gets now: `Some` while halted.
    pub fn halted_error(&self) -> Option<Halted> {
        self.inner.check().err()
    }

    /// Registers a limit: `check` is a closure over counters the application feeds (daily loss,
    /// error budget, drawdown…) that returns whether the limit is breached — a `bool`, or an
    /// `Option<String>` with a detail (see [`LimitStatus`]). [`check_limits`](Self::check_limits)
    /// evaluates it.
    ///
    /// Fails if `name` is empty or already taken.
    pub fn add_limit<F, B>(&self, name: impl Into<String>, check: F) -> Result<(), ConfigError>
    where
        F: Fn() -> B + Send + Sync + 'static,
        B: LimitStatus,
    {
        let name = name.into();
        let mut limits = lock(&self.inner.limits);
        validate_limit_name(&self.inner.name, &name, limits.iter().map(|l| &*l.name))?;
        limits.push(Arc::new(Limit::new(name.into(), check)));
        Ok(())
    }

    /// Removes the limit called `name`; returns whether there was one.
    pub fn remove_limit(&self, name: &str) -> bool {
        let mut limits = lock(&self.inner.limits);
        let before = limits.len();
        limits.retain(|l| &*l.name != name);
        limits.len() != before
    }

    /// The names of the registered limits, in the order they are checked.
    pub fn limit_names(&self) -> Vec<String> {
        lock(&self.inner.limits)
            .iter()
            .map(|l| l.name.to_string())
            .collect()
    }

    /// Evaluates the limits in registration order and halts the switch with the first breached
    /// one's name as the reason. Returns the halt it caused; `None` if no limit is breached, or if
    /// the switch was already halted (then no limit is evaluated).
    ///
    /// The limit closures run on the calling thread without any lock of the switch held, so they
    /// may use the switch.
    pub fn check_limits(&self) -> Option<Halt> {
        Inner::check_limits(&self.inner)
    }

    /// Spawns a task on the current tokio runtime that calls
    /// [`check_limits`](Self::check_limits) every `period` (the first time at once). The task
    /// stops when the returned [`LimitMonitor`] is dropped.
    ///
    /// Fails if `period` is zero.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn spawn_limit_monitor(&self, period: Duration) -> Result<LimitMonitor, ConfigError> {
        if period.is_zero() {
            return Err(ConfigError::scoped(
                ComponentKind::KillSwitch,
                self.name(),
                "limit_monitor.period",
                period,
                "must be greater than zero",
            ));
        }
        Ok(LimitMonitor::spawn(Arc::downgrade(&self.inner), period))
    }

    /// Subscribes to typed halt and resume events.
    pub fn subscribe(&self) -> broadcast::Receiver<KillSwitchEvent> {
        self.inner.events.subscribe()
    }

    /// Calls rejected while halted, since the switch was built.
    pub fn rejected_calls(&self) -> u64 {
        self.inner.rejected.load(Relaxed)
    }

    /// How many times the switch has been halted.
    pub fn halts(&self) -> u64 {
        self.inner.halts.load(Relaxed)
    }

    /// Whether a call may go through now; `Err` with the rejection while halted.
    #[inline]
    pub(crate) fn check(&self) -> Result<(), Halted> {
        self.inner.check()
    }
}

pub(crate) fn validate_limit_name<'a>(
    switch: &str,
    name: &str,
    mut taken: impl Iterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let err = |why: &'static str| {
        ConfigError::scoped(ComponentKind::KillSwitch, switch, "limit.name", name, why)
    };
    if name.is_empty() {
        return Err(err("must not be empty"));
    }
    if taken.any(|t| t == name) {
        return Err(err("a limit with this name is already registered"));
    }
    Ok(())
}

impl Inner {
    #[inline]
    fn check(&self) -> Result<(), Halted> {
        if !self.halted.load(Acquire) {
            return Ok(());
        }
        self.reject()
    }

    #[cold]
    #[inline(never)]
    fn reject(&self) -> Result<(), Halted> {
        let state = read(&self.state);
        match &*state {
            Some(info) => {
                self.rejected.fetch_add(1, Relaxed);
                tracing::debug!(
                    kill_switch = %self.name,
                    reason = %info.reason,
                    "call rejected: kill switch halted"
                );
                Err(Halted::new(
                    self.name.clone(),
                    info.reason.clone(),
                    info.since,
                ))
            }
            // Resumed between the load and the lock.
            None => Ok(()),
        }
    }

    fn halt(&self, reason: Arc<str>, limit: Option<Arc<str>>) -> bool {
        self.halt_with(reason, limit).is_some()
    }

    fn halt_with(&self, reason: Arc<str>, limit: Option<Arc<str>>) -> Option<Halt> {
        let mut state = write(&self.state);
        if state.is_some() {
            return None;
        }
        let info = Halt {
            reason,
            since: SystemTime::now(),
            at: Instant::now(),
            limit,
        };
        *state = Some(info.clone());
        self.halted.store(true, Release);
        self.halts.fetch_add(1, Relaxed);
        // Announced under the lock, so subscribers see halts and resumes in their real order.
        tracing::warn!(
            kill_switch = %self.name,
            reason = %info.reason,
            limit = info.limit.as_deref(),
            "kill switch halted"
        );
        self.events.send(KillSwitchEvent::Halted {
            name: self.name.clone(),
            reason: info.reason.clone(),
            since: info.since,
            limit: info.limit.clone(),
        });
        Some(info)
    }

    fn resume(&self) -> bool {
        let mut state = write(&self.state);
        let Some(info) = state.take() else {
            return false;
        };
        self.halted.store(false, Release);
        let halted_for = info.halted_for();
        tracing::info!(
            kill_switch = %self.name,
            reason = %info.reason,
            ?halted_for,
            "kill switch resumed"
        );
        self.events.send(KillSwitchEvent::Resumed {
            name: self.name.clone(),
            reason: info.reason,
            halted_for,
        });
        true
    }

    pub(crate) fn check_limits(this: &Arc<Inner>) -> Option<Halt> {
        if this.halted.load(Acquire) {
            return None;
        }
        // Evaluate outside the lock: a limit may use the switch.
        let limits: Vec<Arc<Limit>> = lock(&this.limits).clone();
        for limit in &limits {
            if let Some(reason) = limit.evaluate() {
                tracing::debug!(
                    kill_switch = %this.name,
                    limit = %limit.name,
                    %reason,
                    "kill switch limit breached"
                );
                return this.halt_with(reason, Some(limit.name.clone()));
            }
        }
        None
    }
}

impl fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillSwitch")
            .field("name", &self.inner.name)
            .field("halted", &self.is_halted())
            .finish_non_exhaustive()
    }
}
