//! The dashboard's shared state, its builder and its background tasks.

use crate::control::Control;
use crate::event::Event;
use crate::snapshot::{self, Snapshot, Track};
use crate::sse::{self, DashboardBody, Live};
use battlement_core::{ComponentKind, ConfigError};
use battlement_health::HealthRegistry;
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

/// Who may use the controls: a check over the request.
pub(crate) type Authorize = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;

/// A task forwarding a component's events, started with the dashboard's tasks.
type Pump = Box<dyn FnOnce(Publisher) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The live dashboard: a `tower::Service<http::Request<B>>` serving one self-contained HTML
/// page and a Server-Sent Events stream of snapshots and events (see the [crate] docs for the
/// paths, the stream and how to mount it).
///
/// A cheap `Clone` handle: every clone is the same dashboard, with the same clients, events
/// and sparklines. Its background tasks (the sampler, and one per watched component) start
/// when it is built inside a tokio runtime, or else at its first request; they end when the
/// last clone is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_dashboard::Dashboard;
/// use battlement_health::HealthRegistry;
///
/// let registry = HealthRegistry::new();
/// let dashboard = Dashboard::builder(&registry).build().unwrap();
/// // Mount it: axum::Router::new().nest_service("/battlement", dashboard)
/// assert_eq!(dashboard.clients(), 0);
/// assert!(dashboard.snapshot().components.is_empty());
/// # }
/// ```
#[derive(Clone)]
pub struct Dashboard {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Settings {
    pub(crate) title: String,
    pub(crate) interval: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) retry: Duration,
    pub(crate) client_buffer: usize,
    pub(crate) recent_events: usize,
}

pub(crate) struct Shared {
    pub(crate) registry: HealthRegistry,
    pub(crate) settings: Settings,
    pub(crate) authorize: Option<Authorize>,
    pub(crate) controls: Vec<Control>,
    state: Mutex<State>,
    pub(crate) started: AtomicBool,
    pumps: Mutex<Vec<Pump>>,
    /// Dropped with the dashboard: the tasks waiting on it end.
    alive: watch::Sender<()>,
    /// Streams alive (bodies not yet dropped).
    pub(crate) streams: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    clients: Vec<mpsc::Sender<Bytes>>,
    recent: VecDeque<Event>,
    tracks: HashMap<(ComponentKind, String), Track>,
    latest: Option<(Arc<Snapshot>, Bytes)>,
    dropped_slow: u64,
}

/// What a watched component's pump publishes through.
pub(crate) struct Publisher {
    shared: Weak<Shared>,
    alive: watch::Receiver<()>,
}

