//! The policy's counters, its read-out ([`RetryMetrics`]), its health snapshot and what it
//! exports ([`FAMILIES`]).

use crate::budget::BudgetSlot;
use crate::settings::LiveSettings;
use crate::RetryPolicy;
use battlement_core::export::{Family, MetricsVisitor};
use battlement_core::stripe::{self, CachePadded, Stripes};
use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus, Metric};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the policy counts; each event is written by the one path that sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    SucceededWithoutRetry = 0,
    SucceededAfterRetry = 1,
    FailedWithoutRetry = 2,
    FailedAfterRetry = 3,
    Retries = 4,
    NotRetryable = 5,
    MaxAttempts = 6,
    TimeLimit = 7,
    RetryAfter = 8,
    Budget = 9,
    SentOnce = 10,
    BodyTooLarge = 11,
}

const COUNTS: usize = 12;

/// Why a call ended in failure with no further attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    NotRetryable,
    MaxAttempts,
    TimeLimit,
    RetryAfter,
    Budget,
    BodyTooLarge,
}

/// One thread's counters, on cache lines of their own.
type Cell = Arc<CachePadded<[AtomicU64; COUNTS]>>;

/// The policy's counters: one cell of [`COUNTS`] words per thread, on cache lines of its own,
/// and one shared cell for threads without a cell of their own.
pub(crate) struct Counts(Stripes<Cell>, CachePadded<[AtomicU64; COUNTS]>);

/// A stripe's cell of a policy's counters, kept where a request reaches it in one step (beside
/// a retry service's per-stripe state) instead of through the policy, its counters and the
/// thread's index, a chain of dependent loads that cost a first attempt about 6 ns.
pub(crate) struct StripeCounts {
    owner: stripe::Owner,
    cell: Cell,
}

impl StripeCounts {
    /// Counts a call that ends with a result that is not a failure, after `attempt` attempts,
    /// in this cell if the calling thread owns it (a plain load and store): `false` if it does
    /// not, for the caller to count it through the policy's core ([`Core::succeeded`]).
    #[inline]
    pub(crate) fn succeeded(&self, attempt: u32) -> bool {
        if !self.owner.is_current() {
            return false;
        }
        let count = &self.cell[usize::from(attempt > 1)];
        count.store(count.load(Relaxed) + 1, Relaxed);
        true
    }
}

