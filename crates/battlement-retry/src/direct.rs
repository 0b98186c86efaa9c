//! Direct calls: retry any async call, outside Tower.

use crate::rules::{RetryPredicate, RetryRules};
use crate::RetryPolicy;
use std::future::Future;
use tower::retry::Policy;

impl<K, P> RetryPolicy<K, P> {
    /// Calls `f` and awaits its future, and again while the policy retries: each attempt is a
    /// fresh future from `f`, so a database query, a Redis command or an upload is simply made
    /// again.
    ///
    /// Everything is the policy's, as through its layer: the attempt limit, the backoff and
    /// jitter between attempts (a `tokio::time` sleep), the time limit, the retry budget (each
    /// call deposits, each retry withdraws), the classification of results (by default
    /// [`ResultClassifier`](battlement_core::ResultClassifier): errors of kind `Timeout`,
    /// `Connection` and `RateLimited` are retried), a breaker's `retry_after` honoured, the
    /// predicate, the metrics, `tracing` events, [`RetryEvent`](crate::RetryEvent)s and the
    /// `on_retry` callback. The result is the last attempt's, unchanged. A call allocates
    /// nothing of its own; dropping its future stops it between or during attempts.
    ///
    /// The rules see no request (`()`): a policy from [`RetryPolicy::builder`] works for any
    /// result, one from `http_builder` (which judges `http::Request`s) does not apply. The
    /// error must be [`AsDynError`](battlement_core::AsDynError) for the default classifier
    /// (`BoxError`, `io::Error`, the [`CallError`](battlement_core::CallError) of a breaker's or
    /// bulkhead's direct call, …); a library's own error becomes a `BoxError` with `?`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_core::BoxError;
    /// use battlement_retry::{Backoff, RetryPolicy};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    ///
    /// # struct Redis { calls: AtomicU32 }
    /// # impl Redis {
    /// #     async fn get(&self, _key: &str) -> Result<String, std::io::Error> {
    /// #         if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
    /// #             Err(std::io::ErrorKind::ConnectionReset.into())
    /// #         } else {
    /// #             Ok("42".into())
    /// #         }
    /// #     }
    /// # }
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(3)
    ///     .backoff(Backoff::fixed(Duration::from_millis(50)))
    ///     .build()
    ///     .unwrap();
    /// let redis = Redis { calls: AtomicU32::new(0) }; // e.g. a redis::aio::ConnectionManager
    /// // The first GET finds its connection reset (a `Connection` failure), the retry answers.
    /// let value = policy
    ///     .retry(|| async { Ok::<_, BoxError>(redis.get("answer").await?) })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(value, "42");
    /// assert_eq!(policy.metrics().retries, 1);
    /// # }
    /// ```
    pub async fn retry<F, Fut, T, E>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        K: RetryRules<(), T, E>,
        P: RetryPredicate<(), T, E>,
    {
        let mut session = self.session();
        // The first attempt's bookkeeping, as tower's `Retry` does it: the budget's deposit and
        // the start of the time limit.
        let _ = Policy::<(), T, E>::clone_request(&mut session, &());
        loop {
            let mut result = f().await;
            match Policy::<(), T, E>::retry(&mut session, &mut (), &mut result) {
                Some(delay) => delay.await,
                None => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Backoff, DelaySource, RetryPolicy};
    use battlement_core::BoxError;
    use std::cell::Cell;
    use std::time::Duration;
    use tokio::time::Instant;

    fn reset() -> BoxError {
        std::io::Error::from(std::io::ErrorKind::ConnectionReset).into()
    }

    /// Each attempt is a fresh future, made when the attempt starts, after the backoff; the
    /// waits are the policy's; events and metrics are the layer's.
    #[tokio::test(start_paused = true)]
    async fn retries_with_a_fresh_future_after_each_backoff() {
        let policy = RetryPolicy::builder()
            .name("cache")
            .max_attempts(4)
            .backoff(Backoff::linear(
                Duration::from_millis(100),
                Duration::from_millis(100),
            ))
            .build()
            .unwrap();
        let mut events = policy.subscribe();
        let start = Instant::now();
        let made_at = std::sync::Mutex::new(Vec::new());
        let attempt = Cell::new(0);
        let result = policy
            .retry(|| {
                made_at.lock().unwrap().push(start.elapsed());
                let n = attempt.get();
                attempt.set(n + 1);
                async move {
                    if n < 2 {
                        Err(reset())
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(
            *made_at.lock().unwrap(),
            [
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(300)
            ]
        );
        for (attempt, delay) in [(1, 100), (2, 200)] {
            let event = events.try_recv().unwrap();
            assert_eq!(
                (&*event.name, event.attempt, event.delay, event.source),
                (
                    "cache",
                    attempt,
                    Duration::from_millis(delay),
                    DelaySource::Backoff
                )
            );
        }
        let m = policy.metrics();
        assert_eq!((m.succeeded_after_retry, m.retries), (1, 2));
    }

    /// A failure the rules do not retry, and the attempt limit, end the call with the last
    /// attempt's own error; each call starts a fresh session.
    #[tokio::test(start_paused = true)]
    async fn stops_on_what_the_rules_do_not_retry_and_at_the_limit() {
        let policy = RetryPolicy::builder()
            .max_attempts(2)
            .backoff(Backoff::fixed(Duration::from_millis(10)))
            .build()
            .unwrap();
        let attempts = Cell::new(0);
        let err = policy
            .retry(|| {
                attempts.set(attempts.get() + 1);
                async { Err::<(), BoxError>("bad input".into()) }
            })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "bad input");
        assert_eq!(attempts.get(), 1, "an `Other` failure is not retried");
        for _ in 0..2 {
            attempts.set(0);
            policy
                .retry(|| {
                    attempts.set(attempts.get() + 1);
                    async { Err::<(), BoxError>(reset()) }
                })
                .await
                .unwrap_err();
            assert_eq!(attempts.get(), 2, "each call has its own attempts");
        }
    }

    /// The budget is the layer's, shared by every call: once spent, calls are not retried.
    #[tokio::test(start_paused = true)]
    async fn spends_the_shared_budget() {
        let policy = RetryPolicy::builder()
            .max_attempts(10)
            .backoff(Backoff::fixed(Duration::ZERO))
            .budget(0.0, 1)
            .budget_ttl(Duration::from_secs(1))
            .build()
            .unwrap();
        for expected in [2, 1] {
            let attempts = Cell::new(0);
            policy
                .retry(|| {
                    attempts.set(attempts.get() + 1);
                    async { Err::<(), BoxError>(reset()) }
                })
                .await
                .unwrap_err();
            assert_eq!(attempts.get(), expected);
        }
        assert_eq!(policy.metrics().refused_by_budget, 2);
    }
}
