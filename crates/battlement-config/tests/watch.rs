//! The file watcher (feature `watch`): a real directory, real file-system events. Waits are
//! for the watcher's published outcomes, bounded by a timeout; nothing sleeps for a fixed time.
#![cfg(feature = "watch")]

use battlement_config::{Loader, Resilience, WatchOutcome};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "battlement-config-{tag}-{}-{}",
            std::process::id(),
            fastrand_like()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        // Written beside, then renamed over: how editors save, and never half a file.
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The next published outcome, within 10 s (file-system events take real time).
async fn next(outcomes: &mut watch::Receiver<WatchOutcome>) -> WatchOutcome {
    tokio::time::timeout(Duration::from_secs(10), outcomes.changed())
        .await
        .expect("the watcher reloads within 10 s")
        .unwrap();
    outcomes.borrow_and_update().clone()
}

fn bulkhead(n: usize) -> String {
    format!("[instances.db.bulkhead]\nmax_concurrent = {n}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_reloads_and_a_bad_one_keeps_the_old_configuration() {
    let dir = TempDir::new("watch");
    dir.write("battlement.toml", &bulkhead(4));
    let loader = Loader::new().dir(&dir.0).no_env_overrides();
    let resilience = Resilience::new(loader.load().unwrap());
    let db = resilience.bulkhead("db").unwrap();
    let watcher = resilience
        .watch_debounced(loader, Duration::from_millis(50))
        .unwrap();
    let mut outcomes = watcher.outcomes();

    dir.write("battlement.toml", &bulkhead(8));
    let report = next(&mut outcomes).await.unwrap().unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(db.max_concurrent(), 8);

    // A bad file: refused with its problem, the old configuration keeps serving.
    dir.write("battlement.toml", &bulkhead(0));
    let err = next(&mut outcomes).await.unwrap().unwrap_err();
    assert_eq!(
        err.problems()[0].key(),
        "instances.db.bulkhead.max_concurrent"
    );
    assert_eq!(db.max_concurrent(), 8);
    assert_eq!(resilience.reloads().refused, 1);

    // Fixed: applied.
    dir.write("battlement.toml", &bulkhead(2));
    next(&mut outcomes).await.unwrap().unwrap();
    assert_eq!(db.max_concurrent(), 2);
    let m = resilience.reloads();
    assert_eq!((m.applied, m.refused), (2, 1));

    // Files of other names are not the configuration's.
    dir.write("other.toml", "not = [toml");
    dir.write("battlement.toml", &bulkhead(3));
    next(&mut outcomes).await.unwrap().unwrap();
    assert_eq!(db.max_concurrent(), 3);
    assert_eq!(resilience.reloads().refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_reloads_once_with_the_last() {
    let dir = TempDir::new("burst");
    dir.write("battlement.toml", &bulkhead(1));
    let loader = Loader::new().dir(&dir.0).no_env_overrides();
    let resilience = Resilience::new(loader.load().unwrap());
    let db = resilience.bulkhead("db").unwrap();
    // A long debounce: ten writes in a row are one change.
    let watcher = resilience
        .watch_debounced(loader, Duration::from_millis(400))
        .unwrap();
    let mut outcomes = watcher.outcomes();
    for n in 2..=11 {
        dir.write("battlement.toml", &bulkhead(n));
    }
    next(&mut outcomes).await.unwrap().unwrap();
    assert_eq!(db.max_concurrent(), 11);
    assert_eq!(resilience.reloads().applied, 1);
}

#[test]
fn watching_needs_a_runtime() {
    let dir = TempDir::new("no-runtime");
    dir.write("battlement.toml", &bulkhead(1));
    let loader = Loader::new().dir(&dir.0).no_env_overrides();
    let resilience = Resilience::new(loader.load().unwrap());
    let err = resilience.watch(loader).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
