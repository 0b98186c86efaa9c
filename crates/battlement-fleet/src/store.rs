//! Breaker state that survives a restart: a store trait, an atomic file store, a Redis store,
//! and the task that saves a breaker's transitions off the call path.

use crate::error::FleetError;
use crate::fleet::{lock, Fleet};
use crate::kill_switch::unix_ms;
use battlement_breaker::{BreakerEvent, CircuitBreaker, State, TransitionReason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// A boxed future of a store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A breaker's state as saved: what it was and, when open, until when (wall-clock time, so it
/// means the same after a restart).
///
/// ```
/// use battlement_fleet::SavedState;
///
/// let saved = SavedState::open_until_unix_ms(1_700_000_000_000);
/// assert_eq!(saved.state, "open");
/// let json = serde_json::to_string(&saved).unwrap();
/// assert_eq!(serde_json::from_str::<SavedState>(&json).unwrap(), saved);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    /// The state's name ([`State::as_str`]): `closed`, `open`, `half_open`, `forced_open`,
    /// `disabled`.
    pub state: String,
    /// For `open`, and `forced_open` for a time: when it ends, in milliseconds since the Unix
    /// epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_unix_ms: Option<u64>,
    /// For `forced_open`: the operator's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SavedState {
    /// An open state that ends at `until` (ms since the Unix epoch).
    pub fn open_until_unix_ms(until: u64) -> Self {
        SavedState {
            state: State::Open.as_str().to_owned(),
            until_unix_ms: Some(until),
            reason: None,
        }
    }

    /// The state a transition leads to, as saved.
    fn of(to: State, reason: &TransitionReason, open_for: Option<Duration>) -> Self {
        let until = open_for.map(|d| unix_ms(SystemTime::now() + d));
        SavedState {
            state: to.as_str().to_owned(),
            until_unix_ms: until,
            reason: match (to, reason) {
                (State::ForcedOpen, TransitionReason::Forced(r)) => Some(r.to_string()),
                _ => None,
            },
        }
    }

    /// Puts `breaker` back in this state: open for the rest of its wait only (nothing if it
    /// has passed), forced open as it was (for the rest of its time, if it had one), disabled
    /// if it was. Closed and half-open leave the breaker as built. Returns whether it changed
    /// the breaker.
    pub fn restore(&self, breaker: &CircuitBreaker) -> bool {
        let now = unix_ms(SystemTime::now());
        let remaining = self
            .until_unix_ms
            .map(|until| Duration::from_millis(until.saturating_sub(now)));
        match (self.state.as_str(), remaining) {
            ("open", Some(left)) if !left.is_zero() => {
                breaker.restore_open("restored after restart", left);
                true
            }
            ("forced_open", None) => {
                breaker.force_open(self.reason.clone().unwrap_or_else(|| "restored".into()));
                true
            }
            ("forced_open", Some(left)) if !left.is_zero() => {
                breaker.force_open_for(
                    self.reason.clone().unwrap_or_else(|| "restored".into()),
                    left,
                );
                true
            }
            ("disabled", _) => {
                breaker.disable();
                true
            }
            _ => false,
        }
    }
}

/// Why a store could not load or save.
///
/// ```
/// use battlement_fleet::StoreError;
///
/// let err = StoreError::new("disk full");
/// assert_eq!(err.to_string(), "breaker state store: disk full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(String);

impl StoreError {
    /// An error saying `why`.
    pub fn new(why: impl Into<String>) -> Self {
        StoreError(why.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "breaker state store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<FleetError> for StoreError {
    fn from(e: FleetError) -> Self {
        StoreError(e.to_string())
    }
}

/// Where breaker states are saved, by breaker name. [`FileStore`] (the default: one JSON file,
/// replaced atomically) and [`RedisStore`] implement it.
///
/// ```
/// use battlement_fleet::{SavedState, StateStore, StoreError, StoreFuture};
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// #[derive(Default)]
/// struct Memory(Mutex<HashMap<String, SavedState>>);
///
/// impl StateStore for Memory {
///     fn load<'a>(&'a self, breaker: &'a str) -> StoreFuture<'a, Option<SavedState>> {
///         Box::pin(async move { Ok(self.0.lock().unwrap().get(breaker).cloned()) })
///     }
///     fn save<'a>(&'a self, breaker: &'a str, state: &'a SavedState) -> StoreFuture<'a, ()> {
///         Box::pin(async move {
///             self.0.lock().unwrap().insert(breaker.to_owned(), state.clone());
///             Ok(())
///         })
///     }
/// }
/// ```
pub trait StateStore: Send + Sync + 'static {
    /// The saved state of `breaker`, if any.
    fn load<'a>(&'a self, breaker: &'a str) -> StoreFuture<'a, Option<SavedState>>;
    /// Saves `state` as `breaker`'s.
    fn save<'a>(&'a self, breaker: &'a str, state: &'a SavedState) -> StoreFuture<'a, ()>;
}

