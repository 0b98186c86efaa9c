//! No heap allocation per call through the chaos layer, off or on without injection.
//!
//! The service is driven by hand with `battlement_test_util::calls` (no executor);
//! `battlement_test_util::allocations` counts this thread's allocations only.

use battlement_chaos::Chaos;
use battlement_test_util::{allocations, bare, calls, CALLS};
use tower::{Layer, Service};

fn measure<S: Service<()>>(svc: &mut S, expect: (u64, u64)) -> u64 {
    calls(svc, 10, |_| ());
    allocations(|| assert_eq!(calls(svc, CALLS, |_| ()), expect))
}

#[test]
fn off_and_uninjected_calls_allocate_nothing() {
    let chaos = Chaos::builder("alloc")
        .seed(1)
        .error(0.0)
        .response(0.0, || ())
        .build()
        .unwrap();
    let mut svc = chaos.layer().layer(bare());
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
    let mut svc = chaos.layer().layer(bare());
    assert_eq!(measure(&mut svc, (CALLS, 0)), 0);

    // The counter is not vacuous: an injected error is boxed, once per call.
    let chaos = Chaos::builder("alloc")
        .enabled(true)
        .error(1.0)
        .build()
        .unwrap();
    let mut svc = chaos.layer().layer(bare());
    assert_eq!(measure(&mut svc, (0, CALLS)), CALLS);
}
