//! No heap allocation per call through a running kill switch.
//!
//! The service is driven by hand with `battlement_test_util::calls` (no executor);
//! `battlement_test_util::allocations` counts this thread's allocations only.

use battlement_kill_switch::KillSwitch;
use battlement_test_util::{allocations, bare, calls, CALLS};
use tower::Layer;

#[test]
fn a_running_switch_allocates_nothing_per_call() {
    let switch = KillSwitch::builder("alloc").build().unwrap();
    let mut svc = switch.layer().layer(bare());
    calls(&mut svc, 100, |_| ());
    let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |_| ()), (CALLS, 0)));
    assert_eq!(n, 0);

    // The counter is not vacuous: a rejection boxes its error, once per call.
    switch.halt("stop");
    let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |_| ()), (0, CALLS)));
    assert_eq!(n, CALLS);
}
