//! The atomics and the lock that model-checked state uses: std's, or loom's when the workspace
//! is built with `RUSTFLAGS="--cfg loom"`.
//!
//! A crate whose state machine is checked with [`loom`](https://docs.rs/loom) imports its atomics
//! from here instead of `std::sync`, so the switch is written once, for every crate. The striped
//! cells of [`stripe`](crate::stripe) use them too, so a loom model sees their writes.
//!
//! ```
//! use battlement_core::sync::{AtomicU64, Ordering::Relaxed};
//!
//! let word = AtomicU64::new(1);
//! word.fetch_add(1, Relaxed);
//! assert_eq!(word.load(Relaxed), 2);
//! ```

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::Mutex;

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub use std::sync::Mutex;
