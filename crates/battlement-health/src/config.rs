//! Builders and validation: the registry's settings and the probe's.

use crate::probe::HealthProbe;
use crate::HealthRegistry;
use battlement_core::{ComponentKind, ConfigError, Registration};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The largest number of buckets a probe's window may have.
pub const MAX_PROBE_BUCKETS: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct RegistryConfig {
    pub(crate) history_len: usize,
    pub(crate) refresh_interval: Duration,
    pub(crate) persist_path: Option<PathBuf>,
    pub(crate) service_id: Option<String>,
    pub(crate) description: Option<String>,
}

/// Builds a [`HealthRegistry`]; made by [`HealthRegistry::builder`].
///
/// ```
/// use battlement_health::HealthRegistry;
/// use std::time::Duration;
///
/// let registry = HealthRegistry::builder()
///     .service_id("checkout")
///     .description("checkout service")
///     .history_len(32)
///     .refresh_interval(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// assert_eq!(registry.report().service_id.as_deref(), Some("checkout"));
///
/// let err = HealthRegistry::builder().history_len(0).build().unwrap_err();
/// assert_eq!(err.setting(), "history_len");
/// ```
#[derive(Debug, Clone)]
pub struct HealthRegistryBuilder {
    config: RegistryConfig,
}

const REGISTRY: &str = "health registry";

impl HealthRegistryBuilder {
    pub(crate) fn new() -> Self {
        HealthRegistryBuilder {
            config: RegistryConfig {
                history_len: 16,
                refresh_interval: Duration::from_secs(1),
                persist_path: None,
                service_id: None,
                description: None,
            },
        }
    }

    /// How many entries of history each component keeps (default 16; at least 1).
    pub fn history_len(mut self, len: usize) -> Self {
        self.config.history_len = len;
        self
    }

    /// How often the monitor reads the observed components (breakers, bulkheads, probes):
    /// counts an observation of each, publishes the aggregate and writes the persisted report
    /// (default 1 s; not zero).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.config.refresh_interval = interval;
        self
    }

    /// Has the monitor write the full report, as JSON, to `path` on every refresh: atomically
    /// (a temporary file in the same directory, fsync, rename), so a reader never sees a torn
    /// file, and the file's modification time doubles as the monitor's heartbeat. A failed write
    /// is logged with `tracing`, never fatal.
    pub fn persist_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.persist_path = Some(path.into());
        self
    }

    /// The service's id, served as the report's `serviceId`.
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.config.service_id = Some(id.into());
        self
    }

    /// A description, served as the report's `description`.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.config.description = Some(description.into());
        self
    }

    /// Validates the settings and builds the registry.
    pub fn build(self) -> Result<HealthRegistry, ConfigError> {
        let c = &self.config;
        if c.history_len == 0 {
            return Err(ConfigError::new(
                REGISTRY,
                "history_len",
                c.history_len,
                "must be at least 1",
            ));
        }
        if c.refresh_interval.is_zero() {
            return Err(ConfigError::new(
                REGISTRY,
                "refresh_interval",
                c.refresh_interval,
                "must be greater than zero",
            ));
        }
        if let Some(path) = &c.persist_path {
            if path.file_name().is_none() {
                return Err(ConfigError::new(
                    REGISTRY,
                    "persist_to",
                    path,
                    "must name a file",
                ));
            }
        }
        Ok(HealthRegistry::from_config(self.config))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ProbeConfig {
    pub(crate) window: Duration,
    pub(crate) buckets: usize,
    pub(crate) fail_below: f64,
    pub(crate) warn_below: Option<f64>,
    pub(crate) minimum_calls: u64,
    pub(crate) slow_mean_latency: Option<Duration>,
}

/// Builds a [`HealthProbe`]; made by [`HealthProbe::builder`].
///
/// Defaults: a 30 s window in 10 buckets, fail below a 50 % success rate, no warn threshold,
/// at least 10 calls before judging, no latency threshold, critical.
///
/// ```
/// use battlement_health::{HealthProbe, HealthRegistry};
/// use std::time::Duration;
///
/// let registry = HealthRegistry::new();
/// let probe = HealthProbe::builder("geo-api")
///     .window(Duration::from_secs(60))
///     .buckets(12)
///     .fail_below(0.8)
///     .warn_below(0.95)
///     .minimum_calls(20)
///     .slow_mean_latency(Duration::from_millis(300))
///     .registry(&registry)
///     .critical(false)
///     .build()
///     .unwrap();
/// assert_eq!(registry.names(), ["geo-api"]);
///
/// let err = HealthProbe::builder("p").fail_below(1.5).build().unwrap_err();
/// assert_eq!(err.setting(), "fail_below");
/// ```
pub struct HealthProbeBuilder {
    registration: Registration,
    config: ProbeConfig,
}

impl fmt::Debug for HealthProbeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthProbeBuilder")
            .field("registration", &self.registration)
            .field("config", &self.config)
            .finish()
    }
}

