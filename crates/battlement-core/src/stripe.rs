//! Striping: state that every call writes, split into per-thread cells on cache lines of their
//! own, and summed only when a decision or a read-out needs it.
//!
//! A counter that every call increments is a cache line that every core writes: under load the
//! line moves from core to core on each call, and calls on different cores wait for each other.
//! Striped, each thread writes its own cell and nothing is shared until a read sums the cells.
//! This module holds the pieces every component uses for that:
//!
//! - [`thread_index`]: the calling thread's index, which picks its cell ([`local`]);
//! - [`stripe_count`]: how many cells a striped value has (see [the cap](#the-cap));
//! - [`Stripes`]: the cells, each on cache lines of its own ([`CachePadded`]);
//! - [`StripedCounter`]: a counter whose increments on different threads touch different
//!   lines and take no locked instruction.
//!
//! The cells' atomics come from [`sync`](crate::sync), so under `--cfg loom` a model sees them;
//! under loom every thread shares one index and a striped value has one cell.
//!
//! # The cap
//!
//! A striped value has [`stripe_count`] cells: the machine's available parallelism rounded up
//! to a power of two, at most [`MAX_STRIPES`] (64). More cells than cores would only cost
//! memory and make reads slower: at most one thread runs on each core at a time.
//!
//! # Thread indices, and threads that exit
//!
//! A thread takes an index the first time it asks: the lowest one below [`MAX_STRIPES`] that no
//! live thread holds. It hands the index back when it exits (when its thread-locals are
//! destroyed), and the next thread to ask takes it over, together with whatever the cells of
//! that index hold: a cell is never reset, so the counts the old thread wrote stay in every
//! sum. So the threads alive at once have distinct indices, and, however many threads came and
//! went before, the first [`stripe_count`] of them to ask write distinct cells.
//!
//! A thread that asks while [`MAX_STRIPES`] others hold an index, or that asks after it has
//! handed its own back (from another thread-local's destructor, say), gets a *shared* index, at
//! least [`MAX_STRIPES`]: [`Stripes::local`] maps shared indices onto the cells round-robin, like
//! any other, and [`Stripes::owned`] gives such a thread no cell.

use crate::handle::Handle;
use crate::sync::{AtomicU64, Ordering::Relaxed};
use std::fmt;
use std::sync::Arc;

pub use crossbeam_utils::CachePadded;

/// The most cells a striped value has; also the number of indices threads can hold at once.
pub const MAX_STRIPES: usize = 64;

/// How many cells a striped value has: the machine's available parallelism rounded up to a
/// power of two, at most [`MAX_STRIPES`] (1 under loom). Read once per process.
///
/// ```
/// use battlement_core::stripe::{stripe_count, MAX_STRIPES};
///
/// let n = stripe_count();
/// assert!(n.is_power_of_two() && n <= MAX_STRIPES);
/// ```
pub fn stripe_count() -> usize {
    #[cfg(loom)]
    {
        1
    }
    #[cfg(not(loom))]
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        match COUNT.load(Ordering::Relaxed) {
            0 => {
                let n = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .min(MAX_STRIPES)
                    .next_power_of_two();
                COUNT.store(n, Ordering::Relaxed);
                n
            }
            n => n,
        }
    }
}

/// The calling thread's index: below [`MAX_STRIPES`] and held by no other live thread, or a
/// shared index of at least [`MAX_STRIPES`] (see [the module docs](self) for who gets which, and
/// what happens when a thread exits). The first call on a thread claims the index (one
/// compare-and-swap); later calls read a thread-local.
///
/// ```
/// use battlement_core::stripe::thread_index;
///
/// // A thread keeps its index while it lives.
/// assert_eq!(thread_index(), thread_index());
/// let other = std::thread::scope(|s| s.spawn(thread_index).join().unwrap());
/// assert_ne!(other, thread_index(), "two live threads never share an index");
/// ```
#[cfg(not(loom))]
#[inline]
pub fn thread_index() -> usize {
    match index::INDEX.with(std::cell::Cell::get) {
        index::UNASSIGNED => index::assign(),
        index => index,
    }
}

