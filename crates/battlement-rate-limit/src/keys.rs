//! The keyed limiter's state: governor's per-key GCRA cells in a `DashMap`, bounded in size.
//!
//! [`Store`] is the governor `StateStore` of the keyed limiter. A call for a key already
//! tracked goes straight to its cell (a shard read lock and the cell's compare-and-swap: what
//! governor's own `DashMap` store does). Only a key seen for the first time takes the slow
//! path: it reserves one of `max_keys` slots (a compare-and-swap on the count of tracked keys,
//! which no call for a known key writes) and inserts its cell; with every slot taken, the new
//! key is admitted untracked (fail open) or rejected (fail closed). Idle keys, whose cells are
//! indistinguishable from a fresh one (governor's `retain_recent` rule), are evicted on that
//! same path: when the table is full, and otherwise at most once per eviction interval (no
//! timer task: eviction is amortised on new keys).

use crate::event::RateLimitEvent;
use battlement_core::event::EventChannel;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use std::hash::Hash;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

/// What happens to a key seen for the first time when `max_keys` keys are tracked and none is
/// idle enough to evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeysFull {
    /// Reject its calls with [`RateLimited`](crate::RateLimited) (retry after one emission
    /// interval) until a slot frees: keys already tracked keep their limits, and a flood of
    /// made-up keys cannot get around the limit. The default.
    #[default]
    Reject,
    /// Admit its calls, unlimited and untracked, until a slot frees: no client is refused for
    /// want of memory, at the price of letting a flood of new keys through.
    Admit,
}

pub(crate) struct Keys<K> {
    pub(crate) map: DashMap<K, InMemoryState>,
    /// Slots reserved: keys in the map plus insertions under way; never above `max`.
    tracked: AtomicUsize,
    /// The settings below are atomics so that a reload
    /// ([`RateLimit::reload`](crate::RateLimit::reload)) changes them in place, keeping every
    /// key's state.
    max: AtomicUsize,
    /// `true`: [`KeysFull::Admit`].
    admit_when_full: AtomicBool,
    /// governor's emission interval and tolerance, in nanoseconds.
    t: AtomicU64,
    tau: AtomicU64,
    eviction_interval: AtomicU64,
    /// When the last sweep ran, in nanoseconds since the limiter's start, plus one (0: never).
    last_sweep: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) overflow_admitted: AtomicU64,
    pub(crate) overflow_rejected: AtomicU64,
    /// Set when a new key found the table full; cleared when a sweep frees a slot.
    pub(crate) full: AtomicBool,
    name: Arc<str>,
    events: EventChannel<RateLimitEvent>,
}

pub(crate) struct KeysSettings {
    pub(crate) max: usize,
    pub(crate) when_full: KeysFull,
    pub(crate) t: Nanos,
    pub(crate) tau: Nanos,
    pub(crate) eviction_interval: Nanos,
}

impl<K: Hash + Eq + Clone> Keys<K> {
    pub(crate) fn new(
        settings: KeysSettings,
        name: Arc<str>,
        events: EventChannel<RateLimitEvent>,
    ) -> Self {
        let keys = Keys {
            map: DashMap::new(),
            tracked: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
            admit_when_full: AtomicBool::new(false),
            t: AtomicU64::new(0),
            tau: AtomicU64::new(0),
            eviction_interval: AtomicU64::new(0),
            last_sweep: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            overflow_admitted: AtomicU64::new(0),
            overflow_rejected: AtomicU64::new(0),
            full: AtomicBool::new(false),
            name,
            events,
        };
        keys.configure(&settings);
        keys
    }

    /// Takes new settings (a reload): the table and every key's state stay. A smaller `max`
    /// than the keys tracked now refuses new keys until sweeps bring the count under it.
    pub(crate) fn configure(&self, settings: &KeysSettings) {
        self.max.store(settings.max, Relaxed);
        self.admit_when_full
            .store(settings.when_full == KeysFull::Admit, Relaxed);
        self.t.store(settings.t.as_u64(), Relaxed);
        self.tau.store(settings.tau.as_u64(), Relaxed);
        self.eviction_interval
            .store(settings.eviction_interval.as_u64(), Relaxed);
    }

    /// At most how many keys are tracked.
    pub(crate) fn max(&self) -> usize {
        self.max.load(Relaxed)
    }

    /// What happens to new keys while the table is full.
    pub(crate) fn when_full(&self) -> KeysFull {
        if self.admit_when_full.load(Relaxed) {
            KeysFull::Admit
        } else {
            KeysFull::Reject
        }
    }

    /// Keys tracked now (slots reserved: at most `max`).
    pub(crate) fn tracked(&self) -> usize {
        self.tracked.load(Relaxed)
    }

    /// Takes a slot for a new key, if one is free.
    fn reserve(&self) -> bool {
        self.tracked
            .fetch_update(AcqRel, Acquire, |n| (n < self.max()).then_some(n + 1))
            .is_ok()
    }

