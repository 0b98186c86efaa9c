//! The shard's lanes against a model: what fires, when, and what is left.

use super::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::Wake;

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Arms a timer with the limit of this index (more limits than lanes).
    Arm(usize),
    /// Ends the call of this index among those still holding an entry.
    End(usize),
    /// Moves the clock on, in milliseconds.
    Advance(u64),
    /// Runs the driver's expiry.
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..LANES + 6).prop_map(Op::Arm),
        2 => any::<usize>().prop_map(Op::End),
        2 => (0u64..40).prop_map(Op::Advance),
        2 => Just(Op::Expire),
    ]
}

/// A call holding an entry, as the model sees it.
struct Call {
    key: u32,
    deadline: Instant,
    flag: Arc<Flag>,
    fired: bool,
}

fn limit_ms(i: usize) -> u64 {
    // Whole milliseconds, so that each limit has a lane of its own.
    1 + 3 * i as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lanes_fire_exactly_the_entries_due(ops in prop::collection::vec(op(), 1..300)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut inner = Inner::new(false);
        let mut calls: Vec<Call> = Vec::new();
        for op in ops {
            match op {
                Op::Arm(i) => {
                    let ms = limit_ms(i);
                    let flag = Arc::new(Flag(AtomicBool::new(false)));
                    let waker = Waker::from(flag.clone());
                    let deadline = now + Duration::from_millis(ms);
                    match inner.insert(deadline, ms, &waker) {
                        Some(key) => {
                            prop_assert!(calls.iter().all(|c| c.key != key), "a live key reused");
                            calls.push(Call { key, deadline, flag, fired: false });
                        }
                        None => {
                            // Refused only when every lane is busy with another limit.
                            prop_assert_eq!(inner.lanes.len(), LANES);
                            prop_assert!(inner.lanes.iter().all(|l| l.head != NIL && l.millis != ms));
                        }
                    }
                }
                Op::End(i) => {
                    if !calls.is_empty() {
                        let call = calls.swap_remove(i % calls.len());
                        let waker = inner.remove(call.key);
                        prop_assert_eq!(waker.is_some(), !call.fired, "a fired entry gives no waker back");
                    }
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Expire => {
                    loop {
                        let mut out: [Option<Waker>; BATCH] = Default::default();
                        let n = inner.expire(now, &mut out);
                        for w in out.iter_mut().take(n) {
                            w.take().expect("a fired entry's waker").wake();
                        }
                        if n < BATCH {
                            break;
                        }
                    }
                    for call in &mut calls {
                        let woken = call.flag.0.load(SeqCst);
                        prop_assert_eq!(woken, call.fired || call.deadline <= now,
                            "fired exactly when due");
                        prop_assert_eq!(inner.slots[call.key as usize].linked, !woken);
                        call.fired = woken;
                    }
                }
            }
            let pending: Vec<&Call> = calls.iter().filter(|c| !c.fired).collect();
            prop_assert_eq!(inner.linked, pending.len());
            prop_assert_eq!(inner.earliest(), pending.iter().map(|c| c.deadline).min());
        }
        // Every slot is either held by a call or on the free list.
        for call in calls.drain(..) {
            inner.remove(call.key);
        }
        let mut free = 0;
        let mut at = inner.free;
        while at != NIL {
            free += 1;
            at = inner.slots[at as usize].next;
        }
        prop_assert_eq!(free, inner.slots.len());
        prop_assert!(inner.lanes.iter().all(|l| l.head == NIL && l.tail == NIL));
    }
}
