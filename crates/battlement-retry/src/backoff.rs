//! The pure arithmetic of delays: backoff strategies, jitter and bounds.
//!
//! Nothing here reads a clock. Durations are computed in whole nanoseconds with saturating
//! arithmetic (anything beyond `u64::MAX` nanoseconds, about 584 years, saturates), so no setting
//! and no attempt number can overflow or panic.

use battlement_core::ConfigError;
use std::time::Duration;

pub(crate) const COMPONENT: &str = "retry policy";

/// How long to wait before each retry, before jitter and bounds are applied.
///
/// `retry` numbers start at 1: `delay(1, ..)` is the wait after the first attempt failed.
///
/// | strategy | delay before retry `n` |
/// |---|---|
/// | [`fixed(d)`](Backoff::fixed) | `d` |
/// | [`linear(base, step)`](Backoff::linear) | `base + step × (n − 1)` |
/// | [`exponential(base, m)`](Backoff::exponential) | `base × mⁿ⁻¹` |
/// | [`fibonacci(base)`](Backoff::fibonacci) | `base × fib(n)` with `fib = 1, 1, 2, 3, 5, …` |
/// | [`decorrelated_jitter(base, cap)`](Backoff::decorrelated_jitter) | `min(cap, random(base, prev × 3))`, `prev` starting at `base` |
///
/// Every strategy can be capped with [`with_cap`](Backoff::with_cap); the cap must not be below
/// the strategy's first delay (checked when the policy is built).
///
/// ```
/// use battlement_retry::Backoff;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// let exp = Backoff::exponential(ms(100), 2.0).with_cap(ms(500));
/// let mut rng = fastrand::Rng::with_seed(7);
/// let delays: Vec<_> = (1..=5).map(|n| exp.delay(n, Duration::ZERO, &mut rng)).collect();
/// assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
///
/// let fib = Backoff::fibonacci(ms(10));
/// let delays: Vec<_> = (1..=6).map(|n| fib.delay(n, Duration::ZERO, &mut rng)).collect();
/// assert_eq!(delays, [ms(10), ms(10), ms(20), ms(30), ms(50), ms(80)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    strategy: Curve,
    cap: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Curve {
    Fixed(Duration),
    Linear { base: Duration, step: Duration },
    Exponential { base: Duration, multiplier: f64 },
    Fibonacci { base: Duration },
    Decorrelated { base: Duration },
}

impl Default for Backoff {
    /// Exponential from 100 ms, doubling, capped at 10 s.
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100), 2.0).with_cap(Duration::from_secs(10))
    }
}

