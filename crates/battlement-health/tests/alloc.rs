//! No heap allocation per call through a health probe, whatever the outcome.
//!
//! The service is driven by hand with `battlement_test_util::calls` (no executor);
//! `battlement_test_util::allocations` counts this thread's allocations only.

use battlement_health::HealthProbe;
use battlement_test_util::{allocations, calls, CALLS};
use std::future::ready;
use std::task::Context;
use tower::{service_fn, Layer, Service};

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
    calls(&mut svc, 100, |i| i);
    let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |i| i), (CALLS / 2, CALLS / 2)));
    assert_eq!(n, 0);
    let stats = probe.metrics();
    assert_eq!(
        (stats.successes, stats.failures),
        (CALLS / 2 + 50, CALLS / 2 + 50)
    );

    // The counter is not vacuous: a dropped call does not count, and its future allocates
    // nothing either, while boxing something does show.
    let n = allocations(|| {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(svc.poll_ready(&mut cx).is_ready());
        drop(svc.call(0));
        std::hint::black_box(Box::new(1u8));
    });
    assert_eq!(n, 1);
    assert_eq!(probe.metrics().calls, CALLS + 100);
}
