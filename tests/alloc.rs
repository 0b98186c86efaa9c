//! No heap allocation per call in steady state: through a closed breaker and a free bulkhead
//! (with and without their export histograms), an adaptive limit's admitted call, the
//! timeout layer (a call that answers at once, and one that arms its timer), the retry policy whose first attempt succeeds, an adaptive throttle's admitted
//! call, an outlier detector's watched endpoint, and the full recommended stack
//! composed by the facade's `ResilienceStack` (also behind `PerThread` and leaked, cloned per
//! call).
//!
//! Each service is driven by hand with `battlement_test_util::calls` (no executor), and after a
//! warm-up (thread-locals, lazy statics) `CALLS` calls are counted with
//! `battlement_test_util::allocations`, which counts only this thread's allocations.

use battlement_test_util::{allocations, bare, calls, CALLS};
use std::time::Duration;
use tower::{Layer, Service};

const WARM_UP: u64 = 100;

/// Heap allocations made by `CALLS` calls through `svc`, each of which must succeed, after a
/// warm-up.
fn allocations_per_steady_calls<S: Service<()>>(mut svc: S) -> u64 {
    assert_eq!(calls(&mut svc, WARM_UP, |_| ()), (WARM_UP, 0));
    allocations(|| assert_eq!(calls(&mut svc, CALLS, |_| ()), (CALLS, 0)))
}

/// Heap allocations made by `CALLS` calls, each through a fresh clone of `svc` as a server
/// clones its service per request, after as many calls to warm up (thread-locals, a
/// `PerThread`'s clone for this thread).
fn allocations_cloned_per_call<S: Service<()> + Clone>(svc: &S) -> u64 {
    let clone_per_call = || {
        let mut answered = 0;
        for _ in 0..CALLS {
            answered += calls(&mut svc.clone(), 1, |_| ()).0;
        }
        assert_eq!(answered, CALLS);
    };
    clone_per_call();
    allocations(clone_per_call)
}

/// A current-thread runtime to enter: the timeout layer's timer needs a time driver in scope.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_counter_sees_a_boxed_future_per_call() {
    // Guards against a vacuous pass: a service that boxes its future allocates once per call.
    let svc = tower::util::BoxService::new(bare());
    assert_eq!(allocations_per_steady_calls(svc), CALLS);
}

mod breaker {
    use super::*;
    use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};

    fn closed(b: battlement_breaker::CircuitBreakerBuilder) -> u64 {
        let breaker = b.build().unwrap();
        let svc = CircuitBreakerLayer::new(&breaker).layer(bare());
        let n = allocations_per_steady_calls(svc);
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(breaker.metrics().successes, WARM_UP + CALLS);
        n
    }

    #[test]
    fn closed_count_window_allocates_nothing() {
        let b = CircuitBreaker::builder("alloc").sliding_window(SlidingWindow::Count(100));
        assert_eq!(closed(b), 0);
    }

    #[test]
    fn closed_time_window_allocates_nothing() {
        let b = CircuitBreaker::builder("alloc").sliding_window(SlidingWindow::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        });
        assert_eq!(closed(b), 0);
    }

    #[test]
    fn closed_with_slow_call_detection_allocates_nothing() {
        let b = CircuitBreaker::builder("alloc")
            .sliding_window(SlidingWindow::Count(100))
            .slow_call(Duration::from_secs(1), 0.5);
        assert_eq!(closed(b), 0);
    }

    #[test]
    fn closed_with_the_duration_histogram_allocates_nothing() {
        let b = CircuitBreaker::builder("alloc")
            .sliding_window(SlidingWindow::Count(100))
            .histogram(true);
        assert_eq!(closed(b), 0);
    }

    #[test]
    fn closed_inside_a_runtime_allocates_nothing() {
        let rt = runtime();
        let _enter = rt.enter();
        let b = CircuitBreaker::builder("alloc").slow_call(Duration::from_secs(1), 0.5);
        assert_eq!(closed(b), 0);
    }
}

mod retry {
    use super::*;
    use battlement_retry::{Backoff, RetryPolicy};

