//! Fake components for unit tests.

use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

type State = (Cow<'static, str>, HealthStatus, Vec<Metric>, Option<String>);

/// A component whose state, status and metrics the test sets.
#[derive(Clone)]
pub(crate) struct Fake {
    name: Arc<str>,
    kind: ComponentKind,
    state: Arc<Mutex<State>>,
}

impl Fake {
    pub(crate) fn new(name: &str, kind: ComponentKind) -> Self {
        Fake {
            name: name.into(),
            kind,
            state: Arc::new(Mutex::new((
                Cow::Borrowed("ok"),
                HealthStatus::Pass,
                Vec::new(),
                None,
            ))),
        }
    }

    pub(crate) fn set(&self, state: &'static str, status: HealthStatus) {
        let mut s = self.state.lock().unwrap();
        s.0 = Cow::Borrowed(state);
        s.1 = status;
    }

    pub(crate) fn set_metrics(&self, metrics: Vec<Metric>) {
        self.state.lock().unwrap().2 = metrics;
    }

    pub(crate) fn set_message(&self, message: &str) {
        self.state.lock().unwrap().3 = Some(message.to_owned());
    }
}

impl HealthSource for Fake {
    fn name(&self) -> &str {
        &self.name
    }

    fn snapshot(&self) -> HealthSnapshot {
        let s = self.state.lock().unwrap();
        let mut snap = HealthSnapshot::new(&*self.name, self.kind, s.0.clone(), s.1);
        snap.metrics = s.2.clone();
        snap.message = s.3.clone();
        snap
    }
}
