//! Armed timers: the thread's shard, its driver, the fallback to tokio's `Sleep`, runtimes.

use super::futures_poll_once;
use crate::timer::{armed_here, driver_waits_here, LANES};
use crate::*;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A call limited to `limit` whose inner future answers after `takes` (never, if `None`);
/// returns how long it ran on the runtime's clock and whether it timed out.
async fn run(limit: Duration, takes: Option<Duration>) -> (Duration, bool) {
    let svc = TimeoutLayer::new(limit).layer(service_fn(move |_: ()| async move {
        match takes {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
        Ok::<_, std::io::Error>(())
    }));
    let start = Instant::now();
    let result = svc.oneshot(()).await;
    if let Err(e) = &result {
        assert_eq!(e.downcast_ref::<Elapsed>().expect("Elapsed").limit(), limit);
    }
    (start.elapsed(), result.is_err())
}

#[tokio::test(start_paused = true)]
async fn many_calls_with_many_limits_each_time_out_at_their_own() {
    // More distinct limits than a shard has lanes: the rest fall back to tokio's `Sleep`, and
    // every call still ends exactly at its limit (or when its inner call answers).
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let limit = ms(10 + 8 * (i % (LANES as u64 + 8)));
        let takes = (i % 3 == 0).then(|| limit / 2);
        tasks.push(tokio::spawn(async move {
            (limit, takes, run(limit, takes).await)
        }));
    }
    for task in tasks {
        let (limit, takes, (ran, timed_out)) = task.await.unwrap();
        assert_eq!(timed_out, takes.is_none());
        assert_eq!(ran, takes.unwrap_or(limit));
    }
    assert_eq!(armed_here(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_limit_armed_after_a_longer_one_fires_first() {
    // The driver sleeps until the 10 s call's deadline; the 10 ms call must wake it early.
    let long = tokio::spawn(run(Duration::from_secs(10), None));
    tokio::task::yield_now().await;
    assert_eq!(run(ms(10), None).await, (ms(10), true));
    assert_eq!(long.await.unwrap(), (Duration::from_secs(10), true));
}

#[tokio::test(start_paused = true)]
async fn calls_that_end_in_time_or_are_dropped_leave_nothing_armed() {
    let svc =
        TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|d: Duration| async move {
            tokio::time::sleep(d).await;
            Ok::<_, std::io::Error>(())
        }));
    // Answered in time.
    for _ in 0..100 {
        svc.clone().oneshot(ms(5)).await.unwrap();
    }
    assert_eq!(armed_here(), 0);
    // Armed, then dropped by an outer timeout.
    for _ in 0..100 {
        let call = svc.clone().oneshot(Duration::from_secs(5));
        assert!(tokio::time::timeout(ms(5), call).await.is_err());
    }
    assert_eq!(armed_here(), 0);
    // Armed and still waiting: counted.
    let mut pending = Box::pin(svc.clone().oneshot(Duration::from_secs(5)));
    assert!(futures_poll_once(pending.as_mut()).await.is_none());
    assert_eq!(armed_here(), 1);
    drop(pending);
    assert_eq!(armed_here(), 0);
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn runtimes_driven_in_turn_on_one_thread_each_fire_their_own_timers() {
    // Two runtimes alive on one thread, each with its own paused clock: a shard serves one
    // runtime, so neither waits on the other's driver (which does not run while the other
    // runtime is blocked on).
    let a = paused_runtime();
    let b = paused_runtime();
    for round in 0..3 {
        assert_eq!(
            a.block_on(run(ms(20), None)),
            (ms(20), true),
            "round {round}"
        );
        assert_eq!(
            b.block_on(run(ms(30), None)),
            (ms(30), true),
            "round {round}"
        );
        // The same from tasks, which a shard remembers to skip looking up the runtime: a task
        // of the other runtime must not be taken for one of its own.
        for (rt, limit) in [(&a, ms(25)), (&b, ms(35)), (&a, ms(45))] {
            let ran = rt.block_on(async move { tokio::spawn(run(limit, None)).await.unwrap() });
            assert_eq!(ran, (limit, true), "round {round}");
        }
    }
    // A runtime dropped and another built on the same thread.
    drop(a);
    let c = paused_runtime();
    assert_eq!(c.block_on(run(ms(40), None)), (ms(40), true));
    assert_eq!(b.block_on(run(ms(50), Some(ms(5)))), (ms(5), false));
}

#[test]
fn arming_in_a_runtime_without_timers_panics_as_tokio_does() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..2 {
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(run(ms(10), None));
        }))
        .unwrap_err();
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(message.contains("timers are disabled"), "{message}");
    }
}

