//! The background monitor: runs checks on their intervals, observes components, persists.

use crate::component::Component;
use crate::report::HealthReport;
use crate::HealthRegistry;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

/// The handle of a running health monitor; made by
/// [`HealthRegistry::spawn_monitor`]. Dropping it stops the monitor, as does
/// [`shutdown`](Self::shutdown).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::HealthStatus;
/// use battlement_health::{CheckResult, HealthCheck, HealthRegistry};
/// use std::time::Duration;
///
/// let registry = HealthRegistry::new();
/// registry.add_check(
///     HealthCheck::builder("db", || async { CheckResult::pass() })
///         .interval(Duration::from_secs(5))
///         .build()
///         .unwrap(),
/// ).unwrap();
/// let monitor = registry.spawn_monitor();
/// tokio::time::sleep(Duration::from_secs(12)).await;
/// assert_eq!(registry.check_metrics("db").unwrap().runs, 3); // at 0 s, 5 s and 10 s
/// assert!(monitor.is_running());
/// monitor.shutdown().await;
/// assert_eq!(registry.liveness(), HealthStatus::Fail);
/// # }
/// ```
pub struct MonitorHandle {
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorHandle")
            .field("running", &self.is_running())
            .finish()
    }
}

impl MonitorHandle {
    /// Whether the monitor's task is still running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the monitor (and any check run in progress) and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Counts a running monitor; un-counts it when its task ends, however it ends.
struct Running(HealthRegistry);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.inner.monitors_running.fetch_sub(1, Ordering::AcqRel);
        tracing::info!("health monitor stopped");
    }
}

impl HealthRegistry {
    /// Spawns the background monitor on the current tokio runtime and returns its handle.
    ///
    /// The monitor runs every check as soon as it starts, then again `interval` after each run
    /// ends, each check in its own task (so checks run concurrently, and a slow check delays
    /// nobody else); checks added later are picked up, removed ones stopped. Every
    /// [`refresh_interval`](crate::HealthRegistryBuilder::refresh_interval) it reads the
    /// observed components (counting an observation of each), publishes the aggregate and, if
    /// [configured](crate::HealthRegistryBuilder::persist_to), writes the report to its file.
    ///
    /// Run one monitor per registry: a second one would run every check a second time.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_monitor(&self) -> MonitorHandle {
        let inner = &self.inner;
        inner.monitors_started.fetch_add(1, Ordering::AcqRel);
        inner.monitors_running.fetch_add(1, Ordering::AcqRel);
        let running = Running(self.clone());
        let registry = self.clone();
        let task = tokio::spawn(async move {
            let _running = running;
            tracing::info!("health monitor started");
            supervise(registry).await;
        });
        MonitorHandle { task: Some(task) }
    }
}

async fn supervise(registry: HealthRegistry) {
    let mut set_rx = registry.inner.set_tx.subscribe();
    let mut tasks: HashMap<u64, AbortHandle> = HashMap::new();
    let mut ids: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut join = JoinSet::new();
    let mut tick = tokio::time::interval(registry.inner.config.refresh_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut persist_failing = false;
    loop {
        set_rx.borrow_and_update();
        sync_checks(&registry, &mut tasks, &mut ids, &mut join);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let report = observe(&registry);
                    if let Some(path) = registry.inner.config.persist_path.clone() {
                        persist(report, path, &mut persist_failing).await;
                    }
                }
                changed = set_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                Some(ended) = join.join_next_with_id(), if !join.is_empty() => {
                    // A check task only ends if something outside the check panicked; it is
                    // restarted by the re-sync.
                    let id = match &ended {
                        Ok((id, ())) => *id,
                        Err(e) => e.id(),
                    };
                    if let Some(component) = ids.remove(&id) {
                        tasks.remove(&component);
                    }
                    if let Err(e) = ended {
                        if e.is_panic() {
                            tracing::error!("a health check task panicked; restarting it");
                        }
                    }
                    break;
                }
            }
        }
    }
}

/// Starts a task for every check without one, stops the tasks of checks no longer registered.
fn sync_checks(
    registry: &HealthRegistry,
    tasks: &mut HashMap<u64, AbortHandle>,
    ids: &mut HashMap<tokio::task::Id, u64>,
    join: &mut JoinSet<()>,
) {
    let components = registry.components();
    tasks.retain(|id, handle| {
        let keep = components.iter().any(|c| c.id == *id);
        if !keep {
            handle.abort();
        }
        keep
    });
    ids.retain(|_, component| tasks.contains_key(component));
    for component in components {
        if component.check().is_none() || tasks.contains_key(&component.id) {
            continue;
        }
        let id = component.id;
        let handle = join.spawn(run_check(registry.clone(), component));
        ids.insert(handle.id(), id);
        tasks.insert(id, handle);
    }
}

