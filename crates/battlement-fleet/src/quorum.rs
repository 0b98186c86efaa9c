//! The shared breaker view: replicas publish their breakers' states with a heartbeat, and a
//! replica opens its own breaker only when a quorum of live replicas report it open.

use crate::fleet::{lock, Fleet};
use battlement_breaker::{BreakerEvent, CircuitBreaker, State, TransitionReason};
use battlement_core::{ComponentKind, ConfigError};
use futures_util::StreamExt;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// Writes a replica's report (`state|own|expiry_us`, Redis' clock) and announces it.
const REPORT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. string.format('%.0f', now + tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[4]) / 1000) + 1000)
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
";

/// The live reports (expired ones are removed): `{replica, state, own, …}`.
const VIEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local state, own, exp = string.match(all[i + 1], '^([^|]*)|([^|]*)|([^|]*)$')
  if exp and tonumber(exp) > now then
    table.insert(out, all[i]); table.insert(out, state); table.insert(out, own)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
";

fn script(which: &'static str) -> &'static redis::Script {
    static REPORT_S: OnceLock<redis::Script> = OnceLock::new();
    static VIEW_S: OnceLock<redis::Script> = OnceLock::new();
    if which == "report" {
        REPORT_S.get_or_init(|| redis::Script::new(REPORT))
    } else {
        VIEW_S.get_or_init(|| redis::Script::new(VIEW))
    }
}

/// How many live replicas must report a breaker open (from their own window, or forced by an
/// operator) before the others open theirs. Always at least 2: one replica alone never opens
/// the others.
///
/// ```
/// use battlement_fleet::Quorum;
///
/// assert_eq!(Quorum::Count(2).needed(3), 2);
/// assert_eq!(Quorum::Share(0.5).needed(5), 3); // half of 5, rounded up
/// assert_eq!(Quorum::Share(0.1).needed(3), 2); // never fewer than 2
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quorum {
    /// At least this many replicas.
    Count(u32),
    /// At least this share of the live replicas (rounded up), in (0, 1].
    Share(f64),
}

impl Quorum {
    /// Replicas needed when `live` replicas report.
    pub fn needed(self, live: usize) -> usize {
        let n = match self {
            Quorum::Count(n) => n as usize,
            Quorum::Share(s) => (s * live as f64).ceil() as usize,
        };
        n.max(2)
    }
}

/// One replica's report of a breaker.
///
/// ```
/// use battlement_fleet::ReplicaReport;
///
/// let r = ReplicaReport { replica: "gw-1".into(), state: "open".into(), own: true };
/// assert!(r.counts_as_open());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The replica's id.
    pub replica: String,
    /// The breaker's state there ([`State::as_str`]).
    pub state: String,
    /// Whether that state is the replica's own finding (its window tripped, or an operator
    /// forced it), not a fleet quorum's or a restored one.
    pub own: bool,
}

impl ReplicaReport {
    /// Whether it counts toward the quorum: open or forced open, of its own finding.
    pub fn counts_as_open(&self) -> bool {
        self.own && (self.state == "open" || self.state == "forced_open")
    }
}

/// The fleet's view of one breaker: the live replicas' reports.
///
/// ```
/// use battlement_fleet::{FleetView, ReplicaReport};
///
/// let view = FleetView {
///     breaker: "db".into(),
///     replicas: vec![ReplicaReport { replica: "a".into(), state: "open".into(), own: true }],
/// };
/// assert_eq!(view.open(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FleetView {
    /// The breaker's name.
    pub breaker: String,
    /// The live replicas' reports (this replica's included).
    pub replicas: Vec<ReplicaReport>,
}

impl FleetView {
    /// How many live replicas report it open of their own finding.
    pub fn open(&self) -> usize {
        self.replicas.iter().filter(|r| r.counts_as_open()).count()
    }
}

