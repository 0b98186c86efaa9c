//! Behavior tests, on paused time unless said otherwise.

use crate::*;
use battlement_core::error::failure_kind;
use battlement_core::{BoxError, FailureKind, HealthSink, HealthSource, HealthStatus};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A slow service: each call records its id when it starts, then waits for the test to let one
/// call finish (`finish(n)`), never for real time.
#[derive(Clone)]
struct Gate {
    started: Arc<Mutex<Vec<u32>>>,
    calls: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            started: Arc::default(),
            calls: Arc::default(),
            running: Arc::default(),
            max_running: Arc::default(),
            release: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Gate {
    fn service(
        &self,
    ) -> impl Service<
        u32,
        Response = u32,
        Error = std::io::Error,
        Future = impl Future<Output = Result<u32, std::io::Error>> + Send,
    > + Clone
           + Send {
        let gate = self.clone();
        service_fn(move |id: u32| {
            gate.calls.fetch_add(1, SeqCst);
            let gate = gate.clone();
            async move {
                let now = gate.running.fetch_add(1, SeqCst) + 1;
                gate.max_running.fetch_max(now, SeqCst);
                gate.started.lock().unwrap().push(id);
                let _running = Running(gate.running.clone());
                gate.release.acquire().await.unwrap().forget();
                Ok(id)
            }
        })
    }

    fn finish(&self, n: usize) {
        self.release.add_permits(n);
    }

    fn started(&self) -> Vec<u32> {
        self.started.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }
}

/// Counts a running inner call down when it finishes or is dropped.
struct Running(Arc<AtomicUsize>);
impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Lets spawned tasks run until they block (no time passes).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn bulkhead(max_concurrent: usize, max_queued: usize, max_wait: Option<Duration>) -> Bulkhead {
    let mut b = Bulkhead::builder("test")
        .max_concurrent(max_concurrent)
        .max_queued(max_queued);
    if let Some(w) = max_wait {
        b = b.max_wait(w);
    }
    b.build().unwrap()
}

type Svc = BulkheadService<tower::util::BoxCloneService<u32, u32, std::io::Error>>;

fn guarded(b: &Bulkhead, gate: &Gate) -> Svc {
    BulkheadService::new(tower::util::BoxCloneService::new(gate.service()), b.clone())
}

/// Calls `svc` now (in this task, so in this order) and spawns the response future.
async fn spawn_call(svc: &mut Svc, id: u32) -> JoinHandle<Result<u32, BoxError>> {
    let fut = svc.ready().await.unwrap().call(id);
    tokio::spawn(fut)
}

#[tokio::test(start_paused = true)]
async fn free_permits_call_the_inner_service_at_once() {
    let b = bulkhead(2, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    gate.finish(2);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    let m = b.metrics();
    assert_eq!((m.accepted, m.in_flight, m.queued, m.waited), (2, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn queue_bound_rejects_the_excess_without_calling_the_inner_service() {
    let b = bulkhead(2, 2, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut handles = Vec::new();
    for id in 0..4 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!(gate.started(), [0, 1], "two run");
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued, m.rejected_full), (2, 2, 0));
    assert!(m.is_saturated());

    let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().expect("BulkheadFull");
    assert_eq!(full.name(), "test");
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    assert_eq!(
        gate.calls(),
        2,
        "neither queued nor rejected calls reach the inner service"
    );
    assert_eq!(b.metrics().rejected_full, 1);

    gate.finish(4);
    for (id, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap().unwrap(), id as u32);
    }
    let m = b.metrics();
    assert_eq!((m.accepted, m.in_flight, m.queued, m.waited), (4, 0, 0, 2));
    assert_eq!(gate.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn zero_queue_rejects_at_once() {
    let b = bulkhead(1, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    let fut = svc.ready().await.unwrap().call(1);
    assert!(fut.is_rejected());
    assert!(fut.await.unwrap_err().is::<BulkheadFull>());
    assert_eq!(b.metrics().queued, 0);
    gate.finish(1);
    running.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_limit_rejects_with_bulkhead_timeout() {
    let b = bulkhead(1, 1, Some(Duration::from_millis(50)));
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;

    let start = Instant::now();
    let fut = svc.ready().await.unwrap().call(1);
    assert!(fut.is_waiting());
    let err = fut.await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    let timeout = err
        .downcast_ref::<BulkheadTimeout>()
        .expect("BulkheadTimeout");
    assert_eq!(timeout.name(), "test");
    assert_eq!(timeout.waited(), Duration::from_millis(50));
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    assert_eq!(
        gate.calls(),
        1,
        "the timed-out call never reached the inner service"
    );

    let m = b.metrics();
    assert_eq!((m.rejected_timeout, m.queued, m.in_flight), (1, 0, 1));
    assert_eq!((m.waited, m.wait_max), (1, Duration::from_millis(50)));

    // A call admitted within the limit is not rejected.
    let waiting = spawn_call(&mut svc, 2).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    gate.finish(2);
    assert_eq!(running.await.unwrap().unwrap(), 0);
    assert_eq!(waiting.await.unwrap().unwrap(), 2);
    let m = b.metrics();
    assert_eq!((m.accepted, m.rejected_timeout, m.waited), (2, 1, 2));
    assert_eq!(m.wait_mean, Duration::from_millis(40));
    assert_eq!(m.wait_max, Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_call_order() {
    let b = bulkhead(1, 10, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let first = spawn_call(&mut svc, 0).await;
    settle().await;
    // Call in order 1..=5, but let the futures be polled first in the reverse order.
    let mut futures = Vec::new();
    for id in 1..=5 {
        futures.push(svc.ready().await.unwrap().call(id));
    }
    let mut handles: Vec<_> = futures.into_iter().rev().map(tokio::spawn).collect();
    handles.reverse();
    settle().await;
    assert_eq!(b.queued(), 5);
    for n in 1..=5 {
        gate.finish(1);
        settle().await;
        assert_eq!(gate.started().len(), n + 1);
    }
    assert_eq!(gate.started(), [0, 1, 2, 3, 4, 5]);
    gate.finish(1);
    first.await.unwrap().unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap().unwrap(), i as u32 + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_future_leaves_the_queue() {
    let b = bulkhead(1, 1, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;

    let waiting = spawn_call(&mut svc, 1).await;
    settle().await;
    assert_eq!(b.queued(), 1);
    // The queue is full now ...
    assert!(svc.ready().await.unwrap().call(2).is_rejected());
    // ... until the waiter is cancelled.
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    assert_eq!(b.queued(), 0);
    let next = spawn_call(&mut svc, 3).await;
    settle().await;
    assert_eq!(b.queued(), 1);

    gate.finish(2);
    running.await.unwrap().unwrap();
    assert_eq!(next.await.unwrap().unwrap(), 3);
    assert_eq!(gate.started(), [0, 3], "the cancelled call never ran");
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued, m.accepted), (0, 0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_permit_handed_to_a_cancelled_waiter_goes_to_the_next() {
    let b = bulkhead(1, 2, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    // Two waiters, never polled by a task: the first is handed the permit, then dropped
    // before it notices.
    let first = svc.ready().await.unwrap().call(1);
    let second = spawn_call(&mut svc, 2).await;
    gate.finish(1);
    running.await.unwrap().unwrap();
    drop(first);
    settle().await;
    assert_eq!(gate.started(), [0, 2]);
    gate.finish(1);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_permit_handed_to_the_only_waiter_that_is_then_cancelled_is_free_again() {
    let b = bulkhead(1, 1, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    // The only waiter, never polled by a task: the finishing call hands it the permit through
    // the queue, then it is dropped before it notices.
    let waiter = svc.ready().await.unwrap().call(1);
    assert!(waiter.is_waiting());
    gate.finish(1);
    running.await.unwrap().unwrap();
    drop(waiter);
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
    // The permit is back where the fast path takes it, not stranded in the queue.
    assert_eq!(b.permit_places(), (1, 0));
    assert_permits(&b, &gate, &mut svc, 1).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_an_admitted_future_releases_its_permit() {
    let b = bulkhead(1, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    assert_eq!(b.in_flight(), 1);
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    assert_eq!(b.in_flight(), 0);
    assert_eq!(
        gate.running.load(SeqCst),
        0,
        "the inner future was dropped too"
    );
    // A future that was never polled holds its permit until it is dropped.
    let unpolled = svc.ready().await.unwrap().call(1);
    assert_eq!(b.in_flight(), 1);
    drop(unpolled);
    assert_eq!(b.in_flight(), 0);
    gate.finish(1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_released_when_the_call_completes_not_when_dropped() {
    let b = bulkhead(1, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    gate.finish(1);
    let mut fut = pin!(svc.ready().await.unwrap().call(1));
    assert_eq!((&mut fut).await.unwrap(), 1);
    assert_eq!(b.in_flight(), 0, "released while the future is still alive");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_and_release_the_permit() {
    let b = bulkhead(1, 0, None);
    let svc = b.layer().layer(service_fn(|_: ()| async {
        Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }));
    for _ in 0..3 {
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<std::io::Error>().unwrap().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }
    let m = b.metrics();
    assert_eq!((m.accepted, m.in_flight, m.rejected()), (3, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn grow_admits_waiters_at_once() {
    let b = bulkhead(1, 3, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut handles = Vec::new();
    for id in 0..4 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (1, 3));
    b.set_max_concurrent(3).unwrap();
    settle().await;
    assert_eq!(gate.started(), [0, 1, 2]);
    assert_eq!((b.in_flight(), b.queued()), (3, 1));
    gate.finish(4);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(gate.max_running.load(SeqCst), 3);
    assert_eq!(b.metrics().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn shrink_takes_effect_as_calls_finish() {
    let b = bulkhead(3, 5, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut handles = Vec::new();
    for id in 0..5 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (3, 2));

    b.set_max_concurrent(1).unwrap();
    assert_eq!(b.max_concurrent(), 1);
    assert_eq!(b.in_flight(), 3, "running calls are not interrupted");
    // The first two calls to finish retire their permits instead of admitting waiters.
    gate.finish(1);
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (2, 2));
    gate.finish(1);
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (1, 2));
    assert_eq!(gate.started(), [0, 1, 2]);
    // From now on, one at a time.
    gate.finish(1);
    settle().await;
    assert_eq!(gate.started(), [0, 1, 2, 3]);
    assert_eq!((b.in_flight(), b.queued()), (1, 1));
    gate.finish(2);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
    assert_permits(&b, &gate, &mut svc, 1).await;
}

#[tokio::test(start_paused = true)]
async fn shrink_with_free_permits_applies_at_once_and_grow_cancels_debt() {
    let b = bulkhead(4, 8, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    b.set_max_concurrent(2).unwrap();
    assert_permits(&b, &gate, &mut svc, 2).await;

    // Shrink with every permit taken, then grow back before any call finishes: no permit is
    // retired, and none is added twice.
    let mut handles = Vec::new();
    for id in 0..2 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    b.set_max_concurrent(1).unwrap();
    b.set_max_concurrent(3).unwrap();
    let third = spawn_call(&mut svc, 2).await;
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (3, 0));
    gate.finish(3);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    third.await.unwrap().unwrap();
    assert_permits(&b, &gate, &mut svc, 3).await;
    // Setting the same limit changes nothing.
    b.set_max_concurrent(3).unwrap();
    assert_permits(&b, &gate, &mut svc, 3).await;
}

/// Asserts that exactly `n` calls can run at once: `n + 1` calls leave one queued.
async fn assert_permits(b: &Bulkhead, gate: &Gate, svc: &mut Svc, n: usize) {
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
    let mut handles = Vec::new();
    for id in 0..=n {
        handles.push(spawn_call(svc, 100 + id as u32).await);
    }
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (n, 1), "{n} permits");
    gate.finish(n + 1);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
}

#[test]
fn resize_is_validated() {
    let b = bulkhead(2, 0, None);
    assert_eq!(
        b.set_max_concurrent(0).unwrap_err().setting(),
        "max_concurrent"
    );
    let err = b.set_max_concurrent(u32::MAX as usize + 1).unwrap_err();
    assert!(err.reason().contains("32 bits"), "{err}");
    assert_eq!(b.max_concurrent(), 2);
    // The largest limit is accepted, and every permit it adds is usable.
    b.set_max_concurrent(u32::MAX as usize).unwrap();
    assert_eq!(b.max_concurrent(), u32::MAX as usize);
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn builder_validates_every_setting() {
    let cases = [
        (Bulkhead::builder(""), "name"),
        (Bulkhead::builder("b").max_concurrent(0), "max_concurrent"),
        (
            Bulkhead::builder("b").max_concurrent(usize::MAX),
            "max_concurrent",
        ),
        (
            Bulkhead::builder("b")
                .max_queued(1)
                .max_wait(Duration::ZERO),
            "max_wait",
        ),
        (
            Bulkhead::builder("b").max_wait(Duration::from_secs(1)),
            "max_wait",
        ),
    ];
    for (builder, setting) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.setting(), setting, "{err}");
        assert!(err.component().starts_with("bulkhead"), "{err}");
    }
    let b = Bulkhead::builder("b").build().unwrap();
    assert_eq!(
        (b.max_concurrent(), b.max_queued(), b.max_wait()),
        (25, 0, None)
    );
}

#[tokio::test(start_paused = true)]
async fn snapshot_reports_saturation_as_warn() {
    let b = bulkhead(2, 1, Some(Duration::from_millis(100)));
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status),
        ("available", HealthStatus::Pass)
    );
    assert_eq!(snap.message, None);

    let mut handles = Vec::new();
    for id in 0..3 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status),
        ("saturated", HealthStatus::Warn)
    );
    assert_eq!(snap.metric("in_flight"), Some(2.0));
    assert_eq!(snap.metric("queued"), Some(1.0));
    assert_eq!(snap.metric("max_concurrent"), Some(2.0));
    assert_eq!(snap.metric("max_queued"), Some(1.0));
    assert_eq!(
        snap.message.as_deref(),
        Some("bulkhead `test` is saturated: 2/2 calls in flight, 1/1 queued")
    );
    let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());

    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.finish(3);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let snap = b.snapshot();
    // Drained, but it rejected a call 20 ms ago: still warn (see the next test).
    assert_eq!(snap.status, HealthStatus::Warn);
    assert_eq!(snap.metric("accepted"), Some(3.0));
    assert_eq!(snap.metric("rejected_full"), Some(1.0));
    assert_eq!(snap.metric("rejected_timeout"), Some(0.0));
    assert_eq!(snap.metric("wait_max"), Some(20.0));
    assert_eq!(snap.metric("wait_mean"), Some(20.0));
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["kind"], "bulkhead");
    assert_eq!(json["name"], "test");
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_that_rejected_recently_warns_after_it_drains() {
    let b = Bulkhead::builder("pool")
        .max_concurrent(1)
        .max_queued(1)
        .max_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    assert_eq!(b.rejection_window(), DEFAULT_REJECTION_WINDOW);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    assert_eq!(b.metrics().since_last_rejection, None);

    // A burst: one call runs, one waits and times out, one finds the queue full.
    let running = spawn_call(&mut svc, 0).await;
    let waiting = spawn_call(&mut svc, 1).await;
    settle().await;
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    let err = waiting.await.unwrap().unwrap_err();
    assert!(err.is::<BulkheadTimeout>());
    gate.finish(1);
    running.await.unwrap().unwrap();

    // Drained: nothing in flight or queued. Before, this read `available` / pass.
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued, m.free_permits), (0, 0, 1));
    assert_eq!(m.since_last_rejection, Some(Duration::ZERO));
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status),
        ("rejecting", HealthStatus::Warn)
    );
    assert_eq!(
        snap.message.as_deref(),
        Some("bulkhead `pool` rejected a call 0ns ago (within its 10s rejection window); 2 rejected in all")
    );

    // Within the window: still warn.
    tokio::time::advance(DEFAULT_REJECTION_WINDOW).await;
    assert_eq!(b.since_last_rejection(), Some(DEFAULT_REJECTION_WINDOW));
    assert_eq!(b.snapshot().status, HealthStatus::Warn);
    // Past it: pass.
    tokio::time::advance(Duration::from_millis(1)).await;
    let snap = b.snapshot();
    assert_eq!(
        (snap.state.as_ref(), snap.status, snap.message.as_deref()),
        ("available", HealthStatus::Pass, None)
    );

    // A zero window warns only while saturated.
    let quiet = Bulkhead::builder("quiet")
        .max_concurrent(1)
        .rejection_window(Duration::ZERO)
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = guarded(&quiet, &gate);
    let running = spawn_call(&mut svc, 0).await;
    settle().await;
    assert!(svc.ready().await.unwrap().call(1).await.is_err());
    gate.finish(1);
    running.await.unwrap().unwrap();
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(quiet.snapshot().status, HealthStatus::Pass);
}

#[tokio::test(start_paused = true)]
async fn free_permits_are_read_out() {
    let b = bulkhead(3, 1, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    assert_eq!(b.metrics().free_permits, 3);
    let calls = [spawn_call(&mut svc, 0).await, spawn_call(&mut svc, 1).await];
    settle().await;
    assert_eq!(b.free_permits(), 1);
    assert_eq!(b.snapshot().metric("free_permits"), Some(1.0));
    let third = spawn_call(&mut svc, 2).await;
    let queued = spawn_call(&mut svc, 3).await;
    settle().await;
    let m = b.metrics();
    assert_eq!((m.free_permits, m.in_flight, m.queued), (0, 3, 1));
    b.set_max_concurrent(5).unwrap();
    settle().await;
    // One new permit went to the queued call, the other is free.
    assert_eq!((b.free_permits(), b.in_flight(), b.queued()), (1, 4, 0));
    gate.finish(4);
    for call in calls.into_iter().chain([third, queued]) {
        call.await.unwrap().unwrap();
    }
    assert_eq!(b.metrics().free_permits, 5);
}

#[test]
fn the_builder_registers_the_bulkhead() {
    type Registered = Vec<(Arc<dyn HealthSource>, bool)>;
    #[derive(Clone, Default)]
    struct Registry(Arc<Mutex<Registered>>);
    impl HealthSink for Registry {
        fn register_component(
            &self,
            component: Arc<dyn HealthSource>,
            critical: bool,
        ) -> Result<(), battlement_core::ConfigError> {
            self.0.lock().unwrap().push((component, critical));
            Ok(())
        }
        fn unregister_component(&self, kind: battlement_core::ComponentKind, name: &str) -> bool {
            let mut list = self.0.lock().unwrap();
            let before = list.len();
            list.retain(|(c, _)| !(c.kind() == kind && c.name() == name));
            list.len() != before
        }
    }
    let registry = Registry::default();
    let b = Bulkhead::builder("db")
        .registry(&registry)
        .critical(true)
        .build()
        .unwrap();
    let _other = Bulkhead::builder("cache")
        .registry(&registry)
        .build()
        .unwrap();
    let registered = registry.0.lock().unwrap();
    assert_eq!(registered.len(), 2);
    assert_eq!((registered[0].0.name(), registered[0].1), ("db", true));
    assert_eq!((registered[1].0.name(), registered[1].1), ("cache", false));
    // The registered component is the live bulkhead, not a copy.
    b.set_max_concurrent(7).unwrap();
    assert_eq!(
        registered[0].0.snapshot().metric("max_concurrent"),
        Some(7.0)
    );
}

#[tokio::test(start_paused = true)]
async fn services_sharing_a_bulkhead_share_its_permits() {
    let b = bulkhead(1, 0, None);
    let gate = Gate::default();
    let mut reads = guarded(&b, &gate);
    let writes = b
        .layer()
        .layer(service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    let running = spawn_call(&mut reads, 0).await;
    let err = writes.clone().oneshot(()).await.unwrap_err();
    assert!(err.is::<BulkheadFull>());
    gate.finish(1);
    running.await.unwrap().unwrap();
    writes.oneshot(()).await.unwrap();
}

/// A service that checks tower's contract: `call` only after `poll_ready` said ready; a clone
/// starts not ready.
struct Strict {
    ready: bool,
    calls: Arc<AtomicUsize>,
}

impl Clone for Strict {
    fn clone(&self) -> Self {
        Strict {
            ready: false,
            calls: self.calls.clone(),
        }
    }
}

impl Service<u32> for Strict {
    type Response = u32;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u32, std::io::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, id: u32) -> Self::Future {
        assert!(self.ready, "called without poll_ready");
        self.ready = false;
        self.calls.fetch_add(1, SeqCst);
        std::future::ready(Ok(id))
    }
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_carries_the_ready_service_and_readiness_holds_no_permit() {
    let b = bulkhead(1, 4, None);
    let gate = Gate::default();
    let mut holder = guarded(&b, &gate);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = b.layer().layer(Strict {
        ready: false,
        calls: calls.clone(),
    });
    // Readiness takes no permit, however many clones are readied.
    let mut clones: Vec<_> = (0..10).map(|_| svc.clone()).collect();
    for c in &mut clones {
        c.ready().await.unwrap();
    }
    assert_eq!(b.in_flight(), 0);

    let running = spawn_call(&mut holder, 0).await;
    settle().await;
    let mut queued = Vec::new();
    for id in 1..=3 {
        queued.push(tokio::spawn(svc.ready().await.unwrap().call(id)));
    }
    settle().await;
    assert_eq!((b.queued(), calls.load(SeqCst)), (3, 0));
    gate.finish(1);
    running.await.unwrap().unwrap();
    for (i, h) in queued.into_iter().enumerate() {
        assert_eq!(h.await.unwrap().unwrap(), i as u32 + 1);
    }
    assert_eq!(calls.load(SeqCst), 3);
    // The service left behind is readied again before its next call.
    assert_eq!(svc.ready().await.unwrap().call(9).await.unwrap(), 9);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_is_the_inner_services() {
    let b = bulkhead(1, 0, None);
    let (inner, mut handle) = tower_test_mock();
    let mut svc = b.layer().layer(inner);
    handle.allow(0);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(svc.poll_ready(&mut cx).is_pending());
    handle.allow(1);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(b.in_flight(), 0);
}

/// A minimal stand-in for `tower-test`'s mock: a service whose readiness the test controls.
fn tower_test_mock() -> (Allowed, AllowHandle) {
    let allowed = Arc::new(AtomicUsize::new(0));
    (Allowed(allowed.clone()), AllowHandle(allowed))
}

#[derive(Clone)]
struct Allowed(Arc<AtomicUsize>);
struct AllowHandle(Arc<AtomicUsize>);
impl AllowHandle {
    fn allow(&mut self, n: usize) {
        self.0.store(n, SeqCst);
    }
}
impl Service<()> for Allowed {
    type Response = ();
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<(), std::io::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.0.load(SeqCst) > 0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
    fn call(&mut self, _: ()) -> Self::Future {
        std::future::ready(Ok(()))
    }
}

#[test]
fn the_fast_path_future_is_not_boxed() {
    // The admitted state holds the inner future inline; only the queued state holds a box.
    type Fut = ResponseFuture<std::future::Ready<Result<(), ()>>, (), ()>;
    assert!(std::mem::size_of::<Fut>() <= 4 * std::mem::size_of::<usize>());
}

/// Many tasks call through one bulkhead, hold their permits for random times, give up at random
/// (their own timeout, or being aborted), while the limit is resized at random. Seeded.
#[tokio::test(start_paused = true)]
async fn stress_with_random_cancellation_leaks_nothing() {
    for seed in 0..8 {
        stress_round(seed).await;
    }
}

async fn stress_round(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let b = bulkhead(4, 8, Some(Duration::from_millis(15)));
    let calls = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let svc = b.layer().layer(service_fn({
        let (calls, running, max_running) = (calls.clone(), running.clone(), max_running.clone());
        move |hold: Duration| {
            calls.fetch_add(1, SeqCst);
            let (running, max_running) = (running.clone(), max_running.clone());
            async move {
                let now = running.fetch_add(1, SeqCst) + 1;
                max_running.fetch_max(now, SeqCst);
                let _running = Running(running);
                tokio::time::sleep(hold).await;
                Ok::<_, std::io::Error>(())
            }
        }
    }));
    let mut largest_limit = 4;
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let hold = Duration::from_millis(rng.u64(0..20));
        let patience = Duration::from_millis(rng.u64(1..40));
        let svc = svc.clone();
        let task = tokio::spawn(async move {
            let _ = tokio::time::timeout(patience, svc.oneshot(hold)).await;
        });
        match rng.u8(0..10) {
            0 => task.abort(),
            1 => {
                tokio::task::yield_now().await;
                task.abort();
            }
            _ => tasks.push(task),
        }
        if rng.u8(0..20) == 0 {
            let limit = rng.usize(1..=6);
            largest_limit = largest_limit.max(limit);
            b.set_max_concurrent(limit).unwrap();
        }
        if rng.bool() {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..3))).await;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    settle().await;
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued), (0, 0), "seed {seed}: {m:?}");
    assert_eq!(running.load(SeqCst), 0);
    assert!(max_running.load(SeqCst) <= largest_limit, "seed {seed}");
    assert_eq!(
        calls.load(SeqCst) as u64,
        m.accepted,
        "seed {seed}: every admitted call reached the inner service once, nothing else did"
    );
    assert!(
        m.rejected_full + m.rejected_timeout > 0,
        "seed {seed}: the test exercised rejection"
    );
    // Exactly the current limit's permits exist: no permit leaked, none was created, and every
    // one is back where the fast path takes it (none stranded in the queue).
    let limit = b.max_concurrent();
    assert_eq!(b.permit_places(), (limit, 0), "seed {seed}");
    let gate = Gate::default();
    let mut probe = guarded(&b, &gate);
    assert_permits(&b, &gate, &mut probe, limit).await;
}

/// The same on a multi-thread runtime, with real parallelism: no timers, cancellation by abort
/// and by dropping futures at random points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_on_two_threads_leaks_nothing() {
    let b = bulkhead(3, 6, None);
    let svc = b.layer().layer(service_fn(|spins: u32| async move {
        for _ in 0..spins {
            tokio::task::yield_now().await;
        }
        Ok::<_, std::io::Error>(())
    }));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut tasks = Vec::new();
    for i in 0..2000u32 {
        let spins = rng.u32(0..8);
        let give_up_after = rng.u32(0..12);
        let svc = svc.clone();
        let task = tokio::spawn(async move {
            let mut call = pin!(svc.oneshot(spins));
            for _ in 0..give_up_after {
                if futures::poll!(call.as_mut()).is_ready() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            // Gave up: the call is dropped here, wherever it was.
        });
        if rng.u8(0..8) == 0 {
            task.abort();
        }
        tasks.push(task);
        if i % 250 == 0 {
            b.set_max_concurrent(rng.usize(1..=5)).unwrap();
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued), (0, 0), "{m:?}");
    assert!(m.accepted > 0);
    // Every permit is back where the fast path takes it: none stranded in the queue.
    assert_eq!(b.permit_places(), (b.max_concurrent(), 0));
}

#[test]
fn futures_are_send_and_sync() {
    fn check<T: Send + Sync>(_: &T) {}
    let b = bulkhead(1, 1, None);
    let mut svc = b
        .layer()
        .layer(service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let fut = svc.call(());
    check(&fut);
    check(&b);
    drop(fut);
}

#[test]
fn an_unbounded_queue_is_counted_in_32_bits() {
    let b = Bulkhead::builder("q")
        .max_concurrent(1)
        .max_queued(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(b.max_queued(), u32::MAX as usize);
}
