//! The kill switch's `tower::Layer`.

use crate::{HaltService, KillSwitch};
use tower_layer::Layer;

/// Guards services with a [`KillSwitch`].
///
/// The layer only holds a handle to the switch: every service it makes (and every other layer
/// made from the same switch) is halted and resumed together.
///
/// ```
/// use battlement_halt::{HaltLayer, KillSwitch};
/// use tower::ServiceBuilder;
///
/// let switch = KillSwitch::builder("writes").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(HaltLayer::new(&switch))
///     .service_fn(|order: String| async move { Ok::<_, std::io::Error>(order.len()) });
/// assert_eq!(svc.switch().name(), "writes");
/// ```
#[derive(Debug, Clone)]
pub struct HaltLayer {
    switch: KillSwitch,
}

impl HaltLayer {
    /// A layer guarding services with `switch`.
    pub fn new(switch: &KillSwitch) -> Self {
        HaltLayer {
            switch: switch.clone(),
        }
    }

    /// The switch this layer guards with.
    pub fn switch(&self) -> &KillSwitch {
        &self.switch
    }
}

impl<S> Layer<S> for HaltLayer {
    type Service = HaltService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HaltService::new(inner, self.switch.clone())
    }
}

impl KillSwitch {
    /// A layer guarding services with this switch.
    pub fn layer(&self) -> HaltLayer {
        HaltLayer::new(self)
    }
}
