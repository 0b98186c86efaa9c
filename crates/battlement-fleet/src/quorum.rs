//! placeholder
pub(crate) struct ViewInner;
pub(crate) struct View { pub(crate) breaker: String, pub(crate) replicas: Vec<()> }
impl View { pub(crate) fn open(&self) -> usize { 0 } }
impl ViewInner { pub(crate) fn view(&self) -> View { View { breaker: String::new(), replicas: vec![] } } }