/// A breaker whose state is shared with the fleet: this replica publishes its transitions (with
/// its replica id) and a heartbeat that expires, and opens its breaker (for its own next open
/// wait, [`CircuitBreaker::trip`]) when at least a [`Quorum`] of the live replicas report the
/// same breaker open of their own finding. A breaker opened by the quorum is reported as not
/// its own finding, so the quorum does not feed itself; one replica alone never opens the
/// others. The view is in [`view`](Self::view) and in the fleet's health details and metrics.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_breaker::CircuitBreaker;
/// use battlement_fleet::{Fleet, Quorum, SharedBreaker};
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/").build().unwrap();
/// let breaker = CircuitBreaker::builder("db").build().unwrap();
/// let shared = SharedBreaker::builder(&fleet, &breaker).quorum(Quorum::Count(2)).build().unwrap();
/// println!("{:?}", shared.view());
/// # }
/// ```
#[derive(Clone)]
pub struct SharedBreaker {
    inner: Arc<ViewInner>,
}

pub(crate) struct ViewInner {
    fleet: Fleet,
    breaker: CircuitBreaker,
    key: String,
    quorum: Quorum,
    heartbeat: Duration,
    /// Whether this replica's breaker state is its own finding.
    own: AtomicBool,
    view: Mutex<FleetView>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Settings of a [`SharedBreaker`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_breaker::CircuitBreaker;
/// use battlement_fleet::{Fleet, Quorum, SharedBreaker};
///
/// let fleet = Fleet::builder("redis://127.0.0.1:1/").build().unwrap();
/// let breaker = CircuitBreaker::builder("db").build().unwrap();
/// let err = SharedBreaker::builder(&fleet, &breaker).quorum(Quorum::Count(1)).build().unwrap_err();
/// assert_eq!(err.setting(), "quorum");
/// # }
/// ```
#[derive(Debug)]
pub struct SharedBreakerBuilder {
    fleet: Fleet,
    breaker: CircuitBreaker,
    quorum: Quorum,
    heartbeat: Duration,
}

impl SharedBreakerBuilder {
    /// The quorum (default: [`Quorum::Share`] of one half).
    pub fn quorum(mut self, quorum: Quorum) -> Self {
        self.quorum = quorum;
        self
    }

    /// How often this replica refreshes its report (default 1 s); a report expires after three
    /// heartbeats, so a replica that died stops counting.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Starts sharing (a task on the current tokio runtime, stopped when the last handle is
    /// dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn build(self) -> Result<SharedBreaker, ConfigError> {
        let err = |setting, value: &dyn fmt::Debug, why| {
            ConfigError::scoped(
                ComponentKind::CircuitBreaker,
                self.breaker.name(),
                setting,
                format!("{value:?}"),
                why,
            )
        };
        match self.quorum {
            Quorum::Count(n) if n < 2 => {
                return Err(err(
                    "quorum",
                    &self.quorum,
                    "must be at least 2: one replica alone never opens the others",
                ))
            }
            Quorum::Share(s) if !(s > 0.0 && s <= 1.0) => {
                return Err(err("quorum", &self.quorum, "a share must be in (0, 1]"))
            }
            _ => {}
        }
        if self.heartbeat.is_zero() {
            return Err(err(
                "heartbeat",
                &self.heartbeat,
                "must be greater than zero",
            ));
        }
        let key = self.fleet.key("fv", self.breaker.name());
        let inner = Arc::new(ViewInner {
            view: Mutex::new(FleetView {
                breaker: self.breaker.name().to_owned(),
                replicas: Vec::new(),
            }),
            own: AtomicBool::new(true),
            fleet: self.fleet,
            breaker: self.breaker,
            key,
            quorum: self.quorum,
            heartbeat: self.heartbeat,
            task: Mutex::new(None),
        });
        lock(&inner.fleet.inner.views).push(Arc::downgrade(&inner));
        let task = tokio::spawn(share(Arc::downgrade(&inner)));
        *lock(&inner.task) = Some(task);
        Ok(SharedBreaker { inner })
    }
}

impl SharedBreaker {
    /// Starts building the sharing of `breaker` on `fleet`.
    pub fn builder(fleet: &Fleet, breaker: &CircuitBreaker) -> SharedBreakerBuilder {
        SharedBreakerBuilder {
            fleet: fleet.clone(),
            breaker: breaker.clone(),
            quorum: Quorum::Share(0.5),
            heartbeat: Duration::from_secs(1),
        }
    }

