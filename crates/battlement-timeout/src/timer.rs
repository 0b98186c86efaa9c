//! The timer behind armed timeouts: one shard of timers per thread and runtime, instead of a
//! `tokio::time::Sleep` per call.
//!
//! Why: tokio's timer is one wheel behind one mutex for the whole runtime. A `Sleep` takes that
//! mutex when it is first polled (to register) and again when it is dropped before it fires (to
//! cancel), which is what every call that waits on I/O and then answers in time does. On a
//! multi-threaded server those two locks are shared by every worker: calls whose timer is armed
//! scaled 0.83× from one core to two (`benches/contention.rs`), against 2.2× for the same calls
//! without a timeout. Each `Sleep` also clones and drops the runtime's handle and costs about
//! 590 instructions.
//!
//! Here a call that arms its timer appends an entry to its thread's shard, and one that
//! finishes in time removes it. A shard's lock is taken by its own thread, so it is not shared
//! between cores; the shard's driver (a task on the same runtime, holding one tokio `Sleep` for
//! the shard's earliest deadline) and a call whose future was moved to another worker take it
//! too, rarely. A shard keeps one first-in-first-out lane per limit (to the millisecond): a
//! thread's clock never goes back, so a lane's entries are in deadline order and its head is
//! its earliest. The driver sleeps until the earliest head, fires what is due, and goes back to
//! sleep; it is woken early only when an entry is due before it would wake. Calls with the same
//! limit therefore need no sorting, and when most calls finish in time the driver wakes about
//! once per limit, not once per call.
//!
//! A limit that has no lane (more than [`LANES`] limits waiting on one thread at once, as
//! per-request `grpc-timeout`s can make) or a deadline too far to represent is refused, and the
//! caller falls back to tokio's `Sleep`.
//!
//! Deadlines and the driver's sleep use `tokio::time`, so a paused clock drives them as it does
//! tokio's own timers. A timer fires when the driver runs after its deadline: within the same
//! millisecond tick as tokio's, plus one task wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep};

/// Distinct limits (to the millisecond) one shard times at once; a call with another limit
/// falls back to tokio's `Sleep`.
pub(crate) const LANES: usize = 16;

/// Wakers the driver collects under the lock before it lets go of it to wake them.
const BATCH: usize = 32;

const NIL: u32 = u32::MAX;

/// One armed call.
struct Slot {
    deadline: Instant,
    /// The task to wake when the deadline passes; `None` once fired (or for a free slot).
    waker: Option<Waker>,
    prev: u32,
    /// The next entry in the lane, or the next free slot.
    next: u32,
    lane: u8,
    /// In its lane: armed and not yet fired.
    linked: bool,
}

/// The entries of one limit, earliest first.
#[derive(Clone, Copy)]
struct Lane {
    /// The limit in whole milliseconds.
    millis: u64,
    head: u32,
    tail: u32,
}

struct Inner {
    slots: Vec<Slot>,
    free: u32,
    lanes: Vec<Lane>,
    /// Entries in lanes.
    linked: usize,
    /// A driver task is alive (spawned, not yet dropped).
    running: bool,
    /// The driver's waker while it waits; taken by whoever wakes it.
    driver: Option<Waker>,
    /// When the driver will wake on its own; `None` while it waits for entries.
    wake_at: Option<Instant>,
    /// The shard's thread has ended (or its runtime was replaced on it): no new entries come,
    /// and the driver ends once the last one has fired or left.
    orphaned: bool,
}

/// One thread's timers for one runtime.
pub(crate) struct Shard {
    inner: Mutex<Inner>,
    /// The runtime the shard's driver runs on, and whose clock its deadlines are read from.
    runtime: Id,
}

