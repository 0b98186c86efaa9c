//! No heap allocation per call admitted with a leased permit (a real redis-server grants the
//! lease).
//!
//! The service is driven by hand with `battlement_test_util::calls` (no executor);
//! `battlement_test_util::allocations` counts this thread's allocations only.

use battlement_fleet::testing::RedisServer;
use battlement_fleet::{Fleet, GlobalRateLimit, Mode};
use battlement_test_util::{allocations, bare, calls, CALLS};
use std::time::Duration;
use tower::Layer;

#[test]
fn a_call_admitted_with_a_leased_permit_allocates_nothing() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let fleet = Fleet::builder(server.url())
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let batch = 10 * CALLS as u32;
    let limit = GlobalRateLimit::builder("alloc", &fleet)
        .rate(1_000_000, Duration::from_secs(1))
        .mode(Mode::Leased { batch })
        .build()
        .unwrap();
    // Take the lease: one round trip (which allocates) on the runtime.
    rt.block_on(async {
        assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
        limit.acquire(&()).await.unwrap();
    });
    assert!(limit.metrics().leased_permits >= u64::from(batch) - 1);

    let mut svc = limit.layer().layer(bare());
    calls(&mut svc, 10, |_| ());
    let trips = limit.metrics().round_trips;
    let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |_| ()), (CALLS, 0)));
    assert_eq!(n, 0);
    assert_eq!(limit.metrics().round_trips, trips, "no round trip either");
}