/// Under loom every thread shares one index: loom's threads are not the OS threads that
/// thread-locals belong to.
#[cfg(loom)]
#[inline]
pub fn thread_index() -> usize {
    MAX_STRIPES
}

/// The thread-local as it stands: [`thread_index`], or `usize::MAX` before the thread's first
/// call. Fast paths compare it with a length, which `usize::MAX` never passes, and leave the
/// first call to a cold path.
#[cfg(not(loom))]
#[inline(always)]
fn raw_index() -> usize {
    index::INDEX.with(std::cell::Cell::get)
}

#[cfg(loom)]
#[inline(always)]
fn raw_index() -> usize {
    MAX_STRIPES
}

/// Whether the calling thread holds index `index` (one of [`stripe_count`]'s, below
/// [`MAX_STRIPES`]): one thread-local read. A per-thread value kept for a later call (a call's
/// future holds its thread's cell) asks this to know whether the thread finishing the call
/// still owns the cell, and may write it with a plain load and store, as [`Stripes::owned`]
/// allows.
///
/// ```
/// use battlement_core::stripe::{owns, thread_index, MAX_STRIPES};
///
/// let index = thread_index();
/// assert_eq!(owns(index), index < MAX_STRIPES);
/// let other = std::thread::scope(|s| s.spawn(move || owns(index)).join().unwrap());
/// assert!(!other, "another live thread never holds it");
/// ```
#[inline(always)]
pub fn owns(index: usize) -> bool {
    index < MAX_STRIPES && raw_index() == index
}

/// An index below [`MAX_STRIPES`], kept by a per-thread value (a call's future holding its
/// thread's cell) to ask later, as [`owns`] does, whether the calling thread still holds it:
/// checked once when made, so that each question is one thread-local read and one comparison.
///
/// ```
/// use battlement_core::stripe::{thread_index, Owner, MAX_STRIPES};
///
/// assert!(Owner::new(MAX_STRIPES).is_none());
/// if let Some(owner) = Owner::new(thread_index()) {
///     assert!(owner.is_current());
///     let other = std::thread::scope(|s| s.spawn(move || owner.is_current()).join().unwrap());
///     assert!(!other, "another live thread never holds it");
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner(usize);

impl Owner {
    /// `index` as an owner, if it is below [`MAX_STRIPES`] (a cell's index always is).
    pub fn new(index: usize) -> Option<Self> {
        (index < MAX_STRIPES).then_some(Owner(index))
    }

    /// The index.
    pub fn index(self) -> usize {
        self.0
    }

    /// Whether the calling thread holds this index: [`owns`] without the bound check.
    #[inline(always)]
    pub fn is_current(self) -> bool {
        raw_index() == self.0
    }
}

/// The calling thread's element of `cells`: `cells[thread_index() % cells.len()]`, on the fast
/// path (a thread whose index is below the length) one thread-local read and one comparison.
/// For a slice of per-thread handles that is not a [`Stripes`] (it must not be empty).
///
/// ```
/// use battlement_core::stripe::{local, thread_index};
///
/// let cells = [10, 11, 12, 13];
/// assert_eq!(*local(&cells), 10 + thread_index() % 4);
/// ```
#[inline]
pub fn local<T>(cells: &[T]) -> &T {
    match cells.get(raw_index()) {
        Some(cell) => cell,
        None => local_slow(cells),
    }
}

#[cold]
#[inline(never)]
fn local_slow<T>(cells: &[T]) -> &T {
    &cells[thread_index() % cells.len()]
}

#[cfg(not(loom))]
mod index {
    use super::MAX_STRIPES;
    use std::cell::Cell;
    use std::sync::atomic::{
        AtomicU64, AtomicUsize,
        Ordering::{Acquire, Relaxed, Release},
    };

    /// A thread that has not asked yet.
    pub(super) const UNASSIGNED: usize = usize::MAX;

