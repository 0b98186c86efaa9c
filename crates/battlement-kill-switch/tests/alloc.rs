//! No heap allocation per call through a running kill switch.
//!
//! The service is driven by hand (`poll_ready`, `call`, one `poll`) with a no-op waker, so only
//! the layer and a trivial inner service run. `allocation_counter::measure` counts this thread's
//! allocations only.

use battlement_kill_switch::KillSwitch;
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

#[test]
fn a_running_switch_allocates_nothing_per_call() {
    let switch = KillSwitch::builder("alloc").build().unwrap();
    let mut svc = switch
        .layer()
        .layer(service_fn(|_: ()| ready(Ok::<_, Infallible>(()))));
    calls(&mut svc, 100);
    let info = allocation_counter::measure(|| {
        assert_eq!(calls(&mut svc, CALLS), (CALLS, 0));
    });
    assert_eq!(info.count_total, 0);

    // The counter is not vacuous: a rejection boxes its error, once per call.
    switch.halt("stop");
    let info = allocation_counter::measure(|| {
        assert_eq!(calls(&mut svc, CALLS), (0, CALLS));
    });
    assert_eq!(info.count_total, CALLS);
}
