//! Metrics export (feature `metrics`): everything of [`battlement_metrics`], and
//! [`families`], every metric family the enabled components report.
//!
//! The table of names and labels is in the README's *Metrics* section; a test checks it against
//! [`families`], and the Grafana dashboard (`dashboards/battlement.json`) against a scrape.

pub use battlement_metrics::*;

use battlement_core::export::Family;

/// Every metric family the components of the enabled features report, the exporter's own
/// [`HEALTH_STATUS`] first: what OpenTelemetry instruments are built from
/// (`opentelemetry::register(&meter, &registry, &families())`).
///
/// ```
/// let families = battlement::metrics::families();
/// assert_eq!(families[0].name, "battlement_health_status");
/// assert!(families.iter().any(|f| f.name == "battlement_circuit_breaker_calls"));
/// assert!(families.iter().all(|f| f.name.starts_with("battlement_")));
/// ```
pub fn families() -> Vec<&'static Family> {
    let mut all: Vec<&'static Family> = vec![&HEALTH_STATUS];
    #[cfg(feature = "breaker")]
    all.extend_from_slice(battlement_breaker::FAMILIES);
    #[cfg(feature = "bulkhead")]
    all.extend_from_slice(battlement_bulkhead::FAMILIES);
    #[cfg(feature = "retry")]
    all.extend_from_slice(battlement_retry::FAMILIES);
    #[cfg(feature = "timeout")]
    all.extend_from_slice(battlement_timeout::FAMILIES);
    #[cfg(feature = "hedge")]
    all.extend_from_slice(battlement_hedge::FAMILIES);
    #[cfg(feature = "fallback")]
    all.extend_from_slice(battlement_fallback::FAMILIES);
    #[cfg(feature = "kill-switch")]
    all.extend_from_slice(battlement_kill_switch::FAMILIES);
    #[cfg(feature = "chaos")]
    all.extend_from_slice(battlement_chaos::FAMILIES);
    #[cfg(feature = "rate-limit")]
    all.extend_from_slice(battlement_rate_limit::FAMILIES);
    #[cfg(feature = "throttle")]
    all.extend_from_slice(battlement_throttle::FAMILIES);
    #[cfg(feature = "keyed")]
    all.extend_from_slice(battlement_keyed::FAMILIES);
    #[cfg(feature = "outlier")]
    all.extend_from_slice(battlement_outlier::FAMILIES);
    all.extend_from_slice(battlement_health::FAMILIES);
    #[cfg(feature = "fleet")]
    all.extend_from_slice(battlement_fleet::FAMILIES);
    #[cfg(feature = "config")]
    all.extend_from_slice(battlement_config::FAMILIES);
    all
}