    /// Bit `i` is set while a live thread holds index `i`.
    static HELD: AtomicU64 = AtomicU64::new(0);
    /// Hands out shared indices round-robin.
    static NEXT_SHARED: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        pub(super) static INDEX: Cell<usize> = const { Cell::new(UNASSIGNED) };
        /// Hands the index back when the thread's thread-locals are destroyed.
        static HAND_BACK: HandBack = const { HandBack };
    }

    struct HandBack;

    impl Drop for HandBack {
        fn drop(&mut self) {
            // From here on the thread writes as a shared one: INDEX has no destructor, so it
            // stays readable while other thread-locals' destructors run.
            let index = INDEX.with(|i| i.replace(MAX_STRIPES));
            if index < MAX_STRIPES {
                // Release: the next holder sees every write this thread made to its cells.
                HELD.fetch_and(!(1 << index), Release);
            }
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn assign() -> usize {
        let mut held = HELD.load(Relaxed);
        let mut index = loop {
            if held == u64::MAX {
                break MAX_STRIPES + NEXT_SHARED.fetch_add(1, Relaxed) % MAX_STRIPES;
            }
            let lowest = (!held).trailing_zeros() as usize;
            // Acquire: this thread sees every write the index's last holder made to its cells.
            match HELD.compare_exchange_weak(held, held | 1 << lowest, Acquire, Relaxed) {
                Ok(_) => break lowest,
                Err(now) => held = now,
            }
        };
        // Touching HAND_BACK registers its destructor; if the thread's thread-locals are already
        // being destroyed it cannot be, so the index goes straight back.
        if index < MAX_STRIPES && HAND_BACK.try_with(|_| ()).is_err() {
            HELD.fetch_and(!(1 << index), Release);
            index = MAX_STRIPES;
        }
        INDEX.with(|i| i.set(index));
        index
    }

    /// Whether a live thread holds `index` (tests only).
    #[cfg(test)]
    pub(super) fn is_held(index: usize) -> bool {
        HELD.load(Acquire) & (1 << index) != 0
    }
}

/// A value split into cells, one per stripe, each on cache lines of its own: a thread writes
/// the cell of its [`thread_index`], a read-out visits them all.
///
/// [`Stripes::new`] pads each cell in place ([`CachePadded`]); [`Stripes::new_shared`] puts each
/// in an [`Arc`] of its own, for a call that keeps a reference to its cell (cloning it touches a
/// reference count no other core writes).
///
/// ```
/// use battlement_core::stripe::Stripes;
/// use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
///
/// let hits = Stripes::new(|_| AtomicU64::new(0));
/// hits.local().fetch_add(1, Relaxed);
/// hits.get(7).fetch_add(1, Relaxed);
/// assert_eq!(hits.iter().map(|c| c.load(Relaxed)).sum::<u64>(), 2);
/// ```
#[derive(Debug)]
pub struct Stripes<T> {
    cells: Box<[T]>,
    mask: usize,
}

impl<T> Stripes<CachePadded<T>> {
    /// [`stripe_count`] cells, cell `i` made by `init(i)`.
    pub fn new(init: impl FnMut(usize) -> T) -> Self {
        Self::with_count(stripe_count(), init)
    }

    /// `count` cells (rounded up to a power of two, at most [`MAX_STRIPES`]), cell `i` made by
    /// `init(i)`.
    pub fn with_count(count: usize, mut init: impl FnMut(usize) -> T) -> Self {
        Self::build(count, |i| CachePadded::new(init(i)))
    }
}

impl<T> Stripes<Arc<CachePadded<T>>> {
    /// [`stripe_count`] cells, each in an [`Arc`] of its own, cell `i` made by `init(i)`.
    pub fn new_shared(init: impl FnMut(usize) -> T) -> Self {
        Self::shared_with_count(stripe_count(), init)
    }

    /// `count` cells (rounded up to a power of two, at most [`MAX_STRIPES`]), each in an
    /// [`Arc`] of its own, cell `i` made by `init(i)`.
    pub fn shared_with_count(count: usize, mut init: impl FnMut(usize) -> T) -> Self {
        Self::build(count, |i| Arc::new(CachePadded::new(init(i))))
    }
}

impl<T> Stripes<T> {
    fn build(count: usize, init: impl FnMut(usize) -> T) -> Self {
        let count = count.clamp(1, MAX_STRIPES).next_power_of_two();
        Stripes {
            cells: (0..count).map(init).collect(),
            mask: count - 1,
        }
    }

    /// The calling thread's cell.
    #[inline]
    pub fn local(&self) -> &T {
        local(&self.cells)
    }

    /// The cell of thread index `index` (any number: it is taken modulo the count).
    #[inline]
    pub fn get(&self, index: usize) -> &T {
        &self.cells[index & self.mask]
    }

    /// The calling thread's cell if no other live thread writes it: its index is below the
    /// count, so the cell is the thread's alone until it exits (then the next thread to take the
    /// index inherits it, and sees every write made to it). The owner may update its cell with
    /// a plain load and store instead of a locked read-modify-write. `None` for a thread with a
    /// shared index, or one past the count.
    #[inline]
    pub fn owned(&self) -> Option<&T> {
        match self.cells.get(raw_index()) {
            Some(cell) => Some(cell),
            None => self.owned_slow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn owned_slow(&self) -> Option<&T> {
        self.cells.get(thread_index())
    }

    /// How many cells (a power of two).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Never: there is at least one cell.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Every cell, in index order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.cells.iter()
    }

    /// As many cells, each made by `f` from the cell at the same index.
    ///
    /// ```
    /// use battlement_core::stripe::Stripes;
    ///
    /// let stripes = Stripes::new(|i| i);
    /// let doubled = stripes.map(|cell| **cell * 2);
    /// assert_eq!(doubled.len(), stripes.len());
    /// assert!(doubled.iter().enumerate().all(|(i, cell)| *cell == 2 * i));
    /// ```
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Stripes<U> {
        Stripes {
            cells: self.cells.iter().map(f).collect(),
            mask: self.mask,
        }
    }
}

impl<'a, T> IntoIterator for &'a Stripes<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A counter that many threads increment without sharing a cache line or taking a locked
/// instruction: a thread that owns a cell ([`Stripes::owned`]) adds to it with a plain load and
/// store; any other adds to one shared overflow cell. [`sum`](Self::sum) adds them up.
///
/// ```
/// use battlement_core::stripe::StripedCounter;
/// use std::sync::Arc;
///
/// let calls = Arc::new(StripedCounter::new());
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let calls = calls.clone();
///         std::thread::spawn(move || (0..1000).for_each(|_| calls.increment()))
///     })
///     .collect();
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// assert_eq!(calls.sum(), 4000);
/// ```
pub struct StripedCounter {
    stripes: Stripes<CachePadded<AtomicU64>>,
    overflow: CachePadded<AtomicU64>,
}

impl StripedCounter {
    /// A counter at zero, with [`stripe_count`] cells.
    pub fn new() -> Self {
        Self::with_count(stripe_count())
    }

    fn with_count(count: usize) -> Self {
        StripedCounter {
            stripes: Stripes::with_count(count, |_| AtomicU64::new(0)),
            overflow: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        match self.stripes.owned() {
            // This thread is the cell's only writer: a plain load and store cannot lose an
            // increment, and readers only ever see a value it held.
            Some(cell) => cell.store(cell.load(Relaxed) + 1, Relaxed),
            None => {
                self.overflow.fetch_add(1, Relaxed);
            }
        }
    }

    /// The total so far (increments made concurrently may or may not be included).
    pub fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|c| c.load(Relaxed))
            .fold(self.overflow.load(Relaxed), u64::wrapping_add)
    }
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StripedCounter").field(&self.sum()).finish()
    }
}