    #[test]
    fn first_attempt_ok_allocates_nothing() {
        let policy = RetryPolicy::builder()
            .max_attempts(3)
            .backoff(Backoff::fixed(Duration::ZERO))
            .build()
            .unwrap();
        assert_eq!(
            allocations_per_steady_calls(policy.into_layer().layer(bare())),
            0
        );
    }

    #[test]
    fn with_a_budget_first_attempt_ok_allocates_nothing() {
        let policy = RetryPolicy::builder()
            .max_attempts(3)
            .backoff(Backoff::fixed(Duration::ZERO))
            .budget(0.2, 10)
            .build()
            .unwrap();
        assert_eq!(
            allocations_per_steady_calls(policy.into_layer().layer(bare())),
            0
        );
    }

    #[test]
    fn leaked_with_a_budget_first_attempt_ok_allocates_nothing() {
        let policy = RetryPolicy::builder().budget(0.2, 10).build().unwrap();
        let svc = policy.into_layer().leak().layer(bare());
        assert!(svc.is_leaked());
        assert_eq!(allocations_per_steady_calls(svc), 0);
    }
}

mod timeout {
    use super::*;
    use battlement_timeout::TimeoutLayer;

    #[test]
    fn a_call_within_the_limit_allocates_nothing() {
        let rt = runtime();
        let _enter = rt.enter();
        let svc = TimeoutLayer::new(Duration::from_secs(10)).layer(bare());
        assert_eq!(allocations_per_steady_calls(svc), 0);
    }

    /// Answers on its second poll: a call that waits once, so the timeout arms its timer.
    struct PendingOnce(bool);

    impl std::future::Future for PendingOnce {
        type Output = Result<(), std::convert::Infallible>;

        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            if std::mem::replace(&mut self.0, true) {
                std::task::Poll::Ready(Ok(()))
            } else {
                std::task::Poll::Pending
            }
        }
    }

    #[test]
    fn a_call_that_arms_the_timer_allocates_nothing() {
        use std::future::Future;
        // The first armed call spawns the thread's timer driver and sizes its shard; after
        // that an armed call takes an entry and gives it back.
        let rt = runtime();
        let _enter = rt.enter();
        let mut svc = TimeoutLayer::new(Duration::from_secs(10))
            .layer(tower::service_fn(|_: ()| PendingOnce(false)));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut armed_calls = |n: u64| {
            for _ in 0..n {
                let mut call = std::pin::pin!(svc.call(()));
                assert!(call.as_mut().poll(&mut cx).is_pending());
                assert!(matches!(call.poll(&mut cx), std::task::Poll::Ready(Ok(()))));
            }
        };
        armed_calls(WARM_UP);
        assert_eq!(allocations(|| armed_calls(CALLS)), 0);
    }
}

mod bulkhead {
    use super::*;
    use battlement_bulkhead::{Bulkhead, BulkheadLayer};

    #[test]
    fn a_free_permit_allocates_nothing() {
        let bulkhead = Bulkhead::builder("alloc")
            .max_concurrent(4)
            .max_queued(4)
            .max_wait(Duration::from_secs(1))
            .build()
            .unwrap();
        let svc = BulkheadLayer::new(&bulkhead).layer(bare());
        assert_eq!(allocations_per_steady_calls(svc), 0);
        assert_eq!(bulkhead.in_flight(), 0);
    }

    #[test]
    fn a_free_permit_with_the_wait_histogram_allocates_nothing() {
        let bulkhead = Bulkhead::builder("alloc")
            .max_concurrent(4)
            .max_queued(4)
            .max_wait(Duration::from_secs(1))
            .histogram(true)
            .build()
            .unwrap();
        let svc = BulkheadLayer::new(&bulkhead).layer(bare());
        assert_eq!(allocations_per_steady_calls(svc), 0);
        assert_eq!(bulkhead.in_flight(), 0);
    }