    /// Evicts the keys whose state is older than `drop_below` (nanoseconds since the limiter's
    /// start): governor's `retain_recent` rule, a key whose theoretical arrival time has passed
    /// is indistinguishable from one never seen. Returns how many were evicted.
    pub(crate) fn sweep(&self, drop_below: u64) -> u64 {
        let mut removed = 0u64;
        self.map.retain(|_, cell| {
            let keep = tat(cell).is_some_and(|tat| tat > drop_below);
            removed += u64::from(!keep);
            keep
        });
        if removed > 0 {
            self.tracked.fetch_sub(removed as usize, AcqRel);
            self.evicted.fetch_add(removed, Relaxed);
            self.full.store(false, Relaxed);
        }
        removed
    }

    /// The slow path of a key not tracked yet; `now` is nanoseconds since the limiter's start.
    fn measure_new<T, F, E>(&self, key: &K, now: u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let last = self.last_sweep.load(Relaxed);
        let due = last == 0 || now.saturating_sub(last - 1) >= self.eviction_interval.load(Relaxed);
        if due && self.tracked() > 0 {
            self.try_sweep(last, now);
        }
        if !self.reserve() {
            // Full: sweep once more (at most once per emission interval, so a flood of new keys
            // does not scan the table on every call), then give up.
            let last = self.last_sweep.load(Relaxed);
            if last == 0 || now.saturating_sub(last - 1) >= self.t.load(Relaxed) {
                self.try_sweep(last, now);
            }
            if !self.reserve() {
                return self.overflow(now, f);
            }
        }
        match self.map.entry(key.clone()) {
            Entry::Occupied(cell) => {
                // Another call inserted it first.
                self.tracked.fetch_sub(1, AcqRel);
                StateStore::measure_and_replace(cell.get(), &NotKeyed::NonKey, f)
            }
            Entry::Vacant(slot) => {
                let cell = slot.insert(InMemoryState::default());
                StateStore::measure_and_replace(&*cell, &NotKeyed::NonKey, f)
            }
        }
    }

    fn try_sweep(&self, last: u64, now: u64) {
        // One sweeper at a time: whoever moves `last_sweep` sweeps.
        if self
            .last_sweep
            .compare_exchange(last, now + 1, AcqRel, Relaxed)
            .is_ok()
        {
            self.sweep(now.saturating_sub(self.t.load(Relaxed)));
        }
    }

    #[cold]
    fn overflow<T, F, E>(&self, now: u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let when_full = self.when_full();
        if !self.full.swap(true, Relaxed) {
            tracing::warn!(
                name = %self.name,
                kind = "rate_limit",
                max_keys = self.max(),
                when_full = ?when_full,
                "rate limiter's key table is full"
            );
            self.events.send(RateLimitEvent::KeysFull {
                name: self.name.clone(),
                max_keys: self.max(),
                when_full,
            });
        }
        match when_full {
            KeysFull::Admit => {
                self.overflow_admitted.fetch_add(1, Relaxed);
                // A fresh cell, measured and thrown away: admitted, tracked nowhere.
                f(None).map(|(outcome, _)| outcome)
            }
            KeysFull::Reject => {
                self.overflow_rejected.fetch_add(1, Relaxed);
                // A cell whose next conforming time is one emission interval away: rejected,
                // with that as its retry-after.
                f(Some(Nanos::new(
                    now + self.tau.load(Relaxed) + self.t.load(Relaxed),
                )))
                .map(|(outcome, _)| outcome)
            }
        }
    }
}

/// A cell's theoretical arrival time (nanoseconds since the limiter's start), read without
/// changing it (the measuring closure declines); `None` for a cell never measured.
fn tat(cell: &InMemoryState) -> Option<u64> {
    match StateStore::measure_and_replace(
        cell,
        &NotKeyed::NonKey,
        Err::<((), Nanos), Option<Nanos>>,
    ) {
        Err(tat) => tat.map(Nanos::as_u64),
        Ok(()) => None,
    }
}

/// The keyed limiter's `StateStore`: the table, shared with the limiter handle.
pub(crate) struct Store<K>(pub(crate) Arc<Keys<K>>);

impl<K: Hash + Eq + Clone> StateStore for Store<K> {
    type Key = K;

    #[inline]
    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(cell) = self.0.map.get(key) {
            return StateStore::measure_and_replace(&*cell, &NotKeyed::NonKey, f);
        }
        // A fresh cell measured now tells the time: governor's next arrival time for it is
        // `now + t` (a single cell always conforms on a fresh state).
        let now = match f(None) {
            Ok((_, next)) => next.as_u64().saturating_sub(self.0.t.load(Relaxed)),
            Err(e) => return Err(e),
        };
        self.0.measure_new(key, now, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for Store<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.sweep(drop_below.as_u64());
    }

    fn len(&self) -> usize {
        self.0.tracked()
    }

    fn is_empty(&self) -> bool {
        self.0.tracked() == 0
    }
}

/// The unkeyed limiter's `StateStore`: one GCRA cell shared by every limiter a reload builds,
/// so that a new rate applies to the state the old one left.
pub(crate) struct Direct(pub(crate) Arc<InMemoryState>);

impl StateStore for Direct {
    type Key = NotKeyed;

    #[inline]
    fn measure_and_replace<T, F, E>(&self, key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        StateStore::measure_and_replace(&*self.0, key, f)
    }
}
