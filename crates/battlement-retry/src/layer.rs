//! The policy as a `tower::Layer`.

use crate::policy::RetryPolicy;
use crate::rules::{DefaultPredicate, Rules};
use crate::service::Retry;
use std::fmt;
use tower_layer::Layer;

/// Applies a [`RetryPolicy`] with this crate's [`Retry`] service, which decides as tower's
/// `Retry` does with the same policy (`ServiceBuilder::retry(policy)`) but does not clone the
/// policy for every request.
///
/// ```
/// use battlement_core::error::BoxError;
/// use battlement_retry::{RetryLayer, RetryPolicy};
/// use tower::ServiceBuilder;
///
/// let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(policy.clone().into_layer())
///     .service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
/// let same = ServiceBuilder::new()
///     .layer(RetryLayer::new(policy))
///     .service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
/// # drop((svc, same));
/// ```
pub struct RetryLayer<K = Rules, P = DefaultPredicate> {
    policy: RetryPolicy<K, P>,
    leak: bool,
}

impl<K, P> Clone for RetryLayer<K, P> {
    fn clone(&self) -> Self {
        RetryLayer {
            policy: self.policy.clone(),
            leak: self.leak,
        }
    }
}

impl<K: fmt::Debug, P: fmt::Debug> fmt::Debug for RetryLayer<K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .field("leak", &self.leak)
            .finish()
    }
}

impl<K, P> RetryLayer<K, P> {
    /// A layer applying `policy`.
    pub fn new(policy: RetryPolicy<K, P>) -> Self {
        RetryLayer {
            policy,
            leak: false,
        }
    }

    /// A layer whose services are [leaked](Retry::leak) as it makes them: neither their clones
    /// nor their requests count a reference. Each service it makes stays in memory for the rest
    /// of the program, so apply it once, to a stack made at start-up (as `Router::layer` does),
    /// not to a service made per connection.
    ///
    /// ```
    /// use battlement_core::error::BoxError;
    /// use battlement_retry::{RetryLayer, RetryPolicy};
    /// use tower::ServiceBuilder;
    ///
    /// let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .layer(RetryLayer::new(policy).leak())
    ///     .service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
    /// assert!(svc.is_leaked());
    /// ```
    pub fn leak(mut self) -> Self {
        self.leak = true;
        self
    }

    /// Whether the services this layer makes are [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.leak
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<K, P> {
        &self.policy
    }
}

impl<S: Clone + 'static, K: 'static, P: 'static> Layer<S> for RetryLayer<K, P> {
    type Service = Retry<S, K, P>;

    fn layer(&self, inner: S) -> Self::Service {
        let service = Retry::new(self.policy.clone(), inner);
        if self.leak {
            service.leak()
        } else {
            service
        }
    }
}
