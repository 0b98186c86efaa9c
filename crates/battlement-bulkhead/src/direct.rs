//! Direct calls: the bulkhead around any async call, outside Tower.

use crate::bulkhead::Admission;
use crate::{Bulkhead, Priority};
use battlement_core::error::{BoxError, BulkheadFull, BulkheadTimeout};
use battlement_core::CallError;
use std::error::Error;
use std::fmt;
use std::future::Future;

/// Why a bulkhead refused a direct call ([`Bulkhead::call`]): its queue was full (or the call
/// was shed), or no permit came within `max_wait`. The same two errors its layer returns, here
/// in one type to match on.
///
/// ```
/// use battlement_bulkhead::{BulkheadFull, BulkheadRejection};
///
/// let full = BulkheadRejection::Full(BulkheadFull::new("pool".into()));
/// assert_eq!(full.name(), "pool");
/// assert_eq!(full.to_string(), BulkheadFull::new("pool".into()).to_string());
/// ```
#[derive(Debug, Clone)]
pub enum BulkheadRejection {
    /// No permit was free and the queue was full (or the call was shed).
    Full(BulkheadFull),
    /// The call waited in the queue for `max_wait` without a permit.
    Timeout(BulkheadTimeout),
}

impl BulkheadRejection {
    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        match self {
            BulkheadRejection::Full(e) => e.name(),
            BulkheadRejection::Timeout(e) => e.name(),
        }
    }

    /// From the boxed rejection the admission made (always one of the two).
    #[cold]
    fn from_boxed(error: BoxError, name: &str) -> Self {
        match error.downcast::<BulkheadTimeout>() {
            Ok(timeout) => BulkheadRejection::Timeout(*timeout),
            Err(error) => match error.downcast::<BulkheadFull>() {
                Ok(full) => BulkheadRejection::Full(*full),
                Err(_) => BulkheadRejection::Full(BulkheadFull::new(name.into())),
            },
        }
    }
}

impl fmt::Display for BulkheadRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkheadRejection::Full(e) => e.fmt(f),
            BulkheadRejection::Timeout(e) => e.fmt(f),
        }
    }
}

impl Error for BulkheadRejection {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BulkheadRejection::Full(e) => Some(e),
            BulkheadRejection::Timeout(e) => Some(e),
        }
    }
}

battlement_core::impl_as_dyn_error!(BulkheadRejection);