impl Counts {
    fn new() -> Self {
        Counts(
            Stripes::new_shared(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))),
        )
    }

    /// The cell of stripe `index` (taken modulo the count, as [`Stripes::get`] does).
    pub(crate) fn stripe(&self, index: usize) -> StripeCounts {
        StripeCounts {
            owner: stripe::Owner::new(index & (self.0.len() - 1))
                .expect("a striped value has at most MAX_STRIPES cells"),
            cell: self.0.get(index).clone(),
        }
    }

    /// Adds one to `count` in the calling thread's cell: a plain load and store in a cell the
    /// thread owns (as `StripedCounter` does), an atomic add in the shared overflow cell
    /// otherwise (never in another thread's cell, whose owner's plain store could overwrite
    /// the add).
    #[inline]
    pub(crate) fn add(&self, count: usize) {
        match self.0.owned() {
            Some(cell) => cell[count].store(cell[count].load(Relaxed) + 1, Relaxed),
            None => {
                self.1[count].fetch_add(1, Relaxed);
            }
        }
    }

    fn sum(&self, count: Count) -> u64 {
        self.0
            .iter()
            .map(|cell| &**cell)
            .chain(std::iter::once(&self.1))
            .map(|cell| cell[count as usize].load(Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// What every clone of a policy shares and a registry holds: its name, its live settings, its
/// budget and its counters.
pub(crate) struct Core {
    pub(crate) name: Arc<str>,
    pub(crate) settings: LiveSettings,
    pub(crate) budget: BudgetSlot,
    pub(crate) counts: Counts,
    created: Instant,
    /// When the budget last refused a retry: nanoseconds since `created`, plus one (0: never).
    /// Written by refusals only.
    last_refusal: AtomicU64,
    /// What a request's first attempt has to do before it is sent, as [`Core::first`] tells.
    first: AtomicU8,
}

/// A [`Core::first`] bit: the first attempt deposits in the budget.
pub(crate) const DEPOSITS: u8 = 1;
/// A [`Core::first`] bit: the first attempt notes when it started, for the time limit.
pub(crate) const TIMED: u8 = 2;

impl Core {
    pub(crate) fn new(name: Arc<str>, settings: LiveSettings, budget: BudgetSlot) -> Self {
        let core = Core {
            name,
            settings,
            budget,
            counts: Counts::new(),
            created: Instant::now(),
            last_refusal: AtomicU64::new(0),
            first: AtomicU8::new(0),
        };
        core.refresh();
        core
    }

    /// What a request's first attempt has to do before it is sent: [`DEPOSITS`], [`TIMED`],
    /// both or (without a budget or a time limit) neither, read in one load instead of the
    /// budget's and the settings' own words. A request that starts while a reload changes them
    /// may see either side of the change.
    #[inline(always)]
    pub(crate) fn first(&self) -> u8 {
        self.first.load(Relaxed)
    }

    /// Sets [`first`](Self::first) from the budget and the settings as they stand (at build,
    /// and after each reload).
    pub(crate) fn refresh(&self) {
        let deposits = if self.budget.deposits() { DEPOSITS } else { 0 };
        let timed = if self.settings.has_time_limit() {
            TIMED
        } else {
            0
        };
        self.first.store(deposits | timed, Relaxed);
    }

    /// Nanoseconds since this core was made, plus one (never 0): a request's start, for its
    /// time limit.
    pub(crate) fn clock(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.created)
            .as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    /// Counts a call that ends with a result that is not a failure, after `attempt` attempts.
    #[inline]
    pub(crate) fn succeeded(&self, attempt: u32) {
        self.counts.add(usize::from(attempt > 1));
    }

    /// Counts a call that ends in failure after `attempt` attempts, and why no other was made.
    #[cold]
    pub(crate) fn gave_up(&self, attempt: u32, why: GiveUp) {
        self.counts.add(if attempt > 1 {
            Count::FailedAfterRetry
        } else {
            Count::FailedWithoutRetry
        } as usize);
        let reason = match why {
            GiveUp::NotRetryable => Count::NotRetryable,
            GiveUp::MaxAttempts => Count::MaxAttempts,
            GiveUp::TimeLimit => Count::TimeLimit,
            GiveUp::RetryAfter => Count::RetryAfter,
            GiveUp::BodyTooLarge => Count::BodyTooLarge,
            GiveUp::Budget => {
                let at = u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
                self.last_refusal.fetch_max(at + 1, Relaxed);
                Count::Budget
            }
        };
        self.counts.add(reason as usize);
    }

    /// How long ago the budget last refused a retry.
    fn since_refusal(&self) -> Option<Duration> {
        match self.last_refusal.load(Relaxed) {
            0 => None,
            at => Some(
                self.created
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(at - 1)),
            ),
        }
    }

    /// Whether the budget refuses retries now: it refused one within its ttl (10 s for a custom
    /// budget) and, for the policy's own budget, would refuse one now.
    fn refusing(&self) -> bool {
        let Some(ago) = self.since_refusal() else {
            return false;
        };
        match self.budget.spent() {
            Some((spent, ttl)) => spent && ago <= ttl,
            None => ago <= Duration::from_secs(10),
        }
    }

    pub(crate) fn metrics(&self) -> RetryMetrics {
        let c = |count| self.counts.sum(count);
        RetryMetrics {
            succeeded_without_retry: c(Count::SucceededWithoutRetry),
            succeeded_after_retry: c(Count::SucceededAfterRetry),
            failed_without_retry: c(Count::FailedWithoutRetry),
            failed_after_retry: c(Count::FailedAfterRetry),
            retries: c(Count::Retries),
            not_retryable: c(Count::NotRetryable),
            gave_up_max_attempts: c(Count::MaxAttempts),
            gave_up_time_limit: c(Count::TimeLimit),
            gave_up_retry_after: c(Count::RetryAfter),
            refused_by_budget: c(Count::Budget),
            gave_up_body_too_large: c(Count::BodyTooLarge),
            sent_once: c(Count::SentOnce),
            max_attempts: self.settings.get().max_attempts,
            budget_refusing: self.refusing(),
        }
    }
}

/// A point-in-time view of a [`RetryPolicy`]'s counts, from [`RetryPolicy::metrics`], shared
/// by every clone of the policy.
///
/// A call counts once, when it ends, under one of `succeeded_without_retry`,
/// `succeeded_after_retry`, `failed_without_retry` and `failed_after_retry` (Resilience4j's
/// four), by whether its last result was a failure (by the classifier: an ignored outcome is
/// not one) and by whether it was retried. A failed call also counts under the one reason no
/// further attempt was made: `not_retryable`, `gave_up_max_attempts`, `gave_up_time_limit`,
/// `gave_up_retry_after` (the answer asked for a longer wait than `max_retry_after`),
/// `refused_by_budget` or `gave_up_body_too_large` (a `ReplayBody` beyond
/// its cap); so these six add up to the failed calls. A result the rules would
/// retry counts as a failure when the policy gives up on it, whatever the classifier says of
/// it. A call cancelled before it ends counts nowhere; nor does one whose request could not be
/// copied (`sent_once` counts those: the policy never sees their result).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::error::BoxError;
/// use battlement_retry::{Backoff, RetryPolicy};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(4)
///     .backoff(Backoff::fixed(Duration::from_millis(10)))
///     .build()
///     .unwrap();
/// // Reset twice, then answers.
/// let n = Arc::new(AtomicU32::new(0));
/// let svc = ServiceBuilder::new().layer(policy.clone().into_layer()).service_fn(move |_: ()| {
///     let n = n.fetch_add(1, Ordering::SeqCst);
///     async move {
///         if n < 2 {
///             Err::<(), BoxError>(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))
///         } else {
///             Ok(())
///         }
///     }
/// });
/// svc.oneshot(()).await.unwrap();
/// let m = policy.metrics();
/// assert_eq!((m.succeeded_after_retry, m.retries, m.calls()), (1, 2, 1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryMetrics {
    /// Calls whose first attempt gave the result returned, not a failure.
    pub succeeded_without_retry: u64,
    /// Calls that ended without a failure after one or more retries.
    pub succeeded_after_retry: u64,
    /// Calls that ended in failure after their first attempt (not retryable, or a retry
    /// refused).
    pub failed_without_retry: u64,
    /// Calls that ended in failure after one or more retries.
    pub failed_after_retry: u64,
    /// Retries made: attempts beyond the first.
    pub retries: u64,
    /// Failed calls whose last failure the rules (or the `retry_if` predicate) do not retry.
    pub not_retryable: u64,
    /// Failed calls that used every attempt allowed.
    pub gave_up_max_attempts: u64,
    /// Failed calls whose next wait would have ended past the time limit.
    pub gave_up_time_limit: u64,
    /// Failed calls whose answer asked for a wait beyond `max_retry_after`.
    pub gave_up_retry_after: u64,
    /// Failed calls whose retry the budget refused.
    pub refused_by_budget: u64,
    /// Failed calls not retried because the request's body outgrew the replay cap of its
    /// `ReplayBody` (feature `http`).
    pub gave_up_body_too_large: u64,
    /// Requests sent once because they could not be copied (their results are not counted).
    pub sent_once: u64,
    /// The most attempts in all, as set now (a reload changes it).
    pub max_attempts: u32,
    /// Whether the budget refuses retries now (see [`HealthSource::snapshot`] for the policy).
    pub budget_refusing: bool,
}

impl RetryMetrics {
    /// Calls that ended, however.
    pub fn calls(&self) -> u64 {
        self.succeeded() + self.failed()
    }

    /// Calls that ended without a failure.
    pub fn succeeded(&self) -> u64 {
        self.succeeded_without_retry + self.succeeded_after_retry
    }

    /// Calls that ended in failure.
    pub fn failed(&self) -> u64 {
        self.failed_without_retry + self.failed_after_retry
    }
}

impl<K, P> RetryPolicy<K, P> {
    /// A snapshot of the policy's counts, shared by every clone of it (and every service it
    /// drives).
    ///
    /// ```
    /// use battlement_retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
    /// let m = policy.metrics();
    /// assert_eq!((m.calls(), m.retries, m.max_attempts), (0, 0, 5));
    /// ```
    pub fn metrics(&self) -> RetryMetrics {
        self.core().metrics()
    }
}

/// Calls by how they ended (`outcome`: `success_without_retry`, `success_after_retry`,
/// `failure_without_retry`, `failure_after_retry`).
pub static CALLS: Family = Family::counter(
    "battlement_retry_calls",
    "Calls that ended, by outcome: success or failure, without or after retries.",
    "calls",
);
/// Retries made (attempts beyond the first).
pub static RETRIES: Family = Family::counter(
    "battlement_retry_retries",
    "Retries made: attempts beyond the first.",
    "retries",
);
/// Failed calls by why no further attempt was made (`reason`: `not_retryable`,
/// `max_attempts`, `time_limit`, `retry_after`, `budget`, `body_too_large`).
pub static GAVE_UP: Family = Family::counter(
    "battlement_retry_gave_up",
    "Calls that ended in failure, by why no further attempt was made.",
    "calls",
);
/// Requests sent once because they could not be copied.
pub static SENT_ONCE: Family = Family::counter(
    "battlement_retry_sent_once",
    "Requests sent once, without retries, because they could not be copied.",
    "calls",
);
/// The attempt limit now.
pub static MAX_ATTEMPTS: Family = Family::gauge(
    "battlement_retry_max_attempts",
    "The most attempts a call may make, the first included, as set now.",
    "attempts",
);
/// 1 while the retry budget refuses retries, else 0.
pub static BUDGET_REFUSING: Family = Family::gauge(
    "battlement_retry_budget_refusing",
    "1 while the retry budget refuses retries, else 0.",
    "",
);

/// Every family a retry policy exports.
pub static FAMILIES: &[&Family] = &[
    &CALLS,
    &RETRIES,
    &GAVE_UP,
    &SENT_ONCE,
    &MAX_ATTEMPTS,
    &BUDGET_REFUSING,
];

impl HealthSource for Core {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Retry
    }

    /// State `budget_exhausted` (status `warn`) while the budget refuses retries: it refused one
    /// within its ttl (10 s for a custom budget) and, for the policy's own budget, would refuse
    /// one now. `ready` (`pass`) otherwise: failed calls are the breaker's concern.
    fn snapshot(&self) -> HealthSnapshot {
        let m = self.metrics();
        let (state, status) = if m.budget_refusing {
            ("budget_exhausted", HealthStatus::Warn)
        } else {
            ("ready", HealthStatus::Pass)
        };
        let calls = |name: &'static str, v: u64| Metric::new(name, v as f64, "calls");
        let mut snap = HealthSnapshot::new(&*self.name, ComponentKind::Retry, state, status)
            .with_metric(calls("calls", m.calls()))
            .with_metric(calls("succeeded_without_retry", m.succeeded_without_retry))
            .with_metric(calls("succeeded_after_retry", m.succeeded_after_retry))
            .with_metric(calls("failed_without_retry", m.failed_without_retry))
            .with_metric(calls("failed_after_retry", m.failed_after_retry))
            .with_metric(Metric::new("retries", m.retries as f64, "retries"))
            .with_metric(calls("refused_by_budget", m.refused_by_budget))
            .with_metric(Metric::new(
                "max_attempts",
                f64::from(m.max_attempts),
                "attempts",
            ));
        if m.budget_refusing {
            snap = snap.with_message(format!(
                "retry policy `{}`: the retry budget refuses retries ({} refused in all)",
                self.name, m.refused_by_budget
            ));
        }
        snap
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        let m = self.metrics();
        for (outcome, value) in [
            ("success_without_retry", m.succeeded_without_retry),
            ("success_after_retry", m.succeeded_after_retry),
            ("failure_without_retry", m.failed_without_retry),
            ("failure_after_retry", m.failed_after_retry),
        ] {
            out.counter(&CALLS, &[("outcome", outcome)], value);
        }
        out.counter(&RETRIES, &[], m.retries);
        for (reason, value) in [
            ("not_retryable", m.not_retryable),
            ("max_attempts", m.gave_up_max_attempts),
            ("time_limit", m.gave_up_time_limit),
            ("retry_after", m.gave_up_retry_after),
            ("budget", m.refused_by_budget),
            ("body_too_large", m.gave_up_body_too_large),
        ] {
            out.counter(&GAVE_UP, &[("reason", reason)], value);
        }
        out.counter(&SENT_ONCE, &[], m.sent_once);
        out.gauge(&MAX_ATTEMPTS, &[], f64::from(m.max_attempts));
        out.gauge(
            &BUDGET_REFUSING,
            &[],
            if m.budget_refusing { 1.0 } else { 0.0 },
        );
    }
}

/// A policy reports as its registered core does (see the snapshot's states there).
impl<K, P> HealthSource for RetryPolicy<K, P>
where
    K: Send + Sync + 'static,
    P: Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.core().name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Retry
    }

    fn snapshot(&self) -> HealthSnapshot {
        self.core().snapshot()
    }

    fn export(&self, out: &mut dyn MetricsVisitor) {
        self.core().export(out)
    }
}
