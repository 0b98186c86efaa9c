//! The qualitative results the literature predicts, and the README's "At fleet scale" states,
//! on small seeded runs (`Config::small`: 500 clients, 5 servers, the same load per server as
//! the full run, capacity down to 30 % from 30 s to 90 s). Each scenario runs once per test
//! binary and is shared by the tests that read it.

use battlement_sim::{Config, Report, Scenario};
use std::sync::OnceLock;
use std::time::Duration;

const SEED: u64 = 2026;

fn report(scenario: Scenario) -> &'static Report {
    static REPORTS: [OnceLock<Report>; 6] = [const { OnceLock::new() }; 6];
    let i = Scenario::ALL.iter().position(|s| *s == scenario).unwrap();
    REPORTS[i].get_or_init(|| battlement_sim::run(&Config::small(scenario, SEED)))
}

#[test]
fn without_retries_load_stays_at_one_attempt_per_request_and_recovers_once_queues_drain() {
    let s = &report(Scenario::NoRetries).summary;
    assert!((s.amplification_drop - 1.0).abs() < 1e-9, "{s:?}");
    let recovery = s.recovery.expect("recovers");
    assert!(recovery <= Duration::from_secs(15), "{s:?}");
}

#[test]
fn naive_retries_amplify_load_at_least_2_5x_during_the_drop_and_do_not_recover() {
    for scenario in [Scenario::Retries, Scenario::RetriesJitter] {
        let s = &report(scenario).summary;
        assert!(s.amplification_drop >= 2.5, "{scenario:?}: {s:?}");
        // Metastable: capacity is back, the retries keep the servers' queues full of calls
        // whose callers have timed out, and nothing succeeds.
        assert!(s.amplification_after >= 2.5, "{scenario:?}: {s:?}");
        assert_eq!(s.recovery, None, "{scenario:?}: {s:?}");
        assert!(s.success_after < 0.05, "{scenario:?}: {s:?}");
    }
}

#[test]
fn a_ten_percent_budget_keeps_amplification_at_most_1_2x_and_recovers_as_fast_as_no_retries() {
    let s = &report(Scenario::Budget).summary;
    assert!(s.amplification_drop <= 1.2, "{s:?}");
    assert!(s.amplification_after <= 1.2, "{s:?}");
    let recovery = s.recovery.expect("recovers");
    let baseline = report(Scenario::NoRetries).summary.recovery.unwrap();
    assert!(recovery <= baseline + Duration::from_secs(5), "{s:?}");
}

#[test]
fn full_jitter_spreads_the_synchronized_retries_after_the_crash() {
    let plain = report(Scenario::Retries).summary.spike;
    let jittered = report(Scenario::RetriesJitter).summary.spike;
    assert!(
        plain >= 2.0 * jittered,
        "no jitter {plain:.2}, full jitter {jittered:.2}"
    );
}

#[test]
fn breaker_and_adaptive_limit_take_load_off_the_servers_during_the_drop() {
    let budget = &report(Scenario::Budget).summary;
    for scenario in [Scenario::Breaker, Scenario::Adaptive] {
        let s = &report(scenario).summary;
        assert!(
            s.amplification_drop < 0.8 * budget.amplification_drop,
            "{scenario:?}: {s:?}"
        );
        // Load off the servers is goodput back: fewer calls die in the queues.
        assert!(
            s.goodput_drop > 2.0 * budget.goodput_drop,
            "{scenario:?}: {s:?}"
        );
        assert!(s.recovery.is_some(), "{scenario:?}: {s:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_numbers_and_another_seed_others() {
    // Full jitter, so the retry policy's seeded randomness is part of what must repeat.
    let config = Config {
        duration: Duration::from_secs(100),
        ..Config::small(Scenario::RetriesJitter, 7)
    };
    let a = battlement_sim::run(&config);
    let b = battlement_sim::run(&config);
    assert_eq!(a, b);
    let c = battlement_sim::run(&Config { seed: 8, ..config });
    assert_ne!(a.series, c.series);
}