#[test]
fn calls_moved_between_workers_still_time_out() {
    // Real time on a multi-threaded runtime (which cannot be paused): calls arm on one worker
    // and, yielding, may be polled and dropped on the other. No timing is asserted, only that
    // every call ends the way it must.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let svc = TimeoutLayer::new(ms(20)).layer(service_fn(|forever: bool| async move {
            loop {
                tokio::task::yield_now().await;
                if !forever {
                    return Ok::<_, std::io::Error>(());
                }
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        }));
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let svc = svc.clone();
                tokio::spawn(async move { (i % 2 == 0, svc.oneshot(i % 2 == 0).await) })
            })
            .collect();
        for task in tasks {
            let (forever, result) = task.await.unwrap();
            assert_eq!(result.is_err(), forever);
        }
    });
}

/// Waits (yielding, for at most 10 s of real time on a loaded machine) until `rt` has no task
/// left: whether the one timer driver there has ended.
fn driver_ends(rt: &tokio::runtime::Runtime) -> bool {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < give_up {
        if rt.metrics().num_alive_tasks() == 0 {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// A waker that does nothing, for polling by hand.
fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}

/// A multi-threaded runtime with one worker, on which the only task is a timer driver.
fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap()
}

/// A call limited to `limit` whose inner call never answers, polled once by hand (so that its
/// timer is armed) in `handle`'s runtime.
fn armed_call(
    limit: Duration,
    handle: &tokio::runtime::Handle,
) -> std::pin::Pin<Box<impl Future<Output = Result<(), battlement_core::BoxError>>>> {
    let _runtime = handle.enter();
    let svc = TimeoutLayer::new(limit).layer(service_fn(|_: ()| async {
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    }));
    let mut call = Box::pin(svc.oneshot(()));
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(call.as_mut().poll(&mut cx).is_pending());
    call
}

#[test]
fn a_shard_whose_thread_ended_still_fires_then_its_driver_ends() {
    let rt = one_worker();
    let handle = rt.handle().clone();
    // Armed on a thread of its own, which then ends: its shard is orphaned with one timer in it.
    let call = std::thread::spawn(move || armed_call(ms(30), &handle))
        .join()
        .unwrap();
    // The shard's driver (the only task on the runtime) still fires the call's timer ...
    let err = rt.block_on(call).unwrap_err();
    assert_eq!(err.downcast_ref::<Elapsed>().unwrap().limit(), ms(30));
    // ... and, its last timer gone, ends.
    assert!(
        driver_ends(&rt),
        "the orphaned shard's driver is still alive"
    );
}

#[test]
fn a_shard_whose_thread_ends_empty_stops_its_driver() {
    let rt = one_worker();
    let handle = rt.handle().clone();
    // Armed, then cancelled, on a thread that then ends: its shard is orphaned empty, and the
    // thread's end (not a call) must wake the driver to end it.
    std::thread::spawn(move || {
        let call = armed_call(Duration::from_secs(3600), &handle);
        // Once the driver has run and sleeps on the call's deadline, only a wake ends it.
        let _runtime = handle.enter();
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while !driver_waits_here() {
            assert!(std::time::Instant::now() < give_up, "the driver never ran");
            std::thread::yield_now();
        }
        drop(call);
    })
    .join()
    .unwrap();
    assert!(
        driver_ends(&rt),
        "the orphaned shard's driver is still alive"
    );
}
