//! The breaker with its default features: call latencies and time-window buckets come from the
//! CPU's time-stamp counter (through `quanta`), in raw ticks that metrics scale back to time.
//! `tokio::time::pause()` cannot drive that clock, so these tests wait for real, for tens of
//! milliseconds, with limits far from the waits so that a slow machine cannot flip them.

use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
use std::time::{Duration, Instant};
use tower::{service_fn, Layer, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A service whose call takes `ms` milliseconds of real time (0: answers at once); `fail`
/// makes it answer with an error.
fn service(
    breaker: &CircuitBreaker,
) -> impl tower::Service<
    (u64, bool),
    Response = (),
    Error = BoxError,
    Future = impl std::future::Future<Output = Result<(), BoxError>>,
> + Clone {
    CircuitBreakerLayer::new(breaker).layer(service_fn(|(ms, fail): (u64, bool)| async move {
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fail {
            Err(std::io::Error::other("down"))
        } else {
            Ok(())
        }
    }))
}

#[tokio::test]
async fn slow_calls_are_timed_with_the_time_stamp_counter() {
    let breaker = CircuitBreaker::builder("tsc")
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .slow_call(Duration::from_millis(25), 0.5)
        .build()
        .unwrap();
    let svc = service(&breaker);
    // Under the limit: at once, and 12 ms (a limit converted to ticks wrongly, say read as
    // nanoseconds of a faster clock, would call it slow).
    for ms in [0, 12] {
        svc.clone().oneshot((ms, false)).await.unwrap();
    }
    let start = Instant::now();
    svc.clone().oneshot((60, false)).await.unwrap();
    let wall = start.elapsed();
    assert_eq!(breaker.state(), State::Closed);
    let m = breaker.metrics();
    assert_eq!(m.slow_calls, 1, "only the 60 ms call is over 25 ms");
    // The breaker's reading of the 60 ms call lies within the wall-clock time around it: ticks
    // left unscaled (or scaled wrongly) would fall outside.
    let max = m.max_latency.expect("calls are timed");
    assert!(
        max >= Duration::from_millis(60) && max <= wall + Duration::from_millis(1),
        "max latency {max:?}, wall time around the call {wall:?}"
    );
    let mean = m.mean_latency.expect("calls are timed");
    assert!(
        mean >= Duration::from_millis(24) && mean <= max,
        "mean latency {mean:?} of calls of 0, 12 and 60 ms"
    );
    // A second slow call: 2 of 4 calls over the limit reaches the 50 % threshold.
    svc.clone().oneshot((60, false)).await.unwrap();
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test]
async fn a_time_window_counts_calls_on_the_time_stamp_counter() {
    let breaker = CircuitBreaker::builder("tsc-window")
        .sliding_window(SlidingWindow::Time {
            length: Duration::from_secs(60),
            buckets: 6,
        })
        .minimum_calls(100)
        .build()
        .unwrap();
    let svc = service(&breaker);
    for fail in [false, true, false, true, false] {
        let _ = svc.clone().oneshot((0, fail)).await;
    }
    let m = breaker.metrics();
    assert_eq!((m.window_calls, m.window_failures), (5, 2));
    assert_eq!(
        breaker.state(),
        State::Closed,
        "fewer calls than the minimum"
    );
}