impl Backoff {
    /// The same delay before every retry (`Duration::ZERO` retries at once).
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            strategy: Curve::Fixed(delay),
            cap: None,
        }
    }

    /// A delay that grows by `step` with each retry: `base`, `base + step`, `base + 2 × step`, …
    pub fn linear(base: Duration, step: Duration) -> Self {
        Backoff {
            strategy: Curve::Linear { base, step },
            cap: None,
        }
    }

    /// A delay multiplied by `multiplier` (at least 1) with each retry: `base`, `base × m`,
    /// `base × m²`, … Add a cap with [`with_cap`](Backoff::with_cap).
    pub fn exponential(base: Duration, multiplier: f64) -> Self {
        Backoff {
            strategy: Curve::Exponential { base, multiplier },
            cap: None,
        }
    }

    /// A delay following the Fibonacci sequence: `base × (1, 1, 2, 3, 5, 8, …)`.
    pub fn fibonacci(base: Duration) -> Self {
        Backoff {
            strategy: Curve::Fibonacci { base },
            cap: None,
        }
    }

    /// "Decorrelated jitter": each delay is drawn uniformly from `base ..= previous × 3`, then
    /// capped: `sleep = min(cap, random(base, prev × 3))`, with `prev` starting at `base`.
    ///
    /// The randomness is part of the strategy; a [`Jitter`] on top is usually left at
    /// [`Jitter::None`].
    pub fn decorrelated_jitter(base: Duration, cap: Duration) -> Self {
        Backoff {
            strategy: Curve::Decorrelated { base },
            cap: Some(cap),
        }
    }

    /// Caps every delay of this strategy at `cap`.
    pub fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = Some(cap);
        self
    }

    /// The cap, if any.
    pub fn cap(&self) -> Option<Duration> {
        self.cap
    }

    /// The first delay of the strategy (its base).
    pub fn base(&self) -> Duration {
        match self.strategy {
            Curve::Fixed(d) => d,
            Curve::Linear { base, .. }
            | Curve::Exponential { base, .. }
            | Curve::Fibonacci { base }
            | Curve::Decorrelated { base } => base,
        }
    }

    /// Checks the settings: a multiplier below 1 (or not finite), a cap below the base, a zero
    /// base for decorrelated jitter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.strategy {
            Curve::Exponential { multiplier, .. }
                if !(multiplier >= 1.0 && multiplier.is_finite()) =>
            {
                return Err(ConfigError::new(
                    COMPONENT,
                    "backoff multiplier",
                    multiplier,
                    "must be a finite number of at least 1",
                ));
            }
            Curve::Decorrelated { base } if base.is_zero() => {
                return Err(ConfigError::new(
                    COMPONENT,
                    "backoff base",
                    base,
                    "decorrelated jitter needs a base above zero",
                ));
            }
            _ => {}
        }
        if let Some(cap) = self.cap {
            if cap < self.base() {
                return Err(ConfigError::new(
                    COMPONENT,
                    "backoff cap",
                    cap,
                    format!("must not be below the base ({:?})", self.base()),
                ));
            }
        }
        Ok(())
    }

    /// Whether the strategy draws random numbers.
    pub(crate) fn is_random(&self) -> bool {
        matches!(self.strategy, Curve::Decorrelated { .. })
    }

    /// The delay before retry number `retry` (1 for the first retry), capped.
    ///
    /// `prev` is this strategy's previous delay (used by decorrelated jitter only; pass
    /// `Duration::ZERO` before the first retry). `rng` is drawn from only by decorrelated jitter.
    pub fn delay(&self, retry: u32, prev: Duration, rng: &mut fastrand::Rng) -> Duration {
        let n = u64::from(retry.max(1));
        let nanos = match self.strategy {
            Curve::Fixed(d) => nanos(d),
            Curve::Linear { base, step } => {
                nanos(base).saturating_add(nanos(step).saturating_mul(n - 1))
            }
            Curve::Exponential { base, multiplier } => {
                let exp = i32::try_from(n - 1).unwrap_or(i32::MAX);
                let value = nanos(base) as f64 * multiplier.powi(exp);
                f64_to_nanos(value)
            }
            Curve::Fibonacci { base } => nanos(base).saturating_mul(fibonacci(n)),
            Curve::Decorrelated { base } => {
                let lo = nanos(base);
                let prev = if prev.is_zero() { lo } else { nanos(prev) };
                let hi = prev.saturating_mul(3).max(lo);
                rng.u64(lo..=hi)
            }
        };
        let d = Duration::from_nanos(nanos);
        match self.cap {
            Some(cap) => d.min(cap),
            None => d,
        }
    }
}

/// Randomness applied to every delay a [`Backoff`] computes.
///
/// | kind | delay `d` becomes |
/// |---|---|
/// | [`None`](Jitter::None) | `d` |
/// | [`Full`](Jitter::Full) | uniform in `0 ..= d` |
/// | [`Equal`](Jitter::Equal) | `d/2 + random(0 ..= d/2)` (uniform in `d − ⌊d/2⌋ ..= d`) |
/// | [`Proportional(p)`](Jitter::Proportional) | uniform in `d − s ..= d + s` with `s = ⌊d × p / 100⌋` |
///
/// ```
/// use battlement_retry::Jitter;
/// use std::time::Duration;
///
/// let mut rng = fastrand::Rng::with_seed(42);
/// let d = Duration::from_millis(1000);
/// assert_eq!(Jitter::None.apply(d, &mut rng), d);
/// let j = Jitter::Proportional(25.0).apply(d, &mut rng);
/// assert!(j >= Duration::from_millis(750) && j <= Duration::from_millis(1250));
/// let j = Jitter::Equal.apply(d, &mut rng);
/// assert!(j >= Duration::from_millis(500) && j <= d);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Jitter {
    /// No jitter: the delay is exact.
    #[default]
    None,
    /// Uniform in `0 ..= d` ("full jitter").
    Full,
    /// Half the delay, plus uniform in `0 ..= d/2` ("equal jitter").
    Equal,
    /// The delay plus or minus up to the given percentage (`0.0 ..= 100.0`) of itself.
    Proportional(f64),
}