/// Saves breaker states in one JSON file (an object by breaker name), replaced atomically: each
/// save writes a temporary file beside it and renames it over the old one, so a crash leaves
/// either the old file or the new, never half of one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_fleet::{FileStore, SavedState, StateStore};
///
/// let path = std::env::temp_dir().join(format!("battlement-doc-{}.json", std::process::id()));
/// let store = FileStore::new(&path);
/// store.save("db", &SavedState::open_until_unix_ms(42)).await.unwrap();
/// assert_eq!(store.load("db").await.unwrap().unwrap().until_unix_ms, Some(42));
/// # std::fs::remove_file(&path).unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    /// Serialises this process's read-modify-write of the file (off the call path).
    write: tokio::sync::Mutex<()>,
}

impl FileStore {
    /// A store in the file at `path` (created at the first save).
    pub fn new(path: impl AsRef<Path>) -> Self {
        FileStore {
            path: path.as_ref().to_path_buf(),
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read_all(&self) -> Result<BTreeMap<String, SavedState>, StoreError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError(format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StoreError(format!("{}: {e}", self.path.display()))),
        }
    }
}

impl StateStore for FileStore {
    fn load<'a>(&'a self, breaker: &'a str) -> StoreFuture<'a, Option<SavedState>> {
        Box::pin(async move { Ok(self.read_all().await?.remove(breaker)) })
    }

    fn save<'a>(&'a self, breaker: &'a str, state: &'a SavedState) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _one_writer = self.write.lock().await;
            let mut all = self.read_all().await?;
            all.insert(breaker.to_owned(), state.clone());
            let json = serde_json::to_vec_pretty(&all).expect("states serialise");
            let mut tmp = self.path.clone().into_os_string();
            tmp.push(".tmp");
            let io = |e: std::io::Error| StoreError(format!("{}: {e}", self.path.display()));
            tokio::fs::write(&tmp, &json).await.map_err(io)?;
            tokio::fs::rename(&tmp, &self.path).await.map_err(io)
        })
    }
}

/// Saves breaker states in Redis, one key per breaker: `{<prefix>:cb:<breaker>}`, through the
/// fleet's bounded wait. Replicas sharing a store name share the state: a replica restarted
/// (or a new one) comes back with the fleet's last saved state.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use battlement_fleet::{Fleet, RedisStore};
///
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/").build().unwrap();
/// let store = RedisStore::new(&fleet);
/// # let _ = store;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStore {
    fleet: Fleet,
}

impl RedisStore {
    /// A store on `fleet`'s Redis.
    pub fn new(fleet: &Fleet) -> Self {
        RedisStore {
            fleet: fleet.clone(),
        }
    }
}

impl StateStore for RedisStore {
    fn load<'a>(&'a self, breaker: &'a str) -> StoreFuture<'a, Option<SavedState>> {
        Box::pin(async move {
            let key = self.fleet.key("cb", breaker);
            let raw: Option<String> =
                self.fleet
                    .run(|mut conn| async move {
                        redis::cmd("GET").arg(&key).query_async(&mut conn).await
                    })
                    .await?;
            raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError(e.to_string())))
                .transpose()
        })
    }

    fn save<'a>(&'a self, breaker: &'a str, state: &'a SavedState) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = self.fleet.key("cb", breaker);
            let json = serde_json::to_string(state).expect("a state serialises");
            self.fleet
                .run(|mut conn| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&json)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await?;
            Ok(())
        })
    }
}

