//! The timeout's configuration: validation into [`ConfigError`], the name its errors carry, the
//! per-request policy.

use crate::layer::Shared;
use crate::{DefaultOnly, TimeoutLayer};
use battlement_core::error::TimeoutScope;
use battlement_core::stripe::StripedCounter;
use battlement_core::{ComponentKind, ConfigError, Registration};
use std::sync::Arc;
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
    /// Names the layer in its errors, events, health reports and metrics (default `timeout`):
    /// any string, e.g. one read from configuration. The named layer has a limit of its own (the
    /// clones made before renaming keep theirs).
    ///
    /// The name is converted once, here, so calls stay allocation-free and share nothing that
    /// every call writes: each distinct name is stored once for the life of the process (names
    /// are few), with its counters, and the layer, its services and their futures hold a plain
    /// reference to it. So layers with the same name share their counters
    /// ([`metrics`](Self::metrics)); a health registry refuses two of the same name.
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
    pub fn name(self, name: impl AsRef<str>) -> Self {
        let mut shared = Shared::new(intern(name.as_ref()), self.limit());
        shared.scope = self.shared.scope;
        TimeoutLayer {
            shared: Arc::new(shared).into(),
            policy: self.policy,
        }
    }

    /// Which limit the layer's [`Elapsed`](crate::Elapsed) errors name
    /// ([`scope`](crate::Elapsed::scope)): [`Attempt`](TimeoutScope::Attempt) by default, as a
    /// timeout inside a retry bounds one attempt; [`Total`](TimeoutScope::Total) for a timeout
    /// outside the retry that bounds all attempts and their waits (the facade's
    /// `ResilienceStack::total_timeout` sets it). Like [`name`](Self::name), the layer gets a
    /// limit of its own, which a health registry the original joined does not see: for a
    /// registered layer, set the scope on the builder ([`TimeoutBuilder::scope`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_timeout::{Elapsed, TimeoutLayer, TimeoutScope};
    /// use std::time::Duration;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// let svc = TimeoutLayer::new(Duration::from_secs(30))
    ///     .name("total")
    ///     .scope(TimeoutScope::Total)
    ///     .layer(service_fn(|_: ()| std::future::pending::<Result<(), std::io::Error>>()));
    /// let err = svc.oneshot(()).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<Elapsed>().unwrap().scope(), TimeoutScope::Total);
    /// # }
    /// ```
    pub fn scope(self, scope: TimeoutScope) -> Self {
        let mut shared = Shared::new(self.shared.named, self.limit());
        shared.scope = scope;
        TimeoutLayer {
            shared: Arc::new(shared).into(),
            policy: self.policy,
        }
    }

    /// This layer kept for the rest of the program (never freed), as a layer whose clones, and
    /// the services it makes and their clones, copy a pointer to its shared state instead of
    /// counting a reference on it: a service cloned for every request (hyper, axum's router)
    /// then writes nothing that other cores' clones share. The limit, its reloads and the
    /// counters are this layer's.
    ///
    /// For layers made once, at start, that live as long as the program: each call of `leak`
    /// on a layer that is not leaked yet keeps one more reference for good.
    ///
    /// ```
    /// use battlement_timeout::TimeoutLayer;
    /// use std::time::Duration;
    ///
    /// let layer = TimeoutLayer::builder("search").limit(Duration::from_secs(2)).build().unwrap();
    /// let layer = layer.leak();
    /// let clone = layer.clone(); // a pointer copy
    /// layer.reload(&TimeoutLayer::builder("search").limit(Duration::from_secs(1))).unwrap();
    /// assert_eq!(clone.limit(), Duration::from_secs(1));
    /// ```
    pub fn leak(self) -> Self {
        TimeoutLayer {
            shared: self.shared.leak(),
            policy: self.policy,
        }
    }

    /// Whether this layer was [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.shared.is_leaked()
    }

    /// Decides per-request limits with `policy`.
    pub fn policy<P2>(self, policy: P2) -> TimeoutLayer<P2> {
        TimeoutLayer {
            shared: self.shared,
            policy,
        }
    }

    /// The default limit now (the ceiling of per-request limits unless the policy allows
    /// more).
    pub fn limit(&self) -> Duration {
        self.shared.limit()
    }

    /// Applies `settings`' limit to the live layer, its clones and the services they made:
    /// calls that start after it get the new limit (and, under
    /// [`HttpTimeouts`](crate::HttpTimeouts), the new ceiling); calls in flight keep theirs.
    /// Not the name or the registries. Invalid settings
    /// ([`TimeoutBuilder::validate`]) change nothing and return the error.
    ///
    /// ```
    /// use battlement_timeout::TimeoutLayer;
    /// use std::time::Duration;
    ///
    /// let layer = TimeoutLayer::builder("search").limit(Duration::from_secs(1)).build().unwrap();
    /// let same = layer.clone();
    /// layer.reload(&TimeoutLayer::builder("search").limit(Duration::from_millis(250))).unwrap();
    /// assert_eq!(same.limit(), Duration::from_millis(250));
    /// assert!(layer.reload(&TimeoutLayer::builder("search").limit(Duration::ZERO)).is_err());
    /// assert_eq!(same.limit(), Duration::from_millis(250));
    /// ```
    pub fn reload(&self, settings: &TimeoutBuilder) -> Result<(), ConfigError> {
        settings.validate()?;
        self.shared.set_limit(settings.limit);
        tracing::info!(timeout = self.shared.named.name, limit = ?settings.limit, "limit reloaded");
        Ok(())
    }
}

