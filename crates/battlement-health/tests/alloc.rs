//! No heap allocation per call through a health probe, whatever the outcome.
//!
//! The service is driven by hand (`poll_ready`, `call`, one `poll`) with a no-op waker, so only
//! the layer and a trivial inner service run. `allocation_counter::measure` counts this thread's
//! allocations only.

use battlement_health::HealthProbe;
use std::future::{ready, Future};
use std::pin::pin;
use std::task::{Context, Poll};
use tower::{service_fn, Layer, Service};

const CALLS: u64 = 1000;

fn calls<S: Service<u64>>(svc: &mut S, n: u64) -> (u64, u64) {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut ok, mut err) = (0, 0);
    for i in 0..n {
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let fut = pin!(svc.call(i));
        match fut.poll(&mut cx) {
            Poll::Ready(Ok(_)) => ok += 1,
            Poll::Ready(Err(_)) => err += 1,
            Poll::Pending => panic!("did not complete at once"),
        }
    }
    (ok, err)
}

#[test]
fn a_probe_allocates_nothing_per_call() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let probe = HealthProbe::builder("alloc").build().unwrap();
    let mut svc = probe.layer().layer(service_fn(|i: u64| {
        ready(if i % 2 == 0 {
            Ok(i)
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
        })
    }));
    calls(&mut svc, 100);
    let info = allocation_counter::measure(|| {
        assert_eq!(calls(&mut svc, CALLS), (CALLS / 2, CALLS / 2));
    });
    assert_eq!(info.count_total, 0);
    let stats = probe.stats();
    assert_eq!(
        (stats.successes, stats.failures),
        (CALLS / 2 + 50, CALLS / 2 + 50)
    );

    // The counter is not vacuous: a dropped call does not count, and its future allocates
    // nothing either, while boxing something does show.
    let info = allocation_counter::measure(|| {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(svc.poll_ready(&mut cx).is_ready());
        drop(svc.call(0));
        std::hint::black_box(Box::new(1u8));
    });
    assert_eq!(info.count_total, 1);
    assert_eq!(probe.stats().calls, CALLS + 100);
}
