//! Retry budgets: [`RetryBudget`], with the semantics of tower's `TpsBudget` and no lock on the
//! request path, and tower's [`Budget`] trait and [`TpsBudget`], for
//! [`custom_budget`](crate::RetryPolicyBuilder::custom_budget).

pub use tower::retry::budget::{Budget, TpsBudget};

use crate::seq::SeqWords;
use battlement_core::stripe::{CachePadded, Stripes};
use battlement_core::ConfigError;
use std::fmt;
use std::sync::atomic::{
    AtomicI64, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Windows a deposit counts for (the ttl is cut into this many), as in tower's `TpsBudget`.
const WINDOWS: u64 = 10;
/// Slots per stripe: the current window and the [`WINDOWS`] before it.
const SLOTS: usize = WINDOWS as usize + 1;
/// A slot that has never been written.
const EMPTY: u64 = u64::MAX;
/// The most deposits a thread makes on one reading of the clock.
const MAX_BATCH: u32 = 64;
/// How long a batch of deposits on one reading of the clock should last, at most (in
/// nanoseconds): a thousandth of the shortest window (100 ms).
const BATCH_SPAN: u64 = 100_000;

/// A retry budget: every request deposits, every retry withdraws, and a retry is allowed while
/// the deposits of the last `ttl` (plus a reserve of `min_per_sec` per second) cover it.
///
/// It keeps the parameters and the arithmetic of tower's
/// [`TpsBudget`]: `ratio` retries per request (`0.2`: one
/// retry per five requests; up to `1000.0`), `min_per_sec` retries per second whatever the
/// traffic, deposits counted for `ttl` (1 s to 60 s) in ten windows. What differs is the cost
/// of a deposit, which every request pays: tower's locks a `Mutex` and adds to one shared
/// counter; this one adds to a slot of the calling thread's own stripe (cache-line padded), so
/// requests on different threads write different cache lines and nothing waits. A withdrawal,
/// which only a retry makes, sums the stripes.
///
/// Reading the clock is most of a deposit's cost, so a thread that deposits often reads it
/// once per batch of deposits: the batch doubles (up to 64) while a batch lasts under 50 µs
/// and halves when it lasts over 100 µs, so a deposit is counted in the window of a clock
/// reading at most about 100 µs old (a window is at least 100 ms). When traffic stops in the
/// middle of a batch, the rest of that batch (at most 63 deposits per thread) may later count in
/// the window the batch began in: earlier, never later, so the budget may allow fewer retries,
/// never more. A clock that does not move between readings (tokio's paused clock) keeps the
/// batch at one: every deposit reads it.
///
/// Like tower's, it is approximate under concurrency: two retries racing for the last token
/// may both get it, and an amount added to a stripe just as another thread opens a new window
/// there may be counted in the new window instead of the old one.
///
/// [`RetryPolicyBuilder::budget`](crate::RetryPolicyBuilder::budget) builds one; share one
/// between policies with [`custom_budget`](crate::RetryPolicyBuilder::custom_budget).
///
/// ```
/// use battlement_retry::RetryBudget;
/// use battlement_retry::budget::Budget;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // One retry per two requests, no reserve.
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
/// assert!(!budget.withdraw(), "nothing deposited yet");
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw(), "spent");
/// # }
/// ```
pub struct RetryBudget {
    /// Each thread's slots and clock cache; a thread writes only its own stripe, with plain
    /// loads and stores.
    stripes: Stripes<CachePadded<Stripe>>,
    /// The slots of threads without a stripe of their own, written with atomic additions.
    overflow: CachePadded<[Slot; SLOTS]>,
    origin: Instant,
    /// The window's length and a shift, both in nanoseconds: the window `now` falls in is
    /// `(now - origin + shift) / window`. A reload that changes the ttl sets both at once, the
    /// shift chosen so that windows keep counting up.
    clock: SeqWords<2>,
    reserve: AtomicI64,
    deposit_amount: AtomicI64,
    withdraw_amount: AtomicI64,
}