/// A shared value's per-thread handles, as a circuit breaker or a bulkhead keeps them: one
/// [`Arc`] per stripe of threads, so that a call takes its thread's handle (a reference count on
/// a cache line no other core writes) instead of the value's own.
///
/// The list of shards is itself shared by every clone of the handle: cloning a handle counts
/// a reference on it, a word every core's clones write. [`leak`](Self::leak) keeps the list
/// for the rest of the program, and clones of a leaked `Shards` copy a pointer instead.
///
/// ```
/// use battlement_core::stripe::Shards;
///
/// let shards = Shards::new(|index| index * 10);
/// let call = shards.local(); // the calling thread's shard, counted on its own line
/// assert_eq!(**call % 10, 0);
/// assert!(shards.is_shared());
/// drop(call);
/// assert!(!shards.is_shared());
///
/// let leaked = shards.leak();
/// let references = leaked.references();
/// let clone = leaked.clone(); // a pointer copy
/// let call = leaked.local(); // a pointer copy too
/// assert_eq!(leaked.references(), references);
/// assert!(clone.is_leaked() && clone.is_shared() && call.is_leaked());
/// ```
pub struct Shards<T: 'static>(Handle<[Arc<CachePadded<T>>]>);

impl<T> Shards<T> {
    /// [`stripe_count`] shards, shard `i` made by `init(i)`.
    pub fn new(init: impl FnMut(usize) -> T) -> Self {
        Self::with_count(stripe_count(), init)
    }

