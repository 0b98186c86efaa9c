//! Loading from files and the environment (in figment's `Jail`: a temporary directory and an
//! environment restored after each test, one test at a time).
// figment's `Jail` closures return `figment::Error`, which is large; not ours to shrink.
#![allow(clippy::result_large_err)]

use battlement_config::{Configuration, Loader, Origin, Window};
use figment::Jail;
use std::time::Duration;

const TOML: &str = r#"
[defaults.breaker]
minimum_calls = 20

[instances.payments.breaker]
failure_rate = 0.25
window = 50

[instances.payments.timeout]
limit = "2s"
"#;

const YAML: &str = r#"
defaults:
  breaker:
    minimum_calls: 20
instances:
  payments:
    breaker:
      failure_rate: 0.25
      window: 50
    timeout:
      limit: 2s
"#;

const JSON: &str = r#"{
  "defaults": { "breaker": { "minimum_calls": 20 } },
  "instances": {
    "payments": {
      "breaker": { "failure_rate": 0.25, "window": 50 },
      "timeout": { "limit": "2s" }
    }
  }
}"#;

fn payments(
    config: &Configuration,
) -> (Option<f64>, Option<u64>, Option<Window>, Option<Duration>) {
    let p = config.instance("payments").unwrap();
    let b = p.breaker.as_ref().unwrap();
    (
        b.failure_rate,
        b.minimum_calls,
        b.window,
        p.timeout.as_ref().unwrap().limit,
    )
}

#[test]
fn each_format_loads_the_same_configuration() {
    let expected = (
        Some(0.25),
        Some(20),
        Some(Window::Calls(50)),
        Some(Duration::from_secs(2)),
    );
    for (file, text) in [
        ("battlement.toml", TOML),
        ("battlement.yaml", YAML),
        ("battlement.json", JSON),
    ] {
        Jail::expect_with(|jail| {
            jail.create_file(file, text)?;
            let config = Loader::new().load().unwrap();
            assert_eq!(payments(&config), expected, "{file}");
            Ok(())
        });
    }
    assert_eq!(payments(&Configuration::from_yaml(YAML).unwrap()), expected);
    assert_eq!(payments(&Configuration::from_json(JSON).unwrap()), expected);
}

#[test]
fn two_base_files_or_none_are_errors() {
    Jail::expect_with(|jail| {
        assert!(Loader::new()
            .load()
            .unwrap_err()
            .to_string()
            .contains("no battlement.toml"));
        jail.create_file("battlement.toml", TOML)?;
        jail.create_file("battlement.json", JSON)?;
        let err = Loader::new().load().unwrap_err();
        assert!(err.to_string().contains("keep one"), "{err}");
        Ok(())
    });
}

