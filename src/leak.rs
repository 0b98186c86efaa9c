//! [`Leak`]: a layer whose shared state can be kept for good, so that clones copy a pointer.

use tower::layer::util::Identity;
use tower::util::Either;

/// A layer whose shared state can be kept for the rest of the program (never freed), so that its
/// clones, the services it makes and their clones copy a pointer instead of counting a reference
/// that every core's clones share: what a stack cloned for every request (inside axum's
/// `Router::layer`) needs to scale across cores (see the README's "Serving on many cores").
///
/// Implemented by the layers that hold such a handle (breaker, bulkhead, timeout, retry), by
/// `Identity` (nothing to leak) and by `Either` of two such layers;
/// [`ResilienceStack::leak`](crate::ResilienceStack::leak) leaks every slot that holds one.
/// A leaked layer is the same component: state, metrics, health and reloads are shared with the
/// handle it was made from.
///
/// ```
/// use battlement::breaker::{CircuitBreaker, CircuitBreakerLayer};
/// use battlement::Leak;
///
/// let breaker = CircuitBreaker::builder("catalog").build().unwrap();
/// let layer = Leak::leak(CircuitBreakerLayer::new(&breaker));
/// assert!(layer.is_leaked());
/// ```
pub trait Leak: Sized {
    /// This layer, leaked: each call on a layer not leaked yet keeps one more reference for
    /// good, so leak layers made once, at start, never per connection or per request.
    fn leak(self) -> Self;
}

/// Nothing to leak.
impl Leak for Identity {
    fn leak(self) -> Self {
        self
    }
}

/// Leaks whichever side it holds.
impl<A: Leak, B: Leak> Leak for Either<A, B> {
    fn leak(self) -> Self {
        match self {
            Either::Left(a) => Either::Left(a.leak()),
            Either::Right(b) => Either::Right(b.leak()),
        }
    }
}

#[cfg(feature = "breaker")]
impl<C> Leak for crate::breaker::CircuitBreakerLayer<C> {
    fn leak(self) -> Self {
        crate::breaker::CircuitBreakerLayer::leak(self)
    }
}

#[cfg(feature = "bulkhead")]
impl<P> Leak for crate::bulkhead::BulkheadLayer<P> {
    fn leak(self) -> Self {
        crate::bulkhead::BulkheadLayer::leak(self)
    }
}

#[cfg(feature = "timeout")]
impl<P> Leak for crate::timeout::TimeoutLayer<P> {
    fn leak(self) -> Self {
        crate::timeout::TimeoutLayer::leak(self)
    }
}

#[cfg(feature = "retry")]
impl<K, P> Leak for crate::retry::RetryLayer<K, P> {
    fn leak(self) -> Self {
        crate::retry::RetryLayer::leak(self)
    }
}
