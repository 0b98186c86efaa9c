//! Dev-only helpers shared by the workspace's tests (`publish = false`, a dev-dependency only).
//!
//! The allocation checks (`tests/alloc.rs` at the root and in the chaos, health and kill switch
//! crates) prove that a layer makes no heap allocation per call. Each drives its service by hand
//! with [`calls`] (`poll_ready`, `call`, one `poll` of the response future, with a no-op waker),
//! so nothing but the layer and a trivial inner service runs: no executor, whose own bookkeeping
//! could allocate. [`allocations`] counts with `allocation_counter::measure`, which counts only
//! this thread's allocations, so tests running in parallel do not disturb each other.
//!
//! Using this crate links `allocation-counter`'s global allocator into the test binary, so use it
//! only from the integration test that counts.
//!
//! ```
//! use battlement_test_util::{allocations, bare, calls, CALLS};
//!
//! let mut svc = bare();
//! calls(&mut svc, 10, |_| ()); // warm up
//! let n = allocations(|| assert_eq!(calls(&mut svc, CALLS, |_| ()), (CALLS, 0)));
//! assert_eq!(n, 0);
//! ```

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::task::{Context, Poll};
use tower::{service_fn, Service};

/// How many calls an allocation check counts.
pub const CALLS: u64 = 1000;

/// A service that answers `()` at once, for a layer to wrap.
pub fn bare(
) -> impl Service<(), Response = (), Error = Infallible, Future = Ready<Result<(), Infallible>>> + Clone
{
    service_fn(|_: ()| ready(Ok::<_, Infallible>(())))
}

/// Drives `n` calls through `svc` by hand, the `i`-th with `request(i)`, and returns how many
/// succeeded and how many failed.
///
/// Each call must be ready at once and complete on its first poll; otherwise this panics.
pub fn calls<S, R>(svc: &mut S, n: u64, mut request: impl FnMut(u64) -> R) -> (u64, u64)
where
    S: Service<R>,
{
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut ok, mut err) = (0, 0);
    for i in 0..n {
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => panic!("poll_ready failed"),
            Poll::Pending => panic!("service not ready"),
        }
        let future = pin!(svc.call(request(i)));
        match future.poll(&mut cx) {
            Poll::Ready(Ok(_)) => ok += 1,
            Poll::Ready(Err(_)) => err += 1,
            Poll::Pending => panic!("call did not complete at once"),
        }
    }
    (ok, err)
}

/// How many heap allocations `f` makes on this thread.
pub fn allocations(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}
