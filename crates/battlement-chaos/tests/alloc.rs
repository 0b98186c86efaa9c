//! No heap allocation per call through the chaos layer, off or on without injection.
//!
//! The service is driven by hand (`poll_ready`, `call`, one `poll`) with a no-op waker, so only
//! the layer and a trivial inner service run. `allocation_counter::measure` counts this thread's
//! allocations only.

use battlement_chaos::Chaos;
use std::convert::Infallible;
use std::future::{ready, Future};
use std::pin::pin;
use std::task::{Context, Poll};
use tower::{service_fn, Layer, Service};

const CALLS: u64 = 1000;

fn calls<S: Service<()>>(svc: &mut S, n: u64) -> (u64, u64) {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..n {
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let fut = pin!(svc.call(()));
        match fut.poll(&mut cx) {
            Poll::Ready(Ok(_)) => ok += 1,
            Poll::Ready(Err(_)) => err += 1,
            Poll::Pending => panic!("did not complete at once"),
        }
    }
    (ok, err)
}

fn measure<S: Service<()>>(svc: &mut S, expect: (u64, u64)) -> u64 {
    calls(svc, 10);
    allocation_counter::measure(|| assert_eq!(calls(svc, CALLS), expect)).count_total
}

#[test]
fn off_and_uninjected_calls_allocate_nothing() {
    let chaos = Chaos::builder("alloc")
        .seed(1)
        .error(0.0)
        .response(0.0, || ())
        .build()
        .unwrap();
    let mut svc = chaos
        .layer()
        .layer(service_fn(|_: ()| ready(Ok::<_, Infallible>(()))));
    assert_eq!(measure(&mut svc, (CALLS, 0)), 0, "off");
    chaos.enable();
    assert_eq!(measure(&mut svc, (CALLS, 0)), 0, "on, nothing injected");
}

#[test]
fn injected_responses_allocate_nothing_and_errors_one_box_each() {
    let chaos = Chaos::builder("alloc")
        .seed(1)
        .enabled(true)
        .response(1.0, || ())
        .build()
        .unwrap();
    let mut svc = chaos
        .layer()
        .layer(service_fn(|_: ()| ready(Ok::<_, Infallible>(()))));
    assert_eq!(measure(&mut svc, (CALLS, 0)), 0);

    // The counter is not vacuous: an injected error is boxed, once per call.
    let chaos = Chaos::builder("alloc")
        .enabled(true)
        .error(1.0)
        .build()
        .unwrap();
    let mut svc = chaos
        .layer()
        .layer(service_fn(|_: ()| ready(Ok::<_, Infallible>(()))));
    assert_eq!(measure(&mut svc, (0, CALLS)), CALLS);
}
