//! Direct calls: the breaker around any async call, outside Tower.

use crate::CircuitBreaker;
use battlement_core::error::BreakerOpen;
use battlement_core::{AsDynError, CallError, Classify, ResultClassifier};
use std::future::Future;

impl CircuitBreaker {
    /// Runs `f`'s future through the breaker, outside Tower: a database query, a Redis
    /// command, any async call that returns a `Result`.
    ///
    /// The call shares everything with the breaker's layers: the same state and window (a
    /// failure here counts toward opening for every service the breaker guards, and the other
    /// way round), the same metrics, events and health. `f` is called only when the breaker
    /// admits the call; a refused call returns [`CallError::Rejected`] with the same
    /// [`BreakerOpen`] a layer returns (and `f` is not called). The call's own error comes back
    /// unchanged in [`CallError::Inner`].
    ///
    /// Outcomes are judged by [`ResultClassifier`]: every `Ok` succeeds, every `Err` fails with
    /// the kind read from its source chain. That needs the error to be
    /// [`AsDynError`](battlement_core::AsDynError) (`BoxError`, `io::Error`, hyper's,
    /// battlement's): a library's own error type (`sqlx::Error`, `redis::RedisError`) becomes
    /// one with `?` in a closure returning `Result<T, BoxError>`, as below, or is judged by a
    /// classifier of your own through [`call_with`](Self::call_with). A future dropped before
    /// it finishes counts as neither success nor failure and returns any half-open trial permit
    /// it held. An admitted call takes no lock and allocates nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_breaker::{BreakerOpen, CircuitBreaker};
    /// use battlement_core::{BoxError, CallError};
    ///
    /// # struct Pool;
    /// # async fn fetch_user(_pool: &Pool, id: i64) -> Result<String, std::io::Error> { Ok(format!("user {id}")) }
    /// let breaker = CircuitBreaker::builder("postgres").build().unwrap();
    /// let pool = Pool; // e.g. an `sqlx::PgPool`
    ///
    /// // sqlx style: the closure returns a `Result`; `?` turns the driver's error into a BoxError.
    /// let user = breaker
    ///     .call(|| async { Ok::<_, BoxError>(fetch_user(&pool, 42).await?) })
    ///     .await;
    /// assert_eq!(user.unwrap(), "user 42");
    ///
    /// breaker.force_open("failover");
    /// match breaker.call(|| async { Ok::<_, BoxError>(fetch_user(&pool, 42).await?) }).await {
    ///     Err(CallError::Rejected(open)) => assert_eq!(open.name(), "postgres"),
    ///     other => panic!("expected a rejection, got {other:?}"),
    /// }
    /// # }
    /// ```
    #[inline]
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, CallError<BreakerOpen, E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: AsDynError,
    {
        self.call_with(ResultClassifier, f).await
    }

