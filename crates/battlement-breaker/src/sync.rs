//! Atomics and locks, swapped for loom's under `--cfg loom` so the state machine can be model
//! checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

/// The stripe a thread records into: threads are numbered round-robin on first use, so on a
/// multi-thread runtime each worker writes its own cache lines.
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_stripe() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    STRIPE.with(|s| *s)
}

#[cfg(loom)]
pub(crate) fn thread_stripe() -> usize {
    0
}
