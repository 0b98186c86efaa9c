//! [`PerThread`]: one clone of a service per thread, for servers and clients that clone the
//! service for every request.

use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::task::{Context, Poll, Wake, Waker};
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use battlement_core::stripe::{CachePadded, Stripes, MAX_STRIPES};

/// A service that keeps one clone of `S` per thread and sends each call through the calling
/// thread's, so that cloning it, as hyper-util's `TowerToHyperService` (and so `axum::serve`)
/// does for every request and as tasks sharing a client do, copies a pointer instead of
/// cloning `S`.
///
/// Cloning a battlement stack clones each layer's handle (the breaker's, the bulkhead's, the
/// retry's, the timeout's): an increment and a decrement of reference counts that every core's
/// clones share, so a stack cloned for every request on several cores spends its time moving
/// those counts between the cores' caches. `PerThread` clones `S` once per thread that calls it
/// (on its first call there) and never again; a call locks only its own thread's clone, which
/// no other thread uses, for the time of `poll_ready` and `call` (not for the response).
///
/// **It is never freed**: [`leak`](Self::leak) moves the service and its clones into memory
/// kept for the rest of the program, which is what makes a clone of a `PerThread` a copy of a
/// pointer. Make one per server or client, at start, not one per request.
///
/// Calls go through the thread's clone when its `poll_ready` is ready at once (a battlement
/// stack's always is). When it is not, the call takes that clone with it, waits for it to be
/// ready and calls it (as `oneshot`), and the thread's next call clones `S` again; when the
/// thread's clone is in use (a call made from inside the service's own `call`, or more threads
/// than [`MAX_STRIPES`] sharing clones) the call clones `S` for itself. A `poll_ready` error
/// is the call's error, and the thread's next call uses a fresh clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), battlement::core::BoxError> {
/// use battlement::PerThread;
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// // Any service that is `Clone + Send`: here a stack of layers around a function.
/// let svc = PerThread::leak(
///     ServiceBuilder::new()
///         .timeout(Duration::from_secs(1))
///         .service_fn(|x: u32| async move { Ok::<_, battlement::core::BoxError>(x + 1) }),
/// );
/// // What a server does for each request: clone the service, call the clone once. With
/// // `axum::serve`, pass `tower::make::Shared::new(svc)`.
/// assert_eq!(svc.clone().oneshot(41).await?, 42);
/// # Ok(())
/// # }
/// ```
pub struct PerThread<S: 'static> {
    shared: &'static Shared<S>,
}

struct Shared<S> {
    /// Each thread's clone (`None` until the thread's first call, and after a clone was taken
    /// away or failed), by thread index.
    cells: Stripes<CachePadded<Mutex<Option<S>>>>,
    /// The service given to [`PerThread::leak`], cloned for each cell.
    origin: Mutex<S>,
}

impl<S: Clone + Send + 'static> PerThread<S> {
    /// Keeps `service` and its clones, one per calling thread, for the rest of the program.
    pub fn leak(service: S) -> Self {
        let shared = Shared {
            cells: Stripes::with_count(MAX_STRIPES, |_| Mutex::new(None)),
            origin: Mutex::new(service),
        };
        PerThread {
            shared: Box::leak(Box::new(shared)),
        }
    }
}

impl<S: Clone> Shared<S> {
    /// A new clone of the original service.
    fn fresh(&self) -> S {
        self.origin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// A copy of the pointer.
impl<S: 'static> Clone for PerThread<S> {
    fn clone(&self) -> Self {
        PerThread {
            shared: self.shared,
        }
    }
}

impl<S: 'static> fmt::Debug for PerThread<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerThread").finish_non_exhaustive()
    }
}

/// A waker that does nothing, for the `poll_ready` a call makes on its thread's clone: when
/// that is not ready at once, the clone goes to the call's future, which polls it again with
/// the task's own waker.
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
        fn wake_by_ref(self: &Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}

