//! Per-call cost of a bulkhead with a free permit, next to `tower::limit::ConcurrencyLimit`, in
//! front of a trivial inner service whose future is ready at once.
//!
//! - `1 thread`: each call is `poll_ready` + `call` + one poll of the response future with a
//!   no-op waker, on this thread; rows alternate over several rounds, median ns per call.
//! - `2 threads`: two threads each drive their own clone of one service (one shared
//!   bulkhead or semaphore); wall time per call over both threads' calls, median of rounds.
//!
//! `ConcurrencyLimit` takes its permit in `poll_ready` from tokio's `Semaphore`; the bulkhead
//! takes it in `call` from its thread's permit stripe (the semaphore is only its queue).
//!
//! Run: `cargo bench -p battlement-bulkhead --bench per_call`.

use battlement_bulkhead::Bulkhead;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;
use tower::{service_fn, Layer, Service};

const CALLS: u32 = 200_000;
const ROUNDS: usize = 11;
const PERMITS: usize = 1024;

fn bare(
) -> impl Service<(), Response = (), Error = Infallible, Future = Ready<Result<(), Infallible>>>
       + Clone
       + Send
       + 'static {
    service_fn(|_: ()| ready(Ok::<_, Infallible>(())))
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn calls<S: Service<()>>(svc: &mut S, n: u32) {
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..n {
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let mut future = pin!(svc.call(()));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(r) => {
                black_box(r.is_ok());
            }
            Poll::Pending => panic!("call did not complete at once"),
        }
    }
}

/// Nanoseconds per call on this thread.
fn one_thread<S: Service<()>>(svc: &mut S) -> f64 {
    let start = Instant::now();
    calls(svc, CALLS);
    start.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

/// Wall nanoseconds per call, two threads calling through clones of `svc` at once.
fn two_threads<S>(svc: &S) -> f64
where
    S: Service<()> + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                calls(&mut svc, CALLS);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed().as_nanos() as f64 / f64::from(2 * CALLS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bulkhead = Bulkhead::builder("bench")
        .max_concurrent(PERMITS)
        .build()
        .unwrap();
    let mut tower_svc = tower::limit::ConcurrencyLimitLayer::new(PERMITS).layer(bare());
    let mut ours = bulkhead.layer().layer(bare());
    let tower_shared = tower::limit::GlobalConcurrencyLimitLayer::new(PERMITS).layer(bare());

    let mut rows = vec![
        ("tower ConcurrencyLimit, 1 thread", vec![]),
        ("battlement Bulkhead, 1 thread", vec![]),
        ("tower GlobalConcurrencyLimit, 2 threads", vec![]),
        ("battlement Bulkhead, 2 threads", vec![]),
    ];
    for _ in 0..ROUNDS {
        rows[0].1.push(one_thread(&mut tower_svc));
        rows[1].1.push(one_thread(&mut ours));
        rows[2].1.push(two_threads(&tower_shared));
        rows[3].1.push(two_threads(&ours));
    }
    println!("{:<42} {:>10}", "row", "ns/call");
    for (name, v) in rows {
        println!("{name:<42} {:>10.1}", median(v));
    }
    assert_eq!(bulkhead.metrics().in_flight, 0);
}
