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

/// The stripe a thread records into, fixed at the thread's first use: the stripe with the fewest
/// live threads (a thread's exit gives its place back), so the workers of a runtime land on
/// different stripes instead of colliding by the luck of a round-robin count.
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_stripe() -> usize {
    STRIPE.with(|s| s.0)
}

#[cfg(not(loom))]
const TRACKED: usize = 64;

#[cfg(not(loom))]
static LIVE: [std::sync::atomic::AtomicUsize; TRACKED] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; TRACKED];

#[cfg(not(loom))]
struct StripeSlot(usize);

#[cfg(not(loom))]
impl StripeSlot {
    fn take() -> StripeSlot {
        use std::sync::atomic::Ordering::Relaxed;
        let stripes = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, TRACKED)
            .next_power_of_two()
            .min(TRACKED);
        let best = (0..stripes)
            .min_by_key(|&i| LIVE[i].load(Relaxed))
            .unwrap_or(0);
        LIVE[best].fetch_add(1, Relaxed);
        StripeSlot(best)
    }
}

#[cfg(not(loom))]
impl Drop for StripeSlot {
    fn drop(&mut self) {
        LIVE[self.0].fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(not(loom))]
thread_local! {
    static STRIPE: StripeSlot = StripeSlot::take();
}

#[cfg(loom)]
pub(crate) fn thread_stripe() -> usize {
    0
}
