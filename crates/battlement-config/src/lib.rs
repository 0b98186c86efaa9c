//! Battlement from configuration files: every pattern's settings deserialize with serde, load
//! through [`figment`] from TOML, YAML or JSON with an overlay per environment and overrides from
//! environment variables, and build through the patterns' own builders, so a file can never
//! build what code could not. [`Resilience`] then hands out named components: the same shared
//! breaker for `breaker("payments")` wherever it is asked for.
//!
//! # The file
//!
//! The shape is Resilience4j's: shared `defaults` per pattern, named `configs` that instances
//! extend with `base = "name"` (configs may extend configs; a cycle or an unknown base is an
//! error), and `instances` by name, each with any of the patterns `breaker`, `bulkhead`,
//! `retry`, `timeout`, `hedge` and `kill_switch`. A setting left out falls back to the bases,
//! then to `defaults`, then to the builder's own default. Unknown keys are errors. The keys of
//! each pattern are listed at its settings type ([`BreakerSettings`], [`BulkheadSettings`],
//! [`RetrySettings`], [`TimeoutSettings`], [`HedgeSettings`], [`KillSwitchSettings`]).
//! Durations are written as `"250ms"`, `"2s"`, `"1m"`.
//!
//! This file is `examples/battlement.toml` in the repository:
//!
//! ```toml
#![doc = include_str!("../../../examples/battlement.toml")]
//! ```
//!
//! # Loading
//!
//! [`Loader`] reads `battlement.toml` (or `.yaml`, `.yml`, `.json`), then the overlay of the
//! environment that `BATTLEMENT_ENV` names (`battlement.production.toml`), then variables
//! `BATTLEMENT_INSTANCES__…` (names: see [`Loader`]). Loading validates every instance by
//! building it, and a configuration with problems is one [`LoadError`] listing them all, each
//! with its key path, its source (file or variable) and, in a TOML file, its line:
//!
//! ```text
//! invalid configuration, 2 problems:
//!   instances.payments.breaker.failure_rate: 1.5 must be within (0, 1] (battlement.toml:12)
//!   instances.search.bulkhead.max_concurrent: 0 must be at least 1 (environment variable BATTLEMENT_INSTANCES__SEARCH__BULKHEAD__MAX_CONCURRENT)
//! ```
//!
//! Lines are found for TOML files only: figment keeps no positions, so the line is looked up
//! again in the file by key path; YAML and JSON problems name the file without a line. Type
//! errors (a string where a number belongs, an unknown key) are reported once per pattern
//! section: serde stops at a section's first.
//!
//! # Example
//!
//! ```
//! use battlement_config::{Configuration, Resilience};
//! use battlement_health::HealthRegistry;
//! use std::time::Duration;
//!
//! let config = Configuration::from_toml(include_str!("../../../examples/battlement.toml")).unwrap();
//! let health = HealthRegistry::new();
//! let resilience = Resilience::builder(config).registry(&health).build();
//!
//! let payments = resilience.breaker("payments")?;
//! assert_eq!(resilience.bulkhead("payments")?.max_queued(), 20);
//! assert_eq!(resilience.timeout("payments")?.limit(), Duration::from_secs(1));
//! // `search` takes its timeout from its base `strict-fast`.
//! assert_eq!(resilience.timeout("search")?.limit(), Duration::from_millis(250));
//! // The same breaker, shared.
//! payments.force_open("maintenance");
//! assert_eq!(resilience.breaker("payments")?.state(), battlement_breaker::State::ForcedOpen);
//! assert!(health.names().contains(&"payments".to_owned()));
//! # Ok::<(), battlement_config::ResilienceError>(())
//! ```
//!
//! # Live reload
//!
//! [`Resilience::reload`] applies a new configuration to every component created so far, all
//! or nothing: it validates every instance of the new configuration and every live
//! component's new settings with the builders' own `validate`, and if any problem is found,
//! changes nothing and returns a [`ReloadError`] listing them all; else each live component
//! takes its settings through its own `reload` (a bulkhead resizes, a breaker keeps its state
//! and applies new thresholds from its next decision, retry, timeout and hedge settings apply
//! to new requests), and components created later are built from the new configuration. No
//! call in flight is dropped or failed. [`Resilience::reload_from`] loads a [`Loader`]'s files
//! first (a file that does not load is refused the same way), and, with feature `watch`,
//! `Resilience::watch` reloads whenever the files change. Reloads are counted
//! ([`Resilience::reloads`]) and exported as `battlement_config_reloads{outcome}` ([`FAMILIES`])
//! by a health source the health registry holds (kind `other`, named `config`; `warn` while the
//! last reload was refused).
//!
//! ```
//! use battlement_config::{Configuration, Resilience};
//!
//! let file = |failures: u32| {
//!     Configuration::from_toml(&format!("[instances.payments.breaker]\nconsecutive_failures = {failures}\n"))
//!         .unwrap()
//! };
//! let resilience = Resilience::new(file(5));
//! let breaker = resilience.breaker("payments")?;
//! resilience.reload(file(2)).unwrap();
//! assert_eq!(breaker.metrics().reloads, 1);
//! # Ok::<(), battlement_config::ResilienceError>(())
//! ```
//!
//! The facade turns an instance into a whole stack: `ResilienceStack::from_config(&resilience,
//! "payments")` (feature `config` of `battlement`).

mod admission;
mod error;
mod load;
mod metrics;
mod registry;
mod reload;
mod settings;
#[cfg(feature = "watch")]
mod watch;

pub use admission::{
    AdaptiveLimitSettings, Algorithm, RateLimitSettings, ThrottleSettings, WhenFull,
};
pub use error::{LoadError, Origin, Problem};
pub use load::{Configuration, Loader, Settings};
pub use metrics::{ReloadMetrics, FAMILIES};
#[cfg(feature = "watch")]
pub use notify;
pub use registry::{Resilience, ResilienceBuilder, ResilienceError};
pub use reload::{ReloadError, ReloadReport};
pub use settings::{
    BackoffKind, BreakerSettings, BulkheadSettings, HedgeDelay, HedgeSettings, InstanceSettings,
    JitterSetting, KillSwitchSettings, RetrySettings, TimeoutSettings, Window,
};
#[cfg(feature = "watch")]
pub use watch::{ConfigWatcher, WatchOutcome};

/// Re-exported for [`Configuration::from_figment`] and tests (`figment::Jail`).
pub use figment;

#[cfg(test)]
mod tests;
