//! A live dashboard for Battlement components: one self-contained HTML page and a stream of
//! snapshots and events over Server-Sent Events, as a `tower::Service` any service mounts with
//! one route.
//!
//! [`Dashboard`] reads every component registered with a
//! [`HealthRegistry`](battlement_health::HealthRegistry) through core's
//! [`HealthSource`](battlement_core::HealthSource) (its snapshot, and its metrics
//! [export](battlement_core::HealthSource::export) for the rates), so it shows breakers,
//! bulkheads, retry policies, hedges, fallback chains, kill switches, rate limiters, fault
//! injection, probes and custom checks alike: each one's state (a colour and a word), its
//! figures (a breaker's failure and slow-call rates, calls per second, rejections and the time
//! left open; a bulkhead's in-flight, queued and free permits and rejections; the counters of
//! the others), its status and the aggregate health, a 60-second sparkline of its calls per
//! second, and the last events (transitions, halts, reloads, operators' actions).
//!
//! # Paths
//!
//! Mounted with axum's `nest_service("/battlement", dashboard)` (which strips the prefix; any
//! prefix works, the page finds the rest relative to itself), or served at the root:
//!
//! | path | method | what |
//! |---|---|---|
//! | `/` (the prefix, with or without a trailing slash), `/index.html` | GET | the page: markup, styles and script inline, the latest snapshot embedded; nothing fetched from anywhere else (its Content-Security-Policy allows only its own origin) |
//! | `/events` | GET | `text/event-stream`: `retry:`, the last events and the latest snapshot at once, then a `snapshot` every [interval](DashboardBuilder::interval) (1 s), each `event` as it happens, and a comment as heartbeat every 15 s |
//! | `/snapshot` | GET | the latest [`Snapshot`] as JSON |
//! | `/control?kind=…&name=…&action=…` | POST | an operator action, when [enabled](DashboardBuilder::controls) |
//!
//! Any other path is 404. The stream works over HTTP/1.1 and HTTP/2 alike; when the server
//! restarts, the page's `EventSource` reconnects after the `retry:` delay (2 s) and is sent the
//! state afresh.
//!
//! # Clients
//!
//! Each client has a queue of at most [`client_buffer`](DashboardBuilder::client_buffer)
//! messages (32). A client that falls further behind is dropped (its stream ends; its page
//! reconnects), so a stalled connection never makes the server buffer without bound. When a
//! client goes away, the server drops its stream, and the dashboard stops feeding it at its
//! next message ([`Dashboard::clients`] counts those it feeds). One sampler task reads the
//! registry once per interval for every client together.
//!
//! # Events
//!
//! Components publish typed events on their own channels; the dashboard lists those it is told
//! to watch: [`DashboardBuilder::breaker`] (transitions, reloads), [`bulkhead`](DashboardBuilder::bulkhead)
//! (reloads) and [`kill_switch`](DashboardBuilder::kill_switch) (halts, resumes), with the
//! features `breaker`, `bulkhead` and `kill-switch`; [`DashboardBuilder::watch`] takes any
//! `tokio::sync::broadcast` receiver with a function to an [`Event`] (a rate limiter's,
//! a fallback chain's); [`Dashboard::publish`] adds one by hand (a configuration reload).
//!
//! # Controls, and keeping the page private
//!
//! The page is read-only unless [`DashboardBuilder::controls`] is given an authorization check
//! over the request; then it shows buttons (force open and reset a breaker, halt and resume a
//! kill switch) on the components that have a [`Control`] handle
//! ([`breaker`](DashboardBuilder::breaker) and [`kill_switch`](DashboardBuilder::kill_switch)
//! add theirs, [`DashboardBuilder::control`] any other), and `POST control` acts when the check
//! accepts the request and it carries the header [`CONTROL_HEADER`] (which the page sends and a
//! cross-site form cannot).
//!
//! The page shows your dependencies' names, states and error rates: do not serve it on the
//! public internet. Mount it on a separate admin listener bound to loopback or a private
//! network (`127.0.0.1:9090`, reached through an SSH tunnel or `kubectl port-forward`), or
//! behind your authenticating proxy, and let the controls' check require what that proxy
//! asserts (a header it sets, a client certificate's subject) or the peer address (axum's
//! `ConnectInfo` in the request's extensions), never something the browser could be talked
//! into sending.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use battlement_breaker::CircuitBreaker;
//! use battlement_dashboard::Dashboard;
//! use battlement_health::HealthRegistry;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//!
//! let registry = HealthRegistry::new();
//! let breaker = CircuitBreaker::builder("payments").registry(&registry).build().unwrap();
//! // With the feature `breaker`, `.breaker(&breaker)` lists its transitions and adds its controls.
//! let dashboard = Dashboard::builder(&registry).build().unwrap();
//! // axum: Router::new().nest_service("/battlement", dashboard.clone())
//!
//! let res = dashboard
//!     .clone()
//!     .oneshot(http::Request::get("/").body(()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
//! let page = res.into_body().collect().await.unwrap().to_bytes();
//! assert!(std::str::from_utf8(&page).unwrap().contains("payments"));
//!
//! let snap = dashboard.snapshot();
//! assert_eq!(snap.components[0].state, "closed");
//! # }
//! ```

mod control;
mod dashboard;
mod event;
mod service;
mod snapshot;
mod sse;
#[cfg(test)]
mod tests;

pub use control::{Action, Control};
pub use dashboard::{Dashboard, DashboardBuilder};
pub use event::Event;
pub use service::CONTROL_HEADER;
pub use snapshot::{ComponentView, Counts, Snapshot, SPARK_SAMPLES};
pub use sse::DashboardBody;
