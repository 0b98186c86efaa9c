//! The bounded channel components publish their typed events on.
//!
//! Every component with events (breaker, retry, kill switch, fallback chain, …) takes an
//! `event_capacity` setting and publishes on an [`EventChannel`]: a bounded broadcast channel
//! (tokio's [`broadcast`]) whose capacity is checked once, here, when it is built. The bound is
//! how many events a slow subscriber may fall behind by: past it, the subscriber misses the
//! oldest ones (its next `recv` says how many it lagged by) while the publisher never waits and
//! never allocates per event. tokio's channel panics for a capacity of zero or above
//! `usize::MAX / 2` and allocates every slot up front (rounded up to a power of two), so a
//! capacity must be within `1..=`[`MAX_EVENT_CAPACITY`]; anything else is a [`ConfigError`] at
//! build time, never a panic.
//!
//! ```
//! use battlement_core::event::{EventChannel, MAX_EVENT_CAPACITY};
//!
//! let events = EventChannel::<u32>::new(64).unwrap();
//! let mut rx = events.subscribe();
//! events.send(7);
//! assert_eq!(rx.try_recv().unwrap(), 7);
//!
//! let err = EventChannel::<u32>::new(usize::MAX).unwrap_err();
//! assert_eq!(err.setting(), "event_capacity");
//! assert!(EventChannel::<u32>::new(0).is_err());
//! assert!(EventChannel::<u32>::new(MAX_EVENT_CAPACITY).is_ok());
//! ```

use crate::ConfigError;
use std::fmt;
use tokio::sync::broadcast;

/// The event capacity a builder starts with: 64 events.
pub const DEFAULT_EVENT_CAPACITY: usize = 64;

/// The largest event capacity a builder accepts (65,536 events): the channel allocates every
/// slot when it is built, so a larger buffer would cost memory for events nobody reads.
pub const MAX_EVENT_CAPACITY: usize = 1 << 16;

/// A bounded broadcast channel of typed events: one publisher (the component), any number of
/// subscribers, each of which may fall at most [`capacity`](Self::capacity) events behind before
/// it misses the oldest.
///
/// Sending never blocks and is not an error when nobody subscribes: a component publishes
/// whether or not anyone listens. A clone publishes on the same channel.
///
/// ```
/// use battlement_core::{event::EventChannel, ComponentKind};
///
/// let events = EventChannel::new(2).unwrap();
/// events.send("nobody listens: dropped, not an error");
/// let mut rx = events.subscribe();
/// for e in ["a", "b", "c"] {
///     events.send(e);
/// }
/// // The subscriber fell 3 behind a bound of 2: it missed the oldest.
/// assert!(rx.try_recv().is_err());
/// assert_eq!(rx.try_recv().unwrap(), "b");
///
/// // A builder scopes the error to its component.
/// let err = EventChannel::<()>::new(0)
///     .map_err(|e| e.within(ComponentKind::CircuitBreaker, "db"))
///     .unwrap_err();
/// assert_eq!(err.component(), "circuit breaker `db`");
/// ```
pub struct EventChannel<E> {
    sender: broadcast::Sender<E>,
    capacity: usize,
}

impl<E: Clone> EventChannel<E> {
    /// A channel that holds up to `capacity` events for a slow subscriber.
    ///
    /// # Errors
    ///
    /// `capacity` is not within `1..=`[`MAX_EVENT_CAPACITY`]: a [`ConfigError`] for the setting
    /// `event_capacity` of the component `event channel` (a builder scopes it to itself with
    /// [`ConfigError::within`]).
    pub fn new(capacity: usize) -> Result<Self, ConfigError> {
        if !(1..=MAX_EVENT_CAPACITY).contains(&capacity) {
            return Err(ConfigError::new(
                "event channel",
                "event_capacity",
                capacity,
                "must be within 1..=65536",
            ));
        }
        Ok(EventChannel {
            sender: broadcast::channel(capacity).0,
            capacity,
        })
    }

    /// A new subscriber, which receives every event sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<E> {
        self.sender.subscribe()
    }

    /// Publishes `event` to every subscriber; with none, the event is dropped (not an error).
    pub fn send(&self, event: E) {
        // No subscriber is not an error: components publish whether or not anyone listens.
        let _ = self.sender.send(event);
    }
}

impl<E> EventChannel<E> {
    /// How many events a subscriber may fall behind by before it misses the oldest, as set
    /// (tokio rounds the buffer up to a power of two, so a subscriber may in fact keep a few
    /// more).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many subscribers there are now.
    pub fn receiver_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

impl<E> Clone for EventChannel<E> {
    fn clone(&self) -> Self {
        EventChannel {
            sender: self.sender.clone(),
            capacity: self.capacity,
        }
    }
}

impl<E> fmt::Debug for EventChannel<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventChannel")
            .field("capacity", &self.capacity)
            .field("receivers", &self.sender.receiver_count())
            .finish()
    }
}

/// Defines a builder's `event_capacity` method over its field `event_capacity: usize` (checked
/// when built with [`EventChannel::new`]). Used inside an `impl XBuilder`.
#[doc(hidden)]
#[macro_export]
macro_rules! define_event_capacity_method {
    () => {
        /// How many events a slow subscriber may fall behind by before it misses the oldest
        /// (default 64, `battlement_core::event::DEFAULT_EVENT_CAPACITY`; within
        /// `1..=65536`, checked when built).
        pub fn event_capacity(mut self, capacity: usize) -> Self {
            self.event_capacity = capacity;
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_tokio_would_panic_on_are_config_errors() {
        for bad in [
            0,
            MAX_EVENT_CAPACITY + 1,
            usize::MAX / 2,
            usize::MAX / 2 + 1,
            usize::MAX,
        ] {
            let err = EventChannel::<()>::new(bad).unwrap_err();
            assert_eq!(err.setting(), "event_capacity");
            assert_eq!(err.value(), bad.to_string());
        }
        for good in [1, 64, MAX_EVENT_CAPACITY] {
            assert_eq!(EventChannel::<()>::new(good).unwrap().capacity(), good);
        }
    }

    #[test]
    fn send_without_subscribers_is_dropped_and_a_subscriber_lags_past_the_bound() {
        let events = EventChannel::new(4).unwrap();
        events.send(0u32);
        let mut rx = events.subscribe();
        assert_eq!(events.receiver_count(), 1);
        for i in 1..=6u32 {
            events.clone().send(i);
        }
        // Six sent to a bound of four: the two oldest are gone, and the receiver is told so.
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(2))
        ));
        let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got, [3, 4, 5, 6]);
    }
}
