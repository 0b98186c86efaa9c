//! The timeout's configuration: validation into [`ConfigError`], the name its errors carry, the
//! per-request policy.

use crate::TimeoutLayer;
use battlement_core::ConfigError;
use std::time::Duration;

impl TimeoutLayer {
    /// Like [`new`](Self::new), but a zero limit is a [`ConfigError`].
    pub fn try_new(limit: Duration) -> Result<Self, ConfigError> {
        if limit.is_zero() {
            return Err(ConfigError::new(
                "timeout",
                "limit",
                limit,
                "must be greater than zero",
            ));
        }
        Ok(Self::new(limit))
    }
}

impl<P> TimeoutLayer<P> {
    /// Names the layer in its errors and events (default `timeout`): any string, e.g. one read
    /// from configuration.
    ///
    /// The name is converted once, here, so calls stay allocation-free and share nothing that
    /// every call writes: each distinct name is stored once for the life of the process (names
    /// are few), and the layer, its services and their futures hold a plain reference to it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_timeout::{Elapsed, TimeoutLayer};
    /// use std::time::Duration;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// let upstream = String::from("inventory"); // e.g. from a configuration file
    /// let svc = TimeoutLayer::new(Duration::from_millis(10))
    ///     .name(format!("{upstream}-read"))
    ///     .layer(service_fn(|_: ()| std::future::pending::<Result<(), std::io::Error>>()));
    /// let err = svc.oneshot(()).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<Elapsed>().unwrap().name(), "inventory-read");
    /// # }
    /// ```
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.name = intern(name.as_ref());
        self
    }

    /// Decides per-request limits with `policy`.
    pub fn policy<P2>(self, policy: P2) -> TimeoutLayer<P2> {
        TimeoutLayer {
            limit: self.limit,
            name: self.name,
            policy,
        }
    }

    /// The default limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// The `'static` copy of `name`: the one stored already, or a new one stored now (for good; each
/// distinct name is stored once). Called at configuration only.
fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    if name == "timeout" {
        return "timeout";
    }
    let names = NAMES.get_or_init(Mutex::default);
    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = names.get(name) {
        return found;
    }
    let stored: &'static str = Box::leak(name.into());
    names.insert(stored);
    stored
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_stored_once() {
        let a = super::intern(&String::from("interned-name"));
        let b = super::intern(&String::from("interned-name"));
        assert_eq!(a, "interned-name");
        assert!(std::ptr::eq(a, b), "the same name is stored once");
        assert!(!std::ptr::eq(a, super::intern("another-name")));
    }
}
