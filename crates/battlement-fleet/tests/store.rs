//! Breaker state across restarts: the file store and the Redis store (a real redis-server).

use battlement_breaker::{CircuitBreaker, State};
use battlement_fleet::testing::RedisServer;
use battlement_fleet::{FileStore, Fleet, PersistedBreaker, RedisStore, StateStore};
use std::sync::Arc;
use std::time::Duration;

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder("payments")
        .fixed_open_wait(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("battlement-{name}-{}.json", std::process::id()))
}

/// Opens a breaker, "restarts" (a new breaker of the same name, restored from `store`) after
/// `gap`, and checks it is open for the rest of its wait only.
async fn open_survives_restart(store: Arc<dyn StateStore>) {
    let before = breaker();
    let persisted = PersistedBreaker::start(&before, store.clone())
        .await
        .unwrap();
    before.trip("upstream down");
    assert!(persisted.flush(Duration::from_secs(2)).await, "saved");
    drop(persisted);
    drop(before);

    let gap = Duration::from_millis(1500);
    tokio::time::sleep(gap).await;

    let after = breaker();
    assert_eq!(after.state(), State::Closed, "built closed");
    let _p = PersistedBreaker::start(&after, store).await.unwrap();
    assert_eq!(after.state(), State::Open, "restored open");
    let left = after.retry_after().unwrap();
    assert!(
        left <= Duration::from_secs(10) - gap,
        "the rest of the wait only: {left:?}"
    );
    assert!(left >= Duration::from_secs(7), "not ended early: {left:?}");
    assert!(after.try_call().is_err());
}

#[tokio::test]
async fn an_open_breaker_comes_back_open_for_the_rest_of_its_wait_from_the_file_store() {
    let path = temp_path("store-open");
    let _ = std::fs::remove_file(&path);
    open_survives_restart(Arc::new(FileStore::new(&path))).await;
    // Replaced atomically: no temporary file left, and the file is whole JSON.
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    assert!(!std::path::Path::new(&tmp).exists());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["payments"]["state"], "open");
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn an_open_breaker_comes_back_open_for_the_rest_of_its_wait_from_redis() {
    let server = RedisServer::start();
    let fleet = Fleet::builder(server.url())
        .command_timeout(Duration::from_millis(500))
        .check_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    open_survives_restart(Arc::new(RedisStore::new(&fleet))).await;
}

#[tokio::test]
async fn a_forced_open_breaker_stays_forced_and_an_expired_wait_is_not_restored() {
    let path = temp_path("store-forced");
    let _ = std::fs::remove_file(&path);
    let store: Arc<dyn StateStore> = Arc::new(FileStore::new(&path));

    let b = breaker();
    let p = PersistedBreaker::start(&b, store.clone()).await.unwrap();
    b.force_open("maintenance window");
    assert!(p.flush(Duration::from_secs(2)).await);
    drop(p);
    let again = breaker();
    let _p = PersistedBreaker::start(&again, store.clone())
        .await
        .unwrap();
    assert_eq!(again.state(), State::ForcedOpen);
    assert_eq!(again.retry_after(), None, "forced with no end stays forced");

    let short = CircuitBreaker::builder("short")
        .fixed_open_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let p = PersistedBreaker::start(&short, store.clone())
        .await
        .unwrap();
    short.trip("blip");
    assert!(p.flush(Duration::from_secs(2)).await);
    drop(p);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let short_again = CircuitBreaker::builder("short").build().unwrap();
    let _p = PersistedBreaker::start(&short_again, store).await.unwrap();
    assert_eq!(short_again.state(), State::Closed, "its wait had passed");
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn while_redis_is_gone_the_latest_state_is_queued_and_written_on_reconnect() {
    let mut server = RedisServer::start();
    let fleet = Fleet::builder(server.url())
        .command_timeout(Duration::from_millis(100))
        .check_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    let store = Arc::new(RedisStore::new(&fleet));
    let b = breaker();
    let p = PersistedBreaker::start_with_retry(&b, store.clone(), Duration::from_millis(50))
        .await
        .unwrap();

    server.kill();
    b.trip("first");
    b.force_open("second, the latest");
    assert!(
        !p.flush(Duration::from_millis(300)).await,
        "cannot save without redis"
    );
    assert_eq!(p.pending().unwrap().state, "forced_open");
    assert!(p.failures() > 0);

    server.restart();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    assert!(
        p.flush(Duration::from_secs(5)).await,
        "written on reconnect"
    );
    let saved = store.load("payments").await.unwrap().unwrap();
    assert_eq!(saved.state, "forced_open");
    assert_eq!(saved.reason.as_deref(), Some("second, the latest"));
}