    /// The fleet's view of the breaker, as last read.
    pub fn view(&self) -> FleetView {
        self.inner.view()
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// The quorum.
    pub fn quorum(&self) -> Quorum {
        self.inner.quorum
    }
}

impl ViewInner {
    pub(crate) fn view(&self) -> FleetView {
        lock(&self.view).clone()
    }

    async fn report(&self) {
        let state = self.breaker.state();
        let own = self.own.load(Relaxed);
        let (key, replica) = (self.key.clone(), self.fleet.replica_id().to_owned());
        let ttl_us = u64::try_from((self.heartbeat * 3).as_micros()).unwrap_or(u64::MAX / 4);
        let _ = self
            .fleet
            .run(|mut conn| async move {
                script("report")
                    .key(&key)
                    .arg(&replica)
                    .arg(state.as_str())
                    .arg(u8::from(own))
                    .arg(ttl_us)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
    }

    async fn evaluate(&self) {
        let key = self.key.clone();
        let Ok(raw) = self
            .fleet
            .run(|mut conn| async move {
                script("view")
                    .key(&key)
                    .invoke_async::<Vec<String>>(&mut conn)
                    .await
            })
            .await
        else {
            return; // Redis unreachable: keep the last view and the breaker as it is.
        };
        let replicas: Vec<ReplicaReport> = raw
            .chunks_exact(3)
            .map(|c| ReplicaReport {
                replica: c[0].clone(),
                state: c[1].clone(),
                own: c[2] == "1",
            })
            .collect();
        let me = self.fleet.replica_id();
        let open_elsewhere = replicas
            .iter()
            .filter(|r| r.replica != me && r.counts_as_open())
            .count();
        let needed = self.quorum.needed(replicas.len());
        let live = replicas.len();
        lock(&self.view).replicas = replicas;
        if open_elsewhere >= needed && self.breaker.state() == State::Closed {
            tracing::warn!(
                breaker = %self.breaker.name(),
                replica = %me,
                open_elsewhere,
                live,
                needed,
                "fleet quorum reports the breaker open; opening it here"
            );
            self.breaker.trip(format!(
                "fleet quorum: {open_elsewhere} of {live} replicas report it open"
            ));
        }
    }
}

/// Publishes transitions and heartbeats, and evaluates the quorum on every announcement and
/// heartbeat.
async fn share(this: std::sync::Weak<ViewInner>) {
    let Some(first) = this.upgrade() else { return };
    let client = first.fleet.inner.client.clone();
    let channel = first.key.clone();
    let heartbeat = first.heartbeat;
    let retry = first.fleet.inner.check_interval;
    let connect_within = first.fleet.inner.timeout.max(Duration::from_millis(200));
    let mut events = first.breaker.subscribe();
    let mut reconnects = first.fleet.reconnects();
    drop(first);
    loop {
        let subscribed = tokio::time::timeout(connect_within, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let mut pubsub = match subscribed {
            Ok(Ok(p)) => p,
            _ => {
                if this.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        let mut messages = pubsub.on_message();
        let mut tick = tokio::time::interval(heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(inner) = this.upgrade() else { return };
                    match event {
                        Ok(BreakerEvent::StateTransition { to, reason, .. }) => {
                            let own = !matches!((to, reason), (State::Open, TransitionReason::External(_)));
                            inner.own.store(own, Relaxed);
                            inner.report().await;
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
                msg = messages.next() => {
                    let Some(inner) = this.upgrade() else { return };
                    if msg.is_none() {
                        break; // the subscription broke: subscribe again
                    }
                    inner.evaluate().await;
                }
                _ = tick.tick() => {
                    let Some(inner) = this.upgrade() else { return };
                    inner.report().await;
                    inner.evaluate().await;
                }
                changed = reconnects.changed() => {
                    if changed.is_err() { return; }
                    break;
                }
            }
        }
    }
}

impl Drop for ViewInner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl fmt::Debug for SharedBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreaker")
            .field("breaker", &self.inner.breaker.name())
            .field("quorum", &self.inner.quorum)
            .field("view", &self.view())
            .finish()
    }
}