    /// A priority function is asked only when no permit is free: the admitted call is the
    /// plain bulkhead's.
    #[test]
    fn a_free_permit_with_a_priority_fn_allocates_nothing() {
        use battlement_bulkhead::Priority;
        let bulkhead = Bulkhead::builder("alloc")
            .max_concurrent(4)
            .max_queued(4)
            .build()
            .unwrap();
        let svc = bulkhead
            .layer()
            .priority_fn(|_: &()| Priority::Sheddable)
            .layer(bare());
        assert_eq!(allocations_per_steady_calls(svc), 0);
        assert_eq!(bulkhead.in_flight(), 0);
    }

    /// The adaptive limit's admitted call: the bulkhead's, plus a clock read and a sample.
    #[test]
    fn an_adaptive_limits_free_permit_allocates_nothing() {
        use battlement_bulkhead::{AdaptiveLayer, Limit};
        let limit = Bulkhead::builder("alloc")
            .max_queued(4)
            .adaptive(Limit::vegas())
            .min_rtt(Duration::ZERO)
            .build()
            .unwrap();
        let svc = AdaptiveLayer::new(&limit).layer(bare());
        assert_eq!(allocations_per_steady_calls(svc), 0);
        let m = limit.metrics();
        assert_eq!(m.bulkhead.in_flight, 0);
        assert!(m.samples > 0, "the calls were sampled");
    }
}

mod rate_limit {
    use super::*;
    use battlement::rate_limit::{key_fn, RateLimit, RateLimitLayer};

    #[test]
    fn an_unkeyed_admitted_call_allocates_nothing() {
        let limit = RateLimit::builder("alloc")
            .rate(1_000_000, Duration::from_secs(1))
            .build()
            .unwrap();
        let mut svc = RateLimitLayer::new(&limit).layer(bare());
        assert_eq!(allocations_per_steady_calls(&mut svc), 0);
        assert_eq!(limit.metrics().admitted, WARM_UP + CALLS);

        // The counter is not vacuous: a rejection boxes its error, once per call.
        let spent = RateLimit::builder("spent")
            .rate(1, Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut svc = RateLimitLayer::new(&spent).layer(bare());
        calls(&mut svc, 2, |_| ());
        let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |_| ()), (0, CALLS)));
        assert_eq!(n, CALLS);
    }

    #[test]
    fn a_keyed_call_of_a_tracked_key_allocates_nothing() {
        let limit = RateLimit::builder("alloc")
            .rate(1_000_000, Duration::from_secs(1))
            .keyed(key_fn(|_: &()| Some(7u64)))
            .build()
            .unwrap();
        let svc = RateLimitLayer::new(&limit).layer(bare());
        assert_eq!(allocations_per_steady_calls(svc), 0);
        assert_eq!(limit.metrics().keys_tracked, 1);
    }
}

mod throttle {
    use super::*;
    use battlement::throttle::{Throttle, ThrottleLayer};

    /// An admitted call counts a request in the thread's own cell, clones that cell's `Arc`
    /// into its future and records the accept: no allocation, also across bucket roll-overs.
    #[test]
    fn an_admitted_call_allocates_nothing() {
        let throttle = Throttle::builder("alloc")
            .window(Duration::from_millis(20))
            .buckets(20)
            .build()
            .unwrap();
        let svc = ThrottleLayer::new(&throttle).layer(bare());
        assert_eq!(allocations_per_steady_calls(svc), 0);
        let m = throttle.metrics();
        assert_eq!(
            (m.requests, m.accepts, m.throttled),
            (WARM_UP + CALLS, WARM_UP + CALLS, 0)
        );
    }
}

mod keyed {
    use super::*;
    use battlement::keyed::{key_fn, Authority, KeyedBuilder, KeyedCircuitBreaker};
    use battlement_breaker::CircuitBreaker;
    use battlement_bulkhead::Bulkhead;
    use std::convert::Infallible;
    use std::future::{ready, Ready};

    fn answer_u64(
    ) -> impl Service<u64, Response = (), Error = Infallible, Future = Ready<Result<(), Infallible>>>
           + Clone {
        tower::service_fn(|_: u64| ready(Ok::<_, Infallible>(())))
    }

