//! The table: one component per key, created on first use, bounded in size, idle keys evicted.

use crate::component::Component;
use crate::config::KeyedBuilder;
use crate::handoff::evictable;
use battlement_core::stripe::StripedCounter;
use dashmap::DashMap;
use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use tokio::time::Instant;

/// The template: makes a key's builder from the key's component name.
pub(crate) type Template<C> = Box<dyn Fn(String) -> <C as Component>::Builder + Send + Sync>;

/// One component per key: a keyed circuit breaker ([`KeyedCircuitBreaker`](crate::KeyedCircuitBreaker))
/// or bulkhead ([`KeyedBulkhead`](crate::KeyedBulkhead)), a cheap `Clone` handle to a shared
/// table.
///
/// A key's component is built on the key's first call from the template (the component's
/// builder settings) and named `<name>/<key>` (`payments/api.example.com`). Calls without a key
/// (the extractor found none), and new keys while the table is full of keys that calls still
/// hold, go through one shared *overflow* component named `<name>/*`, so memory stays bounded
/// and no call goes unguarded.
///
/// # Bounded memory and eviction
///
/// The table holds at most [`max_keys`](KeyedBuilder::max_keys) keys. A component is dropped
/// only when nothing but the table holds it: a call in flight holds it (a breaker's call guard,
/// a bulkhead's permit or queue place) until it ends, and so does a handle from
/// [`get`](Self::get), so no outcome, trial permit or permit is lost. A key whose component an
/// operator set (a breaker forced open or disabled) is never evicted.
///
/// - **Idle expiry**: a key no call has used for [`idle_timeout`](KeyedBuilder::idle_timeout)
///   is evicted by the next sweep. Sweeps run on the path of a new key, at most once a quarter
///   of the idle timeout (no timer task), or when you call [`evict_idle`](Self::evict_idle). Use
///   is noted at sweep granularity, so a key goes between one idle timeout and that plus a
///   sweep interval after its last call.
/// - **Full table**: a new key first sweeps, then evicts the least recently used eighth of the
///   keys no call holds (recency at sweep granularity; keys whose component is at rest, a
///   closed breaker or an idle bulkhead, before the others). If every key is held, the new key's
///   calls go through the overflow component until a slot frees.
///
/// # Cost
///
/// A known key's call adds one concurrent-map lookup (a `DashMap` shard's read lock) and a read
/// of the key's use flag (written once per sweep interval, not per call) to the component's own
/// call path, and allocates nothing when the extractor borrows its key from the request.
///
/// ```
/// use battlement_breaker::{CircuitBreaker, State};
/// use battlement_keyed::KeyedCircuitBreaker;
/// use std::time::Duration;
///
/// let hosts = KeyedCircuitBreaker::builder("payments")
///     .template(|name| CircuitBreaker::builder(name).minimum_calls(5))
///     .max_keys(1000)
///     .idle_timeout(Duration::from_secs(300))
///     .build()
///     .unwrap();
/// hosts.force_open("api.example.com", "deploying");
/// assert_eq!(hosts.state("api.example.com"), Some(State::ForcedOpen));
/// assert_eq!(hosts.get("api.example.com").unwrap().name(), "payments/api.example.com");
/// assert_eq!(hosts.keys_in(State::ForcedOpen), vec!["api.example.com".to_owned()]);
/// ```
pub struct Keyed<C: Component, K = String> {
    pub(crate) table: Arc<Table<C, K>>,
}

impl<C: Component, K> Clone for Keyed<C, K> {
    fn clone(&self) -> Self {
        Keyed {
            table: self.table.clone(),
        }
    }
}

impl<C: Component, K> fmt::Debug for Keyed<C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("kind", &C::KIND)
            .field("name", &self.table.name)
            .field("keys", &self.table.len.load(Relaxed))
            .field("max_keys", &self.table.max_keys)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Entry<C> {
    pub(crate) component: C,
    /// Set by a call when clear; cleared by a sweep, which then notes the time in `last_seen`.
    touched: AtomicBool,
    /// Nanoseconds since the table's origin when a sweep (or the key's creation) last saw it
    /// used. Written only by sweeps and creation.
    last_seen: AtomicU64,
}