/// The amounts a budget's settings give: (reserve, deposit, withdrawal), as tower's.
fn amounts(ttl: Duration, min_per_sec: u32, ratio: f32) -> (i64, i64, i64) {
    let (deposit_amount, withdraw_amount) = if ratio == 0.0 {
        (0, 1)
    } else if ratio <= 1.0 {
        (1, (1.0 / ratio) as i64)
    } else {
        (1000, (1000.0 / ratio) as i64)
    };
    let reserve = i64::from(min_per_sec)
        .saturating_mul(ttl.as_secs() as i64)
        .saturating_mul(withdraw_amount);
    (reserve, deposit_amount, withdraw_amount)
}

/// The net deposits of one window (`epoch`) on one stripe. Its atomics are loom's in a model
/// check (`loom_tests` below).
struct Slot {
    epoch: battlement_core::sync::AtomicU64,
    amount: battlement_core::sync::AtomicI64,
}

impl Slot {
    fn empty() -> Self {
        Slot {
            epoch: battlement_core::sync::AtomicU64::new(EMPTY),
            amount: battlement_core::sync::AtomicI64::new(0),
        }
    }
}

/// One thread's slots (the current window and the [`WINDOWS`] before it) and its reading of
/// the clock, which its next deposits reuse.
struct Stripe {
    slots: [Slot; SLOTS],
    /// The window of the latest reading.
    epoch: AtomicU64,
    /// Its slot: `epoch % SLOTS`, worked out once per reading rather than per deposit.
    slot: AtomicU32,
    /// When the latest reading was (nanoseconds since the budget's origin).
    read_at: AtomicU64,
    /// Deposits that may still use it.
    left: AtomicU32,
    /// Deposits per reading.
    batch: AtomicU32,
}

/// Adds `amount` to window `epoch` in `slots`, which the calling thread alone writes: plain
/// loads and stores.
#[inline]
fn add_owned(slots: &[Slot; SLOTS], amount: i64, epoch: u64) {
    add_owned_at(&slots[(epoch % SLOTS as u64) as usize], amount, epoch);
}

/// Adds `amount` to window `epoch` in `slot` (its slot in a ring the calling thread alone
/// writes).
#[inline]
fn add_owned_at(slot: &Slot, amount: i64, epoch: u64) {
    let held = slot.epoch.load(Relaxed);
    if held == epoch {
        slot.amount
            .store(slot.amount.load(Relaxed) + amount, Relaxed);
    } else if held == EMPTY || held < epoch {
        // The slot's window has aged out: this is the first amount of the new one. Released
        // after it, so a reader that sees the new window sees the new amount (or a later one),
        // never the old window's.
        slot.amount.store(amount, Relaxed);
        slot.epoch.store(epoch, Release);
    }
    // Otherwise `epoch` has left the ring (a later window holds the slot): it no longer counts.
}