impl Shard {
    fn new(runtime: Id, orphaned: bool) -> Self {
        Shard {
            inner: Mutex::new(Inner::new(orphaned)),
            runtime,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock but a waker's clone; what it guards stays
        // consistent either way.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the shard orphaned and returns the driver to wake if nothing is left for it.
    fn orphan(&self) -> Option<Waker> {
        let mut inner = self.lock();
        inner.orphaned = true;
        if inner.linked == 0 {
            inner.driver.take()
        } else {
            None
        }
    }
}

impl Inner {
    fn new(orphaned: bool) -> Self {
        Inner {
            slots: Vec::new(),
            free: NIL,
            lanes: Vec::new(),
            linked: 0,
            running: false,
            driver: None,
            wake_at: None,
            orphaned,
        }
    }

    /// The lane for a limit of `millis`: its own, a new one, or an empty one given to it.
    fn lane(&mut self, millis: u64) -> Option<usize> {
        if let Some(i) = self.lanes.iter().position(|l| l.millis == millis) {
            return Some(i);
        }
        let empty = Lane {
            millis,
            head: NIL,
            tail: NIL,
        };
        if self.lanes.len() < LANES {
            self.lanes.push(empty);
            return Some(self.lanes.len() - 1);
        }
        let i = self.lanes.iter().position(|l| l.head == NIL)?;
        self.lanes[i] = empty;
        Some(i)
    }

    /// Appends an entry; `None` when no lane is free for its limit.
    fn insert(&mut self, deadline: Instant, millis: u64, waker: &Waker) -> Option<u32> {
        let lane = self.lane(millis)?;
        let tail = self.lanes[lane].tail;
        let slot = Slot {
            deadline,
            waker: Some(waker.clone()),
            prev: tail,
            next: NIL,
            lane: lane as u8,
            linked: true,
        };
        let key = if self.free != NIL {
            let key = self.free;
            self.free = self.slots[key as usize].next;
            self.slots[key as usize] = slot;
            key
        } else {
            let key = u32::try_from(self.slots.len()).ok().filter(|&k| k != NIL)?;
            self.slots.push(slot);
            key
        };
        if tail == NIL {
            self.lanes[lane].head = key;
        } else {
            self.slots[tail as usize].next = key;
        }
        self.lanes[lane].tail = key;
        self.linked += 1;
        Some(key)
    }

    /// Takes an entry out of its lane (it stays allocated to its call).
    fn unlink(&mut self, key: u32) {
        let (prev, next, lane) = {
            let s = &mut self.slots[key as usize];
            s.linked = false;
            (s.prev, s.next, s.lane as usize)
        };
        if prev == NIL {
            self.lanes[lane].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.lanes[lane].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        self.linked -= 1;
    }

    /// Frees an entry whose call has ended, returning its waker (to drop outside the lock).
    fn remove(&mut self, key: u32) -> Option<Waker> {
        if self.slots[key as usize].linked {
            self.unlink(key);
        }
        let slot = &mut self.slots[key as usize];
        slot.next = self.free;
        self.free = key;
        slot.waker.take()
    }

    /// Fires the entries due at `now` (up to `out`'s room), putting their wakers in `out`.
    /// Returns how many it put there.
    fn expire(&mut self, now: Instant, out: &mut [Option<Waker>; BATCH]) -> usize {
        let mut n = 0;
        for lane in 0..self.lanes.len() {
            loop {
                let head = self.lanes[lane].head;
                if n == BATCH || head == NIL || self.slots[head as usize].deadline > now {
                    break;
                }
                self.unlink(head);
                out[n] = self.slots[head as usize].waker.take();
                n += 1;
            }
        }
        n
    }

    /// The earliest deadline of the entries in lanes.
    fn earliest(&self) -> Option<Instant> {
        self.lanes
            .iter()
            .filter(|l| l.head != NIL)
            .map(|l| self.slots[l.head as usize].deadline)
            .min()
    }
}

/// The shard of the thread it lives in; orphans it when the thread ends.
struct Home {
    shard: Arc<Shard>,
    /// The last task seen to arm a timer here under the shard's runtime. A task belongs to
    /// one runtime for good and tokio's task ids are unique across runtimes, so the same task
    /// again needs no look-up of the runtime (which clones and drops the runtime's handle, a
    /// reference count every worker writes).
    task: Option<tokio::task::Id>,
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(driver) = self.shard.orphan() {
            driver.wake();
        }
    }
}

thread_local! {
    static HOME: std::cell::RefCell<Option<Home>> = const { std::cell::RefCell::new(None) };
}

/// This thread's shard for the current runtime (a new one if the thread has none for it yet).
///
/// # Panics
///
/// Outside a tokio runtime.
fn shard() -> Arc<Shard> {
    let task = tokio::task::try_id();
    HOME.try_with(|home| {
        let mut home = home.borrow_mut();
        if let Some(h) = &mut *home {
            if task.is_some() && h.task == task {
                return h.shard.clone();
            }
        }
        let runtime = Handle::current().id();
        match &mut *home {
            Some(h) if h.shard.runtime == runtime => {
                h.task = task;
                h.shard.clone()
            }
            _ => {
                // The thread's first timer, or its first under this runtime: the old shard (if
                // any) is orphaned as `Home`'s drop says.
                let shard = Arc::new(Shard::new(runtime, false));
                *home = Some(Home {
                    shard: shard.clone(),
                    task,
                });
                shard
            }
        }
    })
    // The thread is ending: a shard of its own for this call, orphaned from the start.
    .unwrap_or_else(|_| Arc::new(Shard::new(Handle::current().id(), true)))
}

/// An armed call's timer; dropping it cancels it.
pub(crate) struct Entry {
    shard: Arc<Shard>,
    key: u32,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("key", &self.key).finish()
    }
}

impl Entry {
    /// Arms a timer that fires `limit` from now and wakes `cx`'s task; `None` when this shard
    /// has no lane free for the limit or the deadline cannot be represented (the caller falls
    /// back to tokio's `Sleep`).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or in one built without timers, as `tokio::time::sleep` does.
    pub(crate) fn arm(limit: Duration, cx: &Context<'_>) -> Option<Entry> {
        let shard = shard();
        let deadline = Instant::now().checked_add(limit)?;
        let millis = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let (key, wake, spawn) = {
            let mut inner = shard.lock();
            let key = inner.insert(deadline, millis, cx.waker())?;
            let spawn = !inner.running;
            inner.running = true;
            let wake = if !spawn && inner.wake_at.map_or(true, |at| deadline < at) {
                inner.driver.take()
            } else {
                None
            };
            (key, wake, spawn)
        };
        let entry = Entry { shard, key };
        if let Some(driver) = wake {
            driver.wake();
        }
        if spawn {
            Driver::spawn(&entry.shard, &Handle::current());
        }
        Some(entry)
    }