/// Builds a named [`TimeoutLayer`] that can join health registries (where it reports its
/// counters and exports the [`FAMILIES`](crate::FAMILIES)); from [`TimeoutLayer::builder`].
///
/// Defaults: a limit of 10 s; not critical.
///
/// ```
/// use battlement_timeout::TimeoutLayer;
/// use std::time::Duration;
///
/// let layer = TimeoutLayer::builder("inventory").limit(Duration::from_millis(300)).build().unwrap();
/// assert_eq!(layer.limit(), Duration::from_millis(300));
/// let err = TimeoutLayer::builder("inventory").limit(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.setting(), "limit");
/// ```
#[derive(Debug)]
#[must_use]
pub struct TimeoutBuilder {
    registration: Registration,
    limit: Duration,
    scope: TimeoutScope,
}

impl TimeoutLayer {
    /// A builder for a layer named `name`.
    pub fn builder(name: impl AsRef<str>) -> TimeoutBuilder {
        TimeoutBuilder {
            registration: Registration::new(ComponentKind::Timeout, name.as_ref()),
            limit: Duration::from_secs(10),
            scope: TimeoutScope::Attempt,
        }
    }
}

impl TimeoutBuilder {
    /// The limit of every call (above zero; default 10 s).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Which limit the layer's errors name (default [`Attempt`](TimeoutScope::Attempt)), as
    /// [`TimeoutLayer::scope`] sets it; set here, the layer that registers is the one built.
    pub fn scope(mut self, scope: TimeoutScope) -> Self {
        self.scope = scope;
        self
    }

    battlement_core::define_registration_methods!();

    /// Runs every check [`build`](Self::build) runs, except registration: what a
    /// [`reload`](TimeoutLayer::reload) with these settings would accept.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.registration.require_name()?;
        if self.limit.is_zero() {
            return Err(self
                .registration
                .error("limit", self.limit, "must be greater than zero"));
        }
        Ok(())
    }

    /// Validates the settings and builds the layer, registering it with the registries given.
    pub fn build(self) -> Result<TimeoutLayer, ConfigError> {
        self.validate()?;
        let mut shared = Shared::new(intern(self.registration.name()), self.limit);
        shared.scope = self.scope;
        let shared = Arc::new(shared);
        self.registration.register(shared.clone())?;
        Ok(TimeoutLayer {
            shared: shared.into(),
            policy: DefaultOnly,
        })
    }
}

/// A name stored for the life of the process, with the counters of the layers of that name.
#[derive(Debug)]
pub(crate) struct Named {
    pub(crate) name: &'static str,
    /// Calls made (written by `call`).
    pub(crate) calls: StripedCounter,
    /// Calls that ran out of time (written by the timeout's cold path).
    pub(crate) elapsed: StripedCounter,
}

/// The stored `name`: the one stored already, or a new one stored now (for good; each
/// distinct name is stored once). Called at configuration only.
pub(crate) fn intern(name: &str) -> &'static Named {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<&'static str, &'static Named>>> = OnceLock::new();
    let names = NAMES.get_or_init(Mutex::default);
    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = names.get(name) {
        return found;
    }
    let stored: &'static str = Box::leak(name.into());
    let named: &'static Named = Box::leak(Box::new(Named {
        name: stored,
        calls: StripedCounter::new(),
        elapsed: StripedCounter::new(),
    }));
    names.insert(stored, named);
    named
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_stored_once() {
        let a = super::intern(&String::from("interned-name"));
        let b = super::intern(&String::from("interned-name"));
        assert_eq!(a.name, "interned-name");
        assert!(std::ptr::eq(a, b), "the same name is stored once");
        assert!(!std::ptr::eq(a, super::intern("another-name")));
    }
}
