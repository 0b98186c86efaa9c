//! The whole stack around any async call, outside Tower: [`ResilienceStack::build_direct`].

use crate::core::BoxError;
use crate::{ResilienceLayer, ResilienceStack};
use battlement_core::ConfigError;
use std::future::Future;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// The service a [`DirectStack`] wraps its layers around: its request is a closure, and a call
/// is the closure's future. Each attempt of a retry calls a copy of the closure, so each
/// attempt is a fresh future.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement::CallFn;
/// use tower::ServiceExt;
///
/// let answer = CallFn.oneshot(|| async { Ok::<_, std::io::Error>(42) }).await.unwrap();
/// assert_eq!(answer, 42);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CallFn;

impl<F, Fut, T, E> Service<F> for CallFn
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Response = T;
    type Error = E;
    type Future = Fut;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, f: F) -> Fut {
        f()
    }
}

/// A [`ResilienceStack`] built to run closures: [`call`](Self::call) runs any async call (a
/// database query, a Redis command, a file upload) through every layer of the stack, in the
/// stack's order, with the same shared components, classification, metrics and health as the
/// stack built as a Tower layer.
///
/// Made by [`ResilienceStack::build_direct`]. Cheap to clone (the layers' handles).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), battlement::core::BoxError> {
/// use battlement::core::{BoxError, ResultClassifier};
/// use battlement::prelude::*;
/// use battlement::ResilienceStack;
/// use std::time::Duration;
///
/// # struct Pool;
/// # async fn count_orders(_pool: &Pool) -> Result<i64, std::io::Error> { Ok(7) }
/// let breaker = CircuitBreaker::builder("postgres").build()?;
/// let db = ResilienceStack::new()
///     .total_timeout(Duration::from_secs(5))
///     .retry_policy(RetryPolicy::builder().max_attempts(3).build()?)
///     // A row is not an HTTP response: judge calls by their `Result`.
///     .circuit_breaker_with(&breaker, ResultClassifier)
///     .timeout_per_try(Duration::from_secs(1))
///     .build_direct()?;
///
/// let pool = Pool; // e.g. an `sqlx::PgPool`
/// // sqlx style: a closure returning a `Result`; each attempt calls it again.
/// let orders = db.call(|| async { Ok::<_, BoxError>(count_orders(&pool).await?) }).await?;
/// assert_eq!(orders, 7);
/// assert_eq!(breaker.metrics().successes, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DirectStack<S> {
    service: S,
}

impl<S> DirectStack<S> {
    /// Runs `f`'s future through the stack and returns its value, or the error of the layer
    /// that refused or ended the call (a `BoxError` whose concrete type downcasts as the
    /// layers' do: [`BreakerOpen`](crate::core::error::BreakerOpen),
    /// [`Elapsed`](crate::core::error::Elapsed) with its scope, …), or the call's own error,
    /// boxed.
    ///
    /// `f` is called once per attempt; with a retry in the stack it must be `Clone` (a closure
    /// that captures references or clonable handles is). With a circuit breaker, give the
    /// stack [`circuit_breaker_with`](ResilienceStack::circuit_breaker_with) and
    /// [`ResultClassifier`](crate::core::ResultClassifier) unless the value implements
    /// [`ResponseOutcome`](crate::core::ResponseOutcome). A call whose layers admit it at once
    /// allocates nothing.
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<S::Response, BoxError>
    where
        S: Service<F> + Clone,
        S::Error: Into<BoxError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.service.clone().oneshot(f).await.map_err(Into::into)
    }

    /// The stack's service over [`CallFn`], for use as a Tower service.
    pub fn into_service(self) -> S {
        self.service
    }
}

impl<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
    ResilienceStack<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>
{
    /// Builds the stack to run closures ([`DirectStack::call`]) instead of wrapping a Tower
    /// service: the same layers in the same order, around [`CallFn`]. Registration and
    /// validation are [`build`](Self::build)'s.
    ///
    /// # Errors
    ///
    /// [`build`](Self::build)'s.
    #[allow(clippy::type_complexity)]
    pub fn build_direct(
        self,
    ) -> Result<
        DirectStack<
            <ResilienceLayer<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch> as Layer<CallFn>>::Service,
        >,
        ConfigError,
    >
    where
        ResilienceLayer<Pr, Ha, Rl, Fa, Tt, Re, He, Th, Br, Bu, Ti, Ch>: Layer<CallFn>,
    {
        let layer = self.build()?;
        Ok(DirectStack {
            service: layer.layer(CallFn),
        })
    }
}