    /// `Ready` once the timer has fired; otherwise it will wake `cx`'s task when it does.
    pub(crate) fn poll(&self, cx: &Context<'_>) -> Poll<()> {
        let old = {
            let mut inner = self.shard.lock();
            let slot = &mut inner.slots[self.key as usize];
            if !slot.linked {
                return Poll::Ready(());
            }
            match &slot.waker {
                Some(w) if w.will_wake(cx.waker()) => return Poll::Pending,
                _ => slot.waker.replace(cx.waker().clone()),
            }
        };
        drop(old);
        Poll::Pending
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let (waker, driver) = {
            let mut inner = self.shard.lock();
            let waker = inner.remove(self.key);
            let driver = if inner.orphaned && inner.linked == 0 {
                inner.driver.take()
            } else {
                None
            };
            (waker, driver)
        };
        drop(waker);
        if let Some(driver) = driver {
            driver.wake();
        }
    }
}

/// Marks the shard's driver gone when the task is dropped (it ended, or its runtime shut
/// down), so that the next call to arm a timer spawns another.
struct Running(Arc<Shard>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.running = false;
        inner.driver = None;
        inner.wake_at = None;
    }
}

pin_project_lite::pin_project! {
    /// A shard's driver: sleeps until the shard's earliest deadline and fires what is due.
    struct Driver {
        running: Running,
        // `None` once the driver has found the shard empty, so that it keeps no deadline
        // registered with tokio's timer while it waits for entries.
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl Driver {
    /// Spawns the driver of `shard` (whose `running` is already set) on `handle`'s runtime.
    fn spawn(shard: &Arc<Shard>, handle: &Handle) {
        // Made first: if it panics (a runtime without timers), `running` is cleared again and
        // the panic reaches the call, as tokio's own `sleep` would.
        let running = Running(shard.clone());
        let sleep = Some(tokio::time::sleep(Duration::from_secs(86_400 * 365)));
        drop(handle.spawn(Driver { running, sleep }));
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let shard = &this.running.0;
        // Bounded, so that a driver with much to fire lets other tasks run between batches.
        for _ in 0..8 {
            let mut wakers: [Option<Waker>; BATCH] = Default::default();
            let now = Instant::now();
            let (fired, next, done) = {
                let mut inner = shard.lock();
                let fired = inner.expire(now, &mut wakers);
                let next = inner.earliest();
                let done = inner.orphaned && inner.linked == 0;
                inner.wake_at = next;
                match &inner.driver {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => inner.driver = Some(cx.waker().clone()),
                }
                (fired, next, done)
            };
            for waker in wakers.iter_mut().take(fired) {
                if let Some(w) = waker.take() {
                    w.wake();
                }
            }
            if fired == BATCH {
                continue;
            }
            if done {
                return Poll::Ready(());
            }
            let Some(next) = next else {
                this.sleep.set(None);
                return Poll::Pending;
            };
            match this.sleep.as_mut().as_pin_mut() {
                Some(sleep) if sleep.deadline() == next => {}
                Some(sleep) => sleep.reset(next),
                None => this.sleep.set(Some(tokio::time::sleep_until(next))),
            }
            let sleep = this.sleep.as_mut().as_pin_mut().expect("set above");
            if sleep.poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Timers armed and not yet fired in this thread's shard for the current runtime.
#[cfg(test)]
pub(crate) fn armed_here() -> usize {
    let runtime = Handle::current().id();
    HOME.with(|home| match &*home.borrow() {
        Some(h) if h.shard.runtime == runtime => h.shard.lock().linked,
        _ => 0,
    })
}

/// Whether this thread's shard for the current runtime has a driver that has run and waits.
#[cfg(test)]
pub(crate) fn driver_waits_here() -> bool {
    let runtime = Handle::current().id();
    HOME.with(|home| match &*home.borrow() {
        Some(h) if h.shard.runtime == runtime => h.shard.lock().driver.is_some(),
        _ => false,
    })
}

#[cfg(test)]
mod tests;