impl Bulkhead {
    /// Runs `f`'s future under the bulkhead, outside Tower: a database query, a call through a
    /// client that is not a Tower service.
    ///
    /// The call takes a permit exactly as a call through the bulkhead's layer does, from the
    /// same pool (direct and layered calls share the limit), waiting in the same queue up to
    /// `max_wait` when none is free; it holds the permit until its future finishes or is
    /// dropped. `f` is called only once the permit is held. A refused call returns
    /// [`CallError::Rejected`] with a [`BulkheadRejection`]; the call's own error comes back in
    /// [`CallError::Inner`]. Calls are of [`Priority::Normal`]. A call that finds a free permit
    /// takes no lock and allocates nothing (a queued call allocates its wait, as through the
    /// layer).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use battlement_bulkhead::Bulkhead;
    /// use battlement_core::{BoxError, CallError};
    ///
    /// # async fn upload(_name: &str) -> Result<u64, std::io::Error> { Ok(1024) }
    /// let uploads = Bulkhead::builder("uploads").max_concurrent(4).max_queued(0).build().unwrap();
    /// let sent = uploads.call(|| async { Ok::<_, BoxError>(upload("report.pdf").await?) }).await;
    /// match sent {
    ///     Ok(bytes) => assert_eq!(bytes, 1024),
    ///     Err(CallError::Rejected(full)) => eprintln!("busy: {full}"),
    ///     Err(CallError::Inner(e)) => eprintln!("upload failed: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, CallError<BulkheadRejection, E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _permit = match self.admit(|| Priority::Normal) {
            Admission::Now(permit) => permit,
            Admission::Wait(wait) => match wait.await {
                Ok(permit) => permit,
                Err(error) => {
                    return Err(CallError::Rejected(BulkheadRejection::from_boxed(
                        error,
                        self.name(),
                    )))
                }
            },
            Admission::Rejected(error) => {
                return Err(CallError::Rejected(BulkheadRejection::from_boxed(
                    error,
                    self.name(),
                )))
            }
        };
        f().await.map_err(CallError::Inner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Bulkhead, BulkheadRejection};
    use battlement_core::{BoxError, CallError};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Notify;
    use tower::{service_fn, Layer, ServiceExt};

    /// Direct calls and layered calls draw on one pool of permits and one queue: with one
    /// permit held by a layered call, a direct call queues, then times out after `max_wait`;
    /// with the queue taken, another is refused at once; a freed permit admits the next.
    #[tokio::test(start_paused = true)]
    async fn direct_calls_share_the_layers_limit_and_queue() {
        let bulkhead = Bulkhead::builder("pool")
            .max_concurrent(1)
            .max_queued(1)
            .max_wait(Duration::from_millis(100))
            .build()
            .unwrap();
        let go = Arc::new(Notify::new());
        let layered = crate::BulkheadLayer::new(&bulkhead).layer(service_fn({
            let go = go.clone();
            move |_: ()| {
                let go = go.clone();
                async move {
                    go.notified().await;
                    Ok::<_, BoxError>("layered")
                }
            }
        }));
        let running = tokio::spawn(layered.clone().oneshot(()));
        tokio::task::yield_now().await;
        assert_eq!(bulkhead.in_flight(), 1);

        let b = bulkhead.clone();
        let queued =
            tokio::spawn(async move { b.call(|| async { Ok::<_, BoxError>("direct") }).await });
        tokio::task::yield_now().await;
        assert_eq!(bulkhead.queued(), 1);

        // The queue is full: refused at once, without running the closure.
        let mut ran = false;
        let err = bulkhead
            .call(|| {
                ran = true;
                async { Ok::<_, BoxError>("refused") }
            })
            .await
            .unwrap_err();
        assert!(!ran);
        assert!(matches!(
            err,
            CallError::Rejected(BulkheadRejection::Full(_))
        ));

        // The queued direct call gives up after max_wait.
        let err = queued.await.unwrap().unwrap_err();
        let CallError::Rejected(BulkheadRejection::Timeout(timeout)) = err else {
            panic!("expected a timeout, got {err:?}")
        };
        assert_eq!(timeout.waited(), Duration::from_millis(100));

        // A queued direct call is admitted when the layered call frees the permit.
        let b = bulkhead.clone();
        let queued =
            tokio::spawn(async move { b.call(|| async { Ok::<_, BoxError>("direct") }).await });
        tokio::task::yield_now().await;
        go.notify_one();
        assert_eq!(running.await.unwrap().unwrap(), "layered");
        assert_eq!(queued.await.unwrap().unwrap(), "direct");
        let m = bulkhead.metrics();
        assert_eq!(
            (m.accepted, m.rejected_full, m.rejected_timeout, m.in_flight),
            (2, 1, 1, 0)
        );
    }

    /// A direct call holds its permit while it runs and gives it back when dropped.
    #[tokio::test(start_paused = true)]
    async fn a_direct_call_holds_its_permit_until_it_ends() {
        let bulkhead = Bulkhead::builder("pool")
            .max_concurrent(1)
            .max_queued(0)
            .build()
            .unwrap();
        let b = bulkhead.clone();
        let running =
            tokio::spawn(async move { b.call(std::future::pending::<Result<(), BoxError>>).await });
        tokio::task::yield_now().await;
        assert_eq!(bulkhead.in_flight(), 1);
        assert!(bulkhead
            .call(|| async { Ok::<_, BoxError>(()) })
            .await
            .unwrap_err()
            .is_rejected());
        running.abort();
        let _ = running.await;
        assert_eq!(bulkhead.in_flight(), 0);
        bulkhead
            .call(|| async { Ok::<_, BoxError>(()) })
            .await
            .unwrap();
    }
}
