//! The breaker's state machine: one atomic state word plus a lock taken only to change state.
//!
//! The state word packs the state, the half-open trial permits left and a generation number that
//! grows on every transition:
//!
//! ```text
//!  63                      19 18             3 2     0
//! +--------------------------+----------------+-------+
//! |       generation         | trial permits  | state |
//! +--------------------------+----------------+-------+
//! ```
//!
//! The closed path only *reads* the word. A half-open admission takes a permit by compare-and-swap
//! on the whole word, so a permit is always tied to the generation it was taken in: a permit can
//! never be taken from, or returned to, a later half-open period. State changes happen under a
//! mutex that no closed or disabled call ever takes; each checks the generation it was asked to
//! leave, so concurrent trips move the state exactly once.

use battlement_core::sync::{
    AtomicU64, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::fmt;
use std::sync::Arc;

const STATE_BITS: u32 = 3;
const PERMIT_BITS: u32 = 16;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const PERMIT_SHIFT: u32 = STATE_BITS;
const PERMIT_MASK: u64 = ((1 << PERMIT_BITS) - 1) << PERMIT_SHIFT;
const GEN_SHIFT: u32 = STATE_BITS + PERMIT_BITS;

/// The state of a circuit breaker.
///
/// ```
/// use battlement_breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder("upstream").build().unwrap();
/// assert_eq!(breaker.state(), State::Closed);
/// assert_eq!(State::HalfOpen.as_str(), "half_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are recorded and may trip the breaker.
    Closed,
    /// Calls are rejected until the open wait has passed.
    Open,
    /// A set number of trial calls pass; their outcomes close or reopen the breaker.
    HalfOpen,
    /// Opened by an operator: calls are rejected until [`reset`](crate::CircuitBreaker::reset)
    /// (or another operator action), or, when forced open for a time
    /// ([`force_open_for`](crate::CircuitBreaker::force_open_for)), until that time has passed,
    /// when the breaker goes half-open.
    ForcedOpen,
    /// Calls always pass; outcomes are still recorded, but the breaker never trips.
    Disabled,
}

impl State {
    /// Every state, in a fixed order: closed, open, half-open, forced open, disabled.
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// The state's place in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        self.bits() as usize
    }

    fn from_bits(bits: u64) -> State {
        match bits {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    fn bits(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    /// A short, stable, snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    /// Whether calls are admitted without restriction in this state.
    pub fn admits_all(self) -> bool {
        matches!(self, State::Closed | State::Disabled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    fn new(state: State, permits: u64, gen: u64) -> Word {
        Word(state.bits() | (permits << PERMIT_SHIFT) | (gen << GEN_SHIFT))
    }
    pub(crate) fn state(self) -> State {
        State::from_bits(self.0 & STATE_MASK)
    }
    pub(crate) fn permits(self) -> u64 {
        (self.0 & PERMIT_MASK) >> PERMIT_SHIFT
    }
    pub(crate) fn gen(self) -> u64 {
        self.0 >> GEN_SHIFT
    }
    /// `state() == State::Closed`, without decoding.
    #[inline]
    pub(crate) fn is_closed(self) -> bool {
        self.0 & STATE_MASK == 0
    }
    /// [`State::admits_all`] straight from the bits: closed (0) and disabled (4) are the only
    /// states whose low two bits are clear.
    #[inline]
    pub(crate) fn admits_all(self) -> bool {
        self.0 & 0b11 == 0
    }
}

/// Settings the state machine needs (already validated).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MachineConfig {
    pub(crate) permits: u16,
    pub(crate) successes_to_close: u16,
    pub(crate) wait_base: u64,
    pub(crate) wait_multiplier: f64,
    pub(crate) wait_cap: u64,
}

impl MachineConfig {
    /// Failures among the trials that make closing impossible.
    fn failures_to_reopen(&self) -> u64 {
        u64::from(self.permits - self.successes_to_close) + 1
    }

    /// The open wait after `opens` consecutive openings (1 = first).
    pub(crate) fn open_wait(&self, opens: u32) -> u64 {
        let factor = self
            .wait_multiplier
            .powi(opens.saturating_sub(1).min(1024) as i32);
        let wait = self.wait_base as f64 * factor;
        if !wait.is_finite() || wait >= self.wait_cap as f64 {
            self.wait_cap
        } else {
            wait as u64
        }
    }
}

/// Where a transition goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Open,
    /// Open for exactly this long (ns), then half-open: a state restored from outside
    /// ([`CircuitBreaker::restore_open`](crate::CircuitBreaker::restore_open)); not a trip.
    OpenFor(u64),
    HalfOpen,
    Closed,
    /// Forced open with the operator's reason, until `until` (ns) or, with `None`, until an
    /// operator action.
    ForcedOpen {
        reason: Arc<str>,
        until: Option<u64>,
    },
    Disabled,
}

/// `open_until` of a breaker forced open with no end.
pub(crate) const NO_END: u64 = u64::MAX;

/// A transition that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) from: State,
    pub(crate) to: State,
    /// For transitions to open, or forced open with an end: how long it stays open (ns).
    pub(crate) open_for: Option<u64>,
}

#[derive(Debug)]
struct Locked {
    /// Openings since the breaker last closed (drives the growing open wait).
    consecutive_opens: u32,
    /// Automatic openings ever.
    trips: u64,
    forced_reason: Option<Arc<str>>,
    /// When the current state was entered (ns).
    entered_at: u64,
    /// The settings the next transition applies (a reload replaces them).
    cfg: MachineConfig,
}

/// Read-only facts about the machine for metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct MachineFacts {
    pub(crate) trips: u64,
    pub(crate) entered_at: u64,
    pub(crate) forced_reason: Option<Arc<str>>,
}

