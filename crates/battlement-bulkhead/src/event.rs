//! Typed events for subscribers.

use std::sync::Arc;
use std::time::Duration;

/// A typed event published to [`subscribe`](crate::Bulkhead::subscribe)rs.
///
/// ```
/// use battlement_bulkhead::{Bulkhead, BulkheadEvent};
///
/// let b = Bulkhead::builder("db").max_concurrent(4).build().unwrap();
/// let mut events = b.subscribe();
/// b.reload(&Bulkhead::builder("db").max_concurrent(8)).unwrap();
/// match events.try_recv().unwrap() {
///     BulkheadEvent::Reloaded { max_concurrent, .. } => assert_eq!(max_concurrent, (4, 8)),
///     other => panic!("unexpected event {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// New settings were applied with [`reload`](crate::Bulkhead::reload).
    Reloaded {
        /// The bulkhead's name.
        name: Arc<str>,
        /// The concurrency limit before and after.
        max_concurrent: (usize, usize),
        /// The queue bound now.
        max_queued: usize,
        /// The wait limit now.
        max_wait: Option<Duration>,
    },
}
