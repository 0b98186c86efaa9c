//! Live reload through the registry: all or nothing, applied to every live component, counted.
// figment::Jail's closures return figment's large error.
#![allow(clippy::result_large_err)]

use battlement_breaker::State;
use battlement_config::{Configuration, Loader, Resilience};
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
use battlement_core::{ComponentKind, HealthStatus};
use battlement_health::HealthRegistry;
use std::time::Duration;

fn config(bulkhead: usize, attempts: u32, limit: &str, delay: &str) -> Configuration {
    Configuration::from_toml(&format!(
        r#"
[instances.payments.breaker]
consecutive_failures = 5
[instances.payments.bulkhead]
max_concurrent = {bulkhead}
[instances.payments.retry]
max_attempts = {attempts}
[instances.payments.timeout]
limit = "{limit}"
[instances.payments.hedge]
delay = "{delay}"
[instances.deploys.kill_switch]
"#
    ))
    .unwrap()
}

fn status(health: &HealthRegistry, name: &str) -> HealthStatus {
    health
        .report()
        .components
        .iter()
        .find(|c| c.name() == name)
        .map(|c| c.snapshot.status)
        .unwrap()
}

/// The reload counts as exported: (outcome, value).
fn exported(health: &HealthRegistry) -> Vec<(String, u64)> {
    struct Out(Vec<(String, u64)>);
    impl MetricsVisitor for Out {
        fn counter(&mut self, family: &'static Family, labels: Labels<'_>, value: u64) {
            if family.name == "battlement_config_reloads" {
                self.0.push((labels[0].1.to_owned(), value));
            }
        }
        fn gauge(&mut self, _: &'static Family, _: Labels<'_>, _: f64) {}
        fn histogram(&mut self, _: &'static Family, _: Labels<'_>, _: &HistogramSnapshot) {}
    }
    let mut out = Out(Vec::new());
    health.for_each_component(|c| c.export(&mut out));
    out.0
}

#[test]
fn a_reload_applies_to_every_live_component_and_to_those_created_after() {
    let health = HealthRegistry::new();
    let resilience = Resilience::builder(config(10, 2, "1s", "50ms"))
        .registry(&health)
        .build();
    let breaker = resilience.breaker("payments").unwrap();
    let bulkhead = resilience.bulkhead("payments").unwrap();
    let retry = resilience.retry("payments").unwrap();
    let timeout = resilience.timeout("payments").unwrap();
    let hedge = resilience.hedge("payments").unwrap();
    resilience.kill_switch("deploys").unwrap();

    let report = resilience
        .reload(config(3, 4, "250ms", "20ms"))
        .expect("a valid configuration");
    assert_eq!(bulkhead.max_concurrent(), 3);
    assert_eq!(retry.max_attempts(), 4);
    assert_eq!(timeout.limit(), Duration::from_millis(250));
    assert_eq!(hedge.handle().current_delay(), Duration::from_millis(20));
    assert_eq!(breaker.metrics().reloads, 1);
    assert_eq!(
        report.applied,
        [
            (ComponentKind::CircuitBreaker, "payments".to_owned()),
            (ComponentKind::Bulkhead, "payments".to_owned()),
            (ComponentKind::Retry, "payments".to_owned()),
            (ComponentKind::Timeout, "payments".to_owned()),
            (ComponentKind::Hedge, "payments".to_owned()),
        ]
    );
    assert!(report.kept.is_empty());
    // The same handles are handed out, and the configuration serving is the new one.
    assert_eq!(resilience.bulkhead("payments").unwrap().max_concurrent(), 3);
    assert_eq!(
        resilience
            .configuration()
            .instance("payments")
            .unwrap()
            .bulkhead
            .as_ref()
            .unwrap()
            .max_concurrent,
        Some(3)
    );
    let m = resilience.reloads();
    assert_eq!((m.applied, m.refused), (1, 0));
    assert_eq!(
        exported(&health),
        [("applied".to_owned(), 1), ("refused".to_owned(), 0)]
    );
    assert_eq!(status(&health, "config"), HealthStatus::Pass);
}

#[test]
fn components_created_after_a_reload_are_built_from_the_new_configuration() {
    let resilience = Resilience::new(config(10, 2, "1s", "50ms"));
    resilience.reload(config(7, 2, "1s", "50ms")).unwrap();
    assert_eq!(resilience.bulkhead("payments").unwrap().max_concurrent(), 7);
}

#[test]
fn a_component_whose_instance_vanished_is_kept_as_it_is() {
    let resilience = Resilience::new(config(10, 2, "1s", "50ms"));
    let bulkhead = resilience.bulkhead("payments").unwrap();
    resilience.kill_switch("deploys").unwrap();
    let report = resilience
        .reload(
            Configuration::from_toml("[instances.other.bulkhead]\nmax_concurrent = 1\n").unwrap(),
        )
        .unwrap();
    assert_eq!(
        report.kept,
        [
            (ComponentKind::Bulkhead, "payments".to_owned()),
            (ComponentKind::KillSwitch, "deploys".to_owned()),
        ]
    );
    assert!(report.applied.is_empty());
    assert_eq!(bulkhead.max_concurrent(), 10);
    // Still handed out as it is.
    assert_eq!(
        resilience.bulkhead("payments").unwrap().max_concurrent(),
        10
    );
}

