//! The README's configuration file is `examples/battlement.toml`, and it loads and builds.
#![cfg(feature = "config")]

use battlement::config::{Configuration, Resilience};
use battlement::health::HealthRegistry;

/// The README's `toml` block.
fn readme_file() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```toml\n")
        .expect("the README has a toml block")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_owned()
}

#[test]
fn the_readme_configuration_is_the_example_file_and_builds() {
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/battlement.toml"
    ))
    .unwrap();
    let readme = readme_file();
    assert_eq!(
        readme, file,
        "the README's configuration differs from examples/battlement.toml"
    );

    let config = Configuration::from_toml(&readme).unwrap();
    let names: Vec<String> = config.instance_names().map(str::to_owned).collect();
    assert_eq!(
        names,
        ["deploys", "gateway", "inventory", "payments", "search"]
    );
    let health = HealthRegistry::new();
    let resilience = Resilience::builder(config).registry(&health).build();
    for name in &names {
        let stack = battlement::ResilienceStack::from_config(&resilience, name).unwrap();
        stack.build().unwrap();
    }
    // Every instance's components registered, payments' among them: a breaker, a bulkhead, a
    // retry and a timeout (from `strict` and its own tables).
    let mut payments = Vec::new();
    health.for_each_component(|c| {
        if c.name() == "payments" {
            payments.push(c.kind().as_str());
        }
    });
    payments.sort_unstable();
    assert_eq!(
        payments,
        ["bulkhead", "circuit_breaker", "retry", "timeout"]
    );
    // The gateway's admission controls: a rate limiter, a throttle, an adaptive limit.
    resilience.rate_limit("gateway").unwrap();
    resilience.throttle("gateway").unwrap();
    resilience.adaptive_limit("gateway").unwrap();
    let mut gateway = Vec::new();
    health.for_each_component(|c| {
        if c.name() == "gateway" {
            gateway.push(c.kind().as_str());
        }
    });
    gateway.sort_unstable();
    assert_eq!(gateway, ["bulkhead", "rate_limit", "throttle"]);
}
