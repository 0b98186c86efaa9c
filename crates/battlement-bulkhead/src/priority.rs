//! Load shedding with priority: the priority a call carries, and how queued calls of each
//! priority are served.

use crate::permit::{Shared, MAX_PERMITS};
use battlement_core::sync::Ordering::{AcqRel, Relaxed, SeqCst};

/// How important a call is when the bulkhead is saturated.
///
/// A call that finds a free permit is admitted at once whatever its priority: priority only
/// matters once every permit is taken.
///
/// - [`Critical`](Self::Critical) and [`Normal`](Self::Normal) calls queue while the queue has
///   room (`max_queued`); a [`Sheddable`](Self::Sheddable) call queues only while fewer than
///   `max_queued × sheddable_queue_share` calls wait
///   ([`sheddable_queue_share`](crate::BulkheadBuilder::sheddable_queue_share)), and is
///   otherwise rejected at once with a [`BulkheadFull`](crate::BulkheadFull) whose
///   [`is_shed`](crate::BulkheadFull::is_shed) is true.
/// - A permit freed while calls wait goes to the oldest waiter of the highest priority that has
///   waiters, except that a priority with waiters passed over
///   [`starvation_bound`](crate::BulkheadBuilder::starvation_bound) times in a row is served
///   next (see there for the bound).
///
/// The default is `Normal`, and a bulkhead whose calls all have one priority serves them in
/// arrival order, as without priorities. Set it per request with
/// [`BulkheadLayer::priority_fn`](crate::BulkheadLayer::priority_fn) (for an `http::Request`,
/// read it from the request's extensions there). The priority is only computed for calls that
/// find no free permit.
///
/// ```
/// use battlement_bulkhead::Priority;
///
/// assert_eq!(Priority::default(), Priority::Normal);
/// assert!(Priority::Critical > Priority::Normal && Priority::Normal > Priority::Sheddable);
/// assert_eq!(Priority::Sheddable.as_str(), "sheddable");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Served first; never shed while the queue has room.
    Critical,
    /// The default: queued while the queue has room, served after critical calls.
    #[default]
    Normal,
    /// Shed first: queued only while the queue is less than its share full, served last.
    Sheddable,
}

impl Priority {
    /// The lowercase name (`critical`, `normal`, `sheddable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Sheddable => "sheddable",
        }
    }

    /// The class index: 0 is served first.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl PartialOrd for Priority {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Priority {
    /// `Critical > Normal > Sheddable`.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.index().cmp(&self.index())
    }
}

/// How a service finds a request's [`Priority`]: `()` (every call is `Normal`) or a closure
/// wrapped in [`PriorityFn`] (made by
/// [`BulkheadLayer::priority_fn`](crate::BulkheadLayer::priority_fn)).
pub trait Prioritize<Req> {
    /// The priority of `req`; asked only when no permit is free.
    fn priority(&self, req: &Req) -> Priority;
}

impl<Req> Prioritize<Req> for () {
    #[inline]
    fn priority(&self, _: &Req) -> Priority {
        Priority::Normal
    }
}

/// A closure giving each request its [`Priority`]; see
/// [`BulkheadLayer::priority_fn`](crate::BulkheadLayer::priority_fn).
///
/// ```
/// use battlement_bulkhead::{Prioritize, Priority, PriorityFn};
///
/// let p = PriorityFn(|path: &&str| if path.starts_with("/health") { Priority::Critical } else { Priority::Normal });
/// assert_eq!(p.priority(&"/health/ready"), Priority::Critical);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PriorityFn<F>(pub F);

impl<Req, F: Fn(&Req) -> Priority> Prioritize<Req> for PriorityFn<F> {
    #[inline]
    fn priority(&self, req: &Req) -> Priority {
        (self.0)(req)
    }
}

/// The number of priority classes.
pub(crate) const CLASSES: usize = 3;

impl Shared {
    /// The class a permit freed now goes to: the highest priority with waiters, unless a lower
    /// one with waiters has been passed over `starvation_bound` times (then the lowest such).
    /// `None` if no class has waiters. Only called while calls are queued.
    fn pick(&self) -> Option<usize> {
        let waiting: [bool; CLASSES] =
            std::array::from_fn(|c| self.class_waiters[c].load(SeqCst) != 0);
        let bound = self.starvation_bound.load(Relaxed);
        if let Some(c) = (0..CLASSES)
            .rev()
            .find(|&c| waiting[c] && self.passed_over[c].load(Relaxed) >= bound)
        {
            self.passed_over[c].store(0, Relaxed);
            return Some(c);
        }
        let top = (0..CLASSES).find(|&c| waiting[c])?;
        self.passed_over[top].store(0, Relaxed);
        for (waits, passed) in waiting.iter().zip(&self.passed_over).skip(top + 1) {
            if *waits {
                passed.fetch_add(1, Relaxed);
            }
        }
        Some(top)
    }

    /// Hands `n` permits to the queue, one at a time, each to the class [`pick`](Self::pick)
    /// chooses. A permit given to a class whose waiters have all left meanwhile is taken back
    /// and given again.
    #[cold]
    pub(crate) fn hand_off(&self, n: usize) {
        for _ in 0..n {
            loop {
                if let Some(c) = self.pick() {
                    self.queues[c].add_permits(1);
                    self.reclaim_class(c);
                    break;
                }
                // Queued calls are counted in their class before the word, and leave it after:
                // a waiter in the word is in a class too, unless it has left the word since.
                if self.free_up(1) {
                    break;
                }
                // Read the word's latest value with a read-modify-write: it synchronises with the
                // waiter's entry, so the next pick sees the class it joined first.
                self.word.fetch_add(0, AcqRel);
            }
        }
    }

    /// A call joins class `c` (before it joins the word's count of waiters).
    pub(crate) fn join_class(&self, c: usize) {
        self.class_waiters[c].fetch_add(1, SeqCst);
    }

    /// A call leaves class `c` (after it left the word's count, or did not join it). The last
    /// one out takes back any permit left in the class's queue and gives it again.
    pub(crate) fn leave_class(&self, c: usize) {
        if self.class_waiters[c].fetch_sub(1, SeqCst) == 1 {
            self.reclaim_class(c);
        }
    }

    /// Takes back permits stranded in class `c`'s queue once it has no waiter, and gives them
    /// again (free, or to another class).
    #[cold]
    fn reclaim_class(&self, c: usize) {
        // A read-modify-write reads the latest count.
        if self.class_waiters[c].fetch_add(0, SeqCst) != 0 {
            return;
        }
        let n = self.queues[c].forget_permits(MAX_PERMITS);
        if n != 0 {
            // A waiter that joined `c` meanwhile is in the word too, or will find them free.
            self.give(n);
        }
    }
}
