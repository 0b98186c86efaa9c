//! Builders: the fleet connection's settings, validated into `ConfigError`.

use crate::fleet::Fleet;
use battlement_core::{ComponentKind, ConfigError};
use std::time::Duration;

/// Default [`command_timeout`](FleetBuilder::command_timeout): 5 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(5);
/// Default [`check_interval`](FleetBuilder::check_interval): 250 ms.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Settings of a [`Fleet`] connection; [`build`](Self::build) validates them.
///
/// ```
/// use battlement_fleet::Fleet;
/// use std::time::Duration;
///
/// let err = Fleet::builder("redis://127.0.0.1/")
///     .command_timeout(Duration::ZERO)
///     .validate()
///     .unwrap_err();
/// assert_eq!(err.setting(), "command_timeout");
/// assert!(Fleet::builder("not a url").validate().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct FleetBuilder {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) replica: String,
    pub(crate) prefix: String,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) check_interval: Duration,
    pub(crate) failures_to_open: u64,
}

impl FleetBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        FleetBuilder {
            url: url.into(),
            name: "fleet".into(),
            replica: default_replica_id(),
            prefix: "battlement".into(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: Duration::from_millis(200),
            check_interval: DEFAULT_CHECK_INTERVAL,
            failures_to_open: 3,
        }
    }

    /// The name of the coordination component in health (default `fleet`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// This replica's id, unique in the fleet (default: the process id and the start time).
    pub fn replica_id(mut self, id: impl Into<String>) -> Self {
        self.replica = id.into();
        self
    }

    /// The prefix of every key and channel (default `battlement`): fleets with different
    /// prefixes share one Redis without seeing each other.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a command waits for Redis (default 5 ms): a call that needs Redis waits
    /// at most this long, then its part decides locally.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The longest a (re)connection attempt takes (default 200 ms; made off the call path by
    /// the monitor).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often the monitor pings Redis (default 250 ms): how soon an outage, and the return,
    /// is seen.
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// Failed commands in a row after which no command is sent until the monitor's next
    /// successful ping (default 3).
    pub fn failures_to_open(mut self, failures: u64) -> Self {
        self.failures_to_open = failures;
        self
    }

    fn error(
        &self,
        setting: &'static str,
        value: impl std::fmt::Debug,
        why: &'static str,
    ) -> ConfigError {
        ConfigError::scoped(ComponentKind::Other, &self.name, setting, value, why)
    }

    /// Checks the settings without connecting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.client().map(|_| ())
    }

    fn client(&self) -> Result<redis::Client, ConfigError> {
        if self.name.is_empty() {
            return Err(self.error("name", &self.name, "must not be empty"));
        }
        if self.replica.is_empty() || self.replica.contains(['|', '\n']) {
            return Err(self.error(
                "replica_id",
                &self.replica,
                "must be non-empty, without `|` or newlines",
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(self.error("prefix", &self.prefix, "must be non-empty, without braces"));
        }
        for (setting, d) in [
            ("command_timeout", self.command_timeout),
            ("connect_timeout", self.connect_timeout),
            ("check_interval", self.check_interval),
        ] {
            if d.is_zero() {
                return Err(self.error(setting, d, "must be greater than zero"));
            }
        }
        if self.failures_to_open == 0 {
            return Err(self.error(
                "failures_to_open",
                self.failures_to_open,
                "must be at least 1",
            ));
        }
        redis::Client::open(self.url.as_str())
            .map_err(|_| self.error("url", &self.url, "must be a redis:// URL"))
    }

    /// Builds the fleet connection. It connects lazily, off the call path: a monitor task
    /// pings Redis at once and every [`check_interval`](Self::check_interval), so the fleet
    /// starts (and serves, deciding locally) even while Redis is down.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns the monitor).
    pub fn build(self) -> Result<Fleet, ConfigError> {
        let client = self.client()?;
        let url = self.url.clone();
        Fleet::from_parts(self.clone(), client)
            .map_err(|_| self.error("url", url, "cannot make a connection manager"))
    }
}

fn default_replica_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{:x}", std::process::id(), nanos & 0xFFFF_FFFF)
}