/// Adds `amount` to window `epoch` in `slots`, which other threads write too.
fn add_shared(slots: &[Slot; SLOTS], amount: i64, epoch: u64) {
    let slot = &slots[(epoch % SLOTS as u64) as usize];
    let held = slot.epoch.load(Relaxed);
    if held != EMPTY && held > epoch {
        // The time was read before another thread moved the slot on to a later window:
        // `epoch` has left the ring, so its amount no longer counts.
        return;
    }
    if held != epoch {
        // The slot holds a window that has aged out: this is the first write of the new
        // one. Take the old amount out, rather than overwrite it, so that an amount another
        // thread adds for the new window meanwhile is kept.
        let stale = slot.amount.load(Relaxed);
        if slot
            .epoch
            .compare_exchange(held, epoch, Relaxed, Relaxed)
            .is_ok()
        {
            slot.amount.fetch_sub(stale, Relaxed);
        }
    }
    slot.amount.fetch_add(amount, Relaxed);
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request (`0.0 ..= 1000.0`) plus `min_per_sec`
    /// retries per second, deposits counting for `ttl` (`1 s ..= 60 s`).
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f32) -> Result<Self, ConfigError> {
        Self::with_stripes(
            battlement_core::stripe::stripe_count(),
            ttl,
            min_per_sec,
            ratio,
        )
    }

    fn with_stripes(
        stripes: usize,
        ttl: Duration,
        min_per_sec: u32,
        ratio: f32,
    ) -> Result<Self, ConfigError> {
        Self::check(ttl, min_per_sec, ratio)?;
        let (reserve, deposit_amount, withdraw_amount) = amounts(ttl, min_per_sec, ratio);
        Ok(RetryBudget {
            stripes: Stripes::with_count(stripes, |_| Stripe {
                slots: std::array::from_fn(|_| Slot::empty()),
                epoch: AtomicU64::new(0),
                slot: AtomicU32::new(0),
                read_at: AtomicU64::new(0),
                left: AtomicU32::new(0),
                batch: AtomicU32::new(1),
            }),
            overflow: CachePadded::new(std::array::from_fn(|_| Slot::empty())),
            origin: Instant::now(),
            clock: SeqWords::new([(ttl.as_nanos() / u128::from(WINDOWS)) as u64, 0]),
            reserve: AtomicI64::new(reserve),
            deposit_amount: AtomicI64::new(deposit_amount),
            withdraw_amount: AtomicI64::new(withdraw_amount),
        })
    }

    /// Checks a budget's settings, as [`new`](Self::new) does.
    pub(crate) fn check(ttl: Duration, min_per_sec: u32, ratio: f32) -> Result<(), ConfigError> {
        let err = |setting: &'static str, value: &dyn fmt::Debug, why: &'static str| {
            ConfigError::new("retry budget", setting, format!("{value:?}"), why)
        };
        if !(0.0..=1000.0).contains(&ratio) {
            return Err(err(
                "budget ratio",
                &ratio,
                "must be within 0..=1000 (retries per request)",
            ));
        }
        if min_per_sec >= i32::MAX as u32 {
            return Err(err(
                "budget min_per_sec",
                &min_per_sec,
                "must be below i32::MAX",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&ttl) {
            return Err(err("budget ttl", &ttl, "must be within 1s..=60s"));
        }
        Ok(())
    }

    /// Applies new settings (already checked) to the live budget: deposits made so far keep
    /// counting, as amounts of the new settings, until they age out. A new ttl takes effect
    /// from the next window, which starts now.
    pub(crate) fn set(&self, ttl: Duration, min_per_sec: u32, ratio: f32) {
        let (reserve, deposit_amount, withdraw_amount) = amounts(ttl, min_per_sec, ratio);
        self.reserve.store(reserve, Relaxed);
        self.deposit_amount.store(deposit_amount, Relaxed);
        self.withdraw_amount.store(withdraw_amount, Relaxed);
        let window = (ttl.as_nanos() / u128::from(WINDOWS)) as u64;
        let [old_window, old_shift] = self.clock.read();
        if window != old_window {
            let elapsed = self.elapsed_nanos();
            let epoch = elapsed.saturating_add(old_shift) / old_window;
            // The first window under the new length is the one after the current one.
            let shift = (epoch + 1).saturating_mul(window).saturating_sub(elapsed);
            self.clock.write([window, shift]);
        }
    }

    /// Whether a retry asked for now would be refused.
    pub(crate) fn is_spent(&self) -> bool {
        self.balance(self.epoch()) < self.withdraw_amount.load(Relaxed)
    }

    fn elapsed_nanos(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.origin);
        // In 64 bits (enough for 584 years): a 128-bit division is a function call.
        since.as_secs() * 1_000_000_000 + u64::from(since.subsec_nanos())
    }

    /// The window `now` falls in.
    #[inline]
    fn epoch(&self) -> u64 {
        self.epoch_at(self.elapsed_nanos())
    }

    #[inline]
    fn epoch_at(&self, elapsed: u64) -> u64 {
        let [window, shift] = self.clock.read();
        elapsed.saturating_add(shift) / window
    }

    /// Adds `amount` to window `epoch` in this thread's stripe (or the overflow slots).
    #[inline]
    fn add(&self, amount: i64, epoch: u64) {
        match self.stripes.owned() {
            Some(stripe) => add_owned(&stripe.slots, amount, epoch),
            None => add_shared(&self.overflow, amount, epoch),
        }
    }

    /// A deposit of `amount`, in the window of this thread's latest reading of the clock while
    /// its batch lasts (see the type's documentation).
    #[inline]
    fn deposit_amount(&self, amount: i64) {
        let Some(stripe) = self.stripes.owned() else {
            return add_shared(&self.overflow, amount, self.epoch());
        };
        let left = stripe.left.load(Relaxed);
        if left > 0 {
            stripe.left.store(left - 1, Relaxed);
            let slot = stripe.slot.load(Relaxed) as usize;
            add_owned_at(&stripe.slots[slot], amount, stripe.epoch.load(Relaxed));
        } else {
            self.read_clock(stripe, amount);
        }
    }

    /// Reads the clock for a new batch of this thread's deposits, sizes the batch by how long
    /// the last one lasted, and deposits `amount`.
    #[cold]
    #[inline(never)]
    fn read_clock(&self, stripe: &Stripe, amount: i64) {
        let now = self.elapsed_nanos();
        let lasted = now.saturating_sub(stripe.read_at.load(Relaxed));
        let batch = stripe.batch.load(Relaxed);
        let batch = if lasted == 0 {
            // A clock that did not move (paused): no batching.
            1
        } else if lasted < BATCH_SPAN / 2 {
            (batch * 2).min(MAX_BATCH)
        } else if lasted > BATCH_SPAN {
            (batch / 2).max(1)
        } else {
            batch
        };
        let epoch = self.epoch_at(now);
        stripe.batch.store(batch, Relaxed);
        stripe.read_at.store(now, Relaxed);
        stripe.epoch.store(epoch, Relaxed);
        stripe.slot.store((epoch % SLOTS as u64) as u32, Relaxed);
        stripe.left.store(batch - 1, Relaxed);
        add_owned(&stripe.slots, amount, epoch);
    }

    /// The deposits of the current window and the [`WINDOWS`] before it, plus the reserve.
    fn balance(&self, epoch: u64) -> i64 {
        let oldest = epoch.saturating_sub(WINDOWS);
        let mut sum = self.reserve.load(Relaxed);
        let slots = self.stripes.iter().map(|s| &s.slots);
        for stripe in slots.chain([&*self.overflow]) {
            for slot in stripe.iter() {
                let e = slot.epoch.load(Acquire);
                if e != EMPTY && (oldest..=epoch).contains(&e) {
                    sum = sum.saturating_add(slot.amount.load(Relaxed));
                }
            }
        }
        sum
    }
}

