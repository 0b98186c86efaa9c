//! The repository's example configuration file loads, and every instance in it builds.

use battlement_config::{Loader, Resilience};
use battlement_health::HealthRegistry;
use std::time::Duration;

#[test]
fn the_example_file_loads_and_every_instance_builds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let config = Loader::new().dir(dir).no_env_overrides().load().unwrap();
    let names: Vec<&str> = config.instance_names().collect();
    assert_eq!(
        names,
        ["deploys", "gateway", "inventory", "payments", "search"]
    );
    let health = HealthRegistry::new();
    let resilience = Resilience::builder(config.clone())
        .registry(&health)
        .build();
    for name in names {
        let instance = config.instance(name).unwrap();
        if instance.breaker.is_some() {
            resilience.breaker(name).unwrap();
        }
        if instance.bulkhead.is_some() {
            resilience.bulkhead(name).unwrap();
        }
        if instance.retry.is_some() {
            resilience.retry(name).unwrap();
        }
        if instance.timeout.is_some() {
            resilience.timeout(name).unwrap();
        }
        if instance.hedge.is_some() {
            resilience.hedge(name).unwrap();
        }
        if instance.kill_switch.is_some() {
            resilience.kill_switch(name).unwrap();
        }
        if instance.rate_limit.is_some() {
            resilience.rate_limit(name).unwrap();
        }
        if instance.throttle.is_some() {
            resilience.throttle(name).unwrap();
        }
        if instance.adaptive_limit.is_some() {
            resilience.adaptive_limit(name).unwrap();
        }
    }
    // Inheritance as the file says: search ← strict-fast ← strict.
    let search = config.instance("search").unwrap();
    assert_eq!(
        search.timeout.as_ref().unwrap().limit,
        Some(Duration::from_millis(250))
    );
    assert_eq!(search.breaker.as_ref().unwrap().failure_rate, Some(0.2));
    assert_eq!(
        search.breaker.as_ref().unwrap().minimum_calls,
        Some(20),
        "from defaults"
    );
    assert!(health.names().contains(&"deploys".to_owned()));
}
