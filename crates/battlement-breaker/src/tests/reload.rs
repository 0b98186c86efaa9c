//! Live reload: new settings apply from the next decision, nothing in flight is disturbed, an
//! invalid reload changes nothing.

use super::*;

fn reloaded(events: &mut tokio::sync::broadcast::Receiver<BreakerEvent>) -> bool {
    loop {
        match events.try_recv() {
            Ok(BreakerEvent::Reloaded { window_cleared, .. }) => return window_cleared,
            Ok(_) => {}
            Err(e) => panic!("no Reloaded event: {e:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_lower_failure_rate_threshold_opens_on_the_next_decision() {
    let b = count_breaker(10, 10).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    for i in 0..10 {
        let _ = call(&svc, if i < 3 { Call::Fail } else { Call::Ok }).await;
    }
    assert_eq!(b.state(), State::Closed, "3 of 10 is below 50 %");
    let mut events = b.subscribe();
    b.reload(&count_breaker(10, 10).failure_rate_threshold(0.25))
        .unwrap();
    assert!(!reloaded(&mut events), "same window: counts kept");
    assert_eq!(
        b.state(),
        State::Closed,
        "a reload decides nothing by itself"
    );
    assert_eq!(b.metrics().window_calls, 10);
    // The next failure decides: 3 of the last 10 failed (the oldest failure left the window
    // and this one came in), 30 % >= 25 %. With the old threshold it would stay closed.
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
    let m = b.metrics();
    assert_eq!((m.reloads, m.trips), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_longer_open_wait_applies_from_the_next_opening() {
    let b = count_breaker(4, 2).build().unwrap(); // open 1 s
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    // Reloaded while open: this open period keeps its end.
    b.reload(&count_breaker(4, 2).fixed_open_wait(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(b.retry_after(), Some(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.state(), State::HalfOpen);
    // The failed trial reopens it, for the new wait.
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.retry_after(), Some(Duration::from_secs(60)));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(is_open(&call(&svc, Call::Ok).await), "held open longer");
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(b.state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn trial_permits_apply_from_the_next_half_open_period() {
    let b = count_breaker(4, 2).build().unwrap(); // one trial, one success closes
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.state(), State::HalfOpen);
    // A trial of the current period is in flight when the reload asks for 3 trials, 2 to close.
    let (tx, rx) = oneshot::channel();
    let trial = tokio::spawn({
        let svc = svc.clone();
        async move { call(&svc, Call::Wait(rx)).await }
    });
    tokio::task::yield_now().await;
    b.reload(&count_breaker(4, 2).half_open_calls(3, 2))
        .unwrap();
    assert!(
        is_open(&call(&svc, Call::Ok).await),
        "this period had one permit"
    );
    // It is decided by its own threshold: one success closes it.
    tx.send(true).unwrap();
    trial.await.unwrap().unwrap();
    assert_eq!(b.state(), State::Closed);

    // The next half-open period admits three trials, and one success does not close it.
    trip(&b, &svc).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut waits = Vec::new();
    let mut trials = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = oneshot::channel();
        waits.push(tx);
        trials.push(tokio::spawn({
            let svc = svc.clone();
            async move { call(&svc, Call::Wait(rx)).await }
        }));
        tokio::task::yield_now().await;
    }
    assert_eq!(b.metrics().trial_permits_left, Some(0));
    assert!(is_open(&call(&svc, Call::Ok).await));
    let mut waits = waits.into_iter();
    waits.next().unwrap().send(true).unwrap();
    trials.remove(0).await.unwrap().unwrap();
    assert_eq!(b.state(), State::HalfOpen, "2 successes are needed now");
    waits.next().unwrap().send(true).unwrap();
    trials.remove(0).await.unwrap().unwrap();
    assert_eq!(b.state(), State::Closed);
    drop(waits);
    let _ = trials.remove(0).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_across_a_reload_finish_and_are_counted() {
    let b = count_breaker(10, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let mut senders = Vec::new();
    let mut running = Vec::new();
    for _ in 0..8 {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        running.push(tokio::spawn({
            let svc = svc.clone();
            async move { call(&svc, Call::Wait(rx)).await }
        }));
    }
    tokio::task::yield_now().await;
    // Every setting changes, the window's shape too.
    b.reload(
        &CircuitBreaker::builder("test")
            .sliding_window(SlidingWindow::Count(20))
            .minimum_calls(5)
            .failure_rate_threshold(0.9)
            .consecutive_failures(100)
            .half_open_calls(2, 1)
            .fixed_open_wait(Duration::from_secs(5))
            .record_latency(true),
    )
    .unwrap();
    for tx in senders {
        tx.send(true).unwrap();
    }
    for r in running {
        assert_eq!(
            r.await.unwrap().unwrap(),
            200,
            "no call failed by the reload"
        );
    }
    let m = b.metrics();
    assert_eq!(
        (m.state, m.successes, m.stale, m.cancelled),
        (State::Closed, 8, 0, 0)
    );
    assert_eq!(m.window_calls, 8, "counted in the new window");
}

#[tokio::test(start_paused = true)]
async fn a_window_of_another_shape_starts_empty_and_works() {
    let b = count_breaker(10, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let mut events = b.subscribe();
    for _ in 0..3 {
        call(&svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(b.metrics().window_failures, 3);
    // Count → time: emptied (the cumulative counters stay).
    let time = SlidingWindow::Time {
        length: Duration::from_secs(10),
        buckets: 10,
    };
    b.reload(&count_breaker(10, 4).sliding_window(time))
        .unwrap();
    assert!(
        reloaded(&mut events),
        "the event says the window was emptied"
    );
    let m = b.metrics();
    assert_eq!((m.window_calls, m.failures), (0, 3));
    // The time window ages calls out by time: 3 failures, 11 s later a fourth is alone.
    for _ in 0..3 {
        call(&svc, Call::Fail).await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!((b.state(), b.metrics().window_calls), (State::Closed, 1));
    for _ in 0..3 {
        call(&svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Open);

    // Time → a larger count window, beyond the rings' exact size: still exact up to 128.
    b.reset();
    b.reload(&count_breaker(128, 128)).unwrap();
    assert!(reloaded(&mut events));
    for _ in 0..64 {
        call(&svc, Call::Ok).await.unwrap();
    }
    for _ in 0..63 {
        call(&svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(b.metrics().window_calls, 127);
    assert_eq!(b.state(), State::Closed, "fewer than the minimum calls");
    call(&svc, Call::Fail).await.unwrap_err();
    // 64 of exactly 128 calls: 50 %.
    assert_eq!(b.metrics().window_calls, 128);
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_call_settings_apply_to_calls_started_after_the_reload() {
    let b = count_breaker(4, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let slow = || Call::Sleep(Duration::from_millis(200), true);
    for _ in 0..4 {
        call(&svc, slow()).await.unwrap();
    }
    assert_eq!(b.metrics().slow_calls, 0, "no slow-call rule yet");
    b.reload(&count_breaker(4, 4).slow_call(Duration::from_millis(100), 0.5))
        .unwrap();
    call(&svc, slow()).await.unwrap();
    assert_eq!(b.metrics().slow_calls, 1);
    assert_eq!(b.state(), State::Closed, "1 slow of 4");
    call(&svc, slow()).await.unwrap();
    assert_eq!(b.state(), State::Open, "2 slow of 4 = 50 %");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_reload_changes_nothing() {
    let b = count_breaker(10, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    let mut events = b.subscribe();
    let bad = [
        (
            count_breaker(10, 4).failure_rate_threshold(1.5),
            "failure_rate_threshold",
        ),
        (
            count_breaker(10, 4).sliding_window(SlidingWindow::Count(2)),
            "minimum_calls",
        ),
        (
            count_breaker(10, 4).half_open_calls(1, 2),
            "half_open_calls.successes",
        ),
        (count_breaker(10, 4).event_capacity(0), "event_capacity"),
        (CircuitBreaker::builder(""), "name"),
    ];
    for (builder, setting) in bad {
        let err = b.reload(&builder).unwrap_err();
        assert_eq!(err.setting(), setting, "{err}");
    }
    assert!(events.try_recv().is_err(), "no event");
    assert_eq!(b.metrics().reloads, 0);
    // Still the old settings: 2 of 4 trips at 50 %.
    call(&svc, Call::Ok).await.unwrap();
    call(&svc, Call::Ok).await.unwrap();
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Closed);
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
}