impl Publisher {
    /// Publishes `event`; `false` once the dashboard is gone.
    fn publish(&self, event: Event) -> bool {
        match self.shared.upgrade() {
            Some(shared) => {
                shared.publish(event);
                true
            }
            None => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Dashboard {
    /// A builder for a dashboard of `registry`'s components.
    pub fn builder(registry: &HealthRegistry) -> DashboardBuilder {
        DashboardBuilder {
            registry: registry.clone(),
            settings: Settings {
                title: "battlement".to_owned(),
                interval: Duration::from_secs(1),
                heartbeat: Duration::from_secs(15),
                retry: Duration::from_secs(2),
                client_buffer: 32,
                recent_events: 50,
            },
            authorize: None,
            controls: Vec::new(),
            pumps: Vec::new(),
        }
    }

    /// Publishes `event` to every connected page and keeps it among the last events (the page
    /// lists them; a page that connects later is sent them first). For what the dashboard does
    /// not watch itself: a configuration reload, a deploy, a component of your own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_core::ComponentKind;
    /// use battlement_dashboard::{Dashboard, Event};
    /// use battlement_health::HealthRegistry;
    ///
    /// let dashboard = Dashboard::builder(&HealthRegistry::new()).build().unwrap();
    /// dashboard.publish(Event::new(ComponentKind::Other, "config", "reloaded", "battlement.toml"));
    /// assert_eq!(dashboard.recent_events()[0].what, "reloaded");
    /// # }
    /// ```
    pub fn publish(&self, event: Event) {
        self.shared.publish(event);
    }

    /// The last events, oldest first (at most
    /// [`recent_events`](DashboardBuilder::recent_events)).
    pub fn recent_events(&self) -> Vec<Event> {
        lock(&self.shared.state).recent.iter().cloned().collect()
    }

    /// The latest snapshot the sampler took, or, before its first, one taken now (with no
    /// rates yet).
    pub fn snapshot(&self) -> Snapshot {
        (*self.shared.latest().0).clone()
    }

    /// How many event streams the dashboard is feeding now: connected clients, less those that
    /// went away (whose stream the server dropped) and those dropped for being too slow.
    pub fn clients(&self) -> usize {
        let mut state = lock(&self.shared.state);
        state.clients.retain(|c| !c.is_closed());
        state.clients.len()
    }

    /// How many clients were dropped for falling more than
    /// [`client_buffer`](DashboardBuilder::client_buffer) messages behind.
    pub fn slow_clients_dropped(&self) -> u64 {
        lock(&self.shared.state).dropped_slow
    }

    /// Starts the background tasks now, if they have not started (building inside a runtime,
    /// or the first request, starts them otherwise). Outside a tokio runtime it does nothing.
    pub fn start(&self) {
        self.shared.start();
    }
}

impl Shared {
    pub(crate) fn start(self: &Arc<Self>) {
        if self.started.load(Ordering::Acquire) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let pumps = std::mem::take(&mut *lock(&self.pumps));
        for pump in pumps {
            tokio::spawn(pump(Publisher {
                shared: Arc::downgrade(self),
                alive: self.alive.subscribe(),
            }));
        }
        tokio::spawn(sample_loop(
            Arc::downgrade(self),
            self.alive.subscribe(),
            self.settings.interval,
            self.settings.heartbeat,
        ));
    }

    /// Takes a sample, keeps it as the latest and sends it to every client.
    pub(crate) fn sample(&self) {
        let taken = {
            // The tracks are only the sampler's; take them out so the registry is read
            // without holding the state's lock.
            let mut tracks = std::mem::take(&mut lock(&self.state).tracks);
            let snap = snapshot::take(
                &self.registry,
                self.settings.interval,
                &self.controls,
                Some(&mut tracks),
            );
            lock(&self.state).tracks = tracks;
            snap
        };
        let json = serde_json::to_string(&taken).unwrap_or_else(|_| "{}".to_owned());
        let frame = sse::message("snapshot", &json);
        let mut state = lock(&self.state);
        state.latest = Some((Arc::new(taken), frame.clone()));
        send_all(&mut state, &frame);
    }

    /// The latest snapshot and its frame, or one taken now.
    pub(crate) fn latest(&self) -> (Arc<Snapshot>, Bytes) {
        if let Some(latest) = &lock(&self.state).latest {
            return latest.clone();
        }
        let snap = snapshot::take(&self.registry, self.settings.interval, &self.controls, None);
        let json = serde_json::to_string(&snap).unwrap_or_else(|_| "{}".to_owned());
        (Arc::new(snap), sse::message("snapshot", &json))
    }

    /// Lists `event` and sends it to every client; an event that says a component's new state
    /// is followed by a fresh snapshot, so the page's figures (a breaker's time left open, the
    /// aggregate) follow at once rather than at the next sample.
    pub(crate) fn publish(&self, event: Event) {
        let json = serde_json::to_string(&event).unwrap_or_else(|_| "{}".to_owned());
        let frame = sse::message("event", &json);
        let changed = event.state.is_some();
        {
            let mut state = lock(&self.state);
            if self.settings.recent_events > 0 {
                if state.recent.len() == self.settings.recent_events {
                    state.recent.pop_front();
                }
                state.recent.push_back(event);
            }
            send_all(&mut state, &frame);
        }
        if changed {
            self.refresh();
        }
    }

    /// A snapshot taken now, out of the sampler's rhythm: rates and sparklines are the last
    /// sample's (a rate over a fraction of an interval would be noise).
    fn refresh(&self) {
        let mut snap = snapshot::take(&self.registry, self.settings.interval, &self.controls, None);
        let mut state = lock(&self.state);
        if let Some((prev, _)) = &state.latest {
            for c in &mut snap.components {
                if let Some(p) = prev
                    .components
                    .iter()
                    .find(|p| p.kind == c.kind && p.name == c.name)
                {
                    c.rate = p.rate;
                    c.spark.clone_from(&p.spark);
                }
            }
        }
        let json = serde_json::to_string(&snap).unwrap_or_else(|_| "{}".to_owned());
        let frame = sse::message("snapshot", &json);
        state.latest = Some((Arc::new(snap), frame.clone()));
        send_all(&mut state, &frame);
    }

    fn heartbeat(&self) {
        let frame = sse::comment("heartbeat");
        send_all(&mut lock(&self.state), &frame);
    }

    /// A new client's stream: first the reconnect delay, the last events and the latest
    /// snapshot (one frame), then everything sent from now on.
    pub(crate) fn connect(&self) -> DashboardBody {
        let (_, snapshot) = self.latest();
        let (tx, rx) = mpsc::channel(self.settings.client_buffer);
        let mut state = lock(&self.state);
        let mut prelude = BytesMut::new();
        prelude.extend_from_slice(&sse::retry(
            u64::try_from(self.settings.retry.as_millis()).unwrap_or(u64::MAX),
        ));
        for e in &state.recent {
            let json = serde_json::to_string(e).unwrap_or_else(|_| "{}".to_owned());
            prelude.extend_from_slice(&sse::message("event", &json));
        }
        prelude.extend_from_slice(&snapshot);
        // A fresh channel has room for one.
        let _ = tx.try_send(prelude.freeze());
        state.clients.push(tx);
        DashboardBody::stream(rx, Live::new(&self.streams))
    }
}

/// Sends `frame` to every client; drops the clients whose queue is full (too slow) or whose
/// stream is gone.
fn send_all(state: &mut State, frame: &Bytes) {
    let mut slow = 0;
    state.clients.retain(|c| match c.try_send(frame.clone()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            slow += 1;
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    });
    if slow > 0 {
        tracing::warn!(
            clients = slow,
            "dashboard: dropped event-stream clients too slow to keep up"
        );
        state.dropped_slow += slow;
    }
}

async fn sample_loop(
    shared: Weak<Shared>,
    mut alive: watch::Receiver<()>,
    interval: Duration,
    heartbeat: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = alive.changed() => break,
        }
        let Some(shared) = shared.upgrade() else {
            break;
        };
        shared.sample();
        if last_beat.elapsed() >= heartbeat {
            last_beat = Instant::now();
            shared.heartbeat();
        }
    }
}

/// Builds a [`Dashboard`]; from [`Dashboard::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_dashboard::Dashboard;
/// use battlement_health::HealthRegistry;
/// use std::time::Duration;
///
/// let registry = HealthRegistry::new();
/// let dashboard = Dashboard::builder(&registry)
///     .title("checkout gateway")
///     .interval(Duration::from_secs(1))
///     // Controls only for requests that carry the operators' header, set by the proxy in
///     // front of the admin port (see the crate docs on keeping the page private).
///     .controls(|req| req.headers.get("x-operator").is_some())
///     .build()
///     .unwrap();
/// # let _ = dashboard;
/// let err = Dashboard::builder(&registry).client_buffer(0).build().unwrap_err();
/// assert_eq!(err.setting(), "client_buffer");
/// # }
/// ```
pub struct DashboardBuilder {
    registry: HealthRegistry,
    settings: Settings,
    authorize: Option<Authorize>,
    controls: Vec<Control>,
    pumps: Vec<Pump>,
}

impl DashboardBuilder {
    /// The page's title (default `battlement`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.settings.title = title.into();
        self
    }