impl HealthProbeBuilder {
    pub(crate) fn new(name: String) -> Self {
        HealthProbeBuilder {
            registration: Registration::new(ComponentKind::Probe, name),
            config: ProbeConfig {
                window: Duration::from_secs(30),
                buckets: 10,
                fail_below: 0.5,
                warn_below: None,
                minimum_calls: 10,
                slow_mean_latency: None,
            },
        }
    }

    /// The span of the sliding time window (default 30 s). Outcomes older than the window no
    /// longer count, so a dependency nobody called lately is judged on no data (and passes).
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// How many buckets the window slides by (default 10, at most [`MAX_PROBE_BUCKETS`]): the
    /// window covers the current bucket and the `buckets - 1` before it.
    pub fn buckets(mut self, buckets: usize) -> Self {
        self.config.buckets = buckets;
        self
    }

    /// The probe fails when the success rate over the window is below `rate` (default 0.5;
    /// within 0..=1).
    pub fn fail_below(mut self, rate: f64) -> Self {
        self.config.fail_below = rate;
        self
    }

    /// The probe warns when the success rate over the window is below `rate` (within
    /// `fail_below..=1`; off by default).
    pub fn warn_below(mut self, rate: f64) -> Self {
        self.config.warn_below = Some(rate);
        self
    }

    /// The number of counted calls in the window below which the probe does not judge and
    /// passes (default 10; at least 1).
    pub fn minimum_calls(mut self, calls: u64) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// The probe warns when the mean latency over the window exceeds `latency` (off by
    /// default).
    pub fn slow_mean_latency(mut self, latency: Duration) -> Self {
        self.config.slow_mean_latency = Some(latency);
        self
    }

    battlement_core::define_registration_methods!();

    /// Validates the settings, builds the probe and registers it with every registry given, or
    /// with none: a probe of the same name already registered with one of them is an error.
    pub fn build(self) -> Result<HealthProbe, ConfigError> {
        let c = &self.config;
        let r = &self.registration;
        r.require_name()?;
        if c.window.is_zero() || c.window.as_nanos() > u128::from(u64::MAX) {
            return Err(r.error(
                "window",
                c.window,
                "must be greater than zero and at most 584 years",
            ));
        }
        if c.buckets == 0 || c.buckets > MAX_PROBE_BUCKETS {
            return Err(r.error("buckets", c.buckets, "must be within 1..=256"));
        }
        if c.window.as_nanos() < c.buckets as u128 * 1000 {
            return Err(r.error(
                "buckets",
                c.buckets,
                "makes buckets shorter than 1µs; use fewer buckets or a longer window",
            ));
        }
        if !(0.0..=1.0).contains(&c.fail_below) {
            return Err(r.error("fail_below", c.fail_below, "must be within 0..=1"));
        }
        if let Some(warn) = c.warn_below {
            if !(c.fail_below..=1.0).contains(&warn) {
                return Err(r.error("warn_below", warn, "must be within fail_below..=1"));
            }
        }
        if c.minimum_calls == 0 {
            return Err(r.error("minimum_calls", c.minimum_calls, "must be at least 1"));
        }
        if c.slow_mean_latency.is_some_and(|l| l.is_zero()) {
            return Err(r.error(
                "slow_mean_latency",
                c.slow_mean_latency,
                "must be greater than zero",
            ));
        }
        let probe = HealthProbe::new(r.name().into(), self.config);
        r.register(Arc::new(probe.clone()))?;
        Ok(probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_settings_are_validated() {
        let b = || HealthProbe::builder("p");
        let cases: Vec<(HealthProbeBuilder, &str)> = vec![
            (HealthProbe::builder(""), "name"),
            (b().window(Duration::ZERO), "window"),
            (b().buckets(0), "buckets"),
            (b().buckets(MAX_PROBE_BUCKETS + 1), "buckets"),
            (b().window(Duration::from_nanos(500)).buckets(1), "buckets"),
            (b().fail_below(-0.1), "fail_below"),
            (b().fail_below(f64::NAN), "fail_below"),
            (b().fail_below(0.6).warn_below(0.5), "warn_below"),
            (b().warn_below(1.1), "warn_below"),
            (b().minimum_calls(0), "minimum_calls"),
            (b().slow_mean_latency(Duration::ZERO), "slow_mean_latency"),
        ];
        for (builder, setting) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.setting(), setting, "{err}");
            assert_eq!(err.kind(), Some(ComponentKind::Probe), "{err}");
        }
        assert!(b().fail_below(0.0).warn_below(1.0).build().is_ok());
    }

    #[test]
    fn registry_settings_are_validated() {
        let e = HealthRegistry::builder()
            .refresh_interval(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "refresh_interval");
        let e = HealthRegistry::builder()
            .persist_to("/tmp/..")
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "persist_to");
    }
}
