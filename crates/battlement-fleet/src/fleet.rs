//! The fleet handle: the Redis connection behind a bounded wait and a guard breaker, the
//! replica's identity, and the coordination component's health.

use crate::config::FleetBuilder;
use crate::error::FleetError;
use battlement_breaker::{CircuitBreaker, State};
use battlement_core::stripe::StripedCounter;
use battlement_core::{
    ComponentKind, FailureKind, Finish, HealthSnapshot, HealthSource, HealthStatus, Metric, Outcome,
};
use redis::aio::ConnectionManager;
use redis::RedisResult;
use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A replica's connection to the fleet: Redis, reached through a bounded wait and a breaker of
/// battlement's own, this replica's id, and the coordination component's health.
///
/// The handle is cheap to clone (an `Arc` inside). The parts of the fleet are built on it:
/// [`GlobalRateLimit`](crate::GlobalRateLimit), [`FleetKillSwitch`](crate::FleetKillSwitch),
/// [`RedisStore`](crate::RedisStore) and [`SharedBreaker`](crate::SharedBreaker).
///
/// - Every command waits at most [`command_timeout`](FleetBuilder::command_timeout); the
///   guard breaker opens after consecutive failures, and a monitor task pings Redis every
///   [`check_interval`](FleetBuilder::check_interval): while Redis is unreachable, commands
///   are not sent at all (an outage costs one bounded wait, then none) and each part decides
///   locally.
/// - Health ([`HealthSource`], kind `other`, named after the fleet): `pass` while Redis
///   answers, `warn` (not `fail`: the replica still serves) while it does not. The connection
///   comes back by itself.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_fleet::Fleet;
/// use std::time::Duration;
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/")
///     .replica_id("gw-1")
///     .command_timeout(Duration::from_millis(5))
///     .build()
///     .unwrap();
/// assert_eq!(fleet.replica_id(), "gw-1");
/// # }
/// ```
#[derive(Clone)]
pub struct Fleet {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) name: Arc<str>,
    pub(crate) replica: Arc<str>,
    pub(crate) prefix: Arc<str>,
    pub(crate) client: redis::Client,
    conn: ConnectionManager,
    pub(crate) timeout: Duration,
    pub(crate) check_interval: Duration,
    guard: CircuitBreaker,
    commands: StripedCounter,
    failures: AtomicU64,
    reachable: AtomicBool,
    /// Bumped each time Redis answers again after an outage (and once at the first answer).
    reconnects: watch::Sender<u64>,
    last_error: Mutex<Option<String>>,
    /// The shared breaker views, for the health details.
    pub(crate) views: Mutex<Vec<Weak<crate::quorum::ViewInner>>>,
    monitor: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Fleet {
    /// Starts building a fleet connection to the Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> FleetBuilder {
        FleetBuilder::new(url)
    }

    pub(crate) fn from_parts(
        b: FleetBuilder,
        client: redis::Client,
    ) -> Result<Self, redis::RedisError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(b.connect_timeout))
            .set_response_timeout(Some(b.command_timeout.max(b.connect_timeout)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let guard = CircuitBreaker::builder(format!("{}-redis", b.name))
            .consecutive_failures(b.failures_to_open)
            .fixed_open_wait(b.check_interval)
            .build()
            .expect("the guard's settings are valid");
        let (reconnects, _) = watch::channel(0);
        let fleet = Fleet {
            inner: Arc::new(Inner {
                name: b.name.into(),
                replica: b.replica.into(),
                prefix: b.prefix.into(),
                client,
                conn,
                timeout: b.command_timeout,
                check_interval: b.check_interval,
                guard,
                commands: StripedCounter::new(),
                failures: AtomicU64::new(0),
                reachable: AtomicBool::new(false),
                reconnects,
                last_error: Mutex::new(Some("not connected yet".into())),
                views: Mutex::new(Vec::new()),
                monitor: Mutex::new(None),
            }),
        };
        let monitor = tokio::spawn(monitor(Arc::downgrade(&fleet.inner)));
        *lock(&fleet.inner.monitor) = Some(monitor);
        Ok(fleet)
    }

    /// The fleet's name (the health component's name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.inner.replica
    }

    /// The prefix of every Redis key and channel the fleet uses (default `battlement`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The longest any command waits for Redis.
    pub fn command_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Whether Redis answered the last check (or command).
    pub fn is_reachable(&self) -> bool {
        self.inner.reachable.load(Relaxed)
    }

    /// Commands sent to Redis by this replica so far (each script run, read, write and ping of
    /// the parts; not the pub/sub connections' messages).
    pub fn commands(&self) -> u64 {
        self.inner.commands.sum()
    }

    /// Commands that failed or timed out.
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Relaxed)
    }

    /// Waits until Redis answers (the monitor's next successful check), at most `within`;
    /// returns whether it does.
    pub async fn wait_reachable(&self, within: Duration) -> bool {
        let mut rx = self.inner.reconnects.subscribe();
        let wait = async {
            while !self.is_reachable() {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(within, wait).await.unwrap_or(false)
    }

    /// A receiver that changes each time Redis answers again after an outage.
    pub(crate) fn reconnects(&self) -> watch::Receiver<u64> {
        self.inner.reconnects.subscribe()
    }

    /// A key of the fleet: `{<prefix>:<kind>:<name>}` (a Redis Cluster hash tag: every key of
    /// one component lands on one slot).
    pub(crate) fn key(&self, kind: &str, name: &str) -> String {
        format!("{{{}:{kind}:{name}}}", self.inner.prefix)
    }

    /// Runs one Redis operation behind the guard breaker and the command timeout.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, FleetError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let inner = &*self.inner;
        let guard = inner
            .guard
            .try_call()
            .map_err(|_| FleetError::Unavailable)?;
        inner.commands.increment();
        match tokio::time::timeout(inner.timeout, op(inner.conn.clone())).await {
            Ok(Ok(v)) => {
                guard.finish(Outcome::Success);
                Ok(v)
            }
            Ok(Err(e)) => {
                let kind =
                    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                        FailureKind::Connection
                    } else {
                        FailureKind::ServerError
                    };
                guard.finish(Outcome::Failure(kind));
                inner.failed(e.to_string());
                Err(FleetError::Redis(e.to_string()))
            }
            Err(_) => {
                guard.finish(Outcome::Failure(FailureKind::Timeout));
                inner.failed(format!("no answer within {:?}", inner.timeout));
                Err(FleetError::Timeout(inner.timeout))
            }
        }
    }

    /// The health snapshot's state words.
    fn state(&self) -> (&'static str, HealthStatus) {
        let up = self.is_reachable() && self.inner.guard.state() == State::Closed;
        if up {
            ("connected", HealthStatus::Pass)
        } else {
            ("unreachable", HealthStatus::Warn)
        }
    }
}