pub(crate) struct Table<C: Component, K> {
    pub(crate) name: Arc<str>,
    pub(crate) map: DashMap<K, Entry<C>>,
    template: Template<C>,
    /// The component of calls without a key, or whose new key found the table full.
    pub(crate) overflow: C,
    /// Keys in the table plus insertions under way; never above `max_keys`.
    pub(crate) len: AtomicUsize,
    pub(crate) max_keys: usize,
    idle: u64,
    sweep_every: u64,
    origin: Instant,
    /// When the last sweep started, in nanoseconds since the origin, plus one (0: never).
    last_sweep: AtomicU64,
    sweeping: AtomicBool,
    pub(crate) created: AtomicU64,
    pub(crate) evicted_idle: AtomicU64,
    pub(crate) evicted_full: AtomicU64,
    pub(crate) overflow_calls: StripedCounter,
    pub(crate) worst_keys: usize,
    pub(crate) per_key_metrics: usize,
}

/// Evicting keys: why.
#[derive(Clone, Copy)]
enum Why {
    Idle,
    Full,
}

impl<C: Component> Keyed<C> {
    /// Starts building a table keyed by strings (what [`Authority`](crate::Authority) and
    /// [`Header`](crate::Header) read) called `name`: the group's name in health and metrics,
    /// and the prefix of its components' names. For another key type, use
    /// [`KeyedBuilder::new`].
    pub fn builder(name: impl Into<String>) -> KeyedBuilder<C, String> {
        KeyedBuilder::new(name)
    }
}