    /// `count` shards (at least one), shard `i` made by `init(i)`.
    pub fn with_count(count: usize, mut init: impl FnMut(usize) -> T) -> Self {
        let shards: Arc<[Arc<CachePadded<T>>]> = (0..count.max(1))
            .map(|i| Arc::new(CachePadded::new(init(i))))
            .collect();
        Shards(shards.into())
    }

    /// Every shard, in index order.
    #[inline]
    pub fn all(&self) -> &[Arc<CachePadded<T>>] {
        &self.0
    }

    /// A handle on the calling thread's shard, for a call's future to keep: a reference
    /// counted on the shard's own line, or once these shards are [leaked](Self::leak) a
    /// pointer (the leaked list keeps every shard for good), which counts nothing.
    #[inline]
    pub fn local(&self) -> Handle<CachePadded<T>> {
        match self.0.as_static() {
            Some(all) => Handle::from_static(&**local(all)),
            None => Handle::from(local(self.all()).clone()),
        }
    }

    /// These shards' list kept for the rest of the program (never freed): a handle whose
    /// clones copy a pointer, and whose calls' handles on their shards copy a pointer too.
    pub fn leak(&self) -> Self {
        Shards(self.0.leak())
    }

    /// Whether these shards were [leaked](Self::leak).
    pub fn is_leaked(&self) -> bool {
        self.0.is_leaked()
    }

    /// Whether anything but this handle holds the shards: a clone of it, a call's reference,
    /// or (always, once leaked) the program.
    pub fn is_shared(&self) -> bool {
        match self.0.strong_count() {
            Some(list) => list > 1 || self.all().iter().any(|s| Arc::strong_count(s) > 1),
            None => true,
        }
    }

    /// The reference counts on the list of shards (none once leaked: the list is not counted
    /// any more) and on the shards, summed: what clones of a handle and calls add to (for tests
    /// and diagnostics; once leaked, neither adds to it).
    pub fn references(&self) -> usize {
        let list = self.0.strong_count().unwrap_or(0);
        list + self.all().iter().map(Arc::strong_count).sum::<usize>()
    }
}

/// A clone of a leaked `Shards` copies the pointer; of another, counts a reference.
impl<T> Clone for Shards<T> {
    #[inline]
    fn clone(&self) -> Self {
        Shards(self.0.clone())
    }
}

