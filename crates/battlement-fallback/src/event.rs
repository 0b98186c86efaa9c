//! Typed events a fallback chain publishes to its subscribers.

use std::sync::Arc;
use std::time::Duration;

/// A change in a [`FallbackChain`](crate::FallbackChain)'s members, published to every
/// [`subscribe`](crate::ChainHandle::subscribe)r (each is also a `tracing` event).
///
/// ```
/// use battlement_fallback::ChainEvent;
///
/// let e = ChainEvent::MemberRecovered { chain: "search".into(), member: "primary".into() };
/// assert_eq!(e.member(), "primary");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChainEvent {
    /// A member's success rate fell below the threshold: it is skipped for `cool_down`.
    MemberUnhealthy {
        /// The chain's name.
        chain: Arc<str>,
        /// The member's name.
        member: Arc<str>,
        /// Its success rate over the window when it tripped.
        success_rate: f64,
        /// How long it is skipped before a trial call.
        cool_down: Duration,
    },
    /// An unhealthy member's cool-down passed: one trial call is on its way.
    TrialStarted {
        /// The chain's name.
        chain: Arc<str>,
        /// The member's name.
        member: Arc<str>,
    },
    /// A trial call succeeded: the member is healthy again.
    MemberRecovered {
        /// The chain's name.
        chain: Arc<str>,
        /// The member's name.
        member: Arc<str>,
    },
    /// A trial call failed: the member is skipped for another `cool_down`.
    TrialFailed {
        /// The chain's name.
        chain: Arc<str>,
        /// The member's name.
        member: Arc<str>,
        /// How long it is skipped before the next trial.
        cool_down: Duration,
    },
    /// A different member answered a call than the one that answered the call before.
    ServingChanged {
        /// The chain's name.
        chain: Arc<str>,
        /// The member that answered before, if any had.
        from: Option<Arc<str>>,
        /// The member that answers now.
        member: Arc<str>,
    },
}

impl ChainEvent {
    /// The chain's name.
    pub fn chain(&self) -> &str {
        match self {
            ChainEvent::MemberUnhealthy { chain, .. }
            | ChainEvent::TrialStarted { chain, .. }
            | ChainEvent::MemberRecovered { chain, .. }
            | ChainEvent::TrialFailed { chain, .. }
            | ChainEvent::ServingChanged { chain, .. } => chain,
        }
    }

    /// The member the event is about.
    pub fn member(&self) -> &str {
        match self {
            ChainEvent::MemberUnhealthy { member, .. }
            | ChainEvent::TrialStarted { member, .. }
            | ChainEvent::MemberRecovered { member, .. }
            | ChainEvent::TrialFailed { member, .. }
            | ChainEvent::ServingChanged { member, .. } => member,
        }
    }
}
