//! The clock an adaptive limit times calls with.
//!
//! By default it reads the CPU's time-stamp counter through `quanta` (a few nanoseconds a read,
//! against about 20 for `Instant::now`): an adaptive limit times every call, so this clock is
//! most of what it costs. With the `tokio-time` feature it reads `tokio::time::Instant`
//! instead, so tests drive it with `tokio::time::pause()`. Latencies stay in raw ticks on the
//! call path and are scaled to nanoseconds only when a window closes.

#[cfg(not(feature = "tokio-time"))]
#[derive(Debug, Clone)]
pub(crate) struct HotClock {
    clock: quanta::Clock,
}

#[cfg(not(feature = "tokio-time"))]
impl HotClock {
    pub(crate) fn new() -> Self {
        HotClock {
            clock: quanta::Clock::new(),
        }
    }

    /// A raw reading: only differences of two readings mean anything.
    #[inline]
    pub(crate) fn raw(&self) -> u64 {
        self.clock.raw()
    }

    /// A span of raw ticks in nanoseconds.
    pub(crate) fn ticks_to_nanos(&self, ticks: u64) -> u64 {
        self.clock.delta_as_nanos(0, ticks)
    }

    /// The fewest raw ticks that span at least `nanos`.
    pub(crate) fn nanos_to_ticks(&self, nanos: u64) -> u64 {
        if self.ticks_to_nanos(u64::MAX) < nanos {
            return u64::MAX;
        }
        let (mut lo, mut hi) = (0u64, u64::MAX);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ticks_to_nanos(mid) >= nanos {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
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

    /// Nanoseconds since the clock was made.
    #[inline]
    pub(crate) fn raw(&self) -> u64 {
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
