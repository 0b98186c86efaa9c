//! tokio's semaphore, wrapped so that the loom models of the permit accounting (release, shrink
//! debt, resize) see its operations.

#[cfg(loom)]
use battlement_core::sync::{AtomicUsize, Ordering};

/// tokio's `Semaphore`, through the operations the bulkhead uses.
///
/// tokio is not instrumented by loom when built as a dependency, so loom could neither interleave
/// its operations with the bulkhead's atomics nor see that two of them conflict. Under loom each
/// operation first touches a shadow atomic: a scheduling point, and a conflict with every other
/// semaphore operation, which makes each one an indivisible step of the model. Without loom the
/// wrapper is free.
pub(crate) struct Semaphore {
    inner: tokio::sync::Semaphore,
    #[cfg(loom)]
    shadow: AtomicUsize,
}

impl Semaphore {
    pub(crate) fn new(permits: usize) -> Self {
        Semaphore {
            inner: tokio::sync::Semaphore::new(permits),
            #[cfg(loom)]
            shadow: AtomicUsize::new(0),
        }
    }

    #[inline(always)]
    #[cfg_attr(
        not(loom),
        allow(clippy::unused_self, reason = "a step of the model under loom only")
    )]
    fn step(&self) {
        #[cfg(loom)]
        self.shadow.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits for a permit in FIFO order; `false` if the semaphore is closed (never, here).
    /// Not modelled under loom.
    pub(crate) async fn acquire(&self) -> bool {
        self.inner
            .acquire()
            .await
            .map(tokio::sync::SemaphorePermit::forget)
            .is_ok()
    }

    /// Takes a permit if one is available. Only the loom models use it: they stand in for the
    /// queued call's async wait, which loom cannot run.
    #[cfg(all(loom, test))]
    pub(crate) fn try_acquire(&self) -> bool {
        self.step();
        match self.inner.try_acquire() {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    #[inline]
    pub(crate) fn add_permits(&self, n: usize) {
        self.step();
        self.inner.add_permits(n);
    }

    pub(crate) fn forget_permits(&self, n: usize) -> usize {
        self.step();
        self.inner.forget_permits(n)
    }

    pub(crate) fn available_permits(&self) -> usize {
        self.step();
        self.inner.available_permits()
    }
}
