//! Typed events for subscribers.

use std::sync::Arc;

/// A typed event published to [`subscribe`](crate::Throttle::subscribe)rs when the throttle
/// starts or stops rejecting calls (read at a bucket's roll-over, not per call).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_throttle::{Throttle, ThrottleEvent};
/// use std::time::Duration;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let throttle = Throttle::builder("search").window(Duration::from_secs(1)).buckets(1).build().unwrap();
/// let mut events = throttle.subscribe();
/// let svc = throttle.layer().layer(service_fn(|_: ()| async {
///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
/// }));
/// for _ in 0..10 {
///     let _ = svc.clone().oneshot(()).await;
/// }
/// tokio::time::advance(Duration::from_secs(1)).await;
/// assert!(throttle.rejection_probability() > 0.0);
/// match events.recv().await.unwrap() {
///     ThrottleEvent::Started { name, requests, accepts, .. } => {
///         assert_eq!((&*name, requests, accepts), ("search", 10, 0));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ThrottleEvent {
    /// The rejection probability rose above zero: the throttle rejects calls now.
    Started {
        /// The throttle's name.
        name: Arc<str>,
        /// The new rejection probability.
        probability: f64,
        /// The window's requests.
        requests: u64,
        /// The window's accepts.
        accepts: u64,
    },
    /// The rejection probability fell back to zero: every call is sent again.
    Stopped {
        /// The throttle's name.
        name: Arc<str>,
    },
}
