//! Redis killed during load and restarted (a real redis-server): no request fails because of
//! it beyond the configured fallback, health says `warn` then `pass`, and the limit, the kill
//! switch and the store resume.

use battlement_breaker::CircuitBreaker;
use battlement_core::HealthStatus;
use battlement_fleet::testing::RedisServer;
use battlement_fleet::{
    Fleet, FleetKillSwitch, GlobalRateLimit, Outage, PersistedBreaker, RedisStore, StateStore,
};
use battlement_health::HealthRegistry;
use battlement_kill_switch::KillSwitch;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

fn fleet(server: &RedisServer, id: &str) -> Fleet {
    Fleet::builder(server.url())
        .replica_id(id)
        .command_timeout(Duration::from_millis(50))
        .check_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

async fn until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_during_load_and_restarted() {
    let mut server = RedisServer::start();
    let a = fleet(&server, "a");
    let b = fleet(&server, "b");
    assert!(a.wait_reachable(Duration::from_secs(5)).await);
    assert!(b.wait_reachable(Duration::from_secs(5)).await);
    let registry = HealthRegistry::new();
    registry.register(&a, true).unwrap();
    assert_eq!(registry.status(), HealthStatus::Pass);

    // A limit far above the load, with the local share as the fallback: no call should be
    // rejected, Redis or not.
    let limit = GlobalRateLimit::builder("api", &a)
        .rate(100_000, Duration::from_secs(1))
        .burst(1000)
        .outage(Outage::LocalShare { replicas: 1 })
        .build()
        .unwrap();
    let switch_a = KillSwitch::builder("ops").build().unwrap();
    let switch_b = KillSwitch::builder("ops").build().unwrap();
    let ks_a = FleetKillSwitch::builder(&a, &switch_a).build().unwrap();
    let _ks_b = FleetKillSwitch::builder(&b, &switch_b).build().unwrap();
    let store = Arc::new(RedisStore::new(&a));
    let breaker = CircuitBreaker::builder("db").build().unwrap();
    let persisted =
        PersistedBreaker::start_with_retry(&breaker, store.clone(), Duration::from_millis(50))
            .await
            .unwrap();

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (limit, ok, failed, stop) = (limit.clone(), ok.clone(), failed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut svc = ServiceBuilder::new()
                .layer(limit.layer())
                .service(service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
            while !stop.load(Ordering::Relaxed) {
                match svc.ready().await.unwrap().call(()).await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    assert!(until(Duration::from_secs(2), || ok.load(Ordering::Relaxed) > 50).await);
    ks_a.halt("before the outage", "test").await.unwrap();
    assert!(until(Duration::from_secs(1), || switch_b.is_halted()).await);

    server.kill();
    assert!(
        until(Duration::from_secs(2), || registry.status()
            == HealthStatus::Warn)
        .await,
        "warn while redis is gone: {:?}",
        registry.report()
    );
    let local_before = limit.metrics().local_decisions;
    let served = ok.load(Ordering::Relaxed);
    assert!(
        until(Duration::from_secs(2), || ok.load(Ordering::Relaxed)
            > served + 50)
        .await,
        "still serving"
    );
    assert!(
        limit.metrics().local_decisions > local_before,
        "decided locally"
    );
    assert!(switch_b.is_halted(), "the kill switch keeps its last state");
    breaker.force_open("during the outage");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(persisted.pending().unwrap().state, "forced_open", "queued");

    server.restart();
    assert!(
        until(Duration::from_secs(5), || registry.status()
            == HealthStatus::Pass)
        .await,
        "pass once redis is back: {:?}",
        registry.report()
    );
    // The store writes what it queued.
    assert!(persisted.flush(Duration::from_secs(5)).await);
    assert_eq!(
        store.load("db").await.unwrap().unwrap().state,
        "forced_open"
    );
    // The limit is decided by Redis again.
    let trips = limit.metrics().round_trips;
    let local = limit.metrics().local_decisions;
    assert!(
        until(Duration::from_secs(2), || limit.metrics().round_trips
            > trips + 50)
        .await
    );
    // (a call in flight at the moment of the restart may still have been decided locally)
    assert!(limit.metrics().local_decisions <= local + 2);
    // The kill switch follows the fleet again: the restarted Redis has no halt (its data was
    // not persisted), so b resumes; a new halt reaches it.
    assert!(until(Duration::from_secs(2), || !switch_b.is_halted()).await);
    ks_a.halt("after the outage", "test").await.unwrap();
    assert!(until(Duration::from_secs(1), || switch_b.is_halted()).await);

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no call failed because of the outage"
    );
}
