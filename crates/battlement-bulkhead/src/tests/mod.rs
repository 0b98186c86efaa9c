//! Behavior tests, on paused time unless said otherwise.

use crate::*;
use battlement_core::error::failure_kind;
use battlement_core::{BoxError, FailureKind, HealthSource, HealthStatus};
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

mod adaptive;
mod admission;
mod config;
mod metrics;
mod priority;
mod reload;
mod resize;
mod service;
mod stress;
mod stripes;

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