    #[test]
    fn a_known_key_allocates_nothing_after_a_flood_of_keys() {
        let rt = runtime();
        let _enter = rt.enter();
        let breakers = KeyedBuilder::<CircuitBreaker, u64>::new("alloc")
            .max_keys(1000)
            .build()
            .unwrap();
        let mut svc = breakers
            .layer(key_fn(|k: &u64| Some(*k)))
            .layer(answer_u64());
        // A flood of 100k distinct keys: the table stays under its bound.
        assert_eq!(calls(&mut svc, 100_000, |i| 1_000_000 + i), (100_000, 0));
        assert!(breakers.len() <= 1000, "{}", breakers.len());
        // Then 16 known keys, cycled.
        calls(&mut svc, WARM_UP, |i| i % 16);
        let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |i| i % 16), (CALLS, 0)));
        assert_eq!(n, 0);
        let expected = (0..WARM_UP).chain(0..CALLS).filter(|i| i % 16 == 3).count() as u64;
        assert_eq!(breakers.metrics(&3).unwrap().successes, expected);
        // The counter is not vacuous: a new key's first call builds its breaker.
        let n = allocations(|| assert_eq!(calls(&mut svc, 10, |i| 5_000_000 + i), (10, 0)));
        assert!(n >= 10, "{n}");
    }

    #[test]
    fn a_known_authority_allocates_nothing() {
        let breakers = KeyedCircuitBreaker::builder("alloc").build().unwrap();
        let mut svc = breakers
            .layer(Authority)
            .layer(tower::service_fn(|_: http::Request<()>| {
                ready(Ok::<_, Infallible>(http::Response::new(())))
            }));
        let mut requests: Vec<Option<http::Request<()>>> = (0..WARM_UP + CALLS)
            .map(|i| {
                let host = ["a.example", "b.example:8080", "c.example"][(i % 3) as usize];
                Some(
                    http::Request::get(format!("http://{host}/x"))
                        .body(())
                        .unwrap(),
                )
            })
            .collect();
        let mut next = requests.iter_mut().map(|r| r.take().unwrap());
        calls(&mut svc, WARM_UP, |_| next.next().unwrap());
        let n = allocations(|| {
            assert_eq!(calls(&mut svc, CALLS, |_| next.next().unwrap()), (CALLS, 0))
        });
        assert_eq!(n, 0);
        assert_eq!(breakers.len(), 3);
    }

    #[test]
    fn a_known_key_through_a_keyed_bulkhead_allocates_nothing() {
        let rt = runtime();
        let _enter = rt.enter();
        let bulkheads = KeyedBuilder::<Bulkhead, u64>::new("alloc").build().unwrap();
        let svc = bulkheads
            .layer(key_fn(|k: &u64| Some(*k)))
            .layer(answer_u64());
        let mut svc = svc;
        calls(&mut svc, WARM_UP, |i| i % 8);
        let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |i| i % 8), (CALLS, 0)));
        assert_eq!(n, 0);
    }
}

mod stack {
    use super::*;

