//! The registry of named components: identity, get-or-create under contention, health.

use battlement_breaker::State;
use battlement_config::{Configuration, Resilience, ResilienceError};
use battlement_core::ComponentKind;
use battlement_health::HealthRegistry;
use std::time::Duration;

fn config() -> Configuration {
    Configuration::from_toml(
        r#"
[defaults.bulkhead]
max_concurrent = 4
[defaults.timeout]
limit = "3s"
[instances.payments.breaker]
failure_rate = 0.3
critical = false
[instances.payments.bulkhead]
max_concurrent = 10
[instances.payments.retry]
max_attempts = 2
[instances.payments.hedge]
delay = "20ms"
[instances.deploys.kill_switch]
"#,
    )
    .unwrap()
}

#[test]
fn the_same_name_is_the_same_component() {
    let resilience = Resilience::new(config());
    let a = resilience.breaker("payments").unwrap();
    a.force_open("test");
    assert_eq!(
        resilience.breaker("payments").unwrap().state(),
        State::ForcedOpen
    );
    let b = resilience.bulkhead("payments").unwrap();
    b.set_max_concurrent(3).unwrap();
    assert_eq!(resilience.bulkhead("payments").unwrap().max_concurrent(), 3);
    let k = resilience.kill_switch("deploys").unwrap();
    k.halt("freeze");
    assert!(resilience.kill_switch("deploys").unwrap().is_halted());
    // A clone of the registry shares the components.
    assert_eq!(
        resilience.clone().breaker("payments").unwrap().state(),
        State::ForcedOpen
    );
}

#[test]
fn an_instance_without_a_pattern_gets_the_defaults_one() {
    let resilience = Resilience::new(config());
    assert_eq!(resilience.bulkhead("deploys").unwrap().max_concurrent(), 4);
    assert_eq!(
        resilience.timeout("payments").unwrap().limit(),
        Duration::from_secs(3)
    );
}

#[test]
fn unknown_names_are_refused_unless_allowed() {
    let strict = Resilience::new(config());
    assert_eq!(
        strict.bulkhead("paymnets").unwrap_err(),
        ResilienceError::UnknownInstance {
            kind: Some(ComponentKind::Bulkhead),
            name: "paymnets".into()
        }
    );
    let lenient = Resilience::builder(config())
        .unknown_names_from_defaults(true)
        .build();
    assert_eq!(
        lenient.bulkhead("audit").unwrap().max_concurrent(),
        4,
        "from defaults"
    );
    assert!(matches!(
        lenient.breaker("no spaces"),
        Err(ResilienceError::InvalidName { .. })
    ));
    // A timeout needs a limit: without defaults, there is none.
    let bare = Resilience::builder(Configuration::default())
        .unknown_names_from_defaults(true)
        .build();
    let err = bare.timeout("audit").unwrap_err();
    assert!(
        matches!(&err, ResilienceError::Build(e) if e.setting() == "limit"),
        "{err}"
    );
}

#[test]
fn every_component_created_registers_with_health() {
    let health = HealthRegistry::new();
    let resilience = Resilience::builder(config()).registry(&health).build();
    resilience.breaker("payments").unwrap();
    resilience.bulkhead("payments").unwrap();
    resilience.hedge("payments").unwrap();
    resilience.kill_switch("deploys").unwrap();
    resilience.retry("payments").unwrap();
    resilience.timeout("payments").unwrap();
    // Asking again registers nothing more (a second registration would be refused).
    resilience.breaker("payments").unwrap();
    let report = health.report();
    let mut found: Vec<(String, String, bool)> = report
        .components
        .iter()
        .map(|c| {
            (
                format!("{:?}", c.snapshot.kind),
                c.name().to_owned(),
                c.critical,
            )
        })
        .collect();
    found.sort();
    let mut expected = vec![
        (
            format!("{:?}", ComponentKind::CircuitBreaker),
            "payments".to_owned(),
            false,
        ), // critical = false in the file
        (
            format!("{:?}", ComponentKind::Bulkhead),
            "payments".to_owned(),
            false,
        ),
        (
            format!("{:?}", ComponentKind::Hedge),
            "payments".to_owned(),
            false,
        ),
        (
            format!("{:?}", ComponentKind::KillSwitch),
            "deploys".to_owned(),
            true,
        ),
        // Retry policies and timeouts are health components too.
        (
            format!("{:?}", ComponentKind::Retry),
            "payments".to_owned(),
            false,
        ),
        (
            format!("{:?}", ComponentKind::Timeout),
            "payments".to_owned(),
            false,
        ),
        // The registry's reload counts.
        (
            format!("{:?}", ComponentKind::Other),
            "config".to_owned(),
            false,
        ),
    ];
    expected.sort();
    assert_eq!(found, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_calls_build_one_component() {
    for _ in 0..20 {
        let health = HealthRegistry::new();
        let resilience = Resilience::builder(config()).registry(&health).build();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (r, barrier) = (resilience.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    r.breaker("payments").unwrap()
                })
            })
            .collect();
        let mut breakers = Vec::new();
        for t in tasks {
            breakers.push(t.await.unwrap());
        }
        breakers[0].force_open("one");
        assert!(
            breakers.iter().all(|b| b.state() == State::ForcedOpen),
            "one breaker shared by all"
        );
        assert_eq!(
            health.names(),
            ["config", "payments"],
            "registered once (beside the reload counts)"
        );
    }
}
