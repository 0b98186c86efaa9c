//! The fleet kill switch: a halt written to a Redis key and announced on a channel, followed by
//! every replica's local kill switch.

use crate::error::FleetError;
use crate::fleet::{lock, Fleet};
use battlement_kill_switch::KillSwitch;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// A fleet-wide halt as stored in Redis: why, who, and when.
///
/// ```
/// use battlement_fleet::FleetHalt;
///
/// let halt = FleetHalt::new("bad deploy", "alice");
/// assert_eq!((halt.reason.as_str(), halt.who.as_str()), ("bad deploy", "alice"));
/// assert!(halt.since_unix_ms > 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetHalt {
    /// Why the fleet was halted.
    pub reason: String,
    /// Who halted it (an operator, a replica id).
    pub who: String,
    /// When, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
}

impl FleetHalt {
    /// A halt now.
    pub fn new(reason: impl Into<String>, who: impl Into<String>) -> Self {
        FleetHalt {
            reason: reason.into(),
            who: who.into(),
            since_unix_ms: unix_ms(SystemTime::now()),
        }
    }

    fn local_reason(&self) -> String {
        format!("{} (fleet halt by {})", self.reason, self.who)
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A kill switch for the whole fleet: [`halt`](Self::halt) writes the halt (reason, who, time)
/// to the Redis key `{<prefix>:ks:<switch>}` and announces it on the channel of the same name;
/// every replica's [`FleetKillSwitch`] makes its local [`KillSwitch`] follow, within the time a
/// pub/sub message takes (and at most [`resync`](FleetKillSwitchBuilder::resync) later, when a
/// message is lost).
///
/// - A replica re-reads the key when it starts and whenever its subscription (re)connects, so
///   a message missed during an outage cannot leave it running; a replica started after a halt
///   starts halted.
/// - While Redis is unreachable the local switch keeps its last known state; a local manual
///   halt ([`KillSwitch::halt`] on [`switch`](Self::switch)) works without Redis, and a fleet
///   resume does not lift it (only halts the fleet made are lifted by the fleet).
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_fleet::{Fleet, FleetKillSwitch};
/// use battlement_kill_switch::KillSwitch;
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/").build().unwrap();
/// let switch = KillSwitch::builder("trading").build().unwrap();
/// let fleet_switch = FleetKillSwitch::builder(&fleet, &switch).build().unwrap();
/// fleet_switch.halt("exchange outage", "alice").await.unwrap();
/// assert!(switch.is_halted()); // here at once; on the other replicas within a second
/// fleet_switch.resume().await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct FleetKillSwitch {
    inner: Arc<Inner>,
}

struct Inner {
    fleet: Fleet,
    switch: KillSwitch,
    key: String,
    /// Whether the local switch's halt came from the fleet (so a fleet resume may lift it).
    fleet_halted: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Settings of a [`FleetKillSwitch`].
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_fleet::{Fleet, FleetKillSwitch};
/// use battlement_kill_switch::KillSwitch;
/// use std::time::Duration;
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/").build().unwrap();
/// let switch = KillSwitch::builder("trading").build().unwrap();
/// let err = FleetKillSwitch::builder(&fleet, &switch).resync(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.setting(), "resync");
/// # }
/// ```
#[derive(Debug)]
pub struct FleetKillSwitchBuilder {
    fleet: Fleet,
    switch: KillSwitch,
    resync: Duration,
}

impl FleetKillSwitchBuilder {
    /// How often the key is re-read besides the messages and reconnections (default 5 s): the
    /// longest a lost message can go unnoticed.
    pub fn resync(mut self, every: Duration) -> Self {
        self.resync = every;
        self
    }

    /// Builds the fleet switch and starts following the fleet (a task on the current tokio
    /// runtime, stopped when the last handle is dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn build(self) -> Result<FleetKillSwitch, battlement_core::ConfigError> {
        if self.resync.is_zero() {
            return Err(battlement_core::ConfigError::scoped(
                battlement_core::ComponentKind::KillSwitch,
                self.switch.name(),
                "resync",
                self.resync,
                "must be greater than zero",
            ));
        }
        let key = self.fleet.key("ks", self.switch.name());
        let inner = Arc::new(Inner {
            fleet: self.fleet,
            switch: self.switch,
            key,
            fleet_halted: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(follow(Arc::downgrade(&inner), self.resync));
        *lock(&inner.task) = Some(task);
        Ok(FleetKillSwitch { inner })
    }
}

impl FleetKillSwitch {
    /// Starts building a fleet switch that makes `switch` follow the fleet's halts.
    pub fn builder(fleet: &Fleet, switch: &KillSwitch) -> FleetKillSwitchBuilder {
        FleetKillSwitchBuilder {
            fleet: fleet.clone(),
            switch: switch.clone(),
            resync: Duration::from_secs(5),
        }
    }

