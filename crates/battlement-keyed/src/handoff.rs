//! The hand-off between a call and eviction: the protocol that keeps a key's component while a
//! call holds it, so no permit, trial or outcome is lost to an eviction.
//!
//! 1. A call reaches a key's component only through the table, under the key's shard's
//!    *shared* lock (`DashMap::get`), and takes its reference to it (its ticket: a breaker's
//!    `CallGuard`, which holds one of the breaker's shards; a bulkhead's permit or place in its
//!    queue, which holds the bulkhead) before the lock is released.
//! 2. Eviction (the idle sweep, the full table's least-recently-used batch) decides and
//!    removes under the shard's *exclusive* lock (`DashMap::retain`, `DashMap::remove_if`),
//!    and removes only what [`evictable`] allows: a component nothing but the table holds
//!    ([`Component::held`]: reference counts) and that no operator pinned.
//!
//! So a ticket taken before the eviction locks the shard is seen by `held()` and keeps the key;
//! a call that comes after the removal finds no key and builds a fresh component. The table
//! needs no atomics of its own for this.
//!
//! # Model checking
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p battlement-keyed --release --lib loom` checks the
//! protocol with loom. `DashMap`'s shard lock is its own spin lock over std atomics, which loom
//! cannot instrument (a spinning thread would never yield to the one it waits for), so the
//! model puts loom's `RwLock` in its place, around one key's slot, and keeps everything else
//! real: the real breaker and bulkhead, their real `admit` (tickets) and `held`, and the real
//! [`evictable`] the table's eviction calls. The components' reference counts are std's (not
//! instrumented): each count operation is atomic between the model's switch points (the lock,
//! the components' own loom atomics).

use crate::Component;

/// Whether the table may drop `component` now; asked only under the shard's exclusive lock,
/// where no call can take a new reference to it. `false` while anything but the table holds it
/// (a call's ticket, a clone) or an operator pinned it (a breaker forced open or disabled).
#[inline]
pub(crate) fn evictable<C: Component>(component: &C) -> bool {
    !component.pinned() && !component.held()
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::evictable;
    use crate::Component;
    use battlement_breaker::{CircuitBreaker, State};
    use battlement_bulkhead::Bulkhead;
    use battlement_core::{FailureKind, Finish, Outcome};
    use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use loom::sync::{Arc, RwLock};
    use loom::thread;
    use std::time::Duration;

    /// One key of a shard, with loom's lock in the place of `DashMap`'s, and the model's own
    /// record of whether a call holds a ticket (`in_call`: set under the shared lock as the
    /// ticket is taken, cleared just before the ticket is given back), the ground truth the
    /// eviction is checked against.
    struct Shard<C> {
        slot: RwLock<Option<C>>,
        in_call: AtomicBool,
    }

    impl<C: Component> Shard<C> {
        fn new(component: C) -> Arc<Self> {
            Arc::new(Shard {
                slot: RwLock::new(Some(component)),
                in_call: AtomicBool::new(false),
            })
        }

        /// The call path (`Keyed::admit`): the ticket is taken under the shared lock.
        fn admit(&self) -> Option<C::Ticket> {
            let slot = self.slot.read().unwrap();
            let ticket = slot.as_ref().map(Component::admit);
            if ticket.is_some() {
                self.in_call.store(true, SeqCst);
            }
            ticket
        }

        /// The call is about to give its ticket back (finish or drop it).
        fn leave(&self) {
            self.in_call.store(false, SeqCst);
        }

        /// Eviction (`Keyed::sweep`, `Keyed::evict_least_recent`): decided and done under the
        /// exclusive lock, with the table's own [`evictable`]. Returns what it removed.
        fn evict(&self) -> Option<C> {
            let mut slot = self.slot.write().unwrap();
            if slot.as_ref().is_some_and(evictable) {
                assert!(
                    !self.in_call.load(SeqCst),
                    "evicted a component a call holds a ticket of"
                );
                slot.take()
            } else {
                None
            }
        }
    }

    #[test]
    fn loom_eviction_never_drops_a_breaker_a_call_holds() {
        loom::model(|| {
            let shard = Shard::new(CircuitBreaker::builder("k/a").build().unwrap());
            let call = {
                let shard = shard.clone();
                thread::spawn(move || match shard.admit() {
                    Some(ticket) => {
                        let guard = ticket.expect("a closed breaker admits");
                        shard.leave();
                        guard.finish(Outcome::Failure(FailureKind::ServerError));
                        true
                    }
                    None => false,
                })
            };
            let evicted = shard.evict();
            let admitted = call.join().unwrap();
            match evicted {
                // Evicted before the call came (it found no key, and builds a fresh
                // component), or after it finished (its outcome is in the evicted one).
                Some(b) => {
                    let m = b.metrics();
                    assert_eq!(m.calls_permitted, u64::from(admitted));
                    assert_eq!(m.failures, u64::from(admitted));
                }
                // Kept because the call held it: the outcome is in the table's breaker.
                None => {
                    assert!(admitted);
                    let slot = shard.slot.read().unwrap();
                    let m = slot.as_ref().unwrap().metrics();
                    assert_eq!((m.calls_permitted, m.failures), (1, 1));
                }
            }
        });
    }

    #[test]
    fn loom_eviction_never_drops_a_half_open_breaker_during_its_trial() {
        loom::model(|| {
            let b = CircuitBreaker::builder("k/a")
                .consecutive_failures(1)
                .fixed_open_wait(Duration::from_nanos(1))
                .half_open_calls(1, 1)
                .build()
                .unwrap();
            b.try_call()
                .unwrap()
                .finish(Outcome::Failure(FailureKind::ServerError));
            while b.state() != State::HalfOpen {
                std::hint::spin_loop();
            }
            let shard = Shard::new(b);
            let trial = {
                let shard = shard.clone();
                thread::spawn(move || match shard.admit() {
                    Some(Ok(guard)) => {
                        shard.leave();
                        guard.finish(Outcome::Success);
                        true
                    }
                    Some(Err(_)) => panic!("the one trial permit was free"),
                    None => false,
                })
            };
            let evicted = shard.evict();
            let tried = trial.join().unwrap();
            match evicted {
                Some(b) => {
                    // Evicted before the trial or after it closed the breaker.
                    let state = b.state();
                    assert_eq!(
                        state,
                        if tried {
                            State::Closed
                        } else {
                            State::HalfOpen
                        }
                    );
                }
                None => {
                    // Kept during its trial: the trial's success closed the table's breaker.
                    assert!(tried);
                    let slot = shard.slot.read().unwrap();
                    assert_eq!(slot.as_ref().unwrap().state(), State::Closed);
                }
            }
        });
    }

    #[test]
    fn loom_eviction_never_drops_a_bulkhead_a_call_holds_a_permit_of() {
        loom::model(|| {
            let shard = Shard::new(Bulkhead::builder("k/a").max_concurrent(1).build().unwrap());
            let call = {
                let shard = shard.clone();
                thread::spawn(move || {
                    let ticket = shard.admit();
                    let admitted = ticket.is_some();
                    if admitted {
                        shard.leave();
                    }
                    drop(ticket); // the call ends: its permit goes back
                    admitted
                })
            };
            let evicted = shard.evict();
            call.join().unwrap();
            let b = match &evicted {
                Some(b) => b.clone(),
                None => shard.slot.read().unwrap().clone().unwrap(),
            };
            assert_eq!((b.in_flight(), b.free_permits()), (0, 1), "no permit lost");
        });
    }
}
