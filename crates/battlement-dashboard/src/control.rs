//! Operator controls: typed actions on components, through handles the user gives the
//! dashboard.

use battlement_core::ComponentKind;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// What an operator can do from the page.
///
/// ```
/// use battlement_dashboard::Action;
///
/// assert_eq!(Action::parse("force_open"), Some(Action::ForceOpen));
/// assert_eq!(Action::Resume.as_str(), "resume");
/// assert_eq!(Action::parse("explode"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Force a circuit breaker open: it rejects every call until reset.
    ForceOpen,
    /// Reset a circuit breaker to closed, with an empty window.
    Reset,
    /// Halt a kill switch: every guarded service rejects.
    Halt,
    /// Resume a kill switch.
    Resume,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [
        Action::ForceOpen,
        Action::Reset,
        Action::Halt,
        Action::Resume,
    ];

    /// Its snake_case name, as the page and the `control` endpoint spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ForceOpen => "force_open",
            Action::Reset => "reset",
            Action::Halt => "halt",
            Action::Resume => "resume",
        }
    }

    /// The action named `name` ([`as_str`](Self::as_str)), if any.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handle the page's controls act through: a component's (kind, name), the actions it takes,
/// and what each does.
///
/// The dashboard acts only through the handles it is given
/// ([`DashboardBuilder::control`](crate::DashboardBuilder::control), or
/// [`breaker`](crate::DashboardBuilder::breaker) and
/// [`kill_switch`](crate::DashboardBuilder::kill_switch), which add the built-in ones), and only
/// when controls are enabled with an [authorization check](crate::DashboardBuilder::controls).
///
/// ```
/// use battlement_core::ComponentKind;
/// use battlement_dashboard::{Action, Control};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// // A component of your own with a maintenance flag.
/// let maintenance = Arc::new(AtomicBool::new(false));
/// let flag = maintenance.clone();
/// let control = Control::new(ComponentKind::Other, "search", [Action::Halt, Action::Resume], move |a| {
///     flag.store(a == Action::Halt, Ordering::Relaxed);
/// });
/// assert!(control.apply(Action::Halt));
/// assert!(maintenance.load(Ordering::Relaxed));
/// assert!(!control.apply(Action::Reset)); // not one of its actions: nothing done
/// ```
#[derive(Clone)]
pub struct Control {
    kind: ComponentKind,
    name: Arc<str>,
    actions: Vec<Action>,
    apply: Arc<dyn Fn(Action) + Send + Sync>,
}

impl Control {
    /// A handle on the component of `kind` named `name` that takes `actions`, each applied by
    /// `apply`.
    pub fn new(
        kind: ComponentKind,
        name: impl Into<Arc<str>>,
        actions: impl IntoIterator<Item = Action>,
        apply: impl Fn(Action) + Send + Sync + 'static,
    ) -> Self {
        let mut list: Vec<Action> = Vec::new();
        for a in actions {
            if !list.contains(&a) {
                list.push(a);
            }
        }
        Control {
            kind,
            name: name.into(),
            actions: list,
            apply: Arc::new(apply),
        }
    }

    /// A circuit breaker's handle: [`Action::ForceOpen`] (forced open with the reason "forced
    /// open from the dashboard", until reset) and [`Action::Reset`].
    #[cfg(feature = "breaker")]
    pub fn breaker(breaker: &battlement_breaker::CircuitBreaker) -> Self {
        let b = breaker.clone();
        Control::new(
            ComponentKind::CircuitBreaker,
            breaker.name(),
            [Action::ForceOpen, Action::Reset],
            move |action| match action {
                Action::ForceOpen => b.force_open("forced open from the dashboard"),
                Action::Reset => b.reset(),
                Action::Halt | Action::Resume => {}
            },
        )
    }

    /// A kill switch's handle: [`Action::Halt`] (with the reason "halted from the dashboard")
    /// and [`Action::Resume`].
    #[cfg(feature = "kill-switch")]
    pub fn kill_switch(switch: &battlement_kill_switch::KillSwitch) -> Self {
        let s = switch.clone();
        Control::new(
            ComponentKind::KillSwitch,
            switch.name(),
            [Action::Halt, Action::Resume],
            move |action| match action {
                Action::Halt => {
                    s.halt("halted from the dashboard");
                }
                Action::Resume => {
                    s.resume();
                }
                Action::ForceOpen | Action::Reset => {}
            },
        )
    }

    /// The component's kind.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actions it takes.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Applies `action` if it is one of [`actions`](Self::actions); returns whether it was.
    pub fn apply(&self, action: Action) -> bool {
        if !self.actions.contains(&action) {
            return false;
        }
        (self.apply)(action);
        true
    }
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}
