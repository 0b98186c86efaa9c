//! A fault injection layer for Tower, for testing resilience in development and staging.
//!
//! A [`Chaos`] handle, shared by any number of [`ChaosLayer`]s, injects faults into the calls of
//! the services it guards, with configured probabilities and from a seedable random source:
//!
//! - latency: a [fixed](Latency::Fixed) delay or one drawn [uniformly](Latency::Uniform) from a
//!   range (`tokio::time::sleep`, so tests run it in paused time), independently of the rest;
//! - errors: a typed, downcastable [`InjectedFault`], which every component's default
//!   classification reads as the kind of failure it imitates (`Connection` unless
//!   [`ChaosBuilder::error_kind`] says otherwise), so the breaker and the retry react as they
//!   would to the real failure; or an error the user makes ([`ChaosBuilder::error_with`]);
//! - responses: a response the user makes, e.g. an HTTP 503 ([`ChaosBuilder::response`]).
//!
//! A call picked for an injected error or response never reaches the inner service. The handle is
//! off by default and switched at run time ([`Chaos::enable`], [`Chaos::disable`]); while off, a
//! call costs one atomic load. Counters of injected faults: [`Chaos::metrics`]; every injection is a
//! `tracing` debug event. The handle reports to a health registry as kind
//! [`Chaos`](battlement_core::ComponentKind::Chaos) (`enabled` or `disabled`, always `pass`);
//! its builder registers it, not critical by default ([`ChaosBuilder::registry`]); exporters read
//! the families of [`FAMILIES`] through
//! [`HealthSource::export`](battlement_core::HealthSource::export).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use battlement_chaos::{Chaos, InjectedFault, Latency};
//! use http::{Request, Response, StatusCode};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let chaos = Chaos::builder("inventory")
//!     .seed(2024)
//!     .latency(0.5, Latency::Fixed(Duration::from_millis(200)))
//!     .error(0.1)
//!     .response(0.2, || {
//!         Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(String::new()).unwrap()
//!     })
//!     .build()?;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(chaos.layer())
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new("stock: 12".to_string()))
//!     });
//!
//! // Off: every call reaches the upstream.
//! let res = svc.clone().oneshot(Request::new(())).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! chaos.enable();
//! let (mut unavailable, mut faults) = (0, 0);
//! for _ in 0..1_000 {
//!     match svc.clone().oneshot(Request::new(())).await {
//!         Ok(res) if res.status() == StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
//!         Ok(_) => {}
//!         Err(err) if err.is::<InjectedFault>() => faults += 1,
//!         Err(err) => return Err(err),
//!     }
//! }
//! let stats = chaos.metrics();
//! assert_eq!((stats.responses, stats.errors), (unavailable, faults));
//! assert!((150..250).contains(&unavailable) && (60..140).contains(&faults));
//! assert!((420..580).contains(&stats.latencies));
//! # Ok(())
//! # }
//! ```

mod chaos;
mod config;
mod future;
mod layer;
mod metrics;
mod response;
mod service;

pub use battlement_core::error::InjectedFault;
pub use battlement_core::ConfigError;
pub use chaos::Chaos;
pub use config::{ChaosBuilder, Latency};
pub use future::ResponseFuture;
pub use layer::ChaosLayer;
pub use metrics::{ChaosMetrics, FAMILIES};
pub use response::{InjectResponse, NoResponse, ResponseFn};
pub use service::ChaosService;

#[cfg(test)]
mod tests;