impl Budget for RetryBudget {
    #[inline]
    fn deposit(&self) {
        // With no ratio, deposits earn nothing: skip the clock too.
        let amount = self.deposit_amount.load(Relaxed);
        if amount != 0 {
            self.deposit_amount(amount);
        }
    }

    fn withdraw(&self) -> bool {
        let epoch = self.epoch();
        let amount = self.withdraw_amount.load(Relaxed);
        if self.balance(epoch) >= amount {
            self.add(-amount, epoch);
            true
        } else {
            false
        }
    }
}

/// The budget a policy consults: its own [`RetryBudget`] (which a reload may retune, turn on
/// or off), or a custom one fixed at build.
// One per policy, inside its shared state: the own budget's inline overflow slots cost nothing
// worth a box (which would put a pointer on every deposit's path).
#[allow(clippy::large_enum_variant)]
pub(crate) enum BudgetSlot {
    Own {
        budget: RetryBudget,
        on: std::sync::atomic::AtomicBool,
        ttl_nanos: AtomicU64,
    },
    Custom(Arc<dyn Budget + Send + Sync>),
}

impl BudgetSlot {
    /// The policy's own budget, on with these settings or off (with tower's defaults kept
    /// ready for a reload that turns it on).
    pub(crate) fn own(settings: Option<(f32, u32, Duration)>) -> Result<Self, ConfigError> {
        let (ratio, min_per_sec, ttl) = settings.unwrap_or((0.2, 10, Duration::from_secs(10)));
        Ok(BudgetSlot::Own {
            budget: RetryBudget::new(ttl, min_per_sec, ratio)?,
            on: std::sync::atomic::AtomicBool::new(settings.is_some()),
            ttl_nanos: AtomicU64::new(ttl.as_nanos() as u64),
        })
    }

