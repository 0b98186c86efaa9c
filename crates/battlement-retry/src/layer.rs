//! The policy as a `tower::Layer`.

use crate::policy::RetryPolicy;
use crate::rules::{DefaultPredicate, Rules};
use tower::retry::Retry;
use tower_layer::Layer;

/// Applies a [`RetryPolicy`] with tower's [`Retry`] service (it wraps
/// `tower::retry::RetryLayer`; the same as `ServiceBuilder::retry(policy)`).
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
#[derive(Debug)]
pub struct RetryLayer<K = Rules, P = DefaultPredicate> {
    inner: tower::retry::RetryLayer<RetryPolicy<K, P>>,
}

impl<K, P> Clone for RetryLayer<K, P> {
    fn clone(&self) -> Self {
        RetryLayer {
            inner: self.inner.clone(),
        }
    }
}

impl<K, P> RetryLayer<K, P> {
    /// A layer applying `policy`.
    pub fn new(policy: RetryPolicy<K, P>) -> Self {
        RetryLayer {
            inner: tower::retry::RetryLayer::new(policy),
        }
    }
}

impl<S, K, P> Layer<S> for RetryLayer<K, P> {
    type Service = Retry<RetryPolicy<K, P>, S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.inner.layer(inner)
    }
}
