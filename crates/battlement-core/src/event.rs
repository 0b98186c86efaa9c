//! The bounded channel components publish their typed events on.
//!
//! Every component with events (breaker, retry, kill switch, fallback chain, …) takes an
//! `event_capacity` setting: how many events a slow subscriber may fall behind by before it
//! misses the oldest. The channel is tokio's [`broadcast`] channel, which panics for a capacity
//! of zero or above `usize::MAX / 2` and allocates every slot up front (rounded up to a power of
//! two). So each builder checks the capacity here, at build time, into a [`ConfigError`]: it must
//! be within `1..=`[`MAX_EVENT_CAPACITY`].
//!
//! ```
//! use battlement_core::event::{event_channel, MAX_EVENT_CAPACITY};
//!
//! let events = event_channel::<u32>("circuit breaker `db`", 64).unwrap();
//! let mut rx = events.subscribe();
//! events.send(7).unwrap();
//! assert_eq!(rx.try_recv().unwrap(), 7);
//!
//! let err = event_channel::<u32>("circuit breaker `db`", usize::MAX).unwrap_err();
//! assert_eq!(err.setting(), "event_capacity");
//! assert!(event_channel::<u32>("retry", 0).is_err());
//! assert!(event_channel::<u32>("retry", MAX_EVENT_CAPACITY).is_ok());
//! ```

use crate::ConfigError;
use std::borrow::Cow;
use tokio::sync::broadcast;

/// The largest event capacity a builder accepts (65,536 events): the channel allocates every
/// slot when it is built, so a larger buffer would cost memory for events nobody reads.
pub const MAX_EVENT_CAPACITY: usize = 1 << 16;

/// Checks an `event_capacity` setting of `component`: `Ok(capacity)` when it is within
/// `1..=`[`MAX_EVENT_CAPACITY`], else a [`ConfigError`] for the setting `event_capacity`.
///
/// ```
/// use battlement_core::event::validate_event_capacity;
///
/// assert_eq!(validate_event_capacity("kill switch `deploys`", 64), Ok(64));
/// let err = validate_event_capacity("kill switch `deploys`", 0).unwrap_err();
/// assert_eq!(err.component(), "kill switch `deploys`");
/// assert_eq!(err.setting(), "event_capacity");
/// ```
pub fn validate_event_capacity(
    component: impl Into<Cow<'static, str>>,
    capacity: usize,
) -> Result<usize, ConfigError> {
    if (1..=MAX_EVENT_CAPACITY).contains(&capacity) {
        Ok(capacity)
    } else {
        Err(ConfigError::new(
            component,
            "event_capacity",
            capacity,
            "must be within 1..=65536",
        ))
    }
}

/// A broadcast channel of `capacity` events for `component`, after
/// [`validate_event_capacity`]; never panics. Subscribe with
/// [`Sender::subscribe`](broadcast::Sender::subscribe).
pub fn event_channel<E: Clone>(
    component: impl Into<Cow<'static, str>>,
    capacity: usize,
) -> Result<broadcast::Sender<E>, ConfigError> {
    let capacity = validate_event_capacity(component, capacity)?;
    Ok(broadcast::channel(capacity).0)
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
            let err = event_channel::<()>("c", bad).unwrap_err();
            assert_eq!(err.setting(), "event_capacity");
            assert_eq!(err.value(), bad.to_string());
        }
        for good in [1, 64, MAX_EVENT_CAPACITY] {
            assert!(event_channel::<()>("c", good).is_ok());
        }
    }
}