#[derive(Debug)]
pub(crate) struct Machine {
    word: AtomicU64,
    /// Half-open trial results: `(gen as u32) << 32 | successes << 16 | failures`.
    trials: AtomicU64,
    /// The current half-open period's decision thresholds, fixed when it began (a reload
    /// applies from the next period): `(gen as u32) << 32 | successes to close << 16 |
    /// failures to reopen`.
    period: AtomicU64,
    open_until: AtomicU64,
    half_open_since: AtomicU64,
    locked: Mutex<Locked>,
}

impl Machine {
    pub(crate) fn new(cfg: MachineConfig) -> Self {
        Machine {
            word: AtomicU64::new(Word::new(State::Closed, 0, 0).0),
            trials: AtomicU64::new(0),
            period: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            half_open_since: AtomicU64::new(0),
            locked: Mutex::new(Locked {
                consecutive_opens: 0,
                trips: 0,
                forced_reason: None,
                entered_at: 0,
                cfg,
            }),
        }
    }

    /// Replaces the settings: the open wait applies from the next opening (the growth count of
    /// consecutive openings is kept), the trial permits and thresholds from the next half-open
    /// period. The current state, and an open period's end, are left as they are.
    pub(crate) fn reconfigure(&self, cfg: MachineConfig) {
        self.locked.lock().unwrap_or_else(|e| e.into_inner()).cfg = cfg;
    }

    #[inline]
    pub(crate) fn current(&self) -> Word {
        Word(self.word.load(Acquire))
    }

    /// When the current open period ends (ns): meaningful while open, and while forced open,
    /// where [`NO_END`] means until an operator action.
    pub(crate) fn open_until(&self) -> u64 {
        self.open_until.load(Relaxed)
    }

    /// When the current half-open period began (ns). Only meaningful while half-open.
    pub(crate) fn half_open_since(&self) -> u64 {
        self.half_open_since.load(Relaxed)
    }