    #[test]
    fn the_full_recommended_stack_allocates_nothing() {
        use battlement::ResilienceStack;
        use battlement_breaker::CircuitBreaker;
        use battlement_bulkhead::Bulkhead;
        use battlement_retry::RetryPolicy;

        let rt = runtime();
        let _enter = rt.enter();
        let breaker = CircuitBreaker::builder("alloc").build().unwrap();
        let bulkhead = Bulkhead::builder("alloc").build().unwrap();
        let retry = RetryPolicy::builder().budget(0.2, 10).build().unwrap();
        let limit = battlement::rate_limit::RateLimit::builder("alloc")
            .rate(1_000_000, Duration::from_secs(1))
            .build()
            .unwrap();
        let throttle = battlement::throttle::Throttle::builder("alloc")
            .build()
            .unwrap();
        let stack = ResilienceStack::new()
            .rate_limit(&limit)
            .retry_policy(retry)
            .throttle(&throttle)
            .circuit_breaker(&breaker)
            .bulkhead(&bulkhead)
            .timeout_per_try(Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(allocations_per_steady_calls(stack.layer(bare())), 0);
    }

    /// Behind `PerThread`, cloned for every call as a server does: the clone copies a pointer
    /// and the call goes through the thread's own clone of the stack.
    #[test]
    fn the_stack_behind_per_thread_cloned_per_call_allocates_nothing() {
        use battlement::{PerThread, ResilienceStack};

        let rt = runtime();
        let _enter = rt.enter();
        let breaker = battlement_breaker::CircuitBreaker::builder("alloc-per-thread")
            .build()
            .unwrap();
        let bulkhead = battlement_bulkhead::Bulkhead::builder("alloc-per-thread")
            .build()
            .unwrap();
        let stack = ResilienceStack::new()
            .retry_policy(battlement_retry::RetryPolicy::builder().build().unwrap())
            .circuit_breaker(&breaker)
            .bulkhead(&bulkhead)
            .timeout_per_try(Duration::from_secs(10))
            .build()
            .unwrap();
        let svc = PerThread::leak(stack.layer(bare()));
        assert_eq!(allocations_cloned_per_call(&svc), 0);
        assert_eq!(breaker.metrics().successes, 2 * CALLS);
    }

    /// A leaked stack (`ResilienceStack::leak`), cloned for every call as axum's router does:
    /// each clone copies pointers, and neither the clone nor the call allocates.
    #[test]
    fn a_leaked_stack_cloned_per_call_allocates_nothing() {
        use battlement::ResilienceStack;

        let rt = runtime();
        let _enter = rt.enter();
        let breaker = battlement_breaker::CircuitBreaker::builder("alloc-leaked")
            .build()
            .unwrap();
        let bulkhead = battlement_bulkhead::Bulkhead::builder("alloc-leaked")
            .build()
            .unwrap();
        let stack = ResilienceStack::new()
            .leak()
            .retry_policy(
                battlement_retry::RetryPolicy::builder()
                    .budget(0.2, 10)
                    .build()
                    .unwrap(),
            )
            .circuit_breaker(&breaker)
            .bulkhead(&bulkhead)
            .timeout_per_try(Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(allocations_cloned_per_call(&stack.layer(bare())), 0);
        assert_eq!(breaker.metrics().successes, 2 * CALLS);
        assert_eq!(bulkhead.metrics().accepted, 2 * CALLS);
    }
}

mod outlier {
    use super::*;
    use battlement::outlier::OutlierDetector;

    /// A watched endpoint's call reads its ejection word and the clock, clones its membership's
    /// `Arc` into its future and records the verdict in the endpoint's counters: no allocation,
    /// also when calls evaluate the pool (an interval of 1 ns: nearly every call evaluates,
    /// success rates included).
    #[test]
    fn a_watched_endpoints_call_allocates_nothing_evaluations_included() {
        let detector = OutlierDetector::builder("alloc")
            .interval(Duration::from_nanos(1))
            .success_rate_minimum_hosts(1)
            .success_rate_request_volume(1)
            .build()
            .unwrap();
        let svc = detector.endpoint("a", bare());
        let _member = svc.clone(); // keeps the endpoint in the pool for the read-out below
        assert_eq!(allocations_per_steady_calls(svc), 0);
        let e = &detector.endpoints()[0];
        assert_eq!(
            (e.successes, e.failures, e.ejections),
            (WARM_UP + CALLS, 0, 0)
        );
    }
}

/// The direct calls (`breaker.call(|| async { … })` and the others, outside Tower): an admitted
/// call allocates nothing either.
mod direct {
    use super::*;
    use battlement_core::BoxError;
    use std::future::Future;
    use std::task::{Context, Poll};

    /// Polls `future` once with a no-op waker; it must complete.
    fn now<F: Future>(future: F) -> F::Output {
        let waker = futures::task::noop_waker();
        match std::pin::pin!(future).poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("direct call did not complete at once"),
        }
    }

    /// Allocations of `CALLS` direct calls made by `call`, each of which must succeed, after
    /// a warm-up.
    fn allocations_per_steady_direct_calls(mut call: impl FnMut() -> bool) -> u64 {
        for _ in 0..WARM_UP {
            assert!(call());
        }
        allocations(|| {
            for _ in 0..CALLS {
                assert!(call());
            }
        })
    }

    #[test]
    fn a_closed_breakers_direct_call_allocates_nothing() {
        let breaker = battlement_breaker::CircuitBreaker::builder("alloc")
            .build()
            .unwrap();
        let classifier = battlement_core::ResultClassifier;
        let n = allocations_per_steady_direct_calls(|| {
            now(breaker.call(|| async { Ok::<_, BoxError>(1) })).is_ok()
                && now(breaker.call_with(classifier, || async { Ok::<_, BoxError>(1) })).is_ok()
        });
        assert_eq!(n, 0);
        assert_eq!(breaker.metrics().successes, 2 * (WARM_UP + CALLS));
    }

    #[test]
    fn a_free_bulkheads_direct_call_allocates_nothing() {
        let bulkhead = battlement_bulkhead::Bulkhead::builder("alloc")
            .build()
            .unwrap();
        let n = allocations_per_steady_direct_calls(|| {
            now(bulkhead.call(|| async { Ok::<_, BoxError>(1) })).is_ok()
        });
        assert_eq!(n, 0);
        assert_eq!(bulkhead.in_flight(), 0);
    }

    #[test]
    fn a_running_kill_switchs_direct_call_allocates_nothing() {
        let switch = battlement_kill_switch::KillSwitch::builder("alloc")
            .build()
            .unwrap();
        let n = allocations_per_steady_direct_calls(|| {
            now(switch.call(|| async { Ok::<_, BoxError>(1) })).is_ok()
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn a_direct_retry_whose_first_attempt_succeeds_allocates_nothing() {
        let rt = runtime();
        let _enter = rt.enter();
        let policy = battlement_retry::RetryPolicy::builder()
            .budget(0.2, 10)
            .build()
            .unwrap();
        let n = allocations_per_steady_direct_calls(|| {
            now(policy.retry(|| async { Ok::<_, BoxError>(1) })).is_ok()
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn a_retried_breaker_call_allocates_nothing() {
        let breaker = battlement_breaker::CircuitBreaker::builder("alloc")
            .build()
            .unwrap();
        let policy = battlement_retry::RetryPolicy::builder().build().unwrap();
        let n = allocations_per_steady_direct_calls(|| {
            now(policy.retry(|| breaker.call(|| async { Ok::<_, BoxError>(1) }))).is_ok()
        });
        assert_eq!(n, 0);
    }
}

mod direct_stack {
    use super::*;
    use battlement_core::BoxError;
    use std::future::Future;
    use std::task::{Context, Poll};

    #[test]
    fn the_recommended_stack_around_a_closure_allocates_nothing() {
        use battlement::ResilienceStack;
        let rt = runtime();
        let _enter = rt.enter();
        let breaker = battlement_breaker::CircuitBreaker::builder("alloc")
            .build()
            .unwrap();
        let bulkhead = battlement_bulkhead::Bulkhead::builder("alloc")
            .build()
            .unwrap();
        let stack = ResilienceStack::new()
            .total_timeout(Duration::from_secs(30))
            .retry_policy(
                battlement_retry::RetryPolicy::builder()
                    .budget(0.2, 10)
                    .build()
                    .unwrap(),
            )
            .circuit_breaker_with(&breaker, battlement_core::ResultClassifier)
            .bulkhead(&bulkhead)
            .timeout_per_try(Duration::from_secs(10))
            .build_direct()
            .unwrap();
        let waker = futures::task::noop_waker();
        let call = || {
            let future = std::pin::pin!(stack.call(|| async { Ok::<_, BoxError>(1) }));
            matches!(
                future.poll(&mut Context::from_waker(&waker)),
                Poll::Ready(Ok(1))
            )
        };
        for _ in 0..WARM_UP {
            assert!(call());
        }
        let n = allocations(|| {
            for _ in 0..CALLS {
                assert!(call());
            }
        });
        assert_eq!(n, 0);
        assert_eq!(breaker.metrics().successes, WARM_UP + CALLS);
    }
}