impl<T> fmt::Debug for Shards<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shards")
            .field("count", &self.all().len())
            .field("leaked", &self.is_leaked())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::{Barrier, Mutex};

    /// Tests that watch which indices are held run one at a time.
    static INDICES: Mutex<()> = Mutex::new(());

    fn on_threads<R: Send>(n: usize, f: impl Fn() -> R + Sync) -> Vec<R> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n).map(|_| s.spawn(&f)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn counts_every_increment_across_threads() {
        let _serial = INDICES.lock().unwrap_or_else(|e| e.into_inner());
        // Two cells and twelve threads: owners and the overflow cell both count.
        let counter = StripedCounter::with_count(2);
        on_threads(12, || (0..1000).for_each(|_| counter.increment()));
        assert_eq!(counter.sum(), 12_000);
    }

    #[test]
    fn live_threads_hold_distinct_indices_and_hand_them_back_on_exit() {
        let _serial = INDICES.lock().unwrap_or_else(|e| e.into_inner());
        let barrier = Barrier::new(8);
        // All eight alive at once: eight distinct indices.
        let mut indices = on_threads(8, || {
            let i = thread_index();
            barrier.wait();
            i
        });
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), 8);
        assert!(indices.iter().all(|&i| i < MAX_STRIPES));
        // They have exited: their indices are free again.
        assert!(indices.iter().all(|&i| !index::is_held(i)));
        // A new thread takes the lowest free index: no higher than the lowest just freed.
        let next = on_threads(1, thread_index)[0];
        assert!(next <= indices[0], "{next} > {}", indices[0]);
    }

    #[test]
    fn a_new_owner_continues_the_cell_of_the_index_it_takes_over() {
        let _serial = INDICES.lock().unwrap_or_else(|e| e.into_inner());
        let counter = StripedCounter::with_count(MAX_STRIPES);
        for _ in 0..10 {
            on_threads(1, || (0..100).for_each(|_| counter.increment()));
        }
        assert_eq!(counter.sum(), 1000);
        // Sequential threads reuse an index: the counts sit in few cells, not ten.
        let used = counter
            .stripes
            .iter()
            .filter(|c| c.load(Relaxed) > 0)
            .count();
        assert!(used < 10, "{used} cells used by ten sequential threads");
    }

    #[test]
    fn writes_from_thread_local_destructors_still_count() {
        struct Late<'a>(&'a StripedCounter);
        impl Drop for Late<'_> {
            fn drop(&mut self) {
                self.0.increment();
            }
        }
        thread_local! {
            static LATE: std::cell::RefCell<Option<Late<'static>>> = const { std::cell::RefCell::new(None) };
        }
        let _serial = INDICES.lock().unwrap_or_else(|e| e.into_inner());
        let counter: &'static StripedCounter = Box::leak(Box::new(StripedCounter::new()));
        std::thread::spawn(move || {
            // Registered before the index's hand-back, so destroyed after it (reverse order).
            LATE.with(|l| *l.borrow_mut() = Some(Late(counter)));
            counter.increment();
        })
        .join()
        .unwrap();
        assert_eq!(counter.sum(), 2);
    }

    #[test]
    fn a_cell_is_owned_by_one_live_thread_at_most() {
        let _serial = INDICES.lock().unwrap_or_else(|e| e.into_inner());
        let cells = Stripes::with_count(2, |i| i);
        let barrier = Barrier::new(6);
        let owners = on_threads(6, || {
            let owned = cells.owned().map(|c| **c);
            assert_eq!(owned.is_some(), thread_index() < 2);
            barrier.wait();
            owned
        });
        let mut owned: Vec<_> = owners.into_iter().flatten().collect();
        let n = owned.len();
        owned.sort_unstable();
        owned.dedup();
        assert_eq!(owned.len(), n, "two live threads own one cell");
        assert!(n <= 2);
    }

    #[test]
    fn cells_are_a_power_of_two_within_the_cap() {
        assert_eq!(Stripes::with_count(0, |_| ()).len(), 1);
        assert_eq!(Stripes::with_count(3, |_| ()).len(), 4);
        assert_eq!(Stripes::with_count(1000, |_| ()).len(), MAX_STRIPES);
        let s = Stripes::new_shared(|i| i);
        assert_eq!(s.len(), stripe_count());
        assert_eq!(
            ***s.get(s.len() + 1),
            1,
            "indices are taken modulo the count"
        );
    }
}
