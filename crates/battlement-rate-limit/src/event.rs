//! Typed events for subscribers.

use crate::KeysFull;
use std::sync::Arc;
use std::time::Duration;

/// A typed event published to [`subscribe`](crate::RateLimit::subscribe)rs when the limiter
/// changes what it does (not per call).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_rate_limit::{RateLimit, RateLimitEvent};
/// use std::time::Duration;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let limit = RateLimit::builder("api").rate(1, Duration::from_secs(1)).build().unwrap();
/// let mut events = limit.subscribe();
/// let svc = limit.layer().layer(service_fn(|()| async { Ok::<_, std::io::Error>(()) }));
/// svc.clone().oneshot(()).await.unwrap();
/// svc.clone().oneshot(()).await.unwrap_err(); // the second call within a second
/// match events.recv().await.unwrap() {
///     RateLimitEvent::Rejecting { name, retry_after } => {
///         assert_eq!(&*name, "api");
///         assert_eq!(retry_after, Duration::from_secs(1));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RateLimitEvent {
    /// The limiter rejected a call after a quiet spell (no rejection within its rejection
    /// window): it is limiting now.
    Rejecting {
        /// The limiter's name.
        name: Arc<str>,
        /// The rejected call's retry-after.
        retry_after: Duration,
    },
    /// A new key found the key table full (published once until an eviction frees a slot).
    KeysFull {
        /// The limiter's name.
        name: Arc<str>,
        /// The table's bound.
        max_keys: usize,
        /// What happens to new keys meanwhile.
        when_full: KeysFull,
    },
}
