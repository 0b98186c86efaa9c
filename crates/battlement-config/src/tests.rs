use crate::*;
use battlement_breaker::CircuitBreaker;
use std::time::Duration;

/// The open-wait fallbacks used when a file sets only part of the open wait are the builder's
/// own defaults: setting `open_wait = "5s"` alone builds what the default builder builds.
#[test]
fn partial_open_wait_falls_back_to_the_builders_defaults() {
    let s = BreakerSettings {
        open_wait: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    assert_eq!(
        format!("{:?}", s.apply(CircuitBreaker::builder("x"))),
        format!("{:?}", CircuitBreaker::builder("x"))
    );
    // A longer base alone keeps a valid cap (not below the base).
    let s = BreakerSettings {
        open_wait: Some(Duration::from_secs(120)),
        ..Default::default()
    };
    assert!(s.apply(CircuitBreaker::builder("x")).build().is_ok());
}

#[test]
fn empty_settings_change_nothing() {
    assert_eq!(
        format!(
            "{:?}",
            BreakerSettings::default().apply(CircuitBreaker::builder("x"))
        ),
        format!("{:?}", CircuitBreaker::builder("x"))
    );
}

#[test]
fn durations_windows_jitter_and_delays_parse_from_strings() {
    let config = Configuration::from_toml(
        r#"
[instances.a.breaker]
window = "30s"
slow_call_duration = "250ms"
[instances.a.retry]
jitter = "25%"
max_delay = "2s"
[instances.a.hedge]
delay = "p99.9"
[instances.b.retry]
jitter = "equal"
[instances.b.hedge]
delay = "40ms"
"#,
    )
    .unwrap();
    let a = config.instance("a").unwrap();
    let breaker = a.breaker.as_ref().unwrap();
    assert_eq!(breaker.window, Some(Window::Time(Duration::from_secs(30))));
    assert_eq!(breaker.slow_call_duration, Some(Duration::from_millis(250)));
    let retry = a.retry.as_ref().unwrap();
    assert_eq!(
        retry.jitter,
        Some(JitterSetting(battlement_retry::Jitter::Proportional(25.0)))
    );
    assert_eq!(retry.max_delay, Some(Duration::from_secs(2)));
    assert!(
        matches!(a.hedge.as_ref().unwrap().delay, Some(HedgeDelay::Percentile(p)) if (p - 0.999).abs() < 1e-9)
    );
    let b = config.instance("b").unwrap();
    assert_eq!(
        b.retry.as_ref().unwrap().jitter,
        Some(JitterSetting(battlement_retry::Jitter::Equal))
    );
    assert_eq!(
        b.hedge.as_ref().unwrap().delay,
        Some(HedgeDelay::Fixed(Duration::from_millis(40)))
    );
}

#[test]
fn a_bad_duration_names_its_key() {
    let err =
        Configuration::from_toml("[instances.a.timeout]\nlimit = \"two seconds\"\n").unwrap_err();
    assert_eq!(err.problems().len(), 1);
    assert_eq!(err.problems()[0].key(), "instances.a.timeout.limit");
}

#[test]
fn configuration_from_code_reports_code_as_the_origin() {
    let mut settings = Settings::default();
    settings.instances.insert(
        "db".into(),
        InstanceSettings {
            bulkhead: Some(BulkheadSettings {
                max_concurrent: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let err = Configuration::new(settings).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key(), "instances.db.bulkhead.max_concurrent");
    assert_eq!(p.origin(), Some(&Origin::Code));
    assert_eq!(p.config_error().unwrap().setting(), "max_concurrent");
}
