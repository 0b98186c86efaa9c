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
//!
//! A reload ([`Budget::set`]) changes the ratio and the burst under the same lock; whether there
//! is a budget at all is a flag that a hedge decision reads first, so a layer without a budget
//! takes no lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

const SCALE: u64 = 1_000_000;

#[derive(Debug)]
pub(crate) struct Budget {
    on: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    per_request: u64,
    cap: u64,
    requests_seen: u64,
    tokens: u64,
}

impl State {
    /// Credits the requests counted since the last look (`requests` is the running total).
    fn credit(&mut self, requests: u64) {
        let new = requests.saturating_sub(self.requests_seen);
        self.requests_seen = self.requests_seen.max(requests);
        self.tokens = self
            .tokens
            .saturating_add(new.saturating_mul(self.per_request))
            .min(self.cap);
    }
}

impl Budget {
    /// A budget of `ratio` hedges per request, saving up at most `burst`.
    #[cfg(test)]
    pub(crate) fn new(ratio: f64, burst: u32) -> Self {
        let budget = Self::off();
        budget.set(Some((ratio, burst)), 0);
        budget
    }

    /// No budget: every hedge is allowed.
    pub(crate) fn off() -> Self {
        Budget {
            on: AtomicBool::new(false),
            state: Mutex::new(State {
                per_request: 0,
                cap: 0,
                requests_seen: 0,
                tokens: 0,
            }),
        }
    }

    /// Whether hedges are budgeted.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Sets the ratio and burst (`None`: no budget), `requests` being the running total now.
    /// A budget that was on keeps its tokens (credited at the old ratio up to now, then capped
    /// by the new burst); one turned on starts empty, as a new layer's does.
    pub(crate) fn set(&self, setting: Option<(f64, u32)>, requests: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some((ratio, burst)) = setting else {
            self.on.store(false, Ordering::Release);
            return;
        };
        if self.is_on() {
            s.credit(requests);
        } else {
            s.requests_seen = requests;
            s.tokens = 0;
        }
        s.per_request = (ratio * SCALE as f64).round() as u64;
        s.cap = u64::from(burst) * SCALE;
        s.tokens = s.tokens.min(s.cap);
        self.on.store(true, Ordering::Release);
    }

    /// Takes one token if there is one, after crediting the requests counted since the last
    /// withdrawal (`requests` is the running total).
    pub(crate) fn withdraw(&self, requests: u64) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.credit(requests);
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
            .saturating_add(new.saturating_mul(s.per_request))
            .min(s.cap)
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
    fn a_new_ratio_and_burst_apply_from_the_next_requests() {
        let b = Budget::new(0.1, 10);
        // 20 requests at 0.1 earn 2 tokens; then the ratio is 0.5 and the burst 3.
        b.set(Some((0.5, 3)), 20);
        assert_eq!(b.available(20), 2, "tokens earned so far are kept");
        assert_eq!(b.available(22), 3, "two requests at 0.5 earn one more");
        assert_eq!(b.available(1000), 3, "capped at the new burst");
        b.set(None, 1000);
        assert!(!b.is_on());
        // Turned on again, it starts empty.
        b.set(Some((1.0, 5)), 1000);
        assert_eq!(b.available(1000), 0);
        assert!(b.withdraw(1001));
    }

    #[test]
    fn zero_ratio_never_allows() {
        let b = Budget::new(0.0, 10);
        assert!(!b.withdraw(1_000_000));
    }
}
