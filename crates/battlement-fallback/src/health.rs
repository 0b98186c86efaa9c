//! The passive health of a fallback chain's members.
//!
//! Each member has a state word (healthy, unhealthy, trial) read with one atomic load when a call
//! decides whether to try it, and a count window of its last outcomes behind a short per-member
//! lock, taken once when an attempt finishes (no allocation: the ring is sized at build time).
//!
//! - Healthy: every finished attempt is recorded; once the window holds `min_calls` outcomes and
//!   the success rate is below the threshold, the member turns unhealthy until `now + cool_down`.
//! - Unhealthy: calls skip it. After the cool-down the first call to reach it takes the single
//!   trial permit (state trial); the others keep skipping it.
//! - Trial: success makes it healthy (window cleared); failure makes it unhealthy for another
//!   cool-down; an ignored outcome, or a trial call dropped before it finished, gives the permit
//!   back (the next call tries again at once).

use crate::event::ChainEvent;
use crate::MemberStatus;
use battlement_core::event::EventChannel;
use battlement_core::Outcome;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

const HEALTHY: u8 = 0;
const UNHEALTHY: u8 = 1;
const TRIAL: u8 = 2;
pub(crate) const NONE: usize = usize::MAX;

/// A member's health state.
///
/// ```
/// use battlement_fallback::MemberState;
///
/// assert_eq!(MemberState::Unhealthy.as_str(), "unhealthy");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Calls try it.
    Healthy,
    /// Calls skip it until its cool-down passes.
    Unhealthy,
    /// One trial call is in flight; other calls skip it.
    Trial,
}

impl MemberState {
    /// `healthy`, `unhealthy` or `trial`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Healthy => "healthy",
            MemberState::Unhealthy => "unhealthy",
            MemberState::Trial => "trial",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            HEALTHY => MemberState::Healthy,
            UNHEALTHY => MemberState::Unhealthy,
            _ => MemberState::Trial,
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthSettings {
    pub(crate) window: usize,
    pub(crate) min_calls: usize,
    pub(crate) min_success_rate: f64,
    pub(crate) cool_down: Duration,
}

#[derive(Debug)]
struct Window {
    ring: VecDeque<bool>,
    successes: usize,
}

impl Window {
    fn push(&mut self, success: bool, cap: usize) {
        if self.ring.len() == cap && self.ring.pop_front() == Some(true) {
            self.successes -= 1;
        }
        self.ring.push_back(success);
        if success {
            self.successes += 1;
        }
    }

    fn rate(&self) -> Option<f64> {
        (!self.ring.is_empty()).then(|| self.successes as f64 / self.ring.len() as f64)
    }

