//! Typed events for subscribers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A typed event published to [`subscribe`](crate::KillSwitch::subscribe)rs on every halt and
/// resume.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_kill_switch::{KillSwitch, KillSwitchEvent};
///
/// let switch = KillSwitch::builder("orders").build().unwrap();
/// let mut events = switch.subscribe();
/// switch.halt("incident 42");
/// switch.resume();
/// match events.recv().await.unwrap() {
///     KillSwitchEvent::Halted { reason, limit, .. } => {
///         assert_eq!(&*reason, "incident 42");
///         assert_eq!(limit, None); // halted by hand
///     }
///     other => panic!("unexpected event {other:?}"),
/// }
/// assert!(matches!(events.recv().await.unwrap(), KillSwitchEvent::Resumed { .. }));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KillSwitchEvent {
    /// The switch was halted: every guarded service now rejects.
    Halted {
        /// The switch's name.
        name: Arc<str>,
        /// Why (for a tripped limit, the limit's name, with its detail if it gave one).
        reason: Arc<str>,
        /// When.
        since: SystemTime,
        /// The limit that tripped it, or `None` when it was halted by hand.
        limit: Option<Arc<str>>,
    },
    /// The switch was resumed: guarded services call through again.
    Resumed {
        /// The switch's name.
        name: Arc<str>,
        /// The reason of the halt that was lifted.
        reason: Arc<str>,
        /// How long it had been halted.
        halted_for: Duration,
    },
}