impl<S, Req> Service<Req> for PerThread<S>
where
    S: Service<Req> + Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req>;

    /// Always ready: the thread's clone is asked in [`call`](Service::call).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = self.shared;
        let cell = shared.cells.local();
        let mut slot = match cell.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(poisoned)) => {
                // A call panicked inside the clone: start again from a fresh one.
                cell.clear_poison();
                let mut slot = poisoned.into_inner();
                *slot = None;
                slot
            }
            Err(TryLockError::WouldBlock) => return ResponseFuture::later(shared.fresh(), req),
        };
        let service = slot.get_or_insert_with(|| shared.fresh());
        match service.poll_ready(&mut Context::from_waker(noop_waker())) {
            Poll::Ready(Ok(())) => ResponseFuture::called(service.call(req)),
            Poll::Ready(Err(error)) => {
                *slot = None;
                ResponseFuture::failed(error)
            }
            Poll::Pending => {
                // The clone may hold a place in a queue (a semaphore's): it goes with the call,
                // which waits in that place; the thread's next call clones again.
                let service = slot.take().expect("inserted above");
                drop(slot);
                ResponseFuture::later(service, req)
            }
        }
    }
}

pin_project! {
    /// The future of a call through a [`PerThread`]: the thread's clone's response future, or
    /// (when that clone was not ready at once or was in use) a clone of its own that it waits
    /// for and calls.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        kind: Kind<S, Req>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, Req>
    where
        S: Service<Req>,
    {
        Called { #[pin] future: S::Future },
        // Boxed: rare, and it would make every call's future as large as a service and a
        // request.
        Later { oneshot: Pin<Box<Oneshot<S, Req>>> },
        Failed { error: Option<S::Error> },
    }
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    fn called(future: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Called { future },
        }
    }

    fn later(service: S, req: Req) -> Self {
        ResponseFuture {
            kind: Kind::Later {
                oneshot: Box::pin(service.oneshot(req)),
            },
        }
    }

    fn failed(error: S::Error) -> Self {
        ResponseFuture {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<S: Service<Req>, Req> Future for ResponseFuture<S, Req> {
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { future } => future.poll(cx),
            KindProj::Later { oneshot } => oneshot.as_mut().poll(cx),
            KindProj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Called { .. } => "called",
            Kind::Later { .. } => "later",
            Kind::Failed { .. } => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// A service that counts its clones and calls and answers `x + 1`; with `panics`, its
    /// first call panics.
    struct Counted {
        clones: Arc<AtomicUsize>,
        calls: Arc<AtomicUsize>,
        panics: bool,
    }

    impl Counted {
        fn new(clones: &Arc<AtomicUsize>) -> Self {
            Counted {
                clones: clones.clone(),
                calls: Arc::default(),
                panics: false,
            }
        }
    }

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.clones.fetch_add(1, SeqCst);
            Counted {
                clones: self.clones.clone(),
                calls: self.calls.clone(),
                panics: self.panics,
            }
        }
    }

    impl Service<u32> for Counted {
        type Response = u32;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<u32, std::io::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, x: u32) -> Self::Future {
            let first = self.calls.fetch_add(1, SeqCst) == 0;
            assert!(!(self.panics && first), "the first call panics");
            std::future::ready(Ok(x + 1))
        }
    }

    #[tokio::test]
    async fn a_thread_clones_the_service_once_and_calls_through_that_clone() {
        let clones = Arc::new(AtomicUsize::new(0));
        let svc = PerThread::leak(Counted::new(&clones));
        assert_eq!(clones.load(SeqCst), 0, "leak clones nothing");
        for x in 0..100 {
            // A server's per-request clone, called once.
            assert_eq!(svc.clone().oneshot(x).await.unwrap(), x + 1);
        }
        assert_eq!(
            clones.load(SeqCst),
            1,
            "one clone, on this thread's first call"
        );
    }

    #[test]
    fn each_thread_has_a_clone_of_its_own() {
        let clones = Arc::new(AtomicUsize::new(0));
        let svc = PerThread::leak(Counted::new(&clones));
        let threads = 4;
        let answered = AtomicUsize::new(0);
        // All alive at once: a thread that exits gives its index (and its clone) to the next.
        let together = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    together.wait();
                    let waker = noop_waker();
                    let mut cx = Context::from_waker(waker);
                    for x in 0..1000 {
                        let mut fut = std::pin::pin!(svc.clone().call(x));
                        assert!(
                            matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(y)) if y == x + 1)
                        );
                        answered.fetch_add(1, SeqCst);
                    }
                    together.wait();
                });
            }
        });
        assert_eq!(answered.load(SeqCst), threads * 1000);
        // One clone per thread (each live thread holds an index of its own below the count),
        // none per call.
        assert_eq!(clones.load(SeqCst), threads);
    }

    #[tokio::test]
    async fn a_clone_not_ready_goes_with_its_call_and_keeps_its_place_in_the_queue() {
        use tokio::sync::oneshot;
        // One call at a time; the first holds the permit until it is released.
        let (release, held) = oneshot::channel::<()>();
        let held = Arc::new(Mutex::new(Some(held)));
        let inner = tower::ServiceBuilder::new()
            .concurrency_limit(1)
            .service_fn(move |x: u32| {
                let held = held.lock().unwrap().take();
                async move {
                    if let Some(held) = held {
                        held.await.unwrap();
                    }
                    Ok::<_, std::io::Error>(x + 1)
                }
            });
        let svc = PerThread::leak(inner);
        let first = tokio::spawn(svc.clone().oneshot(1));
        tokio::task::yield_now().await;
        // The thread's clone is not ready (the permit is held): this call waits for it.
        let mut second = Box::pin(svc.clone().oneshot(2));
        assert!(futures::FutureExt::now_or_never(&mut second).is_none());
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 2);
        assert_eq!(second.await.unwrap(), 3);
        // And the thread's next call, on a fresh clone, goes straight through.
        assert_eq!(svc.clone().oneshot(3).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_readiness_error_is_the_call_s_error_and_the_next_call_uses_a_fresh_clone() {
        #[derive(Clone)]
        struct FailsOnce(Arc<AtomicUsize>);
        impl Service<u32> for FailsOnce {
            type Response = u32;
            type Error = &'static str;
            type Future = std::future::Ready<Result<u32, &'static str>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                if self.0.fetch_add(1, SeqCst) == 0 {
                    Poll::Ready(Err("broken"))
                } else {
                    Poll::Ready(Ok(()))
                }
            }
            fn call(&mut self, x: u32) -> Self::Future {
                std::future::ready(Ok(x))
            }
        }
        let svc = PerThread::leak(FailsOnce(Arc::new(AtomicUsize::new(0))));
        assert_eq!(svc.clone().oneshot(1).await, Err("broken"));
        assert_eq!(svc.clone().oneshot(2).await, Ok(2));
    }

    #[tokio::test]
    async fn a_call_made_from_inside_the_service_s_own_call_clones_instead_of_waiting() {
        // The inner service calls the same `PerThread` again from inside its `call` (while the
        // thread's clone is locked): that call must not wait for the lock.
        static SVC: OnceLock<PerThread<tower::util::BoxCloneSyncService<u32, u32, &'static str>>> =
            OnceLock::new();
        let inner = tower::util::BoxCloneSyncService::new(tower::service_fn(|depth: u32| {
            let nested = (depth > 0).then(|| SVC.get().unwrap().clone().call(depth - 1));
            async move {
                match nested {
                    Some(nested) => Ok(nested.await? + 1),
                    None => Ok(0),
                }
            }
        }));
        let svc = SVC.get_or_init(|| PerThread::leak(inner));
        assert_eq!(svc.clone().oneshot(3).await, Ok(3));
    }

    #[tokio::test]
    async fn a_call_that_panicked_leaves_the_next_call_a_working_clone() {
        let svc = PerThread::leak(Counted {
            panics: true,
            ..Counted::new(&Arc::default())
        });
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(svc.clone().call(1));
        }));
        assert!(panicked.is_err());
        assert_eq!(svc.clone().oneshot(2).await.unwrap(), 3);
    }
}