#[test]
fn the_environment_selects_an_overlay_over_the_base_file() {
    Jail::expect_with(|jail| {
        jail.create_file("battlement.toml", TOML)?;
        jail.create_file(
            "battlement.production.yaml",
            "instances:\n  payments:\n    breaker:\n      failure_rate: 0.1\n",
        )?;
        // No environment: the base alone.
        assert_eq!(payments(&Loader::new().load().unwrap()).0, Some(0.25));
        jail.set_env("BATTLEMENT_ENV", "production");
        let (rate, minimum, window, limit) = payments(&Loader::new().load().unwrap());
        assert_eq!(rate, Some(0.1), "the overlay wins");
        assert_eq!(
            (minimum, window, limit),
            (
                Some(20),
                Some(Window::Calls(50)),
                Some(Duration::from_secs(2))
            ),
            "the rest is the base's"
        );
        // An environment without its overlay is an error, not the base alone.
        jail.set_env("BATTLEMENT_ENV", "prodution");
        let err = Loader::new().load().unwrap_err();
        assert!(
            err.to_string().contains("`prodution` has no overlay"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn the_variable_the_stem_and_the_directory_are_configurable() {
    Jail::expect_with(|jail| {
        std::fs::create_dir("conf").unwrap();
        jail.create_file("conf/gateway.toml", TOML)?;
        jail.create_file(
            "conf/gateway.staging.toml",
            "[instances.payments.timeout]\nlimit = \"3s\"\n",
        )?;
        jail.set_env("APP_ENV", "staging");
        let loader = Loader::new()
            .dir("conf")
            .stem("gateway")
            .environment_variable("APP_ENV");
        assert_eq!(
            payments(&loader.load().unwrap()).3,
            Some(Duration::from_secs(3))
        );
        let explicit = Loader::new()
            .dir("conf")
            .stem("gateway")
            .environment("staging");
        assert_eq!(
            payments(&explicit.load().unwrap()).3,
            Some(Duration::from_secs(3))
        );
        Ok(())
    });
}

#[test]
fn environment_variables_override_single_settings() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "battlement.toml",
            &format!("{TOML}\n[instances.payment-api.bulkhead]\nmax_concurrent = 5\n"),
        )?;
        jail.set_env("BATTLEMENT_ENV", ""); // with the prefix, but not a setting
        jail.set_env(
            "BATTLEMENT_INSTANCES__PAYMENTS__BREAKER__FAILURE_RATE",
            "0.3",
        );
        jail.set_env("BATTLEMENT_DEFAULTS__BREAKER__MINIMUM_CALLS", "40");
        // `payment-api` is spelled PAYMENT_API in a variable.
        jail.set_env(
            "BATTLEMENT_INSTANCES__PAYMENT_API__BULKHEAD__MAX_CONCURRENT",
            "7",
        );
        // A name only the environment gives.
        jail.set_env("BATTLEMENT_INSTANCES__AUDIT__TIMEOUT__LIMIT", "750ms");
        let config = Loader::new().load().unwrap();
        let (rate, minimum, window, _) = payments(&config);
        assert_eq!(
            (rate, minimum, window),
            (Some(0.3), Some(40), Some(Window::Calls(50)))
        );
        let api = config.instance("payment-api").unwrap();
        assert_eq!(api.bulkhead.as_ref().unwrap().max_concurrent, Some(7));
        assert!(config.instance("payment_api").is_none());
        let audit = config.instance("audit").unwrap();
        assert_eq!(
            audit.timeout.as_ref().unwrap().limit,
            Some(Duration::from_millis(750))
        );

        // Without overrides, the file alone.
        let config = Loader::new().no_env_overrides().load().unwrap();
        assert_eq!(payments(&config).0, Some(0.25));
        Ok(())
    });
}

#[test]
fn a_bad_value_from_a_variable_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.create_file("battlement.toml", TOML)?;
        jail.set_env(
            "BATTLEMENT_INSTANCES__PAYMENTS__BREAKER__FAILURE_RATE",
            "1.5",
        );
        let err = Loader::new().load().unwrap_err();
        assert_eq!(err.problems().len(), 1);
        let p = &err.problems()[0];
        assert_eq!(p.key(), "instances.payments.breaker.failure_rate");
        assert_eq!(
            p.origin(),
            Some(&Origin::Env {
                var: "BATTLEMENT_INSTANCES__PAYMENTS__BREAKER__FAILURE_RATE".into()
            })
        );
        Ok(())
    });
}

#[test]
fn names_spelled_alike_in_a_variable_are_an_error() {
    let err = Configuration::from_toml(
        "[instances.payment-api.bulkhead]\n[instances.payment_api.bulkhead]\n[instances.\"a.b\".bulkhead]\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key()).collect();
    assert!(keys.contains(&"instances.payment_api"), "{err}");
    assert!(err.to_string().contains("has `.`"), "{err}");
}

#[test]
fn instances_extend_configs_which_extend_configs() {
    let config = Configuration::from_toml(
        r#"
[defaults.retry]
max_attempts = 4
min_delay = "1ms"
[configs.base.retry]
max_attempts = 3
budget_ratio = 0.5
[configs.strict]
base = "base"
retry = { max_attempts = 2 }
[instances.payments]
base = "strict"
retry = { seed = 7 }
[instances.plain.bulkhead]
max_concurrent = 3
"#,
    )
    .unwrap();
    let retry = config.instance("payments").unwrap().retry.clone().unwrap();
    assert_eq!(retry.seed, Some(7), "the instance's own");
    assert_eq!(retry.max_attempts, Some(2), "the nearest base wins");
    assert_eq!(retry.budget_ratio, Some(0.5), "from the farther base");
    assert_eq!(
        retry.min_delay,
        Some(Duration::from_millis(1)),
        "from defaults"
    );
    // `defaults` alone give an instance no pattern.
    assert!(config.instance("plain").unwrap().retry.is_none());
}

#[test]
fn a_cycle_and_an_unknown_base_are_errors_with_their_keys() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "battlement.toml",
            r#"[configs.a]
base = "b"
[configs.b]
base = "a"
[instances.payments]
base = "a"
[instances.search]
base = "nope"
"#,
        )?;
        let err = Loader::new().load().unwrap_err();
        let found: Vec<(&str, Option<usize>)> =
            err.problems().iter().map(|p| (p.key(), p.line())).collect();
        assert!(found.contains(&("configs.b.base", Some(4))), "{err}");
        assert!(found.contains(&("instances.search.base", Some(8))), "{err}");
        assert!(err.to_string().contains("a cycle"), "{err}");
        assert!(err.to_string().contains("unknown base `nope`"), "{err}");
        Ok(())
    });
}