impl<C: Component, K> Keyed<C, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        name: Arc<str>,
        template: Template<C>,
        overflow: C,
        max_keys: usize,
        idle: std::time::Duration,
        worst_keys: usize,
        per_key_metrics: usize,
    ) -> Self {
        let idle = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
        Keyed {
            table: Arc::new(Table {
                name,
                map: DashMap::new(),
                template,
                overflow,
                len: AtomicUsize::new(0),
                max_keys,
                idle,
                sweep_every: (idle / 4).max(1),
                origin: Instant::now(),
                last_sweep: AtomicU64::new(0),
                sweeping: AtomicBool::new(false),
                created: AtomicU64::new(0),
                evicted_idle: AtomicU64::new(0),
                evicted_full: AtomicU64::new(0),
                overflow_calls: StripedCounter::new(),
                worst_keys,
                per_key_metrics,
            }),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.table.name
    }

    /// How many keys the table holds now (at most [`max_keys`](Self::max_keys)).
    pub fn len(&self) -> usize {
        self.table.len.load(Relaxed)
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys the table holds.
    pub fn max_keys(&self) -> usize {
        self.table.max_keys
    }

    /// The component of calls without a key, or whose new key found the table full
    /// (`<name>/*`).
    pub fn overflow(&self) -> &C {
        &self.table.overflow
    }

    /// A handle to `key`'s component, if the table holds the key. While you hold it the key is
    /// not evicted.
    pub fn get<Q>(&self, key: &Q) -> Option<C>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.table.map.get(key).map(|e| e.component.clone())
    }

    /// A handle to `key`'s component, created now if the table does not hold it; `None` if the
    /// table is full of keys that calls or handles hold.
    pub fn get_or_create<Q>(&self, key: &Q) -> Option<C>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        if let Some(c) = self.get(key) {
            return Some(c);
        }
        self.insert_new(Cow::Borrowed(key), |c, keyed| keyed.then(|| c.clone()))
    }

    /// Whether the table holds `key`.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.table.map.contains_key(key)
    }

    /// `key`'s state, if the table holds the key.
    pub fn state<Q>(&self, key: &Q) -> Option<C::State>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.table.map.get(key).map(|e| e.component.key_state())
    }

    /// The keys whose component is in `state` now (a scan of the table).
    pub fn keys_in(&self, state: C::State) -> Vec<K> {
        self.table
            .map
            .iter()
            .filter(|e| e.component.key_state() == state)
            .map(|e| e.key().clone())
            .collect()
    }

    /// Every key and its component's state now (a scan of the table).
    pub fn states(&self) -> Vec<(K, C::State)> {
        self.table
            .map
            .iter()
            .map(|e| (e.key().clone(), e.component.key_state()))
            .collect()
    }

    /// Evicts the keys idle for the idle timeout that nothing holds, now (a sweep; calls sweep
    /// by themselves on new keys, so this is for a program that wants expiry without new keys,
    /// on a timer of its own). Returns how many keys it evicted.
    pub fn evict_idle(&self) -> usize {
        let now = self.now();
        self.table.last_sweep.store(now + 1, Relaxed);
        self.sweep(now)
    }

    /// Removes `key` now if nothing but the table holds its component (no call in flight, no
    /// handle): `true` if it was removed.
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let removed = self
            .table
            .map
            .remove_if(key, |_, e| !e.component.held())
            .is_some();
        if removed {
            self.table.len.fetch_sub(1, AcqRel);
        }
        removed
    }

    fn now(&self) -> u64 {
        u64::try_from(self.table.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Admits a call for `key`: the call path.
    #[inline]
    pub(crate) fn admit<Q>(&self, key: Cow<'_, Q>) -> C::Ticket
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        if let Some(entry) = self.table.map.get(&*key) {
            if !entry.touched.load(Relaxed) {
                entry.touched.store(true, Relaxed);
            }
            return entry.component.admit();
        }
        self.admit_new(key)
    }

    /// Admits a call without a key: through the overflow component.
    #[inline]
    pub(crate) fn admit_unkeyed(&self) -> C::Ticket {
        self.table.overflow_calls.increment();
        self.table.overflow.admit()
    }

    #[cold]
    #[inline(never)]
    fn admit_new<Q>(&self, key: Cow<'_, Q>) -> C::Ticket
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        self.insert_new(key, |c, _| c.admit())
    }

    /// The slow path of a key the table does not hold: sweep if due, take a slot (evicting the
    /// least recently used keys if full), build the key's component, insert it and apply `f`
    /// to it (under the map's lock, so the new component cannot be evicted before `f` holds
    /// it) and `true`. With no slot, `f` gets the overflow component and `false`.
    fn insert_new<Q, T>(&self, key: Cow<'_, Q>, f: impl FnOnce(&C, bool) -> T) -> T
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        let t = &self.table;
        let now = self.now();
        let last = t.last_sweep.load(Relaxed);
        if (last == 0 || now.saturating_sub(last - 1) >= t.sweep_every)
            && t.last_sweep
                .compare_exchange(last, now + 1, AcqRel, Relaxed)
                .is_ok()
        {
            self.sweep(now);
        }
        if !self.reserve() {
            self.evict_least_recent(now);
            if !self.reserve() {
                t.overflow_calls.increment();
                return f(&t.overflow, false);
            }
        }
        let key: K = key.into_owned();
        let built = C::build_from((t.template)(format!("{}/{key}", t.name)));
        let component = match built {
            Ok(c) => c,
            Err(error) => {
                // The template was validated at build; a key that makes its name invalid goes
                // through the overflow component.
                tracing::warn!(name = %t.name, kind = C::KIND.as_str(), %error, "keyed: building a key's component failed");
                t.len.fetch_sub(1, AcqRel);
                t.overflow_calls.increment();
                return f(&t.overflow, false);
            }
        };
        match t.map.entry(key) {
            dashmap::mapref::entry::Entry::Occupied(e) => {
                // Another call inserted it first.
                t.len.fetch_sub(1, AcqRel);
                let e = e.into_ref().downgrade();
                f(&e.component, true)
            }
            dashmap::mapref::entry::Entry::Vacant(slot) => {
                t.created.fetch_add(1, Relaxed);
                let e = slot
                    .insert(Entry {
                        component,
                        touched: AtomicBool::new(false),
                        last_seen: AtomicU64::new(now),
                    })
                    .downgrade();
                f(&e.component, true)
            }
        }
    }

    /// Takes a slot for a new key, if one is free.
    fn reserve(&self) -> bool {
        let t = &self.table;
        t.len
            .fetch_update(AcqRel, Acquire, |n| (n < t.max_keys).then_some(n + 1))
            .is_ok()
    }

    /// Evicts idle keys nothing holds; notes the keys used since the last sweep. One sweep at a
    /// time (a sweep already running makes this return 0).
    fn sweep(&self, now: u64) -> usize {
        let t = &self.table;
        if t.sweeping.swap(true, Acquire) {
            return 0;
        }
        let mut removed = 0usize;
        t.map.retain(|_, e| {
            if e.touched.load(Relaxed) {
                e.touched.store(false, Relaxed);
                e.last_seen.store(now, Relaxed);
                return true;
            }
            let idle = now.saturating_sub(e.last_seen.load(Relaxed)) >= t.idle;
            // Under the shard's write lock: no call can take a new reference to it now.
            let evict = idle && evictable(&e.component);
            removed += usize::from(evict);
            !evict
        });
        t.sweeping.store(false, Relaxed);
        self.count_evicted(removed, Why::Idle);
        removed
    }

    /// The table is full: evicts the least recently used eighth of the keys nothing holds (keys
    /// used since the last sweep count as used now).
    fn evict_least_recent(&self, now: u64) {
        let t = &self.table;
        if t.sweeping.swap(true, Acquire) {
            return;
        }
        // Keys at rest first, then by last use.
        let mut candidates: Vec<((bool, u64), K)> = t
            .map
            .iter()
            .filter(|e| evictable(&e.component))
            .map(|e| {
                let rest = C::STATES.first() == Some(&e.component.key_state());
                let seen = if e.touched.load(Relaxed) {
                    now
                } else {
                    e.last_seen.load(Relaxed)
                };
                ((!rest, seen), e.key().clone())
            })
            .collect();
        let batch = (t.max_keys / 8).max(1).min(candidates.len());
        if batch > 0 && batch < candidates.len() {
            candidates.select_nth_unstable_by_key(batch - 1, |c| c.0);
        }
        let mut removed = 0usize;
        for (_, key) in candidates.into_iter().take(batch) {
            // Checked again under the shard's write lock: a call may have taken it since.
            if t.map
                .remove_if(&key, |_, e| evictable(&e.component))
                .is_some()
            {
                removed += 1;
            }
        }
        t.sweeping.store(false, Relaxed);
        self.count_evicted(removed, Why::Full);
    }

    fn count_evicted(&self, removed: usize, why: Why) {
        if removed == 0 {
            return;
        }
        let t = &self.table;
        t.len.fetch_sub(removed, AcqRel);
        let counter = match why {
            Why::Idle => &t.evicted_idle,
            Why::Full => &t.evicted_full,
        };
        counter.fetch_add(removed as u64, Relaxed);
        tracing::debug!(
            name = %t.name,
            kind = C::KIND.as_str(),
            removed,
            reason = match why { Why::Idle => "idle", Why::Full => "full" },
            "keyed: keys evicted"
        );
    }
}

/// Operator actions on one key of a keyed circuit breaker.
impl<K> Keyed<battlement_breaker::CircuitBreaker, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// Forces `key`'s breaker open with `reason` (creating it if the table does not hold the
    /// key): its calls are rejected until [`reset`](Self::reset). A forced key is never
    /// evicted. `false` if the table is full of keys in use (the overflow component is never
    /// forced by a key's action).
    pub fn force_open<Q>(&self, key: &Q, reason: impl Into<Arc<str>>) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        match self.get_or_create(key) {
            Some(breaker) => {
                breaker.force_open(reason);
                true
            }
            None => false,
        }
    }

    /// Resets `key`'s breaker to closed (the "human reset"): `false` if the table does not hold
    /// the key.
    pub fn reset<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        match self.table.map.get(key) {
            Some(e) => {
                e.component.reset();
                true
            }
            None => false,
        }
    }

    /// `key`'s breaker metrics, if the table holds the key.
    pub fn metrics<Q>(&self, key: &Q) -> Option<battlement_breaker::CircuitBreakerMetrics>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.table.map.get(key).map(|e| e.component.metrics())
    }
}

/// Read-outs of one key of a keyed bulkhead.
impl<K> Keyed<battlement_bulkhead::Bulkhead, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// `key`'s bulkhead metrics, if the table holds the key.
    pub fn metrics<Q>(&self, key: &Q) -> Option<battlement_bulkhead::BulkheadMetrics>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.table.map.get(key).map(|e| e.component.metrics())
    }
}
