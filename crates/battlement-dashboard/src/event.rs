//! The events the page lists: what happened to a component, when.

use battlement_core::ComponentKind;
use serde::Serialize;
use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

/// Something that happened to a component, as the page lists it: a breaker's transition, a
/// kill switch's halt, a reload, an operator's action.
///
/// The dashboard makes these from the components it [watches](crate::DashboardBuilder::watch)
/// (a breaker's, a bulkhead's and a kill switch's typed events with the features `breaker`,
/// `bulkhead` and `kill-switch`) and from its own controls; publish your own with
/// [`Dashboard::publish`](crate::Dashboard::publish) (a configuration reload, a deploy).
///
/// ```
/// use battlement_core::ComponentKind;
/// use battlement_dashboard::Event;
///
/// let e = Event::new(ComponentKind::CircuitBreaker, "db", "transition", "closed → open")
///     .with_state("open");
/// let json = serde_json::to_value(&e).unwrap();
/// assert_eq!(json["kind"], "circuit_breaker");
/// assert_eq!(json["what"], "transition");
/// assert_eq!(json["state"], "open");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The component's kind.
    pub kind: ComponentKind,
    /// The component's name.
    pub name: String,
    /// What sort of event, one word (`transition`, `reloaded`, `halted`, `resumed`, `operator`).
    pub what: Cow<'static, str>,
    /// What happened, in words.
    pub detail: String,
    /// The state the component is in after it, when the event says (the page shows it at once,
    /// before the next snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Cow<'static, str>>,
}

impl Event {
    /// An event of `kind` `name`, happening now.
    pub fn new(
        kind: ComponentKind,
        name: impl Into<String>,
        what: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Event {
            time_ms: now_ms(),
            kind,
            name: name.into(),
            what: what.into(),
            detail: detail.into(),
            state: None,
        }
    }

    /// Says the state the component is in after the event.
    pub fn with_state(mut self, state: impl Into<Cow<'static, str>>) -> Self {
        self.state = Some(state.into());
        self
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A circuit breaker's event as the page lists it.
#[cfg(feature = "breaker")]
pub(crate) fn breaker_event(event: battlement_breaker::BreakerEvent) -> Option<Event> {
    use battlement_breaker::{BreakerEvent, TransitionReason};
    match event {
        BreakerEvent::StateTransition {
            name,
            from,
            to,
            reason,
            open_for,
        } => {
            let why = match reason {
                TransitionReason::FailureRate { rate, calls } => {
                    format!("failure rate {:.0}% over {calls} calls", rate * 100.0)
                }
                TransitionReason::SlowCallRate { rate, calls } => {
                    format!("slow-call rate {:.0}% over {calls} calls", rate * 100.0)
                }
                TransitionReason::ConsecutiveFailures(n) => format!("{n} failures in a row"),
                TransitionReason::WaitElapsed => "open wait elapsed".to_owned(),
                TransitionReason::TrialsSucceeded => "trial calls succeeded".to_owned(),
                TransitionReason::TrialsFailed => "trial calls failed".to_owned(),
                TransitionReason::HalfOpenTooLong => "half-open too long".to_owned(),
                TransitionReason::Forced(reason) => format!("forced: {reason}"),
                TransitionReason::ForcedOpenEnded => "forced-open time ended".to_owned(),
                TransitionReason::Disabled => "disabled".to_owned(),
                TransitionReason::Reset => "reset".to_owned(),
                other => format!("{other:?}"),
            };
            let mut detail = format!("{from} → {to}: {why}");
            if let Some(d) = open_for {
                detail.push_str(&format!(", open for {:.1}s", d.as_secs_f64()));
            }
            Some(
                Event::new(ComponentKind::CircuitBreaker, &*name, "transition", detail)
                    .with_state(to.as_str()),
            )
        }
        BreakerEvent::Reloaded {
            name,
            window_cleared,
        } => Some(Event::new(
            ComponentKind::CircuitBreaker,
            &*name,
            "reloaded",
            if window_cleared {
                "new settings; window cleared"
            } else {
                "new settings"
            },
        )),
        _ => None,
    }
}

/// A bulkhead's event as the page lists it.
#[cfg(feature = "bulkhead")]
pub(crate) fn bulkhead_event(event: battlement_bulkhead::BulkheadEvent) -> Option<Event> {
    use battlement_bulkhead::BulkheadEvent;
    match event {
        BulkheadEvent::Reloaded {
            name,
            max_concurrent: (before, after),
            max_queued,
            ..
        } => Some(Event::new(
            ComponentKind::Bulkhead,
            &*name,
            "reloaded",
            format!("max concurrent {before} → {after}, max queued {max_queued}"),
        )),
        _ => None,
    }
}

/// A kill switch's event as the page lists it.
#[cfg(feature = "kill-switch")]
pub(crate) fn kill_switch_event(event: battlement_kill_switch::KillSwitchEvent) -> Option<Event> {
    use battlement_kill_switch::KillSwitchEvent;
    match event {
        KillSwitchEvent::Halted {
            name,
            reason,
            limit,
            ..
        } => {
            let detail = match limit {
                Some(limit) => format!("halted by limit `{limit}`: {reason}"),
                None => format!("halted: {reason}"),
            };
            Some(
                Event::new(ComponentKind::KillSwitch, &*name, "halted", detail)
                    .with_state("halted"),
            )
        }
        KillSwitchEvent::Resumed {
            name, halted_for, ..
        } => Some(
            Event::new(
                ComponentKind::KillSwitch,
                &*name,
                "resumed",
                format!("resumed after {:.1}s", halted_for.as_secs_f64()),
            )
            .with_state("running"),
        ),
        _ => None,
    }
}