impl Jitter {
    /// Checks the settings: a proportional percentage must be within `0 ..= 100`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Jitter::Proportional(p) = *self {
            if !(0.0..=100.0).contains(&p) {
                return Err(ConfigError::new(
                    COMPONENT,
                    "jitter percent",
                    p,
                    "must be within 0..=100",
                ));
            }
        }
        Ok(())
    }

    /// Whether this jitter draws random numbers.
    pub(crate) fn is_random(&self) -> bool {
        !matches!(self, Jitter::None)
    }

    /// Applies the jitter to `delay`, drawing from `rng`.
    pub fn apply(&self, delay: Duration, rng: &mut fastrand::Rng) -> Duration {
        let d = nanos(delay);
        let out = match *self {
            Jitter::None => d,
            Jitter::Full => rng.u64(0..=d),
            Jitter::Equal => {
                let half = d / 2;
                (d - half) + rng.u64(0..=half)
            }
            Jitter::Proportional(p) => {
                let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
                let spread = f64_to_nanos(d as f64 * p / 100.0).min(d);
                rng.u64(d - spread..=d.saturating_add(spread))
            }
        };
        Duration::from_nanos(out)
    }
}

/// A backoff and a jitter as plain words, for the policy's live settings
/// ([`SeqWords`](crate::seq::SeqWords)); durations are whole nanoseconds (saturating, which
/// every delay computation does anyway).
pub(crate) fn to_words(backoff: &Backoff, jitter: &Jitter) -> [u64; 6] {
    let (tag, a, b) = match backoff.strategy {
        Curve::Fixed(d) => (0, nanos(d), 0),
        Curve::Linear { base, step } => (1, nanos(base), nanos(step)),
        Curve::Exponential { base, multiplier } => (2, nanos(base), multiplier.to_bits()),
        Curve::Fibonacci { base } => (3, nanos(base), 0),
        Curve::Decorrelated { base } => (4, nanos(base), 0),
    };
    let (tag, cap) = match backoff.cap {
        Some(cap) => (tag | 8, nanos(cap)),
        None => (tag, 0),
    };
    let (jitter_tag, percent) = match *jitter {
        Jitter::None => (0, 0),
        Jitter::Full => (1, 0),
        Jitter::Equal => (2, 0),
        Jitter::Proportional(p) => (3, p.to_bits()),
    };
    [tag, a, b, cap, jitter_tag, percent]
}

/// The backoff and jitter [`to_words`] encoded.
pub(crate) fn from_words(w: [u64; 6]) -> (Backoff, Jitter) {
    let ns = Duration::from_nanos;
    let strategy = match w[0] & 7 {
        0 => Curve::Fixed(ns(w[1])),
        1 => Curve::Linear {
            base: ns(w[1]),
            step: ns(w[2]),
        },
        2 => Curve::Exponential {
            base: ns(w[1]),
            multiplier: f64::from_bits(w[2]),
        },
        3 => Curve::Fibonacci { base: ns(w[1]) },
        _ => Curve::Decorrelated { base: ns(w[1]) },
    };
    let cap = (w[0] & 8 != 0).then(|| ns(w[3]));
    let jitter = match w[4] {
        0 => Jitter::None,
        1 => Jitter::Full,
        2 => Jitter::Equal,
        _ => Jitter::Proportional(f64::from_bits(w[5])),
    };
    (Backoff { strategy, cap }, jitter)
}

/// Bounds a delay to `min ..= max` (`max` of `None` is unbounded).
pub(crate) fn bound(delay: Duration, min: Duration, max: Option<Duration>) -> Duration {
    let d = delay.max(min);
    match max {
        Some(max) => d.min(max),
        None => d,
    }
}