    /// The local switch that follows the fleet.
    pub fn switch(&self) -> &KillSwitch {
        &self.inner.switch
    }

    /// Halts the whole fleet: writes the halt to Redis, announces it, and halts the local
    /// switch at once. Fails (changing nothing in the fleet, but still halting locally) when
    /// Redis cannot be reached.
    pub async fn halt(
        &self,
        reason: impl Into<String>,
        who: impl Into<String>,
    ) -> Result<(), FleetError> {
        let halt = FleetHalt::new(reason, who);
        self.inner.apply(Some(&halt));
        let payload = serde_json::to_string(&halt).expect("a halt serialises");
        let key = self.inner.key.clone();
        self.inner
            .fleet
            .run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .set(&key, &payload)
                    .ignore()
                    .publish(&key, &payload)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
    }

    /// Lifts the fleet's halt: deletes the key, announces it, and resumes the local switch if
    /// its halt came from the fleet.
    pub async fn resume(&self) -> Result<(), FleetError> {
        let key = self.inner.key.clone();
        let result = self
            .inner
            .fleet
            .run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .del(&key)
                    .ignore()
                    .publish(&key, "resume")
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        if result.is_ok() {
            self.inner.apply(None);
        }
        result
    }

    /// The fleet's halt as Redis has it now (`None`: running).
    pub async fn fleet_halt(&self) -> Result<Option<FleetHalt>, FleetError> {
        self.inner.read().await
    }

    /// Re-reads the key now and makes the local switch follow it.
    pub async fn sync(&self) -> Result<(), FleetError> {
        let halt = self.inner.read().await?;
        self.inner.apply(halt.as_ref());
        Ok(())
    }
}

impl Inner {
    async fn read(&self) -> Result<Option<FleetHalt>, FleetError> {
        let key = self.key.clone();
        let raw: Option<String> = self
            .fleet
            .run(|mut conn| async move { redis::cmd("GET").arg(&key).query_async(&mut conn).await })
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Makes the local switch follow the fleet's state.
    fn apply(&self, halt: Option<&FleetHalt>) {
        match halt {
            Some(halt) => {
                if self.switch.halt(halt.local_reason()) {
                    self.fleet_halted.store(true, Release);
                }
            }
            None => {
                if self.fleet_halted.load(Acquire) && self.switch.resume() {
                    self.fleet_halted.store(false, Release);
                }
            }
        }
    }

    fn apply_message(&self, payload: &str) {
        if payload == "resume" {
            self.apply(None);
        } else if let Ok(halt) = serde_json::from_str::<FleetHalt>(payload) {
            self.apply(Some(&halt));
        }
    }
}

/// Follows the fleet: subscribes to the channel, re-reads the key at every (re)connection, on
/// the fleet's reconnections and every `resync`; keeps the last state while Redis is gone.
async fn follow(this: Weak<Inner>, resync: Duration) {
    let Some(first) = this.upgrade() else { return };
    let client = first.fleet.inner.client.clone();
    let channel = first.key.clone();
    let connect_within = first.fleet.inner.timeout.max(Duration::from_millis(200));
    let retry = first.fleet.inner.check_interval;
    let mut reconnects = first.fleet.reconnects();
    drop(first);
    loop {
        let subscribed = tokio::time::timeout(connect_within, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let Ok(Ok(mut pubsub)) = subscribed else {
            if this.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(retry).await;
            continue;
        };
        // Subscribed: whatever was missed is in the key.
        {
            let Some(inner) = this.upgrade() else { return };
            if let Ok(halt) = inner.read().await {
                inner.apply(halt.as_ref());
            }
        }
        let mut messages = pubsub.on_message();
        let mut tick = tokio::time::interval(resync);
        tick.tick().await;
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { break };
                    let Some(inner) = this.upgrade() else { return };
                    if let Ok(payload) = msg.get_payload::<String>() {
                        inner.apply_message(&payload);
                    }
                }
                _ = tick.tick() => {
                    let Some(inner) = this.upgrade() else { return };
                    if let Ok(halt) = inner.read().await {
                        inner.apply(halt.as_ref());
                    }
                }
                changed = reconnects.changed() => {
                    if changed.is_err() { return; }
                    // Redis came back: the subscription may be stale; start over.
                    break;
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl fmt::Debug for FleetKillSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetKillSwitch")
            .field("switch", &self.inner.switch)
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}
