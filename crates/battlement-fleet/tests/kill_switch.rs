//! The fleet kill switch against a real redis-server: three replicas, each with its own
//! connection and its own local kill switch.

use battlement_fleet::testing::RedisServer;
use battlement_fleet::{Fleet, FleetKillSwitch};
use battlement_kill_switch::KillSwitch;
use std::time::Duration;
use tokio::time::Instant;

async fn replica(server: &RedisServer, id: &str) -> (Fleet, FleetKillSwitch) {
    let fleet = Fleet::builder(server.url())
        .replica_id(id)
        .command_timeout(Duration::from_millis(500))
        .check_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    let switch = KillSwitch::builder("orders").build().unwrap();
    let fleet_switch = FleetKillSwitch::builder(&fleet, &switch).build().unwrap();
    (fleet, fleet_switch)
}

/// Polls `cond` every millisecond until it holds; returns how long that took (at most `within`).
async fn until(within: Duration, cond: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cond().then(|| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_through_one_replica_halts_the_others_within_a_second_and_a_late_replica_starts_halted(
) {
    let server = RedisServer::start();
    let (_fa, a) = replica(&server, "a").await;
    let (_fb, b) = replica(&server, "b").await;
    let (_fc, c) = replica(&server, "c").await;
    // Let the followers subscribe (a halt before would still be read from the key).
    tokio::time::sleep(Duration::from_millis(200)).await;

    a.halt("bad deploy", "alice").await.unwrap();
    assert!(a.switch().is_halted(), "the halting replica halts at once");
    for other in [&b, &c] {
        let took = until(Duration::from_secs(1), || other.switch().is_halted()).await;
        assert!(took.is_some(), "halted within a second");
    }
    let info = b.switch().halt_info().unwrap();
    assert_eq!(info.reason(), "bad deploy (fleet halt by alice)");
    let stored = c.fleet_halt().await.unwrap().unwrap();
    assert_eq!(
        (stored.reason.as_str(), stored.who.as_str()),
        ("bad deploy", "alice")
    );

    // A replica started after the halt starts halted (it reads the key).
    let (_fd, d) = replica(&server, "d").await;
    assert!(until(Duration::from_secs(1), || d.switch().is_halted())
        .await
        .is_some());

    b.resume().await.unwrap();
    for r in [&a, &b, &c, &d] {
        assert!(until(Duration::from_secs(1), || !r.switch().is_halted())
            .await
            .is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_halt_works_without_redis_and_a_fleet_resume_does_not_lift_it() {
    let server = RedisServer::start();
    let (_fa, a) = replica(&server, "a").await;
    let (_fb, b) = replica(&server, "b").await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    b.switch().halt("local maintenance");
    a.halt("incident", "bob").await.unwrap();
    a.resume().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.switch().is_halted(), "b's own halt stays");
    assert_eq!(
        b.switch().halt_info().unwrap().reason(),
        "local maintenance"
    );
    b.switch().resume();

    // Without Redis: a local halt still works, and the switch keeps its last state.
    drop(server);
    b.switch().halt("redis is gone, halting by hand");
    assert!(b.switch().is_halted());
    assert!(a.halt("cannot reach the fleet", "carol").await.is_err());
    assert!(
        a.switch().is_halted(),
        "the local switch halts even when the fleet write fails"
    );
}
