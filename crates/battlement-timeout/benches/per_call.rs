//! Per-call cost of `TimeoutLayer` next to `tower::timeout::Timeout`, in front of a trivial
//! inner service whose future is ready at once (so the timer never fires: the cost a healthy call
//! pays).
//!
//! Each call is `poll_ready` + `call` + one poll of the response future with a no-op waker, on a
//! thread inside a current-thread runtime (the timer needs a time driver in scope). The rows
//! alternate over several rounds and the median ns per call of each is printed.
//!
//! Run: `cargo bench -p battlement-timeout --bench per_call`.

use battlement_timeout::{HttpTimeouts, TimeoutLayer};
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{service_fn, Layer, Service};

const CALLS: u32 = 200_000;
const ROUNDS: usize = 15;
const LIMIT: Duration = Duration::from_secs(10);

fn bare<R>(
) -> impl Service<R, Response = (), Error = Infallible, Future = Ready<Result<(), Infallible>>> {
    // The request is observed, so no row can optimise its construction away.
    service_fn(|req: R| {
        black_box(&req);
        ready(Ok::<_, Infallible>(()))
    })
}

struct Noop;
impl std::task::Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

fn one_call<S: Service<R>, R>(svc: &mut S, req: R, cx: &mut Context<'_>) {
    assert!(matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))));
    let mut future = pin!(svc.call(req));
    match future.as_mut().poll(cx) {
        Poll::Ready(r) => {
            black_box(r.is_ok());
        }
        Poll::Pending => panic!("call did not complete at once"),
    }
}

/// Nanoseconds per call over `CALLS` calls.
fn round<S: Service<R>, R>(svc: &mut S, mut req: impl FnMut() -> R) -> f64 {
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    for _ in 0..CALLS {
        one_call(svc, req(), &mut cx);
    }
    start.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let mut bare_svc = bare::<()>();
    let mut tower_svc = tower::timeout::TimeoutLayer::new(LIMIT).layer(bare::<()>());
    let mut ours = TimeoutLayer::new(LIMIT).name("bench").layer(bare::<()>());
    let mut tower_http =
        tower::timeout::TimeoutLayer::new(LIMIT).layer(bare::<http::Request<()>>());
    let mut ours_http = TimeoutLayer::new(LIMIT)
        .policy(HttpTimeouts::new())
        .layer(bare::<http::Request<()>>());
    let mut ours_plain_http = TimeoutLayer::new(LIMIT).layer(bare::<http::Request<()>>());
    let mut ours_grpc = TimeoutLayer::new(LIMIT)
        .policy(HttpTimeouts::new().grpc(true))
        .layer(bare::<http::Request<()>>());

    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("bare", vec![]),
        ("tower Timeout", vec![]),
        ("battlement TimeoutLayer", vec![]),
        ("tower Timeout, http::Request", vec![]),
        ("battlement HttpTimeouts, http::Request", vec![]),
        ("battlement DefaultOnly, http::Request", vec![]),
        ("battlement HttpTimeouts+grpc, http::Request", vec![]),
    ];
    for _ in 0..ROUNDS {
        rows[0].1.push(round(&mut bare_svc, || ()));
        rows[1].1.push(round(&mut tower_svc, || ()));
        rows[2].1.push(round(&mut ours, || ()));
        rows[3]
            .1
            .push(round(&mut tower_http, || http::Request::new(())));
        rows[4]
            .1
            .push(round(&mut ours_http, || http::Request::new(())));
        rows[6]
            .1
            .push(round(&mut ours_grpc, || http::Request::new(())));
        rows[5]
            .1
            .push(round(&mut ours_plain_http, || http::Request::new(())));
    }
    println!("{:<46} {:>10}", "row", "ns/call");
    for (name, v) in rows {
        println!("{name:<46} {:>10.1}", median(v));
    }
}