#[test]
fn one_error_lists_every_problem_with_its_key_source_and_line() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "battlement.toml",
            r#"[defaults.bulkhead]
max_concurrent = 0

[configs.strict.breaker]
failure_rate = 1.5

[instances.payments]
base = "strict"

[instances.payments.retry]
max_attempts = 0

[instances.search.timeout]
limit = "0s"

[instances.search.hedge]
max_attempts = "two"
"#,
        )?;
        let err = Loader::new().load().unwrap_err();
        let found: Vec<(&str, Option<usize>)> =
            err.problems().iter().map(|p| (p.key(), p.line())).collect();
        assert_eq!(
            found,
            [
                ("instances.search.hedge.max_attempts", Some(17)),
                ("defaults.bulkhead.max_concurrent", Some(2)),
                ("configs.strict.breaker.failure_rate", Some(5)),
                ("instances.payments.retry.max_attempts", Some(11)),
                ("instances.search.timeout.limit", Some(14)),
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("invalid configuration, 5 problems:"),
            "{text}"
        );
        assert!(
            text.contains("configs.strict.breaker.failure_rate: 1.5 must be within (0, 1] (battlement.toml:5)"),
            "{text}"
        );
        // Typed: each builder refusal keeps the builder's error.
        let refused = err.problems()[2].config_error().unwrap();
        assert_eq!(refused.setting(), "failure_rate_threshold");
        let boxed: Box<dyn std::error::Error> = Box::new(err.clone());
        assert!(boxed
            .downcast_ref::<battlement_config::LoadError>()
            .is_some());
        Ok(())
    });
}

#[test]
fn a_yaml_problem_names_its_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "battlement.yaml",
            "instances:\n  db:\n    bulkhead:\n      max_concurrent: 0\n",
        )?;
        let err = Loader::new().load().unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.key(), "instances.db.bulkhead.max_concurrent");
        assert_eq!(
            p.origin(),
            Some(&Origin::File {
                path: "battlement.yaml".into(),
                line: None
            })
        );
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors_at_every_level() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "battlement.toml",
            r#"[instances.payments.breaker]
failur_rate = 0.3

[instances.payments.breakers]
failure_rate = 0.3

[defaults]
base = "x"

[instance.search.bulkhead]
max_concurrent = 3
"#,
        )?;
        let err = Loader::new().load().unwrap_err();
        let found: Vec<(&str, Option<usize>)> =
            err.problems().iter().map(|p| (p.key(), p.line())).collect();
        assert_eq!(
            found,
            [
                ("defaults.base", Some(8)),
                ("instance", Some(10)),
                ("instances.payments.breaker.failur_rate", Some(2)),
                ("instances.payments.breakers", Some(4)),
            ],
            "{err}"
        );
        assert!(
            err.problems()[2].message().contains("failure_rate"),
            "names what is expected"
        );
        Ok(())
    });
}

#[test]
fn a_refused_builder_default_is_said_so() {
    let err = Configuration::from_toml("[instances.a.breaker]\nwindow = 5\n").unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key(), "instances.a.breaker.minimum_calls");
    assert_eq!(p.origin(), Some(&Origin::BuilderDefault));
}
