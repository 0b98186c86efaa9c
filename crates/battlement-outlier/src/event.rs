//! Typed events for subscribers.

use crate::Reason;
use std::sync::Arc;
use std::time::Duration;

/// A typed event published to [`subscribe`](crate::OutlierDetector::subscribe)rs when an
/// endpoint is ejected or readmitted.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_outlier::{OutlierDetector, OutlierEvent, Reason};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceExt};
///
/// let detector = OutlierDetector::builder("pool")
///     .consecutive_5xx(2)
///     .max_ejection_percent(100)
///     .build()
///     .unwrap();
/// let mut events = detector.subscribe();
/// let _other = detector.endpoint("b", service_fn(|_: ()| async { Ok::<_, std::io::Error>(http::Response::new(())) }));
/// let mut bad = detector.endpoint("a", service_fn(|_: ()| async {
///     Ok::<_, std::io::Error>(http::Response::builder().status(500).body(()).unwrap())
/// }));
/// for _ in 0..2 {
///     let _ = bad.ready().await.unwrap().call(()).await;
/// }
/// match events.recv().await.unwrap() {
///     OutlierEvent::Ejected { endpoint, reason, ejections, duration, .. } => {
///         assert_eq!((&*endpoint, reason, ejections), ("a", Reason::Consecutive5xx, 1));
///         assert_eq!(duration, Duration::from_secs(30));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # use tower::Service;
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OutlierEvent {
    /// An endpoint was ejected: the pool does not send it calls until `duration` has passed.
    Ejected {
        /// The detector's name.
        name: Arc<str>,
        /// The endpoint's label.
        endpoint: Arc<str>,
        /// Which rule ejected it.
        reason: Reason,
        /// How many times it has been ejected, this time included.
        ejections: u64,
        /// How long it is ejected for.
        duration: Duration,
    },
    /// An ejected endpoint's time passed: it is back in the pool.
    Readmitted {
        /// The detector's name.
        name: Arc<str>,
        /// The endpoint's label.
        endpoint: Arc<str>,
    },
}