    fn clear(&mut self) {
        self.ring.clear();
        self.successes = 0;
    }
}

#[derive(Debug)]
pub(crate) struct MemberHealth {
    pub(crate) name: Arc<str>,
    state: AtomicU8,
    /// Nanoseconds since the chain's epoch at which an unhealthy member admits a trial.
    trial_at: AtomicU64,
    window: Mutex<Window>,
    successes: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
}

/// What a call may do with a member.
pub(crate) enum Admit {
    /// Try it.
    Call,
    /// Try it as the trial call; the permit gives the trial back if dropped unused.
    Trial(TrialPermit),
    /// Skip it; it admits a trial in this long (`None`: a trial is in flight).
    Skip(Option<Duration>),
}

pub(crate) struct ChainHealth {
    pub(crate) name: Arc<str>,
    pub(crate) members: Box<[MemberHealth]>,
    pub(crate) settings: HealthSettings,
    epoch: Instant,
    serving: AtomicUsize,
    all_failed: AtomicU64,
    events: EventChannel<ChainEvent>,
}

impl fmt::Debug for ChainHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainHealth")
            .field("name", &self.name)
            .field("members", &self.members)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ChainHealth {
    pub(crate) fn new(
        name: Arc<str>,
        member_names: Vec<Arc<str>>,
        settings: HealthSettings,
        events: EventChannel<ChainEvent>,
    ) -> Self {
        let members = member_names
            .into_iter()
            .map(|name| MemberHealth {
                name,
                state: AtomicU8::new(HEALTHY),
                trial_at: AtomicU64::new(0),
                window: Mutex::new(Window {
                    ring: VecDeque::with_capacity(settings.window),
                    successes: 0,
                }),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
            })
            .collect();
        ChainHealth {
            name,
            members,
            settings,
            epoch: Instant::now(),
            serving: AtomicUsize::new(NONE),
            all_failed: AtomicU64::new(0),
            events,
        }
    }

    fn now(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    fn emit(&self, event: ChainEvent) {
        self.events.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// Decides whether a call may try member `index` now.
    pub(crate) fn admit(self: &Arc<Self>, index: usize) -> Admit {
        let m = &self.members[index];
        match m.state.load(Ordering::Acquire) {
            HEALTHY => Admit::Call,
            UNHEALTHY => {
                let now = self.now();
                let at = m.trial_at.load(Ordering::Acquire);
                if now < at {
                    m.skipped.fetch_add(1, Ordering::Relaxed);
                    return Admit::Skip(Some(Duration::from_nanos(at - now)));
                }
                if m.state
                    .compare_exchange(UNHEALTHY, TRIAL, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    tracing::info!(chain = %self.name, member = %m.name, "fallback chain: cool-down over, trial call");
                    self.emit(ChainEvent::TrialStarted {
                        chain: self.name.clone(),
                        member: m.name.clone(),
                    });
                    Admit::Trial(TrialPermit {
                        health: self.clone(),
                        index,
                        finished: false,
                    })
                } else {
                    m.skipped.fetch_add(1, Ordering::Relaxed);
                    Admit::Skip(None)
                }
            }
            _ => {
                m.skipped.fetch_add(1, Ordering::Relaxed);
                Admit::Skip(None)
            }
        }
    }

    /// Records the outcome of an ordinary (non-trial) attempt on member `index`.
    pub(crate) fn record(&self, index: usize, outcome: Outcome) {
        let m = &self.members[index];
        let success = match outcome {
            Outcome::Success => true,
            Outcome::Failure(_) => false,
            Outcome::Ignored => return,
        };
        if success {
            m.successes.fetch_add(1, Ordering::Relaxed);
        } else {
            m.failures.fetch_add(1, Ordering::Relaxed);
        }
        if m.state.load(Ordering::Acquire) != HEALTHY {
            // A call that started before the member turned unhealthy: its outcome belongs to a
            // window that is gone.
            return;
        }
        let s = &self.settings;
        let mut w = m.window.lock().unwrap_or_else(|e| e.into_inner());
        if m.state.load(Ordering::Acquire) != HEALTHY {
            return;
        }
        w.push(success, s.window);
        if success || w.ring.len() < s.min_calls {
            return;
        }
        let rate = w.rate().unwrap_or(1.0);
        if rate >= s.min_success_rate {
            return;
        }
        w.clear();
        m.trial_at.store(
            self.now().saturating_add(nanos(s.cool_down)),
            Ordering::Release,
        );
        m.state.store(UNHEALTHY, Ordering::Release);
        drop(w);
        tracing::warn!(
            chain = %self.name,
            member = %m.name,
            success_rate = rate,
            cool_down = ?s.cool_down,
            "fallback chain: member unhealthy, skipped until its cool-down passes"
        );
        self.emit(ChainEvent::MemberUnhealthy {
            chain: self.name.clone(),
            member: m.name.clone(),
            success_rate: rate,
            cool_down: s.cool_down,
        });
    }

    fn finish_trial(&self, index: usize, outcome: Option<Outcome>) {
        let m = &self.members[index];
        match outcome {
            Some(Outcome::Success) => {
                m.successes.fetch_add(1, Ordering::Relaxed);
                let mut w = m.window.lock().unwrap_or_else(|e| e.into_inner());
                w.clear();
                m.state.store(HEALTHY, Ordering::Release);
                drop(w);
                tracing::info!(chain = %self.name, member = %m.name, "fallback chain: trial call succeeded, member healthy again");
                self.emit(ChainEvent::MemberRecovered {
                    chain: self.name.clone(),
                    member: m.name.clone(),
                });
            }
            Some(Outcome::Failure(kind)) => {
                m.failures.fetch_add(1, Ordering::Relaxed);
                let cool_down = self.settings.cool_down;
                m.trial_at.store(
                    self.now().saturating_add(nanos(cool_down)),
                    Ordering::Release,
                );
                m.state.store(UNHEALTHY, Ordering::Release);
                tracing::warn!(chain = %self.name, member = %m.name, %kind, ?cool_down, "fallback chain: trial call failed, member stays unhealthy");
                self.emit(ChainEvent::TrialFailed {
                    chain: self.name.clone(),
                    member: m.name.clone(),
                    cool_down,
                });
            }
            // Ignored, or dropped unfinished: give the permit back; the next call tries again.
            Some(Outcome::Ignored) | None => {
                m.state.store(UNHEALTHY, Ordering::Release);
                tracing::debug!(chain = %self.name, member = %m.name, "fallback chain: trial call inconclusive, permit returned");
            }
        }
    }

    /// Notes that member `index` answered a call.
    pub(crate) fn served(&self, index: usize) {
        let before = self.serving.load(Ordering::Relaxed);
        if before == index {
            return;
        }
        self.serving.store(index, Ordering::Relaxed);
        let from = self.members.get(before).map(|m| m.name.clone());
        let member = self.members[index].name.clone();
        tracing::info!(chain = %self.name, from = ?from.as_deref(), %member, "fallback chain: now serving from another member");
        self.emit(ChainEvent::ServingChanged {
            chain: self.name.clone(),
            from,
            member,
        });
    }

    pub(crate) fn note_all_failed(&self) {
        self.all_failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(chain = %self.name, "fallback chain: every member failed or was skipped");
    }

    pub(crate) fn all_failed(&self) -> u64 {
        self.all_failed.load(Ordering::Relaxed)
    }

    pub(crate) fn serving(&self) -> Option<usize> {
        let i = self.serving.load(Ordering::Relaxed);
        (i != NONE).then_some(i)
    }

    pub(crate) fn status(&self, index: usize) -> MemberStatus {
        let m = &self.members[index];
        let (success_rate, window_calls) = {
            let w = m.window.lock().unwrap_or_else(|e| e.into_inner());
            (w.rate(), w.ring.len())
        };
        let state = MemberState::from_u8(m.state.load(Ordering::Acquire));
        let trial_in = (state == MemberState::Unhealthy).then(|| {
            let at = m.trial_at.load(Ordering::Acquire);
            Duration::from_nanos(at.saturating_sub(self.now()))
        });
        MemberStatus {
            name: m.name.clone(),
            state,
            success_rate,
            window_calls,
            successes: m.successes.load(Ordering::Relaxed),
            failures: m.failures.load(Ordering::Relaxed),
            skipped: m.skipped.load(Ordering::Relaxed),
            trial_in,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The single trial permit of an unhealthy member. Finishing it records the trial's outcome;
/// dropping it unfinished (the call's future was dropped) gives the permit back.
pub(crate) struct TrialPermit {
    health: Arc<ChainHealth>,
    index: usize,
    finished: bool,
}

impl TrialPermit {
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.health.finish_trial(self.index, Some(outcome));
    }
}

impl Drop for TrialPermit {
    fn drop(&mut self) {
        if !self.finished {
            self.health.finish_trial(self.index, None);
        }
    }
}

impl fmt::Debug for TrialPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrialPermit")
            .field("member", &self.health.members[self.index].name)
            .finish()
    }
}
