//! The clock on the call path: call latency and time-window buckets.
//!
//! By default it reads the CPU's time-stamp counter through `quanta` (about 9 ns a read, against
//! about 24 ns for `Instant::now`): timing every call is what slow-call detection costs, so this
//! clock is what keeps it cheap. With the `tokio-time` feature it reads `tokio::time::Instant`
//! instead, so tests can drive it with `tokio::time::pause()`. The state machine's own waits
//! (open wait, half-open limit) always use tokio's clock: they are read rarely.
//!
//! Call latencies stay in raw ticks on the call path: the slow-call limit is converted to ticks
//! once, when the breaker is built, and metrics scale the window's latency sums back to time.

#[cfg(not(feature = "tokio-time"))]
#[derive(Debug, Clone)]
pub(crate) struct HotClock {
    clock: quanta::Clock,
    origin: u64,
}

#[cfg(not(feature = "tokio-time"))]
impl HotClock {
    pub(crate) fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        HotClock { clock, origin }
    }

    /// A raw reading, only meaningful to [`nanos_between`](Self::nanos_between).
    #[inline]
    pub(crate) fn raw(&self) -> u64 {
        self.clock.raw()
    }

    /// Nanoseconds from `start` to `end`.
    #[inline]
    pub(crate) fn nanos_between(&self, start: u64, end: u64) -> u64 {
        self.clock.delta_as_nanos(start, end)
    }

    /// Nanoseconds since the clock was made.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.nanos_between(self.origin, self.raw())
    }

    /// A span of raw ticks (a difference of two [`raw`](Self::raw) readings) in nanoseconds.
    pub(crate) fn ticks_to_nanos(&self, ticks: u64) -> u64 {
        self.clock.delta_as_nanos(0, ticks)
    }

    /// The fewest raw ticks that span at least `nanos` (`u64::MAX` if none does), so a call's
    /// latency is compared in ticks, with no scaling on the call path.
    pub(crate) fn nanos_to_ticks(&self, nanos: u64) -> u64 {
        fewest_ticks(nanos, |ticks| self.ticks_to_nanos(ticks))
    }
}

/// The fewest ticks whose span in nanoseconds (`scale`, monotonic) is at least `nanos`, or
/// `u64::MAX` if no span is that long.
#[cfg_attr(feature = "tokio-time", allow(dead_code))]
fn fewest_ticks(nanos: u64, scale: impl Fn(u64) -> u64) -> u64 {
    if scale(u64::MAX) < nanos {
        return u64::MAX;
    }
    let (mut lo, mut hi) = (0u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if scale(mid) >= nanos {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::fewest_ticks;
    use proptest::prelude::*;

    /// quanta's scaling: `ticks * factor >> shift`, in 128 bits.
    fn scale(ticks: u64, factor: u64, shift: u32) -> u64 {
        u64::try_from((u128::from(ticks) * u128::from(factor)) >> shift).unwrap_or(u64::MAX)
    }

    proptest! {
        #[test]
        fn fewest_ticks_is_the_first_span_that_reaches_the_limit(
            nanos in 0u64..1 << 50,
            factor in 1u64..1 << 40,
            shift in 30u32..40,
        ) {
            let f = |t| scale(t, factor, shift);
            let t = fewest_ticks(nanos, f);
            if t == u64::MAX {
                prop_assert!(f(u64::MAX) < nanos);
            } else {
                prop_assert!(f(t) >= nanos);
                prop_assert!(t == 0 || f(t - 1) < nanos);
            }
        }
    }

    #[test]
    fn a_limit_no_span_reaches_is_never_met() {
        assert_eq!(fewest_ticks(10, |t| t / (u64::MAX / 4)), u64::MAX);
        assert_eq!(fewest_ticks(0, |t| t), 0);
        assert_eq!(fewest_ticks(1_000, |t| t.saturating_mul(2)), 500);
    }
}

#[cfg(feature = "tokio-time")]
#[derive(Debug, Clone)]
pub(crate) struct HotClock {
    origin: tokio::time::Instant,
}

#[cfg(feature = "tokio-time")]
impl HotClock {
    pub(crate) fn new() -> Self {
        HotClock {
            origin: tokio::time::Instant::now(),
        }
    }

    #[inline]
    pub(crate) fn raw(&self) -> u64 {
        self.now()
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(
            tokio::time::Instant::now()
                .saturating_duration_since(self.origin)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX)
    }

    #[allow(clippy::unused_self, reason = "the same signature as the TSC clock's")]
    pub(crate) fn ticks_to_nanos(&self, ticks: u64) -> u64 {
        ticks
    }

    #[allow(clippy::unused_self, reason = "the same signature as the TSC clock's")]
    pub(crate) fn nanos_to_ticks(&self, nanos: u64) -> u64 {
        nanos
    }
}