    /// How often a snapshot is taken and sent (default 1 s; at least 10 ms, at most 1 h).
    /// Rates are per second whatever the interval; a sparkline holds the last 60 samples.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.settings.interval = interval;
        self
    }

    /// How often a comment is sent on every stream to keep idle proxies from closing it
    /// (default 15 s; at least 10 ms).
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.settings.heartbeat = heartbeat;
        self
    }

    /// The `retry:` the stream sends: how long the page's `EventSource` waits before it
    /// reconnects after losing the server (a restart, say). Default 2 s; at most 1 h.
    pub fn retry(mut self, retry: Duration) -> Self {
        self.settings.retry = retry;
        self
    }

    /// How many messages a client's stream may fall behind by (default 32, about half a
    /// minute of snapshots; within `1..=4096`). A client further behind (a stalled
    /// connection, a paused tab whose socket no longer reads) is dropped: its stream ends after
    /// what it already has, and its `EventSource` reconnects to a fresh state. Nothing is
    /// buffered for a client without bound.
    pub fn client_buffer(mut self, messages: usize) -> Self {
        self.settings.client_buffer = messages;
        self
    }

    /// How many of the last events the dashboard keeps and sends to a page that connects
    /// (default 50; at most 1000; 0 keeps none).
    pub fn recent_events(mut self, events: usize) -> Self {
        self.settings.recent_events = events;
        self
    }

    /// Enables the operator controls (force open, reset, halt, resume) for the requests
    /// `authorize` accepts. Without this the page is read-only and the `control` endpoint
    /// answers 403 to everyone.
    ///
    /// The check sees each control request's method, URI, headers and extensions (axum's
    /// `ConnectInfo` with the peer address, or what your authentication layer put there). A
    /// browser sends its cookies and HTTP authentication with the page's control requests, but
    /// no header of your choosing: check those, or the peer address, or a header your proxy
    /// sets. The page shows the buttons when the check accepts the page's own request.
    pub fn controls(
        mut self,
        authorize: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.authorize = Some(Arc::new(authorize));
        self
    }

    /// Adds a handle the controls act through (see [`Control`]); a second handle for the same
    /// (kind, name) is refused when built.
    pub fn control(mut self, control: Control) -> Self {
        self.controls.push(control);
        self
    }

    /// Lists the events of a component's channel: each one `map` turns into an [`Event`] is
    /// published as it happens (see [`Dashboard::publish`]). A subscriber that falls behind the
    /// channel's bound skips what it missed. Subscribing here (at build time) means no event
    /// sent from then on is missed before the dashboard's tasks start.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_core::{event::EventChannel, ComponentKind};
    /// use battlement_dashboard::{Dashboard, Event};
    /// use battlement_health::HealthRegistry;
    ///
    /// // A component of your own that publishes on core's event channel.
    /// let deploys = EventChannel::<String>::new(16).unwrap();
    /// let dashboard = Dashboard::builder(&HealthRegistry::new())
    ///     .watch(deploys.subscribe(), |version| {
    ///         Some(Event::new(ComponentKind::Other, "deploy", "deployed", version))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// deploys.send("v1.2.3".to_owned());
    /// # for _ in 0..100 { if !dashboard.recent_events().is_empty() { break } tokio::task::yield_now().await; }
    /// assert_eq!(dashboard.recent_events()[0].detail, "v1.2.3");
    /// # }
    /// ```
    pub fn watch<E, F>(mut self, events: broadcast::Receiver<E>, map: F) -> Self
    where
        E: Clone + Send + 'static,
        F: Fn(E) -> Option<Event> + Send + 'static,
    {
        let mut events = events;
        self.pumps.push(Box::new(move |mut publisher: Publisher| {
            Box::pin(async move {
                loop {
                    let received = tokio::select! {
                        r = events.recv() => r,
                        _ = publisher.alive.changed() => break,
                    };
                    match received {
                        Ok(e) => {
                            if let Some(event) = map(e) {
                                if !publisher.publish(event) {
                                    break;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            })
        }));
        self
    }

    /// Watches a circuit breaker: its transitions and reloads are listed as they happen (the
    /// page shows its new state at once), and the controls can force it open and reset it
    /// ([`Control::breaker`]). Register it with the registry too, so it has a card.
    #[cfg(feature = "breaker")]
    pub fn breaker(self, breaker: &battlement_breaker::CircuitBreaker) -> Self {
        self.watch(breaker.subscribe(), crate::event::breaker_event)
            .control(Control::breaker(breaker))
    }

    /// Watches a bulkhead: its reloads are listed as they happen.
    #[cfg(feature = "bulkhead")]
    pub fn bulkhead(self, bulkhead: &battlement_bulkhead::Bulkhead) -> Self {
        self.watch(bulkhead.subscribe(), crate::event::bulkhead_event)
    }

    /// Watches a kill switch: its halts and resumes are listed as they happen, and the controls
    /// can halt and resume it ([`Control::kill_switch`]).
    #[cfg(feature = "kill-switch")]
    pub fn kill_switch(self, switch: &battlement_kill_switch::KillSwitch) -> Self {
        self.watch(switch.subscribe(), crate::event::kill_switch_event)
            .control(Control::kill_switch(switch))
    }

    /// Checks the settings and builds the dashboard; inside a tokio runtime, its tasks start
    /// now.
    ///
    /// # Errors
    ///
    /// A setting out of its range (named by the error's `setting`), or two control handles for
    /// one (kind, name) (setting `control`).
    pub fn build(self) -> Result<Dashboard, ConfigError> {
        let s = &self.settings;
        let bad = |setting, value: &dyn fmt::Debug, reason: &'static str| {
            ConfigError::new("dashboard", setting, value, reason)
        };
        let ms10 = Duration::from_millis(10);
        let hour = Duration::from_secs(3600);
        if !(ms10..=hour).contains(&s.interval) {
            return Err(bad("interval", &s.interval, "must be within 10ms..=1h"));
        }
        if s.heartbeat < ms10 {
            return Err(bad("heartbeat", &s.heartbeat, "must be at least 10ms"));
        }
        if s.retry > hour {
            return Err(bad("retry", &s.retry, "must be at most 1h"));
        }
        if !(1..=4096).contains(&s.client_buffer) {
            return Err(bad(
                "client_buffer",
                &s.client_buffer,
                "must be within 1..=4096",
            ));
        }
        if s.recent_events > 1000 {
            return Err(bad(
                "recent_events",
                &s.recent_events,
                "must be at most 1000",
            ));
        }
        for (i, c) in self.controls.iter().enumerate() {
            if self.controls[..i]
                .iter()
                .any(|o| o.kind() == c.kind() && o.name() == c.name())
            {
                return Err(ConfigError::scoped(
                    c.kind(),
                    c.name(),
                    "control",
                    c.name(),
                    "has two control handles on the dashboard",
                ));
            }
        }
        let shared = Arc::new(Shared {
            registry: self.registry,
            settings: self.settings,
            authorize: self.authorize,
            controls: self.controls,
            state: Mutex::new(State::default()),
            started: AtomicBool::new(false),
            pumps: Mutex::new(self.pumps),
            alive: watch::channel(()).0,
            streams: Arc::new(AtomicUsize::new(0)),
        });
        shared.start();
        Ok(Dashboard { shared })
    }
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("title", &self.shared.settings.title)
            .field("interval", &self.shared.settings.interval)
            .field("controls", &self.shared.authorize.is_some())
            .field("handles", &self.shared.controls)
            .field("streams", &self.shared.streams.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DashboardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardBuilder")
            .field("title", &self.settings.title)
            .field("interval", &self.settings.interval)
            .field("controls", &self.authorize.is_some())
            .field("handles", &self.controls)
            .field("watched", &self.pumps.len())
            .finish_non_exhaustive()
    }
}
