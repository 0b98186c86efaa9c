//! The shared breaker view with a quorum, against a real redis-server: three replicas, each
//! with its own connection and its own breaker of the same name.

use battlement_breaker::{CircuitBreaker, State};
use battlement_core::{FailureKind, Finish, HealthSource, Outcome};
use battlement_fleet::testing::RedisServer;
use battlement_fleet::{Fleet, Quorum, SharedBreaker};
use std::time::Duration;
use tokio::time::Instant;

struct Replica {
    fleet: Fleet,
    breaker: CircuitBreaker,
    shared: SharedBreaker,
}

async fn replica(server: &RedisServer, id: &str) -> Replica {
    let fleet = Fleet::builder(server.url())
        .replica_id(id)
        .command_timeout(Duration::from_millis(500))
        .check_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    let breaker = CircuitBreaker::builder("inventory")
        .fixed_open_wait(Duration::from_secs(30))
        .consecutive_failures(3)
        .build()
        .unwrap();
    let shared = SharedBreaker::builder(&fleet, &breaker)
        .quorum(Quorum::Count(2))
        .heartbeat(Duration::from_millis(100))
        .build()
        .unwrap();
    Replica {
        fleet,
        breaker,
        shared,
    }
}

/// Trips `breaker` from its own window: three failed calls in a row.
fn fail_three_calls(breaker: &CircuitBreaker) {
    for _ in 0..3 {
        breaker
            .try_call()
            .unwrap()
            .finish(Outcome::Failure(FailureKind::ServerError));
    }
    assert_eq!(breaker.state(), State::Open);
}

async fn until(within: Duration, cond: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_quorum_of_two_one_open_replica_does_not_open_the_others_and_a_second_does() {
    let server = RedisServer::start();
    let a = replica(&server, "a").await;
    let b = replica(&server, "b").await;
    let c = replica(&server, "c").await;
    assert!(
        until(Duration::from_secs(2), || a.shared.view().replicas.len()
            == 3)
        .await,
        "every replica's heartbeat is seen: {:?}",
        a.shared.view()
    );

    fail_three_calls(&a.breaker);
    assert!(
        until(Duration::from_secs(2), || c.shared.view().open() == 1).await,
        "c sees a open: {:?}",
        c.shared.view()
    );
    // Several heartbeats and announcements later, one replica alone has opened nobody.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.breaker.state(), State::Closed);
    assert_eq!(c.breaker.state(), State::Closed);

    b.breaker.force_open("b's operator");
    assert!(
        until(Duration::from_secs(2), || c.breaker.state() == State::Open).await,
        "c opens on the quorum: {:?}",
        c.shared.view()
    );
    // c's opening is the quorum's, not its own finding: it does not count as a third. Its
    // view shows its own new state once its next announcement is read back, so wait for that.
    let announced = || {
        c.shared
            .view()
            .replicas
            .iter()
            .any(|r| r.replica == "c" && r.state == "open")
    };
    assert!(
        until(Duration::from_secs(2), announced).await,
        "c's view shows it open: {:?}",
        c.shared.view()
    );
    let view = c.shared.view();
    assert_eq!(view.open(), 2, "{view:?}");
    let mine = view.replicas.iter().find(|r| r.replica == "c").unwrap();
    assert_eq!((mine.state.as_str(), mine.own), ("open", false));

    // The fleet view is in the fleet's health details.
    let snap = c.fleet.snapshot();
    assert_eq!(snap.metric("breaker.inventory.replicas_live"), Some(3.0));
    assert_eq!(snap.metric("breaker.inventory.replicas_open"), Some(2.0));
    // The same view in the metric families the exporters scrape.
    let mut out = battlement_core::testing::RecordingVisitor::new();
    battlement_core::HealthSource::export(&c.fleet, &mut out);
    out.assert_families_in(battlement_fleet::FAMILIES);
    let replicas = |state| match out.get(
        "battlement_fleet_breaker_replicas",
        &[("breaker", "inventory"), ("state", state)],
    ) {
        Some(battlement_core::testing::Recorded::Gauge(v)) => *v,
        other => panic!("{other:?}"),
    };
    assert_eq!((replicas("live"), replicas("open")), (3.0, 2.0));
    assert!(out.counter_value("battlement_fleet_commands", &[]) > 0);
    drop((a.fleet, b.fleet));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_reporting_drops_out_of_the_view() {
    let server = RedisServer::start();
    let a = replica(&server, "a").await;
    let b = replica(&server, "b").await;
    assert!(
        until(Duration::from_secs(2), || a.shared.view().replicas.len()
            == 2)
        .await
    );
    fail_three_calls(&b.breaker);
    assert!(until(Duration::from_secs(2), || a.shared.view().open() == 1).await);
    drop(b);
    // Its report expires after three heartbeats (300 ms).
    assert!(
        until(Duration::from_secs(3), || a.shared.view().replicas.len()
            == 1)
        .await,
        "{:?}",
        a.shared.view()
    );
    assert_eq!(a.breaker.state(), State::Closed);
}