impl Inner {
    fn failed(&self, why: String) {
        self.failures.fetch_add(1, Relaxed);
        *lock(&self.last_error) = Some(why);
    }
}

/// Pings Redis every check interval: marks it reachable or not, opens the guard while it is
/// not (so no call waits on it), and on its return closes the guard and tells the parts (the
/// kill switch re-reads its key, the store writes what it queued).
async fn monitor(fleet: Weak<Inner>) {
    let mut tick = tokio::time::interval(match fleet.upgrade() {
        Some(f) => f.check_interval,
        None => return,
    });
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = fleet.upgrade() else { return };
        let mut conn = inner.conn.clone();
        inner.commands.increment();
        let ping = tokio::time::timeout(
            inner.timeout.max(Duration::from_millis(50)),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        let ok = matches!(ping, Ok(Ok(_)));
        let was = inner.reachable.swap(ok, Relaxed);
        if ok && !was {
            inner.guard.reset();
            *lock(&inner.last_error) = None;
            tracing::info!(fleet = %inner.name, replica = %inner.replica, "redis reachable");
            inner.reconnects.send_modify(|n| *n += 1);
        } else if !ok {
            let why = match ping {
                Ok(Err(e)) => e.to_string(),
                _ => "ping timed out".to_owned(),
            };
            if was {
                tracing::warn!(fleet = %inner.name, replica = %inner.replica, error = %why, "redis unreachable; deciding locally");
            }
            inner.failed(why);
            if inner.guard.state() != State::ForcedOpen {
                inner.guard.force_open("redis unreachable");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.monitor).take() {
            task.abort();
        }
    }
}

impl Fleet {
    /// The shared breaker views alive now.
    pub(crate) fn views(&self) -> Vec<Arc<crate::quorum::ViewInner>> {
        lock(&self.inner.views)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

impl HealthSource for Fleet {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Other
    }

    fn snapshot(&self) -> HealthSnapshot {
        let (state, status) = self.state();
        let mut snap = HealthSnapshot::new(&*self.inner.name, ComponentKind::Other, state, status)
            .with_metric(Metric::unitless(
                "reachable",
                f64::from(u8::from(self.is_reachable())),
            ))
            .with_metric(Metric::calls("commands", self.commands()))
            .with_metric(Metric::calls("failures", self.failures()));
        for view in self.views() {
            let v = view.view();
            snap = snap
                .with_metric(Metric::unitless(
                    format!("breaker.{}.replicas_live", v.breaker),
                    v.replicas.len() as f64,
                ))
                .with_metric(Metric::unitless(
                    format!("breaker.{}.replicas_open", v.breaker),
                    v.open() as f64,
                ));
        }
        let mut message = format!("replica {}", self.inner.replica);
        if let Some(e) = &*lock(&self.inner.last_error) {
            message.push_str(&format!("; redis: {e}"));
        }
        snap.with_message(message)
    }

    fn export(&self, out: &mut dyn battlement_core::export::MetricsVisitor) {
        self.export_to(out);
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("name", &self.inner.name)
            .field("replica", &self.inner.replica)
            .field("reachable", &self.is_reachable())
            .finish_non_exhaustive()
    }
}
