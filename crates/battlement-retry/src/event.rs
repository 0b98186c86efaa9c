//! Typed events for subscribers and callbacks.

use battlement_core::Outcome;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Where a retry's delay came from.
///
/// ```
/// use battlement_retry::DelaySource;
///
/// assert_eq!(DelaySource::RetryAfter.as_str(), "retry_after");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DelaySource {
    /// The backoff strategy, with jitter and bounds.
    Backoff,
    /// The answer's `Retry-After` (an HTTP header, or an open breaker's retry-after), within the
    /// policy's `max_retry_after`.
    RetryAfter,
}

impl DelaySource {
    /// A short, stable, snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DelaySource::Backoff => "backoff",
            DelaySource::RetryAfter => "retry_after",
        }
    }
}

impl fmt::Display for DelaySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A retry about to happen: published to [`subscribe`](crate::RetryPolicy::subscribe)rs and
/// passed to the [`on_retry`](crate::RetryPolicyBuilder::on_retry) callback.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::{error::BoxError, FailureKind, Outcome};
/// use battlement_retry::{Backoff, RetryPolicy};
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(2)
///     .backoff(Backoff::fixed(Duration::from_millis(10)))
///     .build()
///     .unwrap();
/// let mut events = policy.subscribe();
/// let svc = ServiceBuilder::new().layer(policy.into_layer()).service_fn(|_: ()| async {
///     Err::<(), BoxError>(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))
/// });
/// assert!(svc.oneshot(()).await.is_err());
/// let event = events.try_recv().unwrap();
/// assert_eq!(event.attempt, 1);
/// assert_eq!(event.delay, Duration::from_millis(10));
/// assert_eq!(event.outcome, Outcome::Failure(FailureKind::Connection));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryEvent {
    /// The policy's name.
    pub name: Arc<str>,
    /// The number of the attempt that failed (1 for the first); the next one is `attempt + 1`.
    pub attempt: u32,
    /// How long the policy waits before the next attempt.
    pub delay: Duration,
    /// Where the delay came from.
    pub source: DelaySource,
    /// How the failed attempt was classified.
    pub outcome: Outcome,
    /// The HTTP status of the failed attempt, if it was an HTTP response.
    pub status: Option<u16>,
}
