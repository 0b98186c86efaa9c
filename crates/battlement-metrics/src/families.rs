//! The documented table of family names the components report.

use battlement_core::export::Family;

macro_rules! table {
    ($($id:ident = $ctor:ident($name:literal, $help:literal, $unit:literal);)*) => {
        $(static $id: Family = Family::$ctor($name, $help, $unit);)*
        /// The metric families of the naming convention (`battlement_<kind>_<what>`, counters
        /// without `_total`, durations in seconds) that the issue asks every component to
        /// report, with the exporter's own [`HEALTH_STATUS`](crate::HEALTH_STATUS) first.
        ///
        /// It is the table the Grafana dashboard (`dashboards/battlement.json`) is written
        /// against, and what [`opentelemetry`](crate::opentelemetry) exporters are built from
        /// by default, until the pattern crates' own `FAMILIES` statics replace it. Labels
        /// beyond `name` (which the exporter adds):
        ///
        /// | family | type | labels |
        /// |---|---|---|
        /// | `battlement_health_status` | gauge | `kind`, `status` |
        /// | `battlement_circuit_breaker_calls` | counter | `outcome`: success, failure, slow, ignored, rejected |
        /// | `battlement_circuit_breaker_state` | gauge (1 for the current state) | `state` |
        /// | `battlement_circuit_breaker_transitions` | counter | `from`, `to` |
        /// | `battlement_circuit_breaker_failure_rate`, `_slow_call_rate` | gauge (0..=1) | |
        /// | `battlement_circuit_breaker_call_duration_seconds` | histogram | |
        /// | `battlement_bulkhead_in_flight`, `_queued`, `_free` | gauge | |
        /// | `battlement_bulkhead_rejections` | counter | `reason` |
        /// | `battlement_bulkhead_queue_wait_seconds` | histogram | |
        /// | `battlement_retry_attempts` | counter | `outcome` |
        /// | `battlement_retry_budget_exhausted` | counter | |
        /// | `battlement_timeout_elapsed` | counter | |
        /// | `battlement_hedge_hedges` | counter | |
        /// | `battlement_fallback_calls` | counter | `outcome` |
        /// | `battlement_kill_switch_rejections` | counter | |
        /// | `battlement_chaos_faults` | counter | `fault` |
        ///
        /// ```
        /// assert_eq!(battlement_metrics::CONVENTION[0].name, "battlement_health_status");
        /// assert!(battlement_metrics::CONVENTION.iter().all(|f| f.name.starts_with("battlement_")));
        /// ```
        pub static CONVENTION: &[&Family] = &[&crate::HEALTH_STATUS, $(&$id),*];
    };
}

table! {
    BREAKER_CALLS = counter("battlement_circuit_breaker_calls", "Calls through the circuit breaker, by outcome.", "calls");
    BREAKER_STATE = gauge("battlement_circuit_breaker_state", "1 for the state the circuit breaker is in, 0 for the others.", "");
    BREAKER_TRANSITIONS = counter("battlement_circuit_breaker_transitions", "State transitions of the circuit breaker.", "transitions");
    BREAKER_FAILURE_RATE = gauge("battlement_circuit_breaker_failure_rate", "Failure rate over the circuit breaker's window.", "");
    BREAKER_SLOW_RATE = gauge("battlement_circuit_breaker_slow_call_rate", "Slow-call rate over the circuit breaker's window.", "");
    BREAKER_DURATION = histogram("battlement_circuit_breaker_call_duration_seconds", "Duration of the calls the circuit breaker permitted.", "seconds");
    BULKHEAD_IN_FLIGHT = gauge("battlement_bulkhead_in_flight", "Calls running in the bulkhead now.", "calls");
    BULKHEAD_QUEUED = gauge("battlement_bulkhead_queued", "Calls waiting for a permit now.", "calls");
    BULKHEAD_FREE = gauge("battlement_bulkhead_free", "Permits free now.", "permits");
    BULKHEAD_REJECTIONS = counter("battlement_bulkhead_rejections", "Calls the bulkhead rejected, by reason.", "calls");
    BULKHEAD_QUEUE_WAIT = histogram("battlement_bulkhead_queue_wait_seconds", "Time calls waited for a permit.", "seconds");
    RETRY_ATTEMPTS = counter("battlement_retry_attempts", "Attempts, by outcome.", "attempts");
    RETRY_BUDGET = counter("battlement_retry_budget_exhausted", "Retries refused because the retry budget was spent.", "retries");
    TIMEOUT_ELAPSED = counter("battlement_timeout_elapsed", "Calls that ran out of time.", "calls");
    HEDGE_HEDGES = counter("battlement_hedge_hedges", "Hedged requests sent.", "requests");
    FALLBACK_CALLS = counter("battlement_fallback_calls", "Calls through the fallback chain, by outcome.", "calls");
    KILL_SWITCH_REJECTIONS = counter("battlement_kill_switch_rejections", "Calls the kill switch rejected.", "calls");
    CHAOS_FAULTS = counter("battlement_chaos_faults", "Faults injected, by fault.", "faults");
}
