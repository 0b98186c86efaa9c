//! The hedge budget: hedges as a fraction of requests, with a bounded burst.
//!
//! A token bucket fed by requests: each request adds `ratio` of a token, a hedge takes one
//! whole token, and the bucket holds at most `burst` tokens (so a long quiet period cannot save
//! up a flood of hedges for an incident). It starts empty.
//!
//! The bucket is not touched per request: requests are counted anyway (a striped counter, see
//! [`crate::stripe`]), and the bucket catches up with the count only when a hedge is about to be
//! sent, under a short lock. Tokens are kept in millionths, so the arithmetic is exact: with a
//! ratio of 0.1, exactly one hedge per ten requests.

use std::sync::Mutex;

const SCALE: u64 = 1_000_000;

#[derive(Debug)]
pub(crate) struct Budget {
    per_request: u64,
    cap: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    requests_seen: u64,
    tokens: u64,
}

impl Budget {
    pub(crate) fn new(ratio: f64, burst: u32) -> Self {
        Budget {
            per_request: (ratio * SCALE as f64).round() as u64,
            cap: u64::from(burst) * SCALE,
            state: Mutex::new(State {
                requests_seen: 0,
                tokens: 0,
            }),
        }
    }

    /// Takes one token if there is one, after crediting the requests counted since the last
    /// withdrawal (`requests` is the running total).
    pub(crate) fn withdraw(&self, requests: u64) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let new = requests.saturating_sub(s.requests_seen);
        s.requests_seen = s.requests_seen.max(requests);
        s.tokens = s
            .tokens
            .saturating_add(new.saturating_mul(self.per_request))
            .min(self.cap);
        if s.tokens >= SCALE {
            s.tokens -= SCALE;
            true
        } else {
            false
        }
    }

    /// Whole tokens available now, given the running total of requests.
    pub(crate) fn available(&self, requests: u64) -> u64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let new = requests.saturating_sub(s.requests_seen);
        s.tokens
            .saturating_add(new.saturating_mul(self.per_request))
            .min(self.cap)
            / SCALE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_per_ten_requests_exactly() {
        let b = Budget::new(0.1, 100);
        let mut allowed = 0;
        for requests in 1..=100 {
            if b.withdraw(requests) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    #[test]
    fn burst_caps_saved_up_tokens() {
        let b = Budget::new(0.5, 3);
        // 1000 quiet requests save up only 3 tokens.
        assert_eq!(b.available(1000), 3);
        assert!(b.withdraw(1000));
        assert!(b.withdraw(1000));
        assert!(b.withdraw(1000));
        assert!(!b.withdraw(1000));
        assert!(!b.withdraw(1001));
        assert!(b.withdraw(1002));
    }

    #[test]
    fn zero_ratio_never_allows() {
        let b = Budget::new(0.0, 10);
        assert!(!b.withdraw(1_000_000));
    }
}
