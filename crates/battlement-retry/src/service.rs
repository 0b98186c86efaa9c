//! The service: tower's own `Retry`, with this crate's policy.

use crate::policy::RetryPolicy;
use crate::rules::{DefaultPredicate, Rules};

/// The service a [`RetryLayer`](crate::RetryLayer) makes: tower's [`tower::retry::Retry`] driven
/// by a [`RetryPolicy`].
///
/// ```
/// use battlement_core::error::BoxError;
/// use battlement_retry::{Retry, RetryPolicy};
///
/// let policy = RetryPolicy::builder().build().unwrap();
/// let inner = tower::service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
/// let svc: Retry<_> = tower::retry::Retry::new(policy, inner);
/// # drop(svc);
/// ```
pub type Retry<S, K = Rules, P = DefaultPredicate> = tower::retry::Retry<RetryPolicy<K, P>, S>;