    /// Deposits for a new request, if a budget is on: with none, one load and a branch. Kept
    /// inline on every request's path, the deposit too (its batch's fast path is a few loads
    /// and stores; a call to it out of line cost a tenth of a budgeted request's overhead).
    #[inline(always)]
    pub(crate) fn deposit(&self) {
        match self {
            BudgetSlot::Own { budget, on, .. } => {
                if on.load(Relaxed) {
                    budget.deposit();
                }
            }
            BudgetSlot::Custom(budget) => budget.deposit(),
        }
    }

    /// Whether requests deposit: a custom budget, or the own one while it is on.
    pub(crate) fn deposits(&self) -> bool {
        match self {
            BudgetSlot::Own { on, .. } => on.load(Relaxed),
            BudgetSlot::Custom(_) => true,
        }
    }

    /// Withdraws for a retry: `true` if allowed (always, with no budget on).
    pub(crate) fn withdraw(&self) -> bool {
        match self {
            BudgetSlot::Own { budget, on, .. } => !on.load(Relaxed) || budget.withdraw(),
            BudgetSlot::Custom(budget) => budget.withdraw(),
        }
    }

    /// For the policy's own budget when on: whether it would refuse a retry now, and its ttl.
    pub(crate) fn spent(&self) -> Option<(bool, Duration)> {
        match self {
            BudgetSlot::Own {
                budget,
                on,
                ttl_nanos,
            } => Some((
                on.load(Relaxed) && budget.is_spent(),
                Duration::from_nanos(ttl_nanos.load(Relaxed)),
            )),
            BudgetSlot::Custom(_) => None,
        }
    }

