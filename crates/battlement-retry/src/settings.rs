//! The policy's reloadable settings, read without a lock at each retry decision.

use crate::backoff::{from_words, nanos, to_words, Backoff, Jitter};
use crate::seq::SeqWords;
use std::time::Duration;

/// The settings a reload replaces (the budget's are the budget's own).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub(crate) max_attempts: u32,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) backoff: Backoff,
    pub(crate) jitter: Jitter,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Option<Duration>,
    pub(crate) max_retry_after: Duration,
}

/// Words: max_attempts, time_limit (0: none), min_delay, max_delay (+1; 0: none),
/// max_retry_after, then the backoff's and jitter's six.
const WORDS: usize = 11;
const TIME_LIMIT: usize = 1;

/// [`Settings`] as words a reload replaces at once ([`SeqWords`]).
pub(crate) struct LiveSettings(SeqWords<WORDS>);

fn encode(s: &Settings) -> [u64; WORDS] {
    let curve = to_words(&s.backoff, &s.jitter);
    let mut w = [0; WORDS];
    w[0] = u64::from(s.max_attempts);
    // A time limit is above zero (validated), so 0 can mean none.
    w[TIME_LIMIT] = s.time_limit.map_or(0, |d| nanos(d).max(1));
    w[2] = nanos(s.min_delay);
    w[3] = s.max_delay.map_or(0, |d| nanos(d).saturating_add(1));
    w[4] = nanos(s.max_retry_after);
    w[5..].copy_from_slice(&curve);
    w
}

fn decode(w: [u64; WORDS]) -> Settings {
    let ns = Duration::from_nanos;
    let mut curve = [0; 6];
    curve.copy_from_slice(&w[5..]);
    let (backoff, jitter) = from_words(curve);
    Settings {
        max_attempts: w[0] as u32,
        time_limit: (w[TIME_LIMIT] != 0).then(|| ns(w[TIME_LIMIT])),
        backoff,
        jitter,
        min_delay: ns(w[2]),
        max_delay: (w[3] != 0).then(|| ns(w[3] - 1)),
        max_retry_after: ns(w[4]),
    }
}

impl LiveSettings {
    pub(crate) fn new(settings: &Settings) -> Self {
        LiveSettings(SeqWords::new(encode(settings)))
    }

    /// The settings now, all from the same reload.
    #[inline]
    pub(crate) fn get(&self) -> Settings {
        decode(self.0.read())
    }

    /// Whether a time limit is set (one word: for the first attempt's path).
    #[inline]
    pub(crate) fn has_time_limit(&self) -> bool {
        self.0.word(TIME_LIMIT) != 0
    }

    pub(crate) fn set(&self, settings: &Settings) {
        self.0.write(encode(settings));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_their_words() {
        let ms = Duration::from_millis;
        for (backoff, jitter) in [
            (Backoff::fixed(ms(5)), Jitter::None),
            (Backoff::linear(ms(5), ms(7)), Jitter::Full),
            (
                Backoff::exponential(ms(5), 1.5).with_cap(ms(900)),
                Jitter::Equal,
            ),
            (Backoff::fibonacci(ms(3)), Jitter::Proportional(12.5)),
            (Backoff::decorrelated_jitter(ms(3), ms(60)), Jitter::None),
        ] {
            let s = Settings {
                max_attempts: 7,
                time_limit: Some(ms(1500)),
                backoff,
                jitter,
                min_delay: ms(1),
                max_delay: Some(ms(2000)),
                max_retry_after: Duration::from_secs(60),
            };
            assert_eq!(LiveSettings::new(&s).get(), s);
            let none = Settings {
                time_limit: None,
                max_delay: None,
                ..s
            };
            assert_eq!(LiveSettings::new(&none).get(), none);
        }
    }
}
