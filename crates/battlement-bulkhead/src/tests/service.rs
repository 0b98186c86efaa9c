//! The service: shared permits, tower's readiness contract, the unboxed fast-path future.

use super::*;

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