/// Keeps a breaker's state in a [`StateStore`]: restores it at start, then saves every
/// transition from a task (the breaker's event channel is the queue), never on the call path.
/// While the store fails (Redis unreachable), the latest unsaved state is kept and written
/// when the store works again (retried every [`retry`](Self::retry) interval). Dropping the
/// handle stops saving.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_breaker::{CircuitBreaker, State};
/// use battlement_fleet::{FileStore, PersistedBreaker};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let path = std::env::temp_dir().join(format!("battlement-persist-doc-{}.json", std::process::id()));
/// let store = Arc::new(FileStore::new(&path));
///
/// let breaker = CircuitBreaker::builder("db").build().unwrap();
/// let persisted = PersistedBreaker::start(&breaker, store.clone()).await.unwrap();
/// breaker.force_open("maintenance");
/// persisted.flush(Duration::from_secs(1)).await;
///
/// // After a restart: the breaker comes back forced open.
/// let again = CircuitBreaker::builder("db").build().unwrap();
/// let _p = PersistedBreaker::start(&again, store).await.unwrap();
/// assert_eq!(again.state(), State::ForcedOpen);
/// # std::fs::remove_file(&path).unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct PersistedBreaker {
    shared: Arc<Mutex<Progress>>,
    task: JoinHandle<()>,
    retry: Duration,
}

#[derive(Debug, Default)]
struct Progress {
    /// The latest state not yet saved.
    pending: Option<SavedState>,
    saved: u64,
    failures: u64,
}

impl PersistedBreaker {
    /// Restores `breaker` from `store` (if it has a state for it), then saves its transitions.
    /// Fails only when the store cannot be read; a breaker without a saved state is left as
    /// built.
    pub async fn start(
        breaker: &CircuitBreaker,
        store: Arc<dyn StateStore>,
    ) -> Result<Self, StoreError> {
        Self::start_with_retry(breaker, store, Duration::from_millis(250)).await
    }

    /// [`start`](Self::start), retrying a failed save every `retry`.
    pub async fn start_with_retry(
        breaker: &CircuitBreaker,
        store: Arc<dyn StateStore>,
        retry: Duration,
    ) -> Result<Self, StoreError> {
        let events = breaker.subscribe();
        if let Some(saved) = store.load(breaker.name()).await? {
            saved.restore(breaker);
        }
        let shared = Arc::new(Mutex::new(Progress::default()));
        let task = tokio::spawn(save_transitions(
            breaker.name().to_owned(),
            events,
            store,
            shared.clone(),
            retry.max(Duration::from_millis(1)),
        ));
        Ok(PersistedBreaker {
            shared,
            task,
            retry,
        })
    }

    /// The latest state not yet saved (while the store fails).
    pub fn pending(&self) -> Option<SavedState> {
        lock(&self.shared).pending.clone()
    }

    /// States saved so far.
    pub fn saved(&self) -> u64 {
        lock(&self.shared).saved
    }

    /// Failed saves so far.
    pub fn failures(&self) -> u64 {
        lock(&self.shared).failures
    }

    /// The retry interval of a failed save.
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// Waits (at most `within`) until every transition seen so far is saved; returns whether
    /// it is.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Let the task take the events already sent.
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if lock(&self.shared).pending.is_none() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
        }
    }
}

impl Drop for PersistedBreaker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn save_transitions(
    name: String,
    mut events: tokio::sync::broadcast::Receiver<BreakerEvent>,
    store: Arc<dyn StateStore>,
    shared: Arc<Mutex<Progress>>,
    retry: Duration,
) {
    let mut tick = tokio::time::interval(retry);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(BreakerEvent::StateTransition { to, reason, open_for, .. }) => {
                    lock(&shared).pending = Some(SavedState::of(to, &reason, open_for));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
        }
        let Some(state) = lock(&shared).pending.clone() else {
            continue;
        };
        match store.save(&name, &state).await {
            Ok(()) => {
                let mut p = lock(&shared);
                p.saved += 1;
                // A newer transition may have come meanwhile: keep it pending.
                if p.pending.as_ref() == Some(&state) {
                    p.pending = None;
                }
            }
            Err(e) => {
                lock(&shared).failures += 1;
                tracing::debug!(breaker = %name, error = %e, "breaker state not saved; will retry");
            }
        }
    }
}