    /// Takes a trial permit from the half-open period of `word`, if one is left.
    /// Returns the generation the permit belongs to.
    pub(crate) fn try_take_permit(&self, mut word: Word) -> Option<u64> {
        loop {
            if word.state() != State::HalfOpen || word.permits() == 0 {
                return None;
            }
            let next = Word(word.0 - (1 << PERMIT_SHIFT));
            match self
                .word
                .compare_exchange_weak(word.0, next.0, AcqRel, Acquire)
            {
                Ok(_) => return Some(word.gen()),
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Returns a trial permit taken in generation `gen` (the call was cancelled or ignored).
    /// Does nothing if that half-open period is over.
    pub(crate) fn return_permit(&self, gen: u64) {
        let mut word = self.current();
        loop {
            if word.state() != State::HalfOpen || word.gen() != gen {
                return;
            }
            let next = Word(word.0 + (1 << PERMIT_SHIFT));
            match self
                .word
                .compare_exchange_weak(word.0, next.0, AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Counts a finished trial of generation `gen`. Returns where the breaker must go when this
    /// trial is the one that decides (exactly one trial decides a half-open period).
    pub(crate) fn record_trial(&self, gen: u64, success: bool) -> Option<Target> {
        let tag = (gen & 0xFFFF_FFFF) << 32;
        let mut cur = self.trials.load(Acquire);
        loop {
            if cur & !0xFFFF_FFFF != tag {
                return None;
            }
            let (mut ok, mut bad) = ((cur >> 16) & 0xFFFF, cur & 0xFFFF);
            if success {
                ok += 1;
            } else {
                bad += 1;
            }
            let next = tag | (ok << 16) | bad;
            match self
                .trials
                .compare_exchange_weak(cur, next, AcqRel, Acquire)
            {
                Ok(_) => {
                    // The thresholds of this period, published before its trial word (which the
                    // compare-and-swap above acquired). A later period has another tag: this
                    // trial's period is over, and it decides nothing.
                    let period = self.period.load(Acquire);
                    if period & !0xFFFF_FFFF != tag {
                        return None;
                    }
                    let (close_at, reopen_at) = ((period >> 16) & 0xFFFF, period & 0xFFFF);
                    return if success && ok == close_at {
                        Some(Target::Closed)
                    } else if !success && bad == reopen_at {
                        Some(Target::Open)
                    } else {
                        None
                    };
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Moves from `(expect_state, expect_gen)` to `target`, unless another transition got there
    /// first. `on_enter` runs under the lock before the new state is published.
    pub(crate) fn transition(
        &self,
        expect_state: State,
        expect_gen: u64,
        target: Target,
        now: u64,
        on_enter: impl FnOnce(State),
    ) -> Option<Transition> {
        let mut locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        let word = self.current();
        if word.state() != expect_state || word.gen() != expect_gen {
            return None;
        }
        Some(self.enter(&mut locked, word, target, now, on_enter))
    }

    /// Moves to `target` from whatever state the breaker is in (operator actions).
    pub(crate) fn force(
        &self,
        target: Target,
        now: u64,
        on_enter: impl FnOnce(State),
    ) -> Transition {
        let mut locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        let word = self.current();
        self.enter(&mut locked, word, target, now, on_enter)
    }

    fn enter(
        &self,
        locked: &mut Locked,
        word: Word,
        target: Target,
        now: u64,
        on_enter: impl FnOnce(State),
    ) -> Transition {
        let gen = word.gen().wrapping_add(1) & ((1 << (64 - GEN_SHIFT)) - 1);
        let mut open_for = None;
        let (state, permits) = match target {
            Target::Open => {
                locked.consecutive_opens = locked.consecutive_opens.saturating_add(1);
                locked.trips += 1;
                let wait = locked.cfg.open_wait(locked.consecutive_opens);
                self.open_until.store(now.saturating_add(wait), Relaxed);
                open_for = Some(wait);
                (State::Open, 0)
            }
            Target::OpenFor(wait) => {
                locked.consecutive_opens = locked.consecutive_opens.saturating_add(1);
                self.open_until.store(now.saturating_add(wait), Relaxed);
                open_for = Some(wait);
                (State::Open, 0)
            }
            Target::HalfOpen => {
                // Half-open may follow a forced open whose time ran out.
                locked.forced_reason = None;
                let tag = (gen & 0xFFFF_FFFF) << 32;
                let cfg = locked.cfg;
                self.period.store(
                    tag | u64::from(cfg.successes_to_close) << 16 | cfg.failures_to_reopen(),
                    Relaxed,
                );
                self.trials.store(tag, Release);
                self.half_open_since.store(now, Relaxed);
                (State::HalfOpen, u64::from(cfg.permits))
            }
            Target::Closed => {
                locked.consecutive_opens = 0;
                locked.forced_reason = None;
                (State::Closed, 0)
            }
            Target::ForcedOpen { reason, until } => {
                locked.forced_reason = Some(reason);
                // A known end is kept below `NO_END`, so it always reads as an end.
                let until = until.map(|u| u.min(NO_END - 1));
                self.open_until.store(until.unwrap_or(NO_END), Relaxed);
                open_for = until.map(|u| u.saturating_sub(now));
                (State::ForcedOpen, 0)
            }
            Target::Disabled => {
                locked.forced_reason = None;
                (State::Disabled, 0)
            }
        };
        locked.entered_at = now;
        on_enter(state);
        self.word.store(Word::new(state, permits, gen).0, Release);
        Transition {
            from: word.state(),
            to: state,
            open_for,
        }
    }

    pub(crate) fn facts(&self) -> MachineFacts {
        let locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        MachineFacts {
            trips: locked.trips,
            entered_at: locked.entered_at,
            forced_reason: locked.forced_reason.clone(),
        }
    }

    pub(crate) fn forced_reason(&self) -> Option<Arc<str>> {
        self.locked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forced_reason
            .clone()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn cfg(permits: u16, successes: u16) -> MachineConfig {
        MachineConfig {
            permits,
            successes_to_close: successes,
            wait_base: 1_000,
            wait_multiplier: 2.0,
            wait_cap: 5_000,
        }
    }

    #[test]
    fn the_bit_test_for_admits_all_agrees_with_the_state() {
        let states = [
            State::Closed,
            State::Open,
            State::HalfOpen,
            State::ForcedOpen,
            State::Disabled,
        ];
        for state in states {
            for (permits, gen) in [(0, 0), (3, 7), (PERMIT_MASK >> PERMIT_SHIFT, 1 << 40)] {
                let word = Word::new(state, permits, gen);
                assert_eq!(word.state(), state);
                assert_eq!(word.admits_all(), state.admits_all(), "{state:?}");
                assert_eq!(word.is_closed(), state == State::Closed, "{state:?}");
            }
        }
    }

    #[test]
    fn word_round_trips() {
        let w = Word::new(State::HalfOpen, 65535, (1 << 45) - 1);
        assert_eq!(w.state(), State::HalfOpen);
        assert_eq!(w.permits(), 65535);
        assert_eq!(w.gen(), (1 << 45) - 1);
    }

    #[test]
    fn open_wait_grows_and_caps() {
        let c = cfg(1, 1);
        assert_eq!(
            (1..=5).map(|n| c.open_wait(n)).collect::<Vec<_>>(),
            vec![1_000, 2_000, 4_000, 5_000, 5_000]
        );
        assert_eq!(c.open_wait(u32::MAX), 5_000);
    }

    #[test]
    fn stale_transition_is_refused() {
        let m = Machine::new(cfg(2, 2));
        let w = m.current();
        assert!(m
            .transition(State::Closed, w.gen(), Target::Open, 0, |_| {})
            .is_some());
        // A second trip from the same generation is refused.
        assert!(m
            .transition(State::Closed, w.gen(), Target::Open, 0, |_| {})
            .is_none());
        assert_eq!(m.current().state(), State::Open);
    }

    #[test]
    fn permits_belong_to_their_generation() {
        let m = Machine::new(cfg(1, 1));
        let g0 = m.current().gen();
        m.transition(State::Closed, g0, Target::Open, 0, |_| {});
        let g1 = m.current().gen();
        m.transition(State::Open, g1, Target::HalfOpen, 0, |_| {});
        let w = m.current();
        let g2 = m.try_take_permit(w).unwrap();
        assert!(m.try_take_permit(m.current()).is_none());
        // Reopen and half-open again: the old permit must not be returned into the new period.
        m.transition(State::HalfOpen, g2, Target::Open, 0, |_| {});
        let g3 = m.current().gen();
        m.transition(State::Open, g3, Target::HalfOpen, 0, |_| {});
        assert_eq!(m.current().permits(), 1);
        m.return_permit(g2);
        assert_eq!(m.current().permits(), 1);
        // A trial outcome of the old period does not count either.
        assert_eq!(m.record_trial(g2, true), None);
    }

    /// New trial settings apply from the next half-open period: the current one is decided by
    /// the thresholds it began with.
    #[test]
    fn reconfigured_trials_apply_from_the_next_period() {
        let m = Machine::new(cfg(1, 1));
        let g = m.current().gen();
        m.transition(State::Closed, g, Target::Open, 0, |_| {});
        let g = m.current().gen();
        m.transition(State::Open, g, Target::HalfOpen, 0, |_| {});
        m.reconfigure(cfg(3, 2));
        let g = m.current().gen();
        assert_eq!(m.current().permits(), 1);
        assert_eq!(m.record_trial(g, true), Some(Target::Closed));
        m.transition(State::HalfOpen, g, Target::Closed, 0, |_| {});
        let g = m.current().gen();
        m.transition(State::Closed, g, Target::Open, 0, |_| {});
        let g = m.current().gen();
        m.transition(State::Open, g, Target::HalfOpen, 0, |_| {});
        let g = m.current().gen();
        assert_eq!(m.current().permits(), 3);
        assert_eq!(m.record_trial(g, true), None);
        assert_eq!(m.record_trial(g, true), Some(Target::Closed));
    }

    #[test]
    fn trials_decide_once() {
        let m = Machine::new(cfg(3, 2));
        let g = m.current().gen();
        m.transition(State::Closed, g, Target::Open, 0, |_| {});
        let g = m.current().gen();
        m.transition(State::Open, g, Target::HalfOpen, 0, |_| {});
        let g = m.current().gen();
        // Two failures make two successes out of three impossible.
        assert_eq!(m.record_trial(g, false), None);
        assert_eq!(m.record_trial(g, false), Some(Target::Open));
        assert_eq!(m.record_trial(g, false), None);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn machine(permits: u16, successes: u16) -> Arc<Machine> {
        Arc::new(Machine::new(MachineConfig {
            permits,
            successes_to_close: successes,
            wait_base: 10,
            wait_multiplier: 2.0,
            wait_cap: 100,
        }))
    }

    fn to_half_open(m: &Machine) {
        let g = m.current().gen();
        m.transition(State::Closed, g, Target::Open, 0, |_| {})
            .unwrap();
        let g = m.current().gen();
        m.transition(State::Open, g, Target::HalfOpen, 0, |_| {})
            .unwrap();
    }

    /// Concurrent half-open admissions never exceed the permits.
    #[test]
    fn loom_half_open_permits_never_exceeded() {
        loom::model(|| {
            let m = machine(1, 1);
            to_half_open(&m);
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let m = m.clone();
                    thread::spawn(move || m.try_take_permit(m.current()).is_some() as u32)
                })
                .collect();
            let admitted: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(admitted, 1);
            assert_eq!(m.current().permits(), 0);
        });
    }

    /// A permit returned concurrently with admissions is handed out at most once more.
    #[test]
    fn loom_returned_permit_reused_once() {
        loom::model(|| {
            let m = machine(1, 1);
            to_half_open(&m);
            let gen = m.try_take_permit(m.current()).unwrap();
            let r = {
                let m = m.clone();
                thread::spawn(move || m.return_permit(gen))
            };
            let a = {
                let m = m.clone();
                thread::spawn(move || m.try_take_permit(m.current()).is_some() as u32)
            };
            let b = {
                let m = m.clone();
                thread::spawn(move || m.try_take_permit(m.current()).is_some() as u32)
            };
            r.join().unwrap();
            let admitted = a.join().unwrap() + b.join().unwrap();
            let left = m.current().permits() as u32;
            assert_eq!(admitted + left, 1);
        });
    }

    /// Concurrent trips from the same closed generation move the state exactly once.
    #[test]
    fn loom_concurrent_trips_move_state_once() {
        loom::model(|| {
            let m = machine(1, 1);
            let gen = m.current().gen();
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    thread::spawn(move || {
                        m.transition(State::Closed, gen, Target::Open, 0, |_| {})
                            .is_some() as u32
                    })
                })
                .collect();
            let moved: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(moved, 1);
            let w = m.current();
            assert_eq!(w.state(), State::Open);
            assert_eq!(w.gen(), gen + 1);
            assert_eq!(m.facts().trips, 1);
        });
    }

    /// Calls racing to end a forced open whose time has passed move it to half-open once, with
    /// the full set of trial permits.
    #[test]
    fn loom_forced_open_end_moves_state_once() {
        loom::model(|| {
            let m = machine(2, 1);
            let forced = Target::ForcedOpen {
                reason: "ops".into(),
                until: Some(5),
            };
            m.force(forced, 0, |_| {});
            let gen = m.current().gen();
            assert_eq!(m.open_until(), 5);
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    thread::spawn(move || {
                        m.transition(State::ForcedOpen, gen, Target::HalfOpen, 5, |_| {})
                            .is_some() as u32
                    })
                })
                .collect();
            let moved: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(moved, 1);
            let w = m.current();
            assert_eq!(
                (w.state(), w.permits(), w.gen()),
                (State::HalfOpen, 2, gen + 1)
            );
            assert_eq!(m.facts().forced_reason, None);
        });
    }

    /// Concurrent trial results decide the half-open period exactly once.
    #[test]
    fn loom_trials_decide_once() {
        loom::model(|| {
            let m = machine(2, 1);
            to_half_open(&m);
            let gen = m.current().gen();
            let handles: Vec<_> = [true, false]
                .into_iter()
                .map(|ok| {
                    let m = m.clone();
                    thread::spawn(move || {
                        let target = m.record_trial(gen, ok);
                        match target {
                            Some(t) => {
                                m.transition(State::HalfOpen, gen, t, 0, |_| {}).is_some() as u32
                            }
                            None => 0,
                        }
                    })
                })
                .collect();
            let moved: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            // permits 2, successes 1: the success closes; failures needed to reopen = 2.
            assert_eq!(moved, 1);
            assert_eq!(m.current().state(), State::Closed);
        });
    }
}
