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
}

impl<K, P> Clone for RetryLayer<K, P> {
    fn clone(&self) -> Self {
        RetryLayer {
            policy: self.policy.clone(),
        }
    }
}

impl<K: fmt::Debug, P: fmt::Debug> fmt::Debug for RetryLayer<K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl<K, P> RetryLayer<K, P> {
    /// A layer applying `policy`.
    pub fn new(policy: RetryPolicy<K, P>) -> Self {
        RetryLayer { policy }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<K, P> {
        &self.policy
    }
}

impl<S: Clone, K, P> Layer<S> for RetryLayer<K, P> {
    type Service = Retry<S, K, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(self.policy.clone(), inner)
    }
}