/// The `n`-th Fibonacci number (1, 1, 2, 3, 5, …), saturating at `u64::MAX`.
fn fibonacci(n: u64) -> u64 {
    let (mut a, mut b) = (1u64, 1u64);
    for _ in 2..n {
        let next = a.saturating_add(b);
        a = b;
        b = next;
        if b == u64::MAX {
            break;
        }
    }
    if n <= 2 {
        1
    } else {
        b
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn f64_to_nanos(value: f64) -> u64 {
    if value.is_nan() || value <= 0.0 {
        0
    } else if value >= u64::MAX as f64 {
        u64::MAX
    } else {
        value as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn seq(b: &Backoff, n: u32) -> Vec<Duration> {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut prev = Duration::ZERO;
        (1..=n)
            .map(|i| {
                prev = b.delay(i, prev, &mut rng);
                prev
            })
            .collect()
    }

    #[test]
    fn fixed_sequence() {
        assert_eq!(seq(&Backoff::fixed(ms(250)), 4), [ms(250); 4]);
        assert_eq!(seq(&Backoff::fixed(Duration::ZERO), 2), [Duration::ZERO; 2]);
    }

    #[test]
    fn linear_sequence() {
        assert_eq!(
            seq(&Backoff::linear(ms(100), ms(50)), 5),
            [ms(100), ms(150), ms(200), ms(250), ms(300)]
        );
        assert_eq!(
            seq(&Backoff::linear(ms(100), ms(50)).with_cap(ms(220)), 5),
            [ms(100), ms(150), ms(200), ms(220), ms(220)]
        );
    }

    #[test]
    fn exponential_sequence() {
        assert_eq!(
            seq(&Backoff::exponential(ms(100), 2.0), 6),
            [ms(100), ms(200), ms(400), ms(800), ms(1600), ms(3200)]
        );
        assert_eq!(
            seq(&Backoff::exponential(ms(100), 1.5).with_cap(ms(300)), 5),
            [ms(100), ms(150), ms(225), ms(300), ms(300)]
        );
        assert_eq!(
            seq(&Backoff::exponential(ms(100), 1.0), 3),
            [ms(100), ms(100), ms(100)]
        );
    }

    #[test]
    fn fibonacci_sequence() {
        assert_eq!(
            seq(&Backoff::fibonacci(ms(100)), 8),
            [
                ms(100),
                ms(100),
                ms(200),
                ms(300),
                ms(500),
                ms(800),
                ms(1300),
                ms(2100)
            ]
        );
        assert_eq!(
            seq(&Backoff::fibonacci(ms(100)).with_cap(ms(400)), 6),
            [ms(100), ms(100), ms(200), ms(300), ms(400), ms(400)]
        );
    }

    #[test]
    fn decorrelated_sequence_is_exact_for_a_seed() {
        let b = Backoff::decorrelated_jitter(ms(100), ms(2000));
        // Recompute by hand with the same seeded source.
        let mut rng = fastrand::Rng::with_seed(1);
        let mut prev = 100_000_000u64;
        let mut expected = Vec::new();
        for _ in 0..8 {
            let d = rng.u64(100_000_000..=prev * 3).min(2_000_000_000);
            expected.push(Duration::from_nanos(d));
            prev = d;
        }
        assert_eq!(seq(&b, 8), expected);
        // Another seed gives another sequence.
        let mut rng = fastrand::Rng::with_seed(2);
        let other: Vec<_> = (1..=8).map(|i| b.delay(i, ms(100), &mut rng)).collect();
        assert_ne!(seq(&b, 8), other);
    }

    #[test]
    fn huge_attempt_numbers_saturate() {
        let mut rng = fastrand::Rng::with_seed(0);
        let max = Duration::from_nanos(u64::MAX);
        assert_eq!(
            Backoff::exponential(ms(1), 10.0).delay(u32::MAX, Duration::ZERO, &mut rng),
            max
        );
        assert_eq!(
            Backoff::fibonacci(ms(1)).delay(u32::MAX, Duration::ZERO, &mut rng),
            max
        );
        assert_eq!(
            Backoff::linear(ms(1), Duration::from_secs(u64::MAX / 2)).delay(
                3,
                Duration::ZERO,
                &mut rng
            ),
            max
        );
        assert_eq!(
            Backoff::exponential(ms(1), 10.0).with_cap(ms(5)).delay(
                u32::MAX,
                Duration::ZERO,
                &mut rng
            ),
            ms(5)
        );
    }

    #[test]
    fn validation() {
        assert_eq!(
            Backoff::exponential(ms(1), 0.5)
                .validate()
                .unwrap_err()
                .setting(),
            "backoff multiplier"
        );
        assert!(Backoff::exponential(ms(1), f64::NAN).validate().is_err());
        assert!(Backoff::exponential(ms(1), f64::INFINITY)
            .validate()
            .is_err());
        assert_eq!(
            Backoff::exponential(ms(10), 2.0)
                .with_cap(ms(5))
                .validate()
                .unwrap_err()
                .setting(),
            "backoff cap"
        );
        assert!(Backoff::decorrelated_jitter(ms(10), ms(5))
            .validate()
            .is_err());
        assert!(Backoff::decorrelated_jitter(Duration::ZERO, ms(5))
            .validate()
            .is_err());
        assert!(Backoff::fixed(ms(10)).with_cap(ms(9)).validate().is_err());
        assert!(Backoff::default().validate().is_ok());
        assert!(Jitter::Proportional(100.5).validate().is_err());
        assert!(Jitter::Proportional(-1.0).validate().is_err());
        assert!(Jitter::Proportional(f64::NAN).validate().is_err());
        assert!(Jitter::Proportional(0.0).validate().is_ok());
        assert!(Jitter::Proportional(100.0).validate().is_ok());
    }

    #[test]
    fn bounds() {
        assert_eq!(bound(ms(5), ms(10), Some(ms(20))), ms(10));
        assert_eq!(bound(ms(50), ms(10), Some(ms(20))), ms(20));
        assert_eq!(bound(ms(15), ms(10), Some(ms(20))), ms(15));
        assert_eq!(bound(ms(15), ms(0), None), ms(15));
    }

    #[test]
    fn jitter_draws_are_reproducible_with_a_seed() {
        let draw = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..10)
                .map(|_| Jitter::Full.apply(ms(1000), &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }

    fn duration() -> impl Strategy<Value = Duration> {
        // Up to ~11 days, in nanoseconds, plus the extremes.
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_nanos(1)),
            Just(Duration::from_nanos(u64::MAX)),
            (0u64..1 << 50).prop_map(Duration::from_nanos),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn full_jitter_within_zero_and_d(d in duration(), seed in any::<u64>()) {
            let mut rng = fastrand::Rng::with_seed(seed);
            for _ in 0..16 {
                let j = Jitter::Full.apply(d, &mut rng);
                prop_assert!(j <= d);
            }
        }

        #[test]
        fn equal_jitter_within_half_and_d(d in duration(), seed in any::<u64>()) {
            let mut rng = fastrand::Rng::with_seed(seed);
            for _ in 0..16 {
                let j = Jitter::Equal.apply(d, &mut rng);
                prop_assert!(j <= d);
                prop_assert!(j >= d / 2, "{j:?} < {:?}", d / 2);
            }
        }

        #[test]
        fn proportional_jitter_within_percent(
            d in duration(),
            p in 0.0f64..=100.0,
            seed in any::<u64>(),
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let exact = d.as_nanos() as f64;
            let spread = exact * p / 100.0;
            for _ in 0..16 {
                let j = Jitter::Proportional(p).apply(d, &mut rng).as_nanos() as f64;
                // One ulp of slack for the float computation of the spread.
                let slack = exact.mul_add(1e-12, 1.0);
                prop_assert!(j >= exact - spread - slack, "{j} < {exact} - {spread}");
                prop_assert!(j <= (exact + spread + slack).min(u64::MAX as f64));
            }
        }

        #[test]
        fn jitter_covers_its_range(seed in any::<u64>()) {
            // Over many draws the values spread over the whole range, not a corner of it.
            let mut rng = fastrand::Rng::with_seed(seed);
            let d = Duration::from_secs(1);
            let draws: Vec<_> = (0..400).map(|_| Jitter::Full.apply(d, &mut rng)).collect();
            prop_assert!(draws.iter().any(|j| *j < Duration::from_millis(100)));
            prop_assert!(draws.iter().any(|j| *j > Duration::from_millis(900)));
            let draws: Vec<_> = (0..400).map(|_| Jitter::Proportional(25.0).apply(d, &mut rng)).collect();
            prop_assert!(draws.iter().any(|j| *j < Duration::from_millis(800)));
            prop_assert!(draws.iter().any(|j| *j > Duration::from_millis(1200)));
        }

        #[test]
        fn decorrelated_within_base_and_cap(
            base_ms in 1u64..1_000,
            cap_factor in 1u64..100,
            seed in any::<u64>(),
        ) {
            let base = ms(base_ms);
            let cap = base * cap_factor as u32;
            let b = Backoff::decorrelated_jitter(base, cap);
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut prev = Duration::ZERO;
            for n in 1..=32 {
                let d = b.delay(n, prev, &mut rng);
                prop_assert!(d >= base && d <= cap);
                let prev_or_base = if prev.is_zero() { base } else { prev };
                prop_assert!(d <= prev_or_base * 3);
                prev = d;
            }
        }

        #[test]
        fn exponential_is_monotonic_and_capped(
            base_ms in 0u64..10_000,
            multiplier in 1.0f64..10.0,
            cap_ms in 10_000u64..1_000_000,
        ) {
            let b = Backoff::exponential(ms(base_ms), multiplier).with_cap(ms(cap_ms));
            let mut rng = fastrand::Rng::with_seed(0);
            let mut last = Duration::ZERO;
            for n in 1..=64 {
                let d = b.delay(n, last, &mut rng);
                prop_assert!(d >= last);
                prop_assert!(d <= ms(cap_ms));
                last = d;
            }
        }

        #[test]
        fn bound_is_within_min_and_max(
            d in duration(),
            min_ms in 0u64..1_000,
            extra_ms in 0u64..1_000,
        ) {
            let (min, max) = (ms(min_ms), ms(min_ms + extra_ms));
            let b = bound(d, min, Some(max));
            prop_assert!(b >= min && b <= max);
        }
    }
}
