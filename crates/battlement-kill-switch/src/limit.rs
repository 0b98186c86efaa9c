//! Limit checks that halt the switch automatically, and the task that runs them.

use crate::switch::Inner;
use std::fmt;
use std::sync::{Arc, Weak};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

mod sealed {
    pub trait Sealed {}
    impl Sealed for bool {}
    impl Sealed for Option<String> {}
    impl Sealed for Option<&'static str> {}
}

/// What a limit check returns: whether the limit is breached, optionally with a detail.
///
/// - `bool`: `true` means breached.
/// - `Option<String>` / `Option<&'static str>`: `Some(detail)` means breached; the halt reason
///   becomes `"{limit name}: {detail}"`.
///
/// ```
/// use battlement_kill_switch::KillSwitch;
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use std::sync::Arc;
///
/// let pnl = Arc::new(AtomicI64::new(0));
/// let switch = KillSwitch::builder("trading").build().unwrap();
/// let p = pnl.clone();
/// switch
///     .add_limit("daily_loss", move || {
///         let loss = -p.load(Ordering::Relaxed);
///         (loss > 1_000).then(|| format!("lost {loss}"))
///     })
///     .unwrap();
/// pnl.store(-1_500, Ordering::Relaxed);
/// let halt = switch.check_limits().unwrap();
/// assert_eq!(halt.reason(), "daily_loss: lost 1500");
/// assert_eq!(halt.limit(), Some("daily_loss"));
/// ```
pub trait LimitStatus: sealed::Sealed {
    /// `None` when within the limit; `Some(detail)` when breached.
    #[doc(hidden)]
    fn breach(self) -> Option<Option<String>>;
}

impl LimitStatus for bool {
    fn breach(self) -> Option<Option<String>> {
        self.then_some(None)
    }
}

impl LimitStatus for Option<String> {
    fn breach(self) -> Option<Option<String>> {
        self.map(Some)
    }
}

impl LimitStatus for Option<&'static str> {
    fn breach(self) -> Option<Option<String>> {
        self.map(|s| Some(s.to_owned()))
    }
}

type CheckFn = dyn Fn() -> Option<Option<String>> + Send + Sync;

/// One registered limit.
pub(crate) struct Limit {
    pub(crate) name: Arc<str>,
    check: Box<CheckFn>,
}

impl Limit {
    pub(crate) fn new<F, B>(name: Arc<str>, check: F) -> Self
    where
        F: Fn() -> B + Send + Sync + 'static,
        B: LimitStatus,
    {
        Limit {
            name,
            check: Box::new(move || check().breach()),
        }
    }

    /// The halt reason if the limit is breached.
    pub(crate) fn evaluate(&self) -> Option<Arc<str>> {
        (self.check)().map(|detail| match detail {
            None => self.name.clone(),
            Some(detail) => format!("{}: {detail}", self.name).into(),
        })
    }
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limit").field("name", &self.name).finish()
    }
}

/// A background task that calls [`check_limits`](crate::KillSwitch::check_limits) on an
/// interval; made by [`KillSwitch::spawn_limit_monitor`](crate::KillSwitch::spawn_limit_monitor).
///
/// The task stops when this handle is dropped (or [`stop`](Self::stop)ped), or when every handle
/// to the switch is gone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_kill_switch::KillSwitch;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let errors = Arc::new(AtomicU64::new(0));
/// let switch = KillSwitch::builder("payments").build().unwrap();
/// let e = errors.clone();
/// switch.add_limit("error_budget", move || e.load(Ordering::Relaxed) >= 100).unwrap();
///
/// let monitor = switch.spawn_limit_monitor(Duration::from_secs(1)).unwrap();
/// errors.store(120, Ordering::Relaxed);
/// tokio::time::sleep(Duration::from_millis(1_001)).await;
/// assert_eq!(switch.halt_info().unwrap().reason(), "error_budget");
/// drop(monitor); // stops the task
/// # }
/// ```
#[must_use = "the monitor stops when this handle is dropped"]
pub struct LimitMonitor {
    task: JoinHandle<()>,
}

impl LimitMonitor {
    pub(crate) fn spawn(switch: Weak<Inner>, period: std::time::Duration) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let task = tokio::spawn(async move {
            loop {
                interval.tick().await;
                match switch.upgrade() {
                    Some(inner) => {
                        Inner::check_limits(&inner);
                    }
                    None => break,
                }
            }
        });
        LimitMonitor { task }
    }

    /// Stops the task (the same as dropping the handle).
    pub fn stop(self) {}

    /// Whether the task has ended (stopped, or the switch is gone).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for LimitMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for LimitMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitMonitor")
            .field("finished", &self.task.is_finished())
            .finish()
    }
}
