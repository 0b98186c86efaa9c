//! The clock on the call path: call latency and time-window buckets.
//!
//! By default it reads the CPU's time-stamp counter through `quanta` (about 9 ns a read, against
//! about 24 ns for `Instant::now`): timing every call is what slow-call detection costs, so this
//! clock is what keeps it cheap. With the `tokio-time` feature it reads `tokio::time::Instant`
//! instead, so tests can drive it with `tokio::time::pause()`. The state machine's own waits
//! (open wait, half-open limit) always use tokio's clock: they are read rarely.

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
    pub(crate) fn nanos_between(&self, start: u64, end: u64) -> u64 {
        end.saturating_sub(start)
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
}
