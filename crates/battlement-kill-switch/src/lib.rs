//! A kill switch for Tower.
//!
//! A [`KillSwitch`] is a handle shared by any number of [`KillSwitchLayer`]s. [`halt`](KillSwitch::halt)
//! makes every guarded service reject each call at once with a typed [`Halted`] error (which
//! `battlement-core`'s default classifier counts as
//! [`Rejected`](battlement_core::FailureKind::Rejected)) without calling the inner service;
//! [`resume`](KillSwitch::resume) lifts it.
//!
//! - Automatic halt: limits are closures over counters the application feeds (daily loss, error
//!   budget, drawdown); [`check_limits`](KillSwitch::check_limits), called by the application or
//!   every period by a [`LimitMonitor`] task, halts the switch with the breached limit's name as
//!   the reason.
//! - Health: the switch implements [`HealthSource`](battlement_core::HealthSource) (state `running` or
//!   `halted`, status `fail` while halted) and its builder registers it, as a critical component
//!   by default, with a health registry; exporters read the families of [`FAMILIES`] through
//!   [`HealthSource::export`](battlement_core::HealthSource::export).
//! - Every halt and resume is a `tracing` event and a typed [`KillSwitchEvent`] for
//!   [`subscribe`](KillSwitch::subscribe)rs; every rejection is a `tracing` debug event.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use battlement_core::{error::failure_kind, FailureKind, HealthStatus, HealthSource};
//! use battlement_kill_switch::{Halted, KillSwitch};
//! use std::sync::atomic::{AtomicI64, Ordering};
//! use std::sync::Arc;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! // The application feeds its profit and loss; the switch halts trading past a daily loss.
//! let pnl = Arc::new(AtomicI64::new(0));
//! let p = pnl.clone();
//! let switch = KillSwitch::builder("trading")
//!     .limit("daily_loss", move || p.load(Ordering::Relaxed) < -10_000)
//!     .build()?;
//!
//! // Two services guarded by the same switch.
//! let orders = ServiceBuilder::new()
//!     .layer(switch.layer())
//!     .service_fn(|qty: u32| async move { Ok::<_, std::io::Error>(qty) });
//! let quotes = ServiceBuilder::new()
//!     .layer(switch.layer())
//!     .service_fn(|sym: &'static str| async move { Ok::<_, std::io::Error>(sym.len()) });
//!
//! assert_eq!(orders.clone().oneshot(10).await?, 10);
//!
//! pnl.store(-12_000, Ordering::Relaxed);
//! switch.check_limits(); // or: switch.spawn_limit_monitor(period)
//!
//! for err in [
//!     orders.clone().oneshot(10).await.unwrap_err(),
//!     quotes.clone().oneshot("ACME").await.unwrap_err(),
//! ] {
//!     let halted = err.downcast_ref::<Halted>().unwrap();
//!     assert_eq!(halted.reason(), "daily_loss");
//!     assert_eq!(failure_kind(&*err), FailureKind::Rejected);
//! }
//! assert_eq!(switch.snapshot().status, HealthStatus::Fail);
//!
//! // An operator looks into it, then lifts the halt.
//! pnl.store(0, Ordering::Relaxed);
//! switch.resume();
//! assert_eq!(quotes.oneshot("ACME").await?, 4);
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! While the switch is running, a call through a guarded service reads one atomic flag
//! (`Acquire`) and allocates nothing; its future is the inner future in an enum. The halt's
//! reason is read under a lock only on the rejecting path.

mod config;
mod direct;
mod event;
mod future;
mod layer;
mod limit;
mod metrics;
mod service;
mod switch;

pub use battlement_core::error::Halted;
pub use battlement_core::{CallError, ConfigError};
pub use config::KillSwitchBuilder;
pub use event::KillSwitchEvent;
pub use future::ResponseFuture;
pub use layer::KillSwitchLayer;
pub use limit::{LimitMonitor, LimitStatus};
pub use metrics::{KillSwitchMetrics, FAMILIES};
pub use service::KillSwitchService;
pub use switch::{Halt, KillSwitch};

#[cfg(test)]
mod tests;