    /// [`call`](Self::call) with a classifier: which results count as failures, for any error
    /// type (the classifier reads it) and for `Ok` values that are failures too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_breaker::CircuitBreaker;
    /// use battlement_core::{classify_fn, FailureKind, Outcome};
    ///
    /// #[derive(Debug)]
    /// enum DbError { NotFound, Unavailable }
    ///
    /// // A missing row is the caller's business, not the database's failure.
    /// let db_outcome = classify_fn(|r: Result<&String, &DbError>| match r {
    ///     Ok(_) | Err(DbError::NotFound) => Outcome::Success,
    ///     Err(DbError::Unavailable) => Outcome::Failure(FailureKind::Connection),
    /// });
    /// let breaker = CircuitBreaker::builder("postgres").build().unwrap();
    /// let row = breaker
    ///     .call_with(&db_outcome, || async { Err::<String, _>(DbError::NotFound) })
    ///     .await;
    /// assert!(row.is_err());
    /// assert_eq!(breaker.metrics().successes, 1);
    /// # }
    /// ```
    #[inline]
    pub async fn call_with<C, F, Fut, T, E>(
        &self,
        classifier: C,
        f: F,
    ) -> Result<T, CallError<BreakerOpen, E>>
    where
        C: Classify<T, E>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut guard = self.try_call().map_err(CallError::Rejected)?;
        let result = f().await;
        guard.record(classifier.classify(result.as_ref()));
        result.map_err(CallError::Inner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{CircuitBreaker, State};
    use battlement_core::{BoxError, CallError, FailureKind, Outcome};
    use std::time::Duration;
    use tower::{service_fn, Layer, ServiceExt};

    fn new_breaker() -> CircuitBreaker {
        CircuitBreaker::builder("shared")
            .minimum_calls(4)
            .failure_rate_threshold(0.5)
            .fixed_open_wait(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    fn refused() -> BoxError {
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
    }

    /// Failures of direct calls open the breaker for the layer's service, and failures through
    /// the layer open it for direct calls: one state, one window.
    #[tokio::test(start_paused = true)]
    async fn direct_calls_and_the_layer_share_one_breaker_both_ways() {
        let svc_calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = svc_calls.clone();
        let make_svc = |breaker: &CircuitBreaker| {
            let counter = counter.clone();
            crate::CircuitBreakerLayer::new(breaker)
                .classifier(battlement_core::ResultClassifier)
                .layer(service_fn(move |fail: bool| {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        if fail {
                            Err(refused())
                        } else {
                            Ok(())
                        }
                    }
                }))
        };

        // Direct failures open it; the layer then refuses without calling its service.
        let breaker = new_breaker();
        let svc = make_svc(&breaker);
        svc.clone().oneshot(false).await.unwrap();
        for _ in 0..3 {
            let err = breaker.call(|| async { Err::<(), _>(refused()) }).await;
            assert!(matches!(err, Err(CallError::Inner(_))));
        }
        assert_eq!(breaker.state(), State::Open);
        let err = svc.oneshot(false).await.unwrap_err();
        assert!(err.is::<crate::BreakerOpen>());
        assert_eq!(svc_calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Layer failures open it; the direct call is then refused and its closure not run.
        let breaker = new_breaker();
        let svc = make_svc(&breaker);
        breaker
            .call(|| async { Ok::<_, BoxError>(()) })
            .await
            .unwrap();
        for _ in 0..3 {
            svc.clone().oneshot(true).await.unwrap_err();
        }
        assert_eq!(breaker.state(), State::Open);
        let mut ran = false;
        let err = breaker
            .call(|| {
                ran = true;
                async { Ok::<_, BoxError>(()) }
            })
            .await
            .unwrap_err();
        assert!(!ran, "a refused call never runs its closure");
        let CallError::Rejected(open) = err else {
            panic!("expected a rejection")
        };
        assert_eq!(open.name(), "shared");
        assert!(open.retry_after().unwrap() <= Duration::from_secs(10));
        let m = breaker.metrics();
        assert_eq!((m.successes, m.failures), (1, 3));
    }

    /// `call_with` judges by its classifier: an `Ok` can fail, an `Err` can be ignored.
    #[tokio::test(start_paused = true)]
    async fn call_with_applies_its_classifier() {
        let breaker = new_breaker();
        let by_value = battlement_core::classify_fn(|r: Result<&u16, &String>| match r {
            Ok(code) if *code >= 500 => Outcome::Failure(FailureKind::ServerError),
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Ignored,
        });
        for _ in 0..4 {
            let code = breaker
                .call_with(&by_value, || async { Ok::<u16, String>(503) })
                .await
                .unwrap();
            assert_eq!(code, 503);
        }
        assert_eq!(breaker.state(), State::Open);

        let breaker = new_breaker();
        for _ in 0..4 {
            let err = breaker
                .call_with(&by_value, || async { Err::<u16, _>("missing".to_owned()) })
                .await
                .unwrap_err();
            assert_eq!(err.into_inner().unwrap(), "missing");
        }
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(breaker.metrics().failures, 0);
    }

    /// A direct call dropped before it finishes counts as neither success nor failure, and
    /// hands back its half-open trial permit.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_direct_call_counts_nothing() {
        let breaker = CircuitBreaker::builder("db")
            .minimum_calls(1)
            .fixed_open_wait(Duration::from_secs(1))
            .half_open_calls(1, 1)
            .build()
            .unwrap();
        let slow = breaker.call(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, BoxError>(())
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), slow)
            .await
            .is_err());
        let m = breaker.metrics();
        assert_eq!((m.successes, m.failures, m.cancelled), (0, 0, 1));

        breaker
            .call(|| async { Err::<(), _>(refused()) })
            .await
            .unwrap_err();
        assert_eq!(breaker.state(), State::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        let trial = breaker.call(std::future::pending::<Result<(), BoxError>>);
        assert!(tokio::time::timeout(Duration::from_millis(10), trial)
            .await
            .is_err());
        // The permit is back: the next trial is admitted and closes the breaker.
        breaker
            .call(|| async { Ok::<_, BoxError>(()) })
            .await
            .unwrap();
        assert_eq!(breaker.state(), State::Closed);
    }
}
