//! The kill switch's `tower::Layer`.

use crate::{KillSwitch, KillSwitchService};
use tower_layer::Layer;

/// Guards services with a [`KillSwitch`].
///
/// The layer only holds a handle to the switch: every service it makes (and every other layer
/// made from the same switch) is halted and resumed together.
///
/// ```
/// use battlement_kill_switch::{KillSwitchLayer, KillSwitch};
/// use tower::ServiceBuilder;
///
/// let switch = KillSwitch::builder("writes").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(KillSwitchLayer::new(&switch))
///     .service_fn(|order: String| async move { Ok::<_, std::io::Error>(order.len()) });
/// assert_eq!(svc.switch().name(), "writes");
/// ```
#[derive(Debug, Clone)]
pub struct KillSwitchLayer {
    switch: KillSwitch,
}

impl KillSwitchLayer {
    /// A layer guarding services with `switch`.
    pub fn new(switch: &KillSwitch) -> Self {
        KillSwitchLayer {
            switch: switch.clone(),
        }
    }

    /// The switch this layer guards with.
    pub fn switch(&self) -> &KillSwitch {
        &self.switch
    }
}

impl<S> Layer<S> for KillSwitchLayer {
    type Service = KillSwitchService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KillSwitchService::new(inner, self.switch.clone())
    }
}

impl KillSwitch {
    /// A layer guarding services with this switch.
    pub fn layer(&self) -> KillSwitchLayer {
        KillSwitchLayer::new(self)
    }
}