    /// Applies checked settings to the policy's own budget (`None`: off).
    pub(crate) fn set(&self, settings: Option<(f32, u32, Duration)>) {
        if let BudgetSlot::Own {
            budget,
            on,
            ttl_nanos,
        } = self
        {
            match settings {
                Some((ratio, min_per_sec, ttl)) => {
                    budget.set(ttl, min_per_sec, ratio);
                    ttl_nanos.store(ttl.as_nanos() as u64, Relaxed);
                    on.store(true, Relaxed);
                }
                None => on.store(false, Relaxed),
            }
        }
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("window", &Duration::from_nanos(self.clock.read()[0]))
            .field("reserve", &self.reserve.load(Relaxed))
            .field("deposit_amount", &self.deposit_amount.load(Relaxed))
            .field("withdraw_amount", &self.withdraw_amount.load(Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The slots' accounting under every interleaving loom finds: a thread's own slots (plain
    //! stores, one writer, readers alongside) and the shared overflow slots (atomic additions
    //! and the compare-and-swap that moves a slot on to a new window).
    use super::*;
    use loom::thread;
    use std::sync::Arc;

    fn slots(epoch: u64, amount: i64) -> Arc<[Slot; SLOTS]> {
        let slots: [Slot; SLOTS] = std::array::from_fn(|_| Slot::empty());
        slots[0].epoch.store(epoch, Relaxed);
        slots[0].amount.store(amount, Relaxed);
        Arc::new(slots)
    }

    #[test]
    fn loom_a_reader_never_counts_an_old_windows_amount_in_the_new_one() {
        loom::model(|| {
            // Window 0 holds 2; the owner adds 1 to window 11, which takes over slot 0.
            let s = slots(0, 2);
            let owner = {
                let s = s.clone();
                thread::spawn(move || add_owned(&s, 1, 11))
            };
            let e = s[0].epoch.load(Acquire);
            let a = s[0].amount.load(Relaxed);
            match e {
                0 => assert!(a == 2 || a == 1, "window 0 read {a}"),
                11 => assert_eq!(a, 1, "window 11 read the old amount"),
                e => panic!("epoch {e}"),
            }
            owner.join().unwrap();
            assert_eq!(s[0].epoch.load(Relaxed), 11);
            assert_eq!(s[0].amount.load(Relaxed), 1);
        });
    }

    #[test]
    fn loom_two_threads_moving_a_shared_slot_on_take_the_old_amount_out_once() {
        loom::model(|| {
            let s = slots(0, 5);
            let t = {
                let s = s.clone();
                thread::spawn(move || add_shared(&s, 1, 11))
            };
            add_shared(&s, 1, 11);
            t.join().unwrap();
            assert_eq!(s[0].epoch.load(Relaxed), 11);
            assert_eq!(s[0].amount.load(Relaxed), 2);
        });
    }

    #[test]
    fn loom_an_add_to_the_old_window_is_dropped_or_moved_never_lost_twice() {
        loom::model(|| {
            // One thread adds to window 0 while another moves the slot on to window 11: the
            // first amount ends up dropped (it came too late) or counted in window 11, and the
            // old window's 5 is taken out exactly once.
            let s = slots(0, 5);
            let t = {
                let s = s.clone();
                thread::spawn(move || add_shared(&s, 1, 0))
            };
            add_shared(&s, 1, 11);
            t.join().unwrap();
            assert_eq!(s[0].epoch.load(Relaxed), 11);
            let a = s[0].amount.load(Relaxed);
            assert!(a == 1 || a == 2, "window 11 holds {a}");
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use tower::retry::budget::TpsBudget;

    /// Drives our budget and tower's through the same deposits and withdrawals (no time
    /// passing: tower's windows start when it notices one has ended, ours on fixed
    /// boundaries) and requires the same answers: the same amounts and reserve.
    #[tokio::test(start_paused = true)]
    async fn answers_as_towers_tps_budget_does() {
        let settings = [
            (Duration::from_secs(1), 0, 0.5),
            (Duration::from_secs(1), 1, 0.0),
            (Duration::from_secs(10), 2, 0.2),
            (Duration::from_secs(2), 0, 3.0),
            (Duration::from_secs(60), 0, 1.0),
            (Duration::from_secs(5), 3, 0.33),
        ];
        for (seed, (ttl, min_per_sec, ratio)) in settings.into_iter().enumerate() {
            let ours = RetryBudget::new(ttl, min_per_sec, ratio).unwrap();
            let tower = TpsBudget::new(ttl, min_per_sec, ratio);
            let mut rng = fastrand::Rng::with_seed(seed as u64);
            let mut allowed = 0;
            for step in 0..2000 {
                if rng.u8(0..3) < 2 {
                    ours.deposit();
                    tower.deposit();
                } else {
                    let answer = ours.withdraw();
                    assert_eq!(
                        answer,
                        tower.withdraw(),
                        "step {step}: ttl {ttl:?}, min {min_per_sec}, ratio {ratio}"
                    );
                    allowed += usize::from(answer);
                }
            }
            assert!(allowed > 0, "the sequence exercised withdrawals");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_age_out_after_the_ttl() {
        let b = RetryBudget::new(Duration::from_secs(1), 0, 1.0).unwrap();
        b.deposit();
        b.deposit();
        tokio::time::advance(Duration::from_millis(1050)).await;
        assert!(b.withdraw(), "still within the ttl and the current window");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!b.withdraw(), "aged out");
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_paused_clock_every_deposit_reads_it() {
        let b = RetryBudget::new(Duration::from_secs(1), 0, 1.0).unwrap();
        for _ in 0..100 {
            b.deposit();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        // Batched, this deposit would count in the window of the reading before the advance,
        // which has aged out.
        b.deposit();
        assert!(b.withdraw(), "the deposit after the advance counts");
        assert!(!b.withdraw(), "the ones before it have aged out");
    }

    #[test]
    fn a_thread_depositing_often_reads_the_clock_once_per_batch() {
        // As many stripes as there can be: the thread below owns one.
        let stripes = battlement_core::stripe::MAX_STRIPES;
        let b = RetryBudget::with_stripes(stripes, Duration::from_secs(60), 0, 1.0).unwrap();
        let batch = std::thread::spawn(move || {
            for _ in 0..20_000 {
                b.deposit();
            }
            let allowed = (0..20_001).take_while(|_| b.withdraw()).count();
            (b.stripes.owned().map(|s| s.batch.load(Relaxed)), allowed)
        })
        .join()
        .unwrap();
        // Each batch of up to 64 deposits takes far less than the 50 µs after which it stops
        // growing, unless the thread was preempted in the middle of it.
        let (Some(size), _) = batch else {
            panic!("the thread owns a stripe");
        };
        assert!(size > 1, "batch {size}");
        assert_eq!(batch.1, 20_000, "every deposit counts, batched or not");
    }

    #[tokio::test(start_paused = true)]
    async fn batched_deposits_count_in_their_window_as_the_ring_wraps() {
        // A stripe for this thread; windows of 100 ms.
        let stripes = battlement_core::stripe::MAX_STRIPES;
        let b = RetryBudget::with_stripes(stripes, Duration::from_secs(1), 0, 1.0).unwrap();
        // One deposit every 20 µs for 2.55 s: 25.5 windows, the ring of 11 slots wrapping
        // twice, and batches of more than one deposit per reading of the clock.
        let mut batched = false;
        for _ in 0..127_500 {
            b.deposit();
            batched |= b.stripes.owned().expect("a stripe").batch.load(Relaxed) > 1;
            tokio::time::advance(Duration::from_micros(20)).await;
        }
        assert!(batched, "some deposits reused a reading");
        // Windows 15 to 24 (5,000 deposits each) and half of window 25. A batch can put the
        // deposits it makes past a window's end (a few) in the window it began in.
        let allowed = (0..60_000).take_while(|_| b.withdraw()).count();
        assert!(
            (52_450..=52_550).contains(&allowed),
            "{allowed} retries for 52,500 deposits in the ttl"
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let s = Duration::from_secs(1);
        let setting = |r: Result<RetryBudget, ConfigError>| r.unwrap_err().setting().to_owned();
        assert_eq!(setting(RetryBudget::new(s, 0, -0.1)), "budget ratio");
        assert_eq!(setting(RetryBudget::new(s, 0, f32::NAN)), "budget ratio");
        assert_eq!(
            setting(RetryBudget::new(s, u32::MAX, 0.1)),
            "budget min_per_sec"
        );
        assert_eq!(
            setting(RetryBudget::new(Duration::from_millis(999), 0, 0.1)),
            "budget ttl"
        );
    }

    #[test]
    fn deposits_from_many_threads_all_count() {
        let b = std::sync::Arc::new(RetryBudget::new(Duration::from_secs(60), 0, 1.0).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        b.deposit();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // All within the 60 s ttl: every deposit counts, 8000 retries and not one more.
        let allowed = (0..8001).take_while(|_| b.withdraw()).count();
        assert_eq!(allowed, 8000);
    }
}
