//! Behavior tests, driven through `tower::ServiceExt` with paused time.

use crate::*;
use battlement_core::{classify_fn, BoxError, FailureKind, Outcome};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tower::{service_fn, Layer, Service, ServiceExt};

mod export;

/// What the fake upstream should do for one call.
enum Call {
    Ok,
    Fail,
    NotFound,
    Sleep(Duration, bool),
    Wait(oneshot::Receiver<bool>),
}

type Res = u16;

/// 2xx succeed, 404 is ignored, errors fail with their kind.
fn classifier() -> impl battlement_core::Classify<Res, BoxError> + battlement_core::AtOnce + Clone {
    classify_fn(|r: Result<&Res, &BoxError>| match r {
        Ok(404) => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(battlement_core::error::failure_kind(&**e)),
    })
}

struct Upstream {
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    fn new() -> Self {
        Upstream {
            hits: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn service(
        &self,
    ) -> impl Service<Call, Response = Res, Error = std::io::Error, Future = impl Send> + Clone
    {
        let hits = self.hits.clone();
        service_fn(move |call: Call| {
            hits.fetch_add(1, SeqCst);
            async move {
                let fail = || Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
                match call {
                    Call::Ok => Ok(200),
                    Call::Fail => fail(),
                    Call::NotFound => Ok(404),
                    Call::Sleep(d, ok) => {
                        tokio::time::sleep(d).await;
                        if ok {
                            Ok(200)
                        } else {
                            fail()
                        }
                    }
                    Call::Wait(rx) => {
                        if rx.await.unwrap_or(false) {
                            Ok(200)
                        } else {
                            fail()
                        }
                    }
                }
            }
        })
    }

    fn hits(&self) -> usize {
        self.hits.load(SeqCst)
    }
}

fn guarded(
    breaker: &CircuitBreaker,
    up: &Upstream,
) -> impl Service<Call, Response = Res, Error = BoxError, Future = impl Send> + Clone {
    CircuitBreakerLayer::new(breaker)
        .classifier(classifier())
        .layer(up.service())
}

async fn call<S>(svc: &S, c: Call) -> Result<Res, BoxError>
where
    S: Service<Call, Response = Res, Error = BoxError> + Clone,
{
    svc.clone().oneshot(c).await
}

fn is_open(r: &Result<Res, BoxError>) -> bool {
    matches!(r, Err(e) if e.downcast_ref::<BreakerOpen>().is_some())
}

fn count_breaker(window: u64, min: u64) -> CircuitBreakerBuilder {
    CircuitBreaker::builder("test")
        .sliding_window(SlidingWindow::Count(window))
        .minimum_calls(min)
        .failure_rate_threshold(0.5)
        .fixed_open_wait(Duration::from_secs(1))
}

#[tokio::test(start_paused = true)]
async fn count_window_trips_at_threshold_after_minimum_calls() {
    let b = count_breaker(10, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    call(&svc, Call::Ok).await.unwrap();
    call(&svc, Call::Fail).await.unwrap_err();
    call(&svc, Call::Fail).await.unwrap_err();
    // 2 of 3 failed, but the window holds fewer than 4 calls.
    assert_eq!(b.state(), State::Closed);
    call(&svc, Call::Ok).await.unwrap();
    // 2 of 4 = 50 %: the success that reached the minimum triggers the decision.
    assert_eq!(b.state(), State::Open);
    let hits = up.hits();
    let r = call(&svc, Call::Ok).await;
    assert!(is_open(&r));
    assert_eq!(
        up.hits(),
        hits,
        "a rejected call must not reach the upstream"
    );
    assert_eq!(b.metrics().calls_rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn below_threshold_stays_closed() {
    let b = count_breaker(10, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    for c in [
        Call::Ok,
        Call::Ok,
        Call::Fail,
        Call::Ok,
        Call::Ok,
        Call::Fail,
    ] {
        let _ = call(&svc, c).await;
    }
    assert_eq!(b.state(), State::Closed);
    let m = b.metrics();
    assert_eq!((m.window_calls, m.window_failures), (6, 2));
    assert!((m.failure_rate - 2.0 / 6.0).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn count_window_slides() {
    let b = count_breaker(4, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    // F F then many successes: the failures leave the window of 4.
    for c in [Call::Fail, Call::Ok, Call::Ok, Call::Ok, Call::Ok, Call::Ok] {
        let _ = call(&svc, c).await;
    }
    assert_eq!(b.metrics().window_failures, 0);
    // Last four: ok ok fail fail = 50 %.
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Closed);
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_ages_out_old_failures() {
    let b = CircuitBreaker::builder("t")
        .sliding_window(SlidingWindow::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        })
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    for _ in 0..3 {
        call(&svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Closed, "3 calls < minimum 4");
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(b.metrics().window_calls, 0, "old buckets aged out");
    // One more failure is 1 of 1: below the minimum, not 4 of 4.
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Closed);
    for _ in 0..3 {
        call(&svc, Call::Ok).await.unwrap();
    }
    call(&svc, Call::Fail).await.unwrap_err();
    // 2 of 5 failed in the window.
    assert_eq!(b.state(), State::Closed);
    call(&svc, Call::Fail).await.unwrap_err();
    // 3 of 6.
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_even_when_they_succeed() {
    let b = CircuitBreaker::builder("slow")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(4)
        .slow_call(Duration::from_millis(100), 0.5)
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    call(&svc, Call::Sleep(Duration::from_millis(10), true))
        .await
        .unwrap();
    call(&svc, Call::Sleep(Duration::from_millis(10), true))
        .await
        .unwrap();
    call(&svc, Call::Sleep(Duration::from_millis(150), true))
        .await
        .unwrap();
    assert_eq!(b.state(), State::Closed);
    call(&svc, Call::Sleep(Duration::from_millis(150), true))
        .await
        .unwrap();
    assert_eq!(b.state(), State::Open);
    let m = b.metrics();
    assert_eq!(m.slow_calls, 2);
    assert_eq!(m.failures, 0);
    assert_eq!(m.max_latency, Some(Duration::from_millis(150)));
    assert_eq!(m.mean_latency, Some(Duration::from_millis(80)));
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_and_a_success_resets_the_run() {
    let b = CircuitBreaker::builder("c")
        .sliding_window(SlidingWindow::Count(100))
        .minimum_calls(100)
        .consecutive_failures(3)
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    for c in [Call::Fail, Call::Fail, Call::Ok, Call::Fail, Call::Fail] {
        let _ = call(&svc, c).await;
    }
    assert_eq!(b.state(), State::Closed);
    let mut events = b.subscribe();
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
    match events.recv().await.unwrap() {
        BreakerEvent::StateTransition { reason, to, .. } => {
            assert_eq!(to, State::Open);
            assert_eq!(reason, TransitionReason::ConsecutiveFailures(3));
        }
        other => panic!("unexpected event {other:?}"),
    }
}

async fn trip(
    b: &CircuitBreaker,
    svc: &(impl Service<Call, Response = Res, Error = BoxError> + Clone),
) {
    while b.state() == State::Closed {
        let _ = call(svc, Call::Fail).await;
    }
}

#[tokio::test(start_paused = true)]
async fn open_wait_grows_with_each_reopening_and_resets_on_close() {
    let b = CircuitBreaker::builder("exp")
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .open_wait(Duration::from_secs(1), 2.0, Duration::from_secs(5))
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    let mut waits = Vec::new();
    for _ in 0..5 {
        let wait = b.retry_after().unwrap();
        waits.push(wait);
        // Just before the wait ends: still open.
        tokio::time::advance(wait - Duration::from_millis(1)).await;
        assert!(is_open(&call(&svc, Call::Ok).await));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), State::HalfOpen);
        // The trial fails: reopen with a longer wait.
        call(&svc, Call::Fail).await.unwrap_err();
        assert_eq!(b.state(), State::Open);
    }
    let secs: Vec<u64> = waits.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, vec![1, 2, 4, 5, 5]);
    // A successful trial closes and resets the wait.
    tokio::time::advance(Duration::from_secs(5)).await;
    call(&svc, Call::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    trip(&b, &svc).await;
    assert_eq!(b.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(b.metrics().trips, 7);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_its_permits_under_concurrency() {
    let b = count_breaker(2, 2).half_open_calls(2, 2).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let before = up.hits();
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        let svc = svc.clone();
        tasks.push(tokio::spawn(
            async move { svc.oneshot(Call::Wait(rx)).await },
        ));
    }
    tokio::task::yield_now().await;
    assert_eq!(
        up.hits() - before,
        2,
        "only two trial calls reach the upstream"
    );
    for tx in senders {
        let _ = tx.send(true);
    }
    let mut ok = 0;
    let mut rejected = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.downcast_ref::<BreakerOpen>().is_some());
                assert_eq!(e.downcast_ref::<BreakerOpen>().unwrap().retry_after(), None);
                rejected += 1;
            }
        }
    }
    assert_eq!((ok, rejected), (2, 4));
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_trials_on_a_multi_thread_runtime_never_exceed_permits() {
    // Real threads racing for permits; the loom test checks the same property exhaustively.
    let b = count_breaker(2, 2).half_open_calls(3, 3).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.state(), State::HalfOpen);
    let admitted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            let admitted = admitted.clone();
            std::thread::spawn(move || {
                let shard = b.shard();
                for _ in 0..100 {
                    if shard.shared.admit().is_ok() {
                        admitted.fetch_add(1, SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(admitted.load(SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn outcomes_from_an_earlier_generation_do_not_count() {
    let b = count_breaker(2, 2).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    // A slow call admitted while closed.
    let (tx, rx) = oneshot::channel();
    let slow = tokio::spawn({
        let svc = svc.clone();
        async move { svc.oneshot(Call::Wait(rx)).await }
    });
    tokio::task::yield_now().await;
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.state(), State::HalfOpen);
    // The old call now fails: it must not reopen the half-open breaker.
    tx.send(false).unwrap();
    slow.await.unwrap().unwrap_err();
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.metrics().stale, 1);
    // The real trial decides.
    call(&svc, Call::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_trial_returns_its_permit_and_counts_nothing() {
    let b = count_breaker(2, 2).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_tx, rx) = oneshot::channel();
    let mut fut = Box::pin(svc.clone().oneshot(Call::Wait(rx)));
    // Poll once so the trial is admitted and in flight.
    assert!(futures::poll!(&mut fut).is_pending());
    assert!(
        is_open(&call(&svc, Call::Ok).await),
        "the only permit is taken"
    );
    let before = b.metrics();
    drop(fut);
    let after = b.metrics();
    assert_eq!(after.cancelled, before.cancelled + 1);
    assert_eq!(after.failures, before.failures);
    assert_eq!(after.successes, before.successes);
    assert_eq!(b.state(), State::HalfOpen);
    call(&svc, Call::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_closed_call_counts_nothing() {
    let b = count_breaker(4, 1).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let (_tx, rx) = oneshot::channel();
    let mut fut = Box::pin(svc.clone().oneshot(Call::Wait(rx)));
    assert!(futures::poll!(&mut fut).is_pending());
    drop(fut);
    let m = b.metrics();
    assert_eq!((m.cancelled, m.window_calls, m.failures), (1, 0, 0));
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_neither_succeed_nor_fail() {
    let b = count_breaker(4, 2).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    for _ in 0..10 {
        assert_eq!(call(&svc, Call::NotFound).await.unwrap(), 404);
    }
    let m = b.metrics();
    assert_eq!((m.ignored, m.window_calls, m.successes), (10, 0, 0));
    // An ignored trial returns its permit and leaves the breaker half-open.
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    call(&svc, Call::NotFound).await.unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    call(&svc, Call::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_open_disabled_and_reset() {
    let b = count_breaker(2, 2).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    b.force_open("incident 42");
    let err = call(&svc, Call::Ok).await.unwrap_err();
    let open = err.downcast_ref::<BreakerOpen>().unwrap();
    assert_eq!(open.forced_reason(), Some("incident 42"));
    assert_eq!(up.hits(), 0);
    // Forced open does not move to half-open by itself.
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(b.state(), State::ForcedOpen);
    assert_eq!(
        battlement_core::HealthSource::snapshot(&b)
            .message
            .as_deref(),
        Some("forced open: incident 42")
    );

    b.disable();
    for _ in 0..10 {
        call(&svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Disabled, "disabled never trips");
    assert_eq!(b.metrics().failures, 10, "but still records");
    assert_eq!(b.metrics().window_failures, 2, "in its window of 2");

    b.reset();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().window_calls, 0);
    call(&svc, Call::Fail).await.unwrap_err();
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn forced_open_for_a_time_rejects_with_the_time_left_then_goes_half_open() {
    let b = count_breaker(2, 2).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let mut events = b.subscribe();
    b.force_open_for("deploy", Duration::from_secs(30));
    match events.try_recv().unwrap() {
        BreakerEvent::StateTransition { to, open_for, .. } => {
            assert_eq!(
                (to, open_for),
                (State::ForcedOpen, Some(Duration::from_secs(30)))
            );
        }
        other => panic!("unexpected event {other:?}"),
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    let err = call(&svc, Call::Ok).await.unwrap_err();
    let open = err.downcast_ref::<BreakerOpen>().unwrap();
    assert_eq!(open.forced_reason(), Some("deploy"));
    assert_eq!(open.retry_after(), Some(Duration::from_secs(20)));
    assert_eq!(b.retry_after(), Some(Duration::from_secs(20)));
    assert_eq!(b.metrics().retry_after, Some(Duration::from_secs(20)));
    assert_eq!(up.hits(), 0);

    // At the end it goes half-open (not closed): a trial decides.
    tokio::time::advance(Duration::from_secs(20)).await;
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(up.hits(), 1, "the first call after the end is a trial");
    match events.try_recv().unwrap() {
        BreakerEvent::StateTransition {
            from, to, reason, ..
        } => {
            assert_eq!((from, to), (State::ForcedOpen, State::HalfOpen));
            assert_eq!(reason, TransitionReason::ForcedOpenEnded);
        }
        other => panic!("unexpected event {other:?}"),
    }
    assert_eq!(b.state(), State::Open, "a failed trial reopens");
    assert_eq!(b.metrics().forced_reason, None);
    assert_eq!(b.metrics().trips, 1, "the forced period is not a trip");

    // Until an instant; `state()` moves it too, without a call.
    b.force_open_until(
        "restore",
        tokio::time::Instant::now() + Duration::from_secs(5),
    );
    assert_eq!(b.state(), State::ForcedOpen);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(b.state(), State::HalfOpen);
    call(&svc, Call::Ok).await.unwrap();
    call(&svc, Call::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_open_without_an_end_has_no_retry_after() {
    let b = count_breaker(2, 2).build().unwrap();
    let svc = guarded(&b, &Upstream::new());
    // An earlier timed force is replaced by one with no end.
    b.force_open_for("deploy", Duration::from_secs(1));
    b.force_open("incident");
    tokio::time::advance(Duration::from_secs(5)).await;
    let err = call(&svc, Call::Ok).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<BreakerOpen>().unwrap().retry_after(),
        None
    );
    assert_eq!(b.retry_after(), None);
    assert_eq!(b.metrics().retry_after, None);
    assert_eq!(b.state(), State::ForcedOpen);
}

#[tokio::test(start_paused = true)]
async fn layer_called_per_request_still_trips() {
    // axum calls `layer()` once per request for a router without state.
    let b = count_breaker(4, 4).build().unwrap();
    let layer = CircuitBreakerLayer::new(&b).classifier(classifier());
    let up = Upstream::new();
    for _ in 0..4 {
        let svc = layer.layer(up.service());
        svc.oneshot(Call::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Open);
    let r = layer.layer(up.service()).oneshot(Call::Ok).await;
    assert!(is_open(&r));
    assert_eq!(up.hits(), 4);
}

#[tokio::test(start_paused = true)]
async fn state_reflects_half_open_after_the_wait_without_a_call() {
    let b = count_breaker(2, 2).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let mut events = b.subscribe();
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(b.state(), State::Open);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(b.state(), State::HalfOpen);
    call(&svc, Call::Ok).await.unwrap();
    let mut seen = Vec::new();
    while let Ok(BreakerEvent::StateTransition { from, to, .. }) = events.try_recv() {
        seen.push((from, to));
    }
    assert_eq!(
        seen,
        vec![
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_trial_permits_left_show_in_metrics_and_snapshot() {
    let b = count_breaker(2, 2).half_open_calls(3, 3).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let permits = |b: &CircuitBreaker| {
        (
            b.metrics().trial_permits_left,
            battlement_core::HealthSource::snapshot(b).metric("trial_permits_left"),
        )
    };
    assert_eq!(permits(&b), (None, None), "closed: no trials");
    trip(&b, &svc).await;
    assert_eq!(permits(&b), (None, None), "open: no trials");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(permits(&b), (Some(3), Some(3.0)));
    let (tx, rx) = oneshot::channel();
    let mut trial = Box::pin(svc.clone().oneshot(Call::Wait(rx)));
    assert!(futures::poll!(&mut trial).is_pending());
    assert_eq!(permits(&b), (Some(2), Some(2.0)), "one trial in flight");
    // A finished trial does not give its permit back: it was used.
    tx.send(true).unwrap();
    trial.await.unwrap();
    assert_eq!(permits(&b), (Some(2), Some(2.0)));
    // A dropped trial does.
    let (_tx, rx) = oneshot::channel();
    let mut dropped = Box::pin(svc.clone().oneshot(Call::Wait(rx)));
    assert!(futures::poll!(&mut dropped).is_pending());
    assert_eq!(permits(&b), (Some(1), Some(1.0)));
    drop(dropped);
    assert_eq!(permits(&b), (Some(2), Some(2.0)));
}

#[tokio::test(start_paused = true)]
async fn reset_zeroes_the_window_figures_while_cumulative_counters_keep_counting() {
    let b = CircuitBreaker::builder("r")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(10)
        .slow_call(Duration::from_millis(100), 1.0)
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    call(&svc, Call::Ok).await.unwrap();
    call(&svc, Call::Fail).await.unwrap_err();
    call(&svc, Call::Sleep(Duration::from_millis(200), true))
        .await
        .unwrap();
    let m = b.metrics();
    assert_eq!(
        (m.window_calls, m.window_failures, m.window_slow_calls),
        (3, 1, 1)
    );
    assert!(m.failure_rate > 0.3 && m.slow_call_rate > 0.3);

    b.reset();
    let m = b.metrics();
    assert_eq!(
        (m.window_calls, m.window_failures, m.window_slow_calls),
        (0, 0, 0),
        "the window starts again"
    );
    assert_eq!((m.failure_rate, m.slow_call_rate), (0.0, 0.0));
    assert_eq!(m.mean_latency, None);
    assert_eq!(
        (m.calls_permitted, m.successes, m.failures, m.slow_calls),
        (3, 2, 1, 1),
        "the counters do not go down"
    );
    let snap = battlement_core::HealthSource::snapshot(&b);
    assert_eq!(snap.metric("window_calls"), Some(0.0));
    assert_eq!(snap.metric("window_failures"), Some(0.0));
    assert_eq!(snap.metric("calls_permitted"), Some(3.0));

    call(&svc, Call::Fail).await.unwrap_err();
    let m = b.metrics();
    assert_eq!((m.window_calls, m.window_failures), (1, 1));
    assert_eq!((m.calls_permitted, m.failures), (4, 2), "and keep counting");
}

#[tokio::test(start_paused = true)]
async fn max_half_open_reopens_when_trials_hang() {
    let b = count_breaker(2, 2)
        .open_wait(Duration::from_secs(1), 2.0, Duration::from_secs(10))
        .max_half_open(Duration::from_secs(5))
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_tx, rx) = oneshot::channel();
    let mut hung = Box::pin(svc.clone().oneshot(Call::Wait(rx)));
    assert!(futures::poll!(&mut hung).is_pending());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(is_open(&call(&svc, Call::Ok).await));
    tokio::time::advance(Duration::from_millis(1)).await;
    // Past the limit: the next call reopens it, with the doubled wait.
    assert!(is_open(&call(&svc, Call::Ok).await));
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.retry_after(), Some(Duration::from_secs(2)));
}

#[tokio::test(start_paused = true)]
async fn failure_kinds_and_snapshot() {
    let b = count_breaker(10, 10).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    call(&svc, Call::Fail).await.unwrap_err();
    call(&svc, Call::Ok).await.unwrap();
    let m = b.metrics();
    let conn = m
        .failures_by_kind
        .iter()
        .find(|(k, _)| *k == FailureKind::Connection)
        .unwrap()
        .1;
    assert_eq!(conn, 1);
    assert_eq!(m.calls_permitted, 2);
    let snap = battlement_core::HealthSource::snapshot(&b);
    assert_eq!(snap.state, "closed");
    assert_eq!(snap.status, battlement_core::HealthStatus::Pass);
    assert_eq!(snap.metric("failure_rate"), Some(0.5));
    assert_eq!(snap.metric("failures_connection"), Some(1.0));
    trip(&b, &svc).await;
    assert_eq!(
        battlement_core::HealthSource::snapshot(&b).status,
        battlement_core::HealthStatus::Fail
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        battlement_core::HealthSource::snapshot(&b).status,
        battlement_core::HealthStatus::Warn
    );
}

#[test]
fn many_threads_on_a_closed_breaker_count_every_call() {
    let b = CircuitBreaker::builder("mt")
        .sliding_window(SlidingWindow::Count(1000))
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move {
                    for _ in 0..1000 {
                        svc.clone().oneshot(Call::Ok).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let m = b.metrics();
    assert_eq!(m.calls_permitted, 8000);
    assert_eq!(m.successes, 8000);
    assert_eq!(b.state(), State::Closed);
}

/// Threads that landed on an avoided stripe, kept alive until dropped: a thread hands its index
/// back when it exits, so without them the next new thread would take the same index again.
#[derive(Default)]
struct Parked(Vec<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>);

impl Drop for Parked {
    fn drop(&mut self) {
        for (release, thread) in self.0.drain(..) {
            drop(release);
            thread.join().unwrap();
        }
    }
}

/// Which of the window's rings the calling thread's calls record into: its stripe's if it holds
/// one (an index below `stripes`), else the shared ring, numbered `stripes`.
fn thread_ring(stripes: usize) -> usize {
    battlement_core::stripe::thread_index().min(stripes)
}

/// Runs `calls` (true = success) through `svc` on a new thread, unless that thread's window
/// ring is in `avoid` (then the thread waits in `parked`, holding its stripe index, if `park`;
/// else it ends); returns the thread's ring and whether it ran them.
fn on_new_thread<S>(
    svc: &S,
    stripes: usize,
    avoid: &[usize],
    park: bool,
    calls: &[bool],
    parked: &mut Parked,
) -> (usize, bool)
where
    S: Service<Call, Response = Res, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let svc = svc.clone();
    let calls = calls.to_vec();
    let avoid = avoid.to_vec();
    let (result, answer) = std::sync::mpsc::channel();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let ring = thread_ring(stripes);
        if avoid.contains(&ring) {
            result.send((ring, false)).unwrap();
            if park {
                let _ = wait.recv();
            }
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for ok in calls {
            let c = if ok { Call::Ok } else { Call::Fail };
            let _ = rt.block_on(svc.clone().oneshot(c));
        }
        result.send((ring, true)).unwrap();
    });
    let answer = answer.recv().unwrap();
    if answer.1 || !park {
        thread.join().unwrap();
    } else {
        parked.0.push((release, thread));
    }
    answer
}

/// The chosen bound of a count window across threads: the last N calls of each ring (one per
/// stripe, and one for threads that hold none), so up to N × (stripes + 1) calls, and never
/// more.
#[test]
fn a_count_window_holds_the_last_n_calls_of_each_ring() {
    let b = count_breaker(4, 4).build().unwrap();
    let stripes = b.window_stripes();
    let svc = guarded(&b, &Upstream::new());
    let mut used = std::collections::HashSet::new();
    let mut parked = Parked::default();
    for _ in 0..8 {
        let (ring, ran) = on_new_thread(&svc, stripes, &[], false, &[true; 6], &mut parked);
        assert!(ran);
        used.insert(ring);
    }
    let m = b.metrics();
    assert_eq!(m.calls_permitted, 48);
    assert_eq!(m.window_calls, 4 * used.len() as u64);
    assert!(m.window_calls <= 4 * (stripes as u64 + 1));
}

/// Decisions use that union: failures on one thread's ring are judged against the last N calls
/// of every ring, not only the last N calls overall.
#[test]
fn a_count_window_judges_the_union_of_the_rings() {
    let b = count_breaker(4, 4).build().unwrap();
    let stripes = b.window_stripes();
    let svc = guarded(&b, &Upstream::new());
    let mut parked = Parked::default();
    // Four successes on a stripe's ring. A thread that lands on the shared ring (every stripe
    // index held by other tests' threads) ends at once; the next one tries again.
    let first = (0..10_000)
        .find_map(|_| {
            let (ring, ran) =
                on_new_thread(&svc, stripes, &[stripes], false, &[true; 4], &mut parked);
            ran.then_some(ring)
        })
        .expect("a thread that holds a stripe");
    // Three failures on another ring: threads that land on the first one wait, holding its
    // index, so the next thread takes another. 3 of the union's 7 calls fail (43 %), below the
    // 50 % threshold, though three of the last four calls overall failed.
    let ran =
        (0..64).any(|_| on_new_thread(&svc, stripes, &[first], true, &[false; 3], &mut parked).1);
    assert!(ran, "no thread landed on a second ring");
    let m = b.metrics();
    assert_eq!((m.window_calls, m.window_failures), (7, 3));
    assert_eq!(b.state(), State::Closed);
    // A fourth failure on a ring other than the first: 4 of 8 fail, and the breaker opens.
    let ran =
        (0..64).any(|_| on_new_thread(&svc, stripes, &[first], true, &[false], &mut parked).1);
    assert!(ran, "no thread landed on a second ring");
    assert_eq!(b.state(), State::Open);
}

#[test]
fn one_breaker_guards_several_services() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let b = count_breaker(4, 4).build().unwrap();
        let a = Upstream::new();
        let c = Upstream::new();
        let svc_a = guarded(&b, &a);
        let svc_c = guarded(&b, &c);
        call(&svc_a, Call::Fail).await.unwrap_err();
        call(&svc_c, Call::Fail).await.unwrap_err();
        call(&svc_a, Call::Fail).await.unwrap_err();
        call(&svc_c, Call::Fail).await.unwrap_err();
        assert!(is_open(&call(&svc_a, Call::Ok).await));
        assert!(is_open(&call(&svc_c, Call::Ok).await));
    });
}

#[tokio::test(start_paused = true)]
async fn rejections_from_layers_below_count_as_nothing_unless_asked() {
    let reject = || {
        service_fn(|_: Call| async {
            Err::<Res, BoxError>(Box::new(battlement_core::error::BulkheadFull::new(
                "pool".into(),
            )))
        })
    };
    let b = count_breaker(4, 2).build().unwrap();
    let svc = CircuitBreakerLayer::new(&b)
        .classifier(classifier())
        .layer(reject());
    for _ in 0..10 {
        let err = svc.clone().oneshot(Call::Ok).await.unwrap_err();
        assert!(err.is::<battlement_core::error::BulkheadFull>());
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!((b.metrics().ignored, b.metrics().failures), (10, 0));

    let b = count_breaker(4, 2).count_rejections(true).build().unwrap();
    let svc = CircuitBreakerLayer::new(&b)
        .classifier(classifier())
        .layer(reject());
    for _ in 0..2 {
        let _ = svc.clone().oneshot(Call::Ok).await;
    }
    assert_eq!(b.state(), State::Open);
}

mod reload;

#[tokio::test(start_paused = true)]
async fn restore_open_is_open_for_the_given_wait_only_and_announced_as_external() {
    let breaker = CircuitBreaker::builder("restored")
        .fixed_open_wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    breaker.restore_open("saved before restart", Duration::from_secs(2));
    match events.recv().await.unwrap() {
        BreakerEvent::StateTransition {
            from,
            to,
            reason,
            open_for,
            ..
        } => {
            assert_eq!((from, to), (State::Closed, State::Open));
            assert_eq!(
                reason,
                TransitionReason::External("saved before restart".into())
            );
            assert_eq!(open_for, Some(Duration::from_secs(2)));
        }
        other => panic!("unexpected event {other:?}"),
    }
    assert!(breaker.try_call().is_err());
    tokio::time::advance(Duration::from_millis(1999)).await;
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.metrics().trips, 0);
}

#[tokio::test(start_paused = true)]
async fn trip_opens_for_the_breakers_own_growing_wait() {
    let breaker = CircuitBreaker::builder("tripped")
        .open_wait(Duration::from_secs(1), 2.0, Duration::from_secs(60))
        .build()
        .unwrap();
    breaker.trip("quorum");
    assert_eq!(breaker.retry_after(), Some(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    breaker.trip("quorum again");
    assert_eq!(breaker.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(breaker.metrics().trips, 2);
}

/// Clones of a handle that is not leaked count a reference on the breaker's list of shards,
/// which every core's clones share, and a call counts one on its thread's shard; clones of a
/// leaked handle, and its calls' handles on their shards, copy a pointer. Both handles are the
/// same breaker.
#[tokio::test]
async fn a_leaked_breaker_counts_no_reference_for_its_clones() {
    let counted = CircuitBreaker::builder("leak").build().unwrap();
    let leaked = counted.clone().leak();
    for (breaker, service) in [(&counted, 1), (&leaked, 0)] {
        let before = breaker.references();
        let (gate, open) = oneshot::channel::<()>();
        let svc = CircuitBreakerLayer::new(breaker).layer(service_fn(
            |rx: oneshot::Receiver<()>| async { rx.await.map_err(BoxError::from) },
        ));
        assert_eq!(
            breaker.references(),
            before + service,
            "the service's handle"
        );
        let mut call = Box::pin(svc.clone().oneshot(open));
        assert!(futures::poll!(&mut call).is_pending());
        assert_eq!(
            breaker.references(),
            before + service + service,
            "and the call's shard"
        );
        gate.send(()).unwrap();
        assert!(matches!(
            futures::poll!(&mut call),
            std::task::Poll::Ready(Ok(()))
        ));
        drop((call, svc));
        assert_eq!(breaker.references(), before);
    }
    assert_eq!(counted.metrics().successes, 2);
    assert_eq!(leaked.metrics().successes, 2);
}

/// An inner service whose `call` panics gives back the half-open trial permit its call was
/// admitted with: the call's guard is made before the inner call and dropped as the panic
/// unwinds. Made after the call, it was never made, the permit was lost and the breaker refused
/// every call until it was reset.
#[tokio::test(start_paused = true)]
async fn a_panicking_inner_call_gives_back_its_trial_permit() {
    let b = count_breaker(10, 2).half_open_calls(1, 1).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    assert_eq!(b.state(), State::Open);
    tokio::time::advance(Duration::from_secs(1)).await;

    let mut panicking = CircuitBreakerLayer::new(&b)
        .classifier(classifier())
        .layer(service_fn(
            |_: Call| -> std::future::Ready<Result<Res, std::io::Error>> {
                panic!("the inner call panics")
            },
        ));
    panicking.ready().await.unwrap();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(panicking.call(Call::Ok));
    }));
    assert!(unwound.is_err(), "the inner call panicked");
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "the panicking call was the trial"
    );

    // The permit is back: the next call is the trial, and closes the breaker.
    call(&svc, Call::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(up.hits(), 3);
}