/// A name built from `defaults` (unknown names allowed) follows the new `defaults`.
#[test]
fn a_component_built_from_defaults_follows_the_new_defaults() {
    let resilience = Resilience::builder(
        Configuration::from_toml("[defaults.bulkhead]\nmax_concurrent = 4\n").unwrap(),
    )
    .unknown_names_from_defaults(true)
    .build();
    let audit = resilience.bulkhead("audit").unwrap();
    resilience
        .reload(Configuration::from_toml("[defaults.bulkhead]\nmax_concurrent = 9\n").unwrap())
        .unwrap();
    assert_eq!(audit.max_concurrent(), 9);
}

/// A live component the new configuration cannot rebuild refuses the reload: nothing changes,
/// the breaker keeps its state, and the refusal shows in the counts and in health.
#[test]
fn a_reload_a_live_component_cannot_take_changes_nothing() {
    let old = Configuration::from_toml(
        r#"
[defaults.timeout]
limit = "1s"
[instances.payments.bulkhead]
max_concurrent = 10
[instances.payments.breaker]
"#,
    )
    .unwrap();
    let health = HealthRegistry::new();
    let resilience = Resilience::builder(old.clone()).registry(&health).build();
    let bulkhead = resilience.bulkhead("payments").unwrap();
    let timeout = resilience.timeout("payments").unwrap(); // from defaults
    let breaker = resilience.breaker("payments").unwrap();
    breaker.force_open("test");
    // Valid on its own, but the live timeout has no limit in it any more.
    let new = Configuration::from_toml(
        "[instances.payments.bulkhead]\nmax_concurrent = 2\n[instances.payments.breaker]\n",
    )
    .unwrap();
    let err = resilience.reload(new).unwrap_err();
    assert_eq!(err.problems().len(), 1);
    assert_eq!(err.problems()[0].key(), "defaults.timeout.limit");
    assert_eq!(
        err.problems()[0].config_error().map(|e| e.setting()),
        Some("limit")
    );
    assert_eq!(bulkhead.max_concurrent(), 10, "nothing applied");
    assert_eq!(timeout.limit(), Duration::from_secs(1));
    assert_eq!(breaker.metrics().reloads, 0);
    assert_eq!(breaker.state(), State::ForcedOpen);
    assert_eq!(
        *resilience.configuration(),
        old,
        "the old configuration serves"
    );
    let m = resilience.reloads();
    assert_eq!((m.applied, m.refused, m.last_refused), (0, 1, true));
    assert_eq!(status(&health, "config"), HealthStatus::Warn);
    assert_eq!(
        exported(&health),
        [("applied".to_owned(), 0), ("refused".to_owned(), 1)]
    );
}

/// A file with several problems is refused with all of them, their lines included; fixing it
/// applies, and health goes back to pass.
#[test]
fn a_bad_file_is_refused_with_every_problem_then_a_good_one_applies() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "battlement.toml",
            "[instances.db.bulkhead]\nmax_concurrent = 4\n[instances.db.breaker]\nfailure_rate = 0.5\n",
        )?;
        let health = HealthRegistry::new();
        let resilience = Resilience::builder(Loader::new().load().unwrap())
            .registry(&health)
            .build();
        let bulkhead = resilience.bulkhead("db").unwrap();
        jail.create_file(
            "battlement.toml",
            "[instances.db.bulkhead]\nmax_concurrent = 0\n[instances.db.breaker]\nfailure_rate = 1.5\n",
        )?;
        let err = resilience.reload_from(&Loader::new()).unwrap_err();
        let keys: Vec<(&str, Option<usize>)> =
            err.problems().iter().map(|p| (p.key(), p.line())).collect();
        assert_eq!(
            keys,
            [
                ("instances.db.breaker.failure_rate", Some(4)),
                ("instances.db.bulkhead.max_concurrent", Some(2)),
            ]
        );
        assert!(err.to_string().contains("2 problems"), "{err}");
        assert_eq!(bulkhead.max_concurrent(), 4);
        assert_eq!(status(&health, "config"), HealthStatus::Warn);

        jail.create_file(
            "battlement.toml",
            "[instances.db.bulkhead]\nmax_concurrent = 6\n[instances.db.breaker]\nfailure_rate = 0.5\n",
        )?;
        resilience.reload_from(&Loader::new()).unwrap();
        assert_eq!(bulkhead.max_concurrent(), 6);
        let m = resilience.reloads();
        assert_eq!((m.applied, m.refused, m.last_refused), (1, 1, false));
        assert_eq!(status(&health, "config"), HealthStatus::Pass);
        Ok(())
    });
}

/// Lookups and first creations racing reloads: every component ends with the last
/// configuration's settings, whenever it was created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn components_created_while_reloading_end_with_the_last_settings() {
    for _ in 0..20 {
        let resilience = Resilience::builder(
            Configuration::from_toml("[defaults.bulkhead]\nmax_concurrent = 1\n").unwrap(),
        )
        .unknown_names_from_defaults(true)
        .build();
        let creators: Vec<_> = (0..8)
            .map(|i| {
                let r = resilience.clone();
                tokio::spawn(async move { r.bulkhead(&format!("b{i}")).unwrap() })
            })
            .collect();
        let r = resilience.clone();
        let reloader = tokio::spawn(async move {
            for n in 2..=5 {
                r.reload(
                    Configuration::from_toml(&format!(
                        "[defaults.bulkhead]\nmax_concurrent = {n}\n"
                    ))
                    .unwrap(),
                )
                .unwrap();
            }
        });
        reloader.await.unwrap();
        for c in creators {
            assert_eq!(c.await.unwrap().max_concurrent(), 5);
        }
    }
}