async fn run_check(registry: HealthRegistry, component: Arc<Component>) {
    let Some(check) = component.check().cloned() else {
        return;
    };
    loop {
        let run = check.run().await;
        component.record_run(run);
        registry.refresh();
        tokio::time::sleep(check.interval).await;
    }
}

/// One refresh tick: reads every component, counts an observation of each observed one,
/// publishes the aggregate; returns the report.
fn observe(registry: &HealthRegistry) -> HealthReport {
    let (evaluated, aggregate) = registry.refresh();
    for e in &evaluated {
        if e.component.check().is_none() {
            e.component.record_observation(&e.snapshot, e.duration);
        }
    }
    HealthReport::new(&registry.inner.config, evaluated, aggregate)
}

async fn persist(report: HealthReport, path: std::path::PathBuf, failing: &mut bool) {
    let shown = path.display().to_string();
    let result = tokio::task::spawn_blocking(move || report.write_to(&path)).await;
    match result {
        Ok(Ok(())) => {
            if *failing {
                tracing::info!(path = %shown, "writing the health report works again");
            }
            *failing = false;
        }
        Ok(Err(error)) => {
            if *failing {
                tracing::debug!(path = %shown, %error, "writing the health report failed");
            } else {
                tracing::warn!(path = %shown, %error, "writing the health report failed");
            }
            *failing = true;
        }
        Err(error) => {
            tracing::error!(path = %shown, %error, "the health report writer panicked");
            *failing = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::Fake;
    use crate::{CheckResult, HealthCheck, HealthRegistry};
    use battlement_core::{ComponentKind, HealthStatus};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::{advance, sleep, Instant};

    /// Lets every ready task run (paused clock, current-thread runtime).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    fn counting(name: &str, interval_secs: u64, counter: Arc<AtomicU32>) -> HealthCheck {
        HealthCheck::builder(name, move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { CheckResult::pass() }
        })
        .interval(Duration::from_secs(interval_secs))
        .build()
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn checks_run_on_their_own_intervals() {
        let registry = HealthRegistry::new();
        let (fast, slow) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        registry
            .add_check(counting("fast", 2, fast.clone()))
            .unwrap();
        registry
            .add_check(counting("slow", 5, slow.clone()))
            .unwrap();
        let _monitor = registry.spawn_monitor();
        settle().await;
        assert_eq!(
            (fast.load(Ordering::SeqCst), slow.load(Ordering::SeqCst)),
            (1, 1)
        );
        for _ in 0..10 {
            advance(Duration::from_secs(1)).await;
            settle().await;
        }
        // fast: 0, 2, 4, 6, 8, 10; slow: 0, 5, 10.
        assert_eq!(
            (fast.load(Ordering::SeqCst), slow.load(Ordering::SeqCst)),
            (6, 3)
        );
        assert_eq!(registry.check_metrics("fast").unwrap().runs, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn checks_run_concurrently_and_a_hanging_one_times_out() {
        let registry = HealthRegistry::new();
        registry
            .add_check(
                HealthCheck::builder("hangs", std::future::pending::<CheckResult>)
                    .timeout(Duration::from_secs(3))
                    .interval(Duration::from_secs(60))
                    .build()
                    .unwrap(),
            )
            .unwrap();
        let quick = Arc::new(AtomicU32::new(0));
        registry
            .add_check(counting("quick", 1, quick.clone()))
            .unwrap();
        let start = Instant::now();
        let _monitor = registry.spawn_monitor();
        let mut rx = registry.subscribe();
        // The quick check keeps running while the other hangs.
        sleep(Duration::from_millis(2500)).await;
        assert_eq!(quick.load(Ordering::SeqCst), 3);
        assert_eq!(
            registry.report().component("hangs").unwrap().snapshot.state,
            "pending"
        );
        // At 3 s the hanging check fails with a timeout; it is critical, so the aggregate fails.
        while rx.borrow_and_update().status != HealthStatus::Fail {
            rx.changed().await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        let report = registry.report();
        let hangs = report.component("hangs").unwrap();
        assert_eq!(hangs.snapshot.state, "timed_out");
        assert_eq!(hangs.output(), "check `hangs` timed out after 3s");
        let stats = registry.check_metrics("hangs").unwrap();
        assert_eq!(stats.mean_duration, Some(Duration::from_secs(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_check_fails_and_the_monitor_survives() {
        let registry = HealthRegistry::new();
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        registry
            .add_check(
                HealthCheck::builder("flaky", move || {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 1 {
                            panic!("second run explodes");
                        }
                        CheckResult::pass()
                    }
                })
                .interval(Duration::from_secs(1))
                .build()
                .unwrap(),
            )
            .unwrap();
        let monitor = registry.spawn_monitor();
        sleep(Duration::from_millis(1500)).await;
        let report = registry.report();
        let flaky = report.component("flaky").unwrap();
        assert_eq!(flaky.snapshot.state, "panicked");
        assert_eq!(flaky.snapshot.status, HealthStatus::Fail);
        assert_eq!(report.status, HealthStatus::Fail);
        sleep(Duration::from_secs(1)).await;
        assert!(monitor.is_running());
        assert_eq!(registry.status(), HealthStatus::Pass);
        let stats = registry.check_metrics("flaky").unwrap();
        assert_eq!(
            (stats.runs, stats.failures, stats.consecutive_failures),
            (3, 1, 0)
        );
        assert!(stats.last_failure.unwrap() <= stats.last_success.unwrap());
        assert_eq!(registry.liveness(), HealthStatus::Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn history_is_bounded_and_counters_track_runs() {
        let registry = HealthRegistry::builder().history_len(4).build().unwrap();
        let n = Arc::new(AtomicU32::new(0));
        let c = n.clone();
        registry
            .add_check(
                HealthCheck::builder("db", move || {
                    let i = c.fetch_add(1, Ordering::SeqCst);
                    async move {
                        sleep(Duration::from_millis(10 * u64::from(i + 1))).await;
                        if i % 3 == 2 {
                            CheckResult::fail(format!("run {i}"))
                        } else {
                            CheckResult::pass().with_value(f64::from(i), "ms")
                        }
                    }
                })
                .interval(Duration::from_secs(1))
                .build()
                .unwrap(),
            )
            .unwrap();
        let _monitor = registry.spawn_monitor();
        // Runs i = 0..=9 start at ~0, 1.01, 2.03, ... s (interval after each run ends).
        sleep(Duration::from_secs(10)).await;
        assert_eq!(n.load(Ordering::SeqCst), 10);
        let history = registry.history("db").unwrap();
        assert_eq!(history.len(), 4, "only the last 4 are kept");
        let values: Vec<_> = history.iter().map(|h| h.observed_value).collect();
        assert_eq!(values, [Some(6.0), Some(7.0), None, Some(9.0)]);
        assert_eq!(history[2].message.as_deref(), Some("run 8"));
        assert_eq!(history[2].duration, Some(Duration::from_millis(90)));
        assert!(history.windows(2).all(|w| w[0].time <= w[1].time));
        let stats = registry.check_metrics("db").unwrap();
        assert_eq!(stats.runs, 10);
        assert_eq!(stats.failures, 3); // runs 2, 5, 8
        assert_eq!(stats.consecutive_failures, 0);
        // Mean of 10..=100 ms.
        assert_eq!(stats.mean_duration, Some(Duration::from_millis(55)));
    }

    #[tokio::test(start_paused = true)]
    async fn observes_components_on_ticks_and_picks_up_new_checks() {
        let registry = HealthRegistry::builder()
            .refresh_interval(Duration::from_secs(1))
            .build()
            .unwrap();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        registry.register(&breaker, true).unwrap();
        let mut rx = registry.subscribe();
        rx.borrow_and_update();
        let monitor = registry.spawn_monitor();
        sleep(Duration::from_millis(3500)).await;
        // Ticks at 0, 1, 2, 3 s.
        assert_eq!(registry.check_metrics("payments").unwrap().runs, 4);

        // Nobody asks for a report: the monitor's tick notices the breaker opening.
        breaker.set("open", HealthStatus::Fail);
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow_and_update().status, HealthStatus::Fail);
        let stats = registry.check_metrics("payments").unwrap();
        assert_eq!((stats.failures, stats.consecutive_failures), (1, 1));

        // A check added while the monitor runs is run straight away.
        let count = Arc::new(AtomicU32::new(0));
        registry
            .add_check(counting("late", 10, count.clone()))
            .unwrap();
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // A removed check stops running.
        assert!(registry.unregister("late"));
        sleep(Duration::from_secs(30)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1);

        drop(monitor);
        settle().await;
        assert_eq!(registry.liveness(), HealthStatus::Fail);
    }

    #[tokio::test(start_paused = true)]
    async fn persists_the_report_and_survives_write_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("health.json");
        let registry = HealthRegistry::builder().persist_to(&path).build().unwrap();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        registry.register(&breaker, true).unwrap();
        let monitor = registry.spawn_monitor();
        sleep(Duration::from_millis(100)).await;
        let read = || -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
        };
        let mut tries = 0;
        while !path.exists() && tries < 100 {
            sleep(Duration::from_millis(10)).await;
            tries += 1;
        }
        assert_eq!(read()["status"], "pass");
        breaker.set("open", HealthStatus::Fail);
        sleep(Duration::from_secs(1)).await;
        assert_eq!(
            read()["checks"]["payments:state"][0]["observedValue"],
            "open"
        );

        // The directory disappears: writes fail, are logged, and the monitor keeps going.
        let keep = path.clone();
        drop(dir);
        sleep(Duration::from_secs(3)).await;
        assert!(monitor.is_running());
        assert!(!keep.exists());
        assert_eq!(registry.liveness(), HealthStatus::Pass);
    }
}
