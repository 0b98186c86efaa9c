//! Reload when the configuration files change (feature `watch`, on `notify`).

use crate::load::Loader;
use crate::registry::Resilience;
use crate::reload::{ReloadError, ReloadReport};
use notify::{EventKind, RecursiveMode, Watcher};
use std::fmt;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The outcome of the last reload a [`ConfigWatcher`] made (`None` before the first).
pub type WatchOutcome = Option<Result<ReloadReport, ReloadError>>;

/// Watches a [`Loader`]'s files and reloads a [`Resilience`] when they change; from
/// [`Resilience::watch`]. Dropping it stops watching.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use battlement_config::{Loader, Resilience};
///
/// let loader = Loader::new().dir("/etc/myservice");
/// let resilience = Resilience::new(loader.load()?);
/// let watcher = resilience.watch(loader)?;
/// let mut outcomes = watcher.outcomes();
/// outcomes.changed().await?; // the next reload, applied or refused
/// # Ok(())
/// # }
/// ```
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
    outcomes: watch::Receiver<WatchOutcome>,
}

impl fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("last", &*self.outcomes.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigWatcher {
    /// The outcome of each reload the watcher makes, as it makes them: await
    /// [`changed`](watch::Receiver::changed) for the next.
    pub fn outcomes(&self) -> watch::Receiver<WatchOutcome> {
        self.outcomes.clone()
    }
}

impl Resilience {
    /// Reloads from `loader` ([`reload_from`](Self::reload_from)) whenever one of its files
    /// changes, debounced by 250 ms (see [`watch_debounced`](Self::watch_debounced)).
    ///
    /// # Errors
    ///
    /// No tokio runtime, or the directory cannot be watched.
    pub fn watch(&self, loader: Loader) -> Result<ConfigWatcher, notify::Error> {
        self.watch_debounced(loader, Duration::from_millis(250))
    }

    /// Reloads from `loader` whenever one of its files changes: any file of its directory
    /// named `<stem>.<ext>` or `<stem>.<environment>.<ext>` (the directory is watched, so
    /// editors that save by writing a new file and renaming it are seen). Changes are
    /// debounced: the reload runs once the files have been quiet for `debounce`, so one save
    /// that is several events reloads once.
    ///
    /// A configuration that does not load or is refused is logged (a `tracing` warning, with
    /// every problem) and counted `refused`; the configuration serving is kept, and the next
    /// change is tried again. A file that loads into the configuration already serving (a
    /// save without changes) reloads nothing. Each outcome is published on
    /// [`ConfigWatcher::outcomes`].
    ///
    /// Runs on the tokio runtime it is called from (loading on its blocking pool); dropping
    /// the [`ConfigWatcher`] stops it.
    ///
    /// # Errors
    ///
    /// No tokio runtime, or the directory cannot be watched.
    pub fn watch_debounced(
        &self,
        loader: Loader,
        debounce: Duration,
    ) -> Result<ConfigWatcher, notify::Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            notify::Error::generic("Resilience::watch needs a tokio runtime to run on")
        })?;
        // Capacity 1: events arriving while one is pending are the same news.
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let filter = loader.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) => {
                    let relevant = !matches!(event.kind, EventKind::Access(_))
                        && event.paths.iter().any(|p| filter.may_read(p));
                    if relevant {
                        let _ = tx.try_send(());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "configuration watcher error"),
            })?;
        watcher.watch(loader.files_dir(), RecursiveMode::NonRecursive)?;
        let (out, outcomes) = watch::channel(None);
        let resilience = self.clone();
        let task = runtime.spawn(async move {
            while rx.recv().await.is_some() {
                // Quiet for `debounce` first.
                loop {
                    match tokio::time::timeout(debounce, rx.recv()).await {
                        Ok(Some(())) => {}
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let (r, l) = (resilience.clone(), loader.clone());
                let outcome = tokio::task::spawn_blocking(move || match l.load() {
                    Ok(config) if config == *r.configuration() => None,
                    Ok(config) => Some(r.reload(config)),
                    Err(e) => Some(Err(r.refuse_load(e))),
                })
                .await;
                match outcome {
                    Ok(Some(outcome)) => {
                        out.send_replace(Some(outcome));
                    }
                    Ok(None) => tracing::debug!("configuration files changed, settings did not"),
                    Err(e) => tracing::error!(error = %e, "configuration reload task failed"),
                }
            }
        });
        Ok(ConfigWatcher {
            _watcher: watcher,
            task,
            outcomes,
        })
    }
}
