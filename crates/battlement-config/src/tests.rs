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

const ADMISSION: &str = r#"
[defaults.rate_limit]
window = "1s"
[instances.api.rate_limit]
quota = 100
burst = 10
max_delay = "20ms"
when_full = "admit"
[instances.search.throttle]
k = 1.5
window = "30s"
buckets = 30
[instances.db.adaptive_limit]
algorithm = "aimd"
initial_limit = 40
max_limit = 80
backoff_ratio = 0.7
max_queued = 16
min_window = "100ms"
"#;

#[tokio::test(start_paused = true)]
async fn admission_controls_build_from_a_file_and_reload() {
    let health = battlement_health::HealthRegistry::new();
    let resilience = Resilience::builder(Configuration::from_toml(ADMISSION).unwrap())
        .registry(&health)
        .build();
    let limit = resilience.rate_limit("api").unwrap();
    assert_eq!(
        (
            limit.quota(),
            limit.window(),
            limit.burst(),
            limit.max_delay()
        ),
        (100, Duration::from_secs(1), 10, Duration::from_millis(20))
    );
    let throttle = resilience.throttle("search").unwrap();
    assert_eq!((throttle.k(), throttle.buckets()), (1.5, 30));
    let adaptive = resilience.adaptive_limit("db").unwrap();
    let m = adaptive.metrics();
    assert_eq!(
        (m.algorithm, m.limit, m.bulkhead.max_queued),
        ("aimd", 40, 16)
    );
    // The same handles, and registered for health and metrics.
    assert_eq!(resilience.rate_limit("api").unwrap().quota(), 100);
    assert_eq!(health.names().len(), 4, "{:?}", health.names()); // + the reload counts

    let next = ADMISSION
        .replace("quota = 100", "quota = 200")
        .replace("k = 1.5", "k = 3.0")
        .replace("max_limit = 80", "max_limit = 30")
        .replace("initial_limit = 40", "initial_limit = 20");
    let report = resilience
        .reload(Configuration::from_toml(&next).unwrap())
        .unwrap();
    assert!(report
        .applied
        .contains(&(battlement_core::ComponentKind::RateLimit, "api".to_owned())));
    assert_eq!(limit.quota(), 200);
    assert_eq!(throttle.k(), 3.0);
    // Clamped at once to the new maximum (the running limit, 40, is kept otherwise: a
    // reload does not restart the algorithm from `initial_limit`).
    assert_eq!(adaptive.limit(), 30);
}

#[test]
fn admission_settings_are_refused_with_their_keys() {
    let err = Configuration::from_toml("[instances.api.rate_limit]\nquota = 0\n").unwrap_err();
    assert_eq!(err.problems()[0].key(), "instances.api.rate_limit.quota");
    let err = Configuration::from_toml("[instances.s.throttle]\nk = 0.5\n").unwrap_err();
    assert_eq!(err.problems()[0].key(), "instances.s.throttle.k");
    let err = Configuration::from_toml(
        "[instances.db.adaptive_limit]\nalgorithm = \"vegas\"\ntimeout = \"1s\"\n",
    )
    .unwrap_err();
    assert_eq!(
        err.problems()[0].key(),
        "instances.db.adaptive_limit.timeout"
    );
    let err =
        Configuration::from_toml("[instances.db.adaptive_limit]\nmin_limit = 0\n").unwrap_err();
    assert_eq!(
        err.problems()[0].key(),
        "instances.db.adaptive_limit.min_limit"
    );
    let err = Configuration::from_toml(
        "[instances.db.adaptive_limit]\n[instances.db.bulkhead]\nmax_concurrent = 4\n",
    )
    .unwrap_err();
    assert_eq!(err.problems()[0].key(), "instances.db");
    let err = Configuration::from_toml("[instances.api.rate_limit]\nwhen_full = \"maybe\"\n")
        .unwrap_err();
    assert_eq!(
        err.problems()[0].key(),
        "instances.api.rate_limit.when_full"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_changes_a_throttles_window_is_refused_whole() {
    let resilience = Resilience::new(Configuration::from_toml(ADMISSION).unwrap());
    let limit = resilience.rate_limit("api").unwrap();
    let throttle = resilience.throttle("search").unwrap();
    let next = ADMISSION
        .replace("quota = 100", "quota = 200")
        .replace("window = \"30s\"", "window = \"60s\"");
    let err = resilience
        .reload(Configuration::from_toml(&next).unwrap())
        .unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].key(), "instances.search.throttle.window");
    assert_eq!(
        (limit.quota(), throttle.window()),
        (100, Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn a_keyed_rate_limit_reloads_and_refuses_another_extractor() {
    let resilience = Resilience::new(Configuration::from_toml(ADMISSION).unwrap());
    let by_user = battlement_rate_limit::key_fn(|req: &u32| Some(*req));
    let keyed = resilience.keyed_rate_limit("api", by_user).unwrap();
    assert!(keyed.is_keyed());
    let err = resilience.rate_limit("api").unwrap_err();
    assert!(matches!(err, ResilienceError::KeyMismatch { .. }), "{err}");
    resilience
        .reload(Configuration::from_toml(&ADMISSION.replace("quota = 100", "quota = 7")).unwrap())
        .unwrap();
    assert_eq!(keyed.quota(), 7);
}

/// With `leak(true)` the breakers, bulkheads and timeouts the registry builds are leaked (their
/// clones copy a pointer); without, none is. A reload still changes them in place.
#[test]
fn a_leaking_registry_leaks_its_breakers_bulkheads_and_timeouts_and_reloads_them() {
    let toml = |limit: &str| {
        Configuration::from_toml(&format!(
            r#"
            [instances.db]
            breaker = {{}}
            bulkhead = {{ max_concurrent = 4 }}
            timeout = {{ limit = "{limit}" }}
            total_timeout = {{ limit = "10s" }}
            "#
        ))
        .unwrap()
    };
    for leak in [false, true] {
        let resilience = Resilience::builder(toml("1s")).leak(leak).build();
        let (breaker, bulkhead) = (
            resilience.breaker("db").unwrap(),
            resilience.bulkhead("db").unwrap(),
        );
        let (timeout, total) = (
            resilience.timeout("db").unwrap(),
            resilience.total_timeout("db").unwrap(),
        );
        assert_eq!(
            [
                breaker.is_leaked(),
                bulkhead.is_leaked(),
                timeout.is_leaked(),
                total.is_leaked()
            ],
            [leak; 4]
        );
        // The handles the registry keeps are the ones it hands out: a reload reaches them.
        resilience.reload(toml("2s")).unwrap();
        assert_eq!(timeout.limit(), Duration::from_secs(2));
        assert!(resilience.breaker("db").unwrap().is_leaked() == leak);
    }
}
