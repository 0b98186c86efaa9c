//! The wait queue: a call that finds no free permit waits here, in FIFO order within its
//! priority class, for at most `max_wait`.

use crate::permit::{Permit, Shard, Shared};
use battlement_core::error::{BoxError, BulkheadFull, BulkheadTimeout};
use battlement_core::handle::Handle;
use battlement_core::stripe::CachePadded;
use battlement_core::sync::Ordering::Relaxed;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Wake, Waker};
use std::time::Duration;
use tokio::time::Instant;

/// Waiting in the queue: boxed, since tokio's acquire future cannot be named. Only calls that
/// find no free permit pay for the allocation.
pub(crate) type WaitFuture = Pin<Box<dyn Future<Output = Result<Permit, BoxError>> + Send + Sync>>;

pub(crate) fn wait_for_permit(
    slot: QueueSlot,
    entered: Instant,
    max_wait: Option<Duration>,
) -> WaitFuture {
    Box::pin(async move {
        let acquired = {
            let semaphore = &slot.shared().queues[slot.1];
            match max_wait {
                None => Some(semaphore.acquire().await),
                Some(limit) => tokio::time::timeout_at(entered + limit, semaphore.acquire())
                    .await
                    .ok(),
            }
        };
        let waited = entered.elapsed();
        let shard = slot.leave();
        let shared = &shard.shared;
        match acquired {
            Some(true) => {
                shared.record_wait(waited);
                shared.accepted.increment();
                Ok(Permit { shard })
            }
            Some(false) => {
                // Never closed; had it been, no permit would ever come.
                shared.rejected_full.fetch_add(1, Relaxed);
                shared.note_rejection();
                Err(Box::new(BulkheadFull::new(shared.name.clone())) as BoxError)
            }
            None => {
                shared.record_wait(waited);
                shared.rejected_timeout.fetch_add(1, Relaxed);
                shared.note_rejection();
                tracing::debug!(
                    bulkhead = %shared.name,
                    ?waited,
                    "call rejected: no bulkhead permit within the wait limit"
                );
                Err(Box::new(BulkheadTimeout::new(shared.name.clone(), waited)) as BoxError)
            }
        }
    })
}

/// A place in the queue: counted among the waiters until it is left or dropped (a cancelled
/// wait).
/// The first field is the shard of the thread the call queued on (its permit returns to that
/// stripe); the second is the call's priority class.
pub(crate) struct QueueSlot(
    pub(crate) Option<Handle<CachePadded<Shard>>>,
    pub(crate) usize,
);

impl QueueSlot {
    fn shared(&self) -> &Shared {
        &self.0.as_ref().expect("queue slot already left").shared
    }

    /// Leaves the queue, with the permit it was waiting for or without (a timeout).
    fn leave(mut self) -> Handle<CachePadded<Shard>> {
        let shard = self.0.take().expect("queue slot already left");
        shard.shared.leave_queue(self.1);
        shard
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        if let Some(shard) = self.0.take() {
            shard.shared.leave_queue(self.1);
        }
    }
}

/// A waker that does nothing, for the first poll of a wait (the caller's first poll replaces
/// it).
pub(crate) fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}
