//! Typed events for subscribers.

use crate::State;
use std::sync::Arc;
use std::time::Duration;

/// Why the breaker changed state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TransitionReason {
    /// The failure rate over the window reached the threshold.
    FailureRate {
        /// The rate that tripped it.
        rate: f64,
        /// Calls in the window.
        calls: u64,
    },
    /// The slow-call rate over the window reached the threshold.
    SlowCallRate {
        /// The rate that tripped it.
        rate: f64,
        /// Calls in the window.
        calls: u64,
    },
    /// Too many failures in a row.
    ConsecutiveFailures(u64),
    /// The open wait passed; trial calls are admitted.
    WaitElapsed,
    /// Enough trial calls succeeded.
    TrialsSucceeded,
    /// Too many trial calls failed.
    TrialsFailed,
    /// Half-open lasted longer than its limit.
    HalfOpenTooLong,
    /// An operator forced the breaker open.
    Forced(Arc<str>),
    /// The time an operator forced the breaker open for has passed; trial calls are admitted.
    ForcedOpenEnded,
    /// An operator disabled the breaker.
    Disabled,
    /// An operator reset the breaker to closed.
    Reset,
    /// Opened from outside its own window: [`trip`](crate::CircuitBreaker::trip) (a fleet's
    /// quorum) or [`restore_open`](crate::CircuitBreaker::restore_open) (a state saved before a
    /// restart), with the caller's reason.
    External(Arc<str>),
}

/// A typed event published to [`subscribe`](crate::CircuitBreaker::subscribe)rs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_breaker::{BreakerEvent, CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder("db").build().unwrap();
/// let mut events = breaker.subscribe();
/// breaker.force_open("maintenance");
/// match events.recv().await.unwrap() {
///     BreakerEvent::StateTransition { from, to, .. } => {
///         assert_eq!((from, to), (State::Closed, State::ForcedOpen));
///     }
///     other => panic!("unexpected event {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// The breaker moved from one state to another.
    StateTransition {
        /// The breaker's name.
        name: Arc<str>,
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
        /// Why.
        reason: TransitionReason,
        /// For transitions to open, or forced open for a time: how long it will stay open.
        open_for: Option<Duration>,
    },
    /// New settings were applied with [`reload`](crate::CircuitBreaker::reload).
    Reloaded {
        /// The breaker's name.
        name: Arc<str>,
        /// Whether the window changed type or size, and so was emptied (its counts are kept
        /// when its shape is the same).
        window_cleared: bool,
    },
}
