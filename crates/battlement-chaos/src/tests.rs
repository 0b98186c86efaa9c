use crate::{Chaos, ChaosLayer, InjectedFault, Latency};
use battlement_core::error::failure_kind;
use battlement_core::{
    BoxError, Classify, ComponentKind, FailureKind, HealthSource, HealthStatus, HttpClassifier,
    Outcome, ResultClassifier,
};
use futures::FutureExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A service that counts the calls that reach it.
fn counting(
    calls: &Arc<AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone {
    let calls = calls.clone();
    service_fn(move |x: u32| {
        calls.fetch_add(1, Relaxed);
        async move { Ok(x + 1) }
    })
}

/// `count` is within `sigmas` standard deviations of a binomial(n, p) mean.
fn assert_binomial(what: &str, count: u64, n: u64, p: f64, sigmas: f64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= sigmas * sd,
        "{what}: {count} of {n}, expected {mean} ± {}",
        sigmas * sd
    );
}

#[test]
fn off_by_default_and_the_off_path_adds_no_work() {
    // Everything would be injected if it were on.
    let chaos = Chaos::builder("off")
        .seed(1)
        .latency(1.0, Latency::Fixed(Duration::from_secs(1)))
        .error(1.0)
        .build()
        .unwrap();
    assert!(!chaos.is_enabled());
    let rng_before = chaos.rng_state();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = chaos.layer().layer(counting(&calls));
    // No runtime here: the off path needs no timer either.
    for i in 0..10_000 {
        svc.ready().now_or_never().unwrap().unwrap();
        let fut = svc.call(i);
        assert!(!fut.is_injected());
        assert_eq!(fut.now_or_never().unwrap().unwrap(), i + 1);
    }
    assert_eq!(calls.load(Relaxed), 10_000);
    // The random source was never touched and nothing was counted.
    assert_eq!(chaos.rng_state(), rng_before);
    assert_eq!(chaos.metrics(), Default::default());
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    errors: u64,
    responses: u64,
    passed: u64,
    delayed: u64,
    delayed_errors: u64,
}

/// `n` calls through a fresh chaos handle seeded with `seed`, tallied by what came back.
async fn run_rates(seed: u64, n: u64) -> (Tally, crate::ChaosMetrics, usize) {
    const DELAY: Duration = Duration::from_millis(1);
    let chaos = Chaos::builder("rates")
        .seed(seed)
        .enabled(true)
        .latency(0.3, Latency::Fixed(DELAY))
        .error(0.1)
        .response(0.2, || 0u32)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    // Two services share the handle.
    let a = chaos.layer().layer(counting(&calls));
    let b = ChaosLayer::new(&chaos).layer(counting(&calls));
    let mut t = Tally::default();
    for i in 0..n {
        let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
        let start = Instant::now();
        let result = svc.oneshot(1).await;
        let elapsed = start.elapsed();
        let delayed = match elapsed {
            Duration::ZERO => false,
            DELAY => true,
            other => panic!("unexpected delay {other:?}"),
        };
        t.delayed += u64::from(delayed);
        match result {
            Ok(0) => t.responses += 1,
            Ok(2) => t.passed += 1,
            Ok(other) => panic!("unexpected response {other}"),
            Err(err) => {
                assert_eq!(err.downcast_ref::<InjectedFault>().unwrap().name(), "rates");
                t.errors += 1;
                t.delayed_errors += u64::from(delayed);
            }
        }
    }
    (t, chaos.metrics(), calls.load(Relaxed))
}

#[tokio::test(start_paused = true)]
async fn rates_are_within_statistical_bounds() {
    const N: u64 = 10_000;
    for seed in [1, 2, 3, 42, 2024] {
        let (t, stats, inner_calls) = run_rates(seed, N).await;
        assert_binomial("errors", t.errors, N, 0.1, 4.0);
        assert_binomial("responses", t.responses, N, 0.2, 4.0);
        assert_binomial("passed", t.passed, N, 0.7, 4.0);
        assert_binomial("delayed", t.delayed, N, 0.3, 4.0);
        // Latency is independent of the error draw.
        assert_binomial("delayed errors", t.delayed_errors, N, 0.03, 4.0);
        // The counters agree with what callers saw, and injected calls never reached the inner
        // services.
        assert_eq!(stats.calls, N);
        assert_eq!(stats.errors, t.errors);
        assert_eq!(stats.responses, t.responses);
        assert_eq!(stats.latencies, t.delayed);
        assert_eq!(stats.latency_total, Duration::from_millis(t.delayed));
        assert_eq!(inner_calls as u64, t.passed);
    }
}

/// The sequence of outcomes of `n` calls: 'e'rror, 'r'esponse or 'p'ass.
async fn sequence(seed: u64, n: usize) -> String {
    let chaos = Chaos::builder("seq")
        .seed(seed)
        .enabled(true)
        .error(0.3)
        .response(0.3, || 0u32)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = chaos.layer().layer(counting(&calls));
    let mut out = String::new();
    for _ in 0..n {
        out.push(match svc.clone().oneshot(1).await {
            Err(_) => 'e',
            Ok(0) => 'r',
            Ok(_) => 'p',
        });
    }
    out
}

#[tokio::test]
async fn a_seed_replays_the_same_faults() {
    let first = sequence(99, 200).await;
    assert_eq!(first, sequence(99, 200).await);
    assert_ne!(first, sequence(100, 200).await);
    assert!(first.contains('e') && first.contains('r') && first.contains('p'));
}

#[tokio::test(start_paused = true)]
async fn fixed_latency_delays_the_inner_call_in_paused_time() {
    let chaos = Chaos::builder("slow")
        .seed(3)
        .enabled(true)
        .latency(1.0, Latency::Fixed(Duration::from_millis(200)))
        .build()
        .unwrap();
    let called = Arc::new(Mutex::new(Vec::new()));
    let polled = Arc::new(Mutex::new(Vec::new()));
    let (c, p) = (called.clone(), polled.clone());
    let svc = chaos.layer().layer(service_fn(move |x: u32| {
        c.lock().unwrap().push(Instant::now());
        let p = p.clone();
        async move {
            p.lock().unwrap().push(Instant::now());
            Ok::<_, std::io::Error>(x)
        }
    }));
    let start = Instant::now();
    assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    // Called at once (tower's readiness contract), first polled when the delay had passed.
    assert_eq!(called.lock().unwrap()[0], start);
    assert_eq!(
        polled.lock().unwrap()[0],
        start + Duration::from_millis(200)
    );
    assert_eq!(chaos.metrics().latencies, 1);
    assert_eq!(chaos.metrics().latency_total, Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn uniform_latency_spans_its_range() {
    let (min, max) = (Duration::from_millis(100), Duration::from_millis(300));
    let chaos = Chaos::builder("range")
        .seed(5)
        .enabled(true)
        .latency(1.0, Latency::Uniform { min, max })
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = chaos.layer().layer(counting(&calls));
    let mut seen = Vec::new();
    for _ in 0..1_000 {
        let start = Instant::now();
        svc.clone().oneshot(1).await.unwrap();
        seen.push(start.elapsed());
    }
    assert!(seen.iter().all(|d| (min..=max).contains(d)));
    let lo = seen.iter().min().unwrap();
    let hi = seen.iter().max().unwrap();
    assert!(*lo < Duration::from_millis(105) && *hi > Duration::from_millis(295));
    let total: Duration = seen.iter().sum();
    let mean_ms = total.as_secs_f64() * 1e3 / 1_000.0;
    // Uniform on [100, 300]: sd 57.7 ms, so the mean of 1000 has sd 1.8 ms.
    assert!((mean_ms - 200.0).abs() < 4.0 * 1.83, "mean {mean_ms}");
    // The counter sums the drawn delays; tokio's timer rounds each up to the millisecond.
    let drawn = chaos.metrics().latency_total;
    assert!(drawn <= total && total - drawn <= Duration::from_millis(1_000));
    assert_eq!(calls.load(Relaxed), 1_000);
}

#[tokio::test]
async fn injected_errors_never_reach_the_inner_service() {
    let chaos = Chaos::builder("db")
        .enabled(true)
        .error(1.0)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = chaos.layer().layer(counting(&calls));
    for _ in 0..10 {
        let err = svc.clone().oneshot(1).await.unwrap_err();
        let fault = err.downcast_ref::<InjectedFault>().unwrap();
        assert_eq!(fault.name(), "db");
        assert_eq!(
            ResultClassifier.classify(Err::<&u32, _>(&err)),
            Outcome::Failure(FailureKind::Connection)
        );
    }
    assert_eq!(calls.load(Relaxed), 0);
    assert_eq!(chaos.metrics().errors, 10);
}

#[tokio::test]
async fn injected_faults_are_classified_as_the_kind_they_imitate() {
    for kind in FailureKind::ALL {
        let chaos = Chaos::builder("db")
            .enabled(true)
            .error_kind(kind)
            .error(1.0)
            .build()
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let err = chaos
            .layer()
            .layer(counting(&calls))
            .oneshot(1)
            .await
            .unwrap_err();
        assert_eq!(err.downcast_ref::<InjectedFault>().unwrap().kind(), kind);
        assert_eq!(
            ResultClassifier.classify(Err::<&u32, _>(&err)),
            Outcome::Failure(kind),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn user_made_errors() {
    let chaos = Chaos::builder("net")
        .enabled(true)
        .error_with(1.0, || std::io::Error::from(std::io::ErrorKind::TimedOut))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let err = chaos
        .layer()
        .layer(counting(&calls))
        .oneshot(1)
        .await
        .unwrap_err();
    assert_eq!(failure_kind(&*err), FailureKind::Timeout);
    assert!(err.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(calls.load(Relaxed), 0);
}

#[tokio::test]
async fn injected_http_503_is_a_server_error() {
    use http::{Request, Response, StatusCode};
    let chaos = Chaos::builder("upstream")
        .enabled(true)
        .response(1.0, || {
            Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(String::from("injected"))
                .unwrap()
        })
        .build()
        .unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let r = reached.clone();
    let svc = chaos.layer().layer(service_fn(move |_req: Request<()>| {
        r.fetch_add(1, Relaxed);
        async { Ok::<_, std::convert::Infallible>(Response::new(String::from("real"))) }
    }));
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.body(), "injected");
    assert_eq!(
        HttpClassifier::new().classify(Ok::<_, &BoxError>(&res)),
        Outcome::Failure(FailureKind::ServerError)
    );
    assert_eq!(reached.load(Relaxed), 0);

    chaos.disable();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.body(), "real");
    assert_eq!(chaos.metrics().responses, 1);
}

#[tokio::test(start_paused = true)]
async fn latency_then_injected_error() {
    let chaos = Chaos::builder("both")
        .enabled(true)
        .latency(1.0, Latency::Fixed(Duration::from_secs(2)))
        .error(1.0)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let err = chaos
        .layer()
        .layer(counting(&calls))
        .oneshot(1)
        .await
        .unwrap_err();
    assert!(err.is::<InjectedFault>());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(calls.load(Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn switched_on_and_off_at_run_time() {
    let chaos = Chaos::builder("toggle")
        .seed(11)
        .error(1.0)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = chaos.layer().layer(counting(&calls));
    let handle = chaos.clone();

    assert!(svc.clone().oneshot(1).await.is_ok());
    handle.enable();
    assert!(chaos.is_enabled());
    for _ in 0..5 {
        assert!(svc.clone().oneshot(1).await.is_err());
    }
    let rng = chaos.rng_state();
    handle.set_enabled(false);
    for _ in 0..5 {
        assert!(svc.clone().oneshot(1).await.is_ok());
    }
    assert_eq!(chaos.rng_state(), rng);
    chaos.enable();
    assert!(svc.oneshot(1).await.is_err());
    assert_eq!(calls.load(Relaxed), 6);
    let stats = chaos.metrics();
    assert_eq!((stats.calls, stats.errors), (6, 6));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_delayed_call_drops_the_unpolled_inner_future() {
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    let chaos = Chaos::builder("cancel")
        .enabled(true)
        .latency(1.0, Latency::Fixed(Duration::from_secs(1)))
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let polled = Arc::new(AtomicBool::new(false));
    let (d, p) = (dropped.clone(), polled.clone());
    let mut svc = chaos.layer().layer(service_fn(move |_: ()| {
        let guard = Guard(d.clone());
        let p = p.clone();
        async move {
            let _guard = guard;
            p.store(true, Relaxed);
            Ok::<_, std::io::Error>(())
        }
    }));
    svc.ready().await.unwrap();
    let fut = svc.call(());
    assert!(fut.is_injected());
    let res = tokio::time::timeout(Duration::from_millis(500), fut).await;
    assert!(res.is_err(), "still sleeping");
    assert!(dropped.load(Relaxed));
    assert!(!polled.load(Relaxed));
}

#[test]
fn snapshot_reports_state_and_counters() {
    let chaos = Chaos::builder("staging").error(1.0).build().unwrap();
    let snap = chaos.snapshot();
    assert_eq!(HealthSource::name(&chaos), "staging");
    assert_eq!(snap.kind, ComponentKind::Chaos);
    assert_eq!(snap.state, "disabled");
    assert_eq!(snap.status, HealthStatus::Pass);
    chaos.enable();
    let calls = Arc::new(AtomicUsize::new(0));
    let _ = chaos
        .layer()
        .layer(counting(&calls))
        .oneshot(1)
        .now_or_never()
        .unwrap();
    let snap = chaos.snapshot();
    assert_eq!(snap.state, "enabled");
    assert_eq!(snap.metric("injected_errors"), Some(1.0));
    assert_eq!(snap.metric("calls"), Some(1.0));
    assert_eq!(snap.message.as_deref(), Some("fault injection enabled"));
}

#[test]
fn config_errors() {
    fn setting<R>(r: Result<Chaos<R>, battlement_core::ConfigError>) -> &'static str {
        r.unwrap_err().setting()
    }
    assert_eq!(setting(Chaos::builder("").build()), "name");
    assert_eq!(setting(Chaos::builder("c").error(1.5).build()), "error");
    assert_eq!(setting(Chaos::builder("c").error(-0.1).build()), "error");
    assert_eq!(
        setting(Chaos::builder("c").error(f64::NAN).build()),
        "error"
    );
    let fixed = Latency::Fixed(Duration::from_millis(1));
    assert_eq!(
        setting(Chaos::builder("c").latency(1.01, fixed).build()),
        "latency.probability"
    );
    assert_eq!(
        setting(
            Chaos::builder("c")
                .latency(0.5, Latency::Fixed(Duration::ZERO))
                .build()
        ),
        "latency"
    );
    let backwards = Latency::Uniform {
        min: Duration::from_millis(5),
        max: Duration::from_millis(1),
    };
    let err = Chaos::builder("c")
        .latency(0.5, backwards)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "latency");
    assert_eq!(err.reason(), "min must not exceed max");
    let zero = Latency::Uniform {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };
    assert_eq!(
        setting(Chaos::builder("c").latency(0.5, zero).build()),
        "latency"
    );
    let huge = Latency::Fixed(Duration::MAX);
    assert_eq!(
        setting(Chaos::builder("c").latency(0.5, huge).build()),
        "latency"
    );

    let err = Chaos::builder("c")
        .error(0.6)
        .response(0.5, || ())
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "response");
    assert_eq!(err.component(), "chaos `c`");
    assert_eq!(
        setting(Chaos::builder("c").response(1.2, || ()).build()),
        "response"
    );

    // Sums that round a hair above 1 are accepted; latency is independent of the rest.
    let ok = Chaos::builder("c")
        .latency(1.0, fixed)
        .error(0.7)
        .response(0.3, || ())
        .build();
    assert!(ok.is_ok());
    assert!(Chaos::builder("c")
        .error(0.1 + 0.2)
        .response(0.7, || ())
        .build()
        .is_ok());
    // Zero probabilities are fine: a handle that injects nothing.
    assert!(Chaos::builder("c").error(0.0).build().is_ok());
}

#[tokio::test]
async fn an_error_of_probability_one_with_a_response_of_zero() {
    let chaos = Chaos::builder("edge")
        .enabled(true)
        .error(1.0)
        .response(0.0, || 0u32)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = chaos.layer().layer(counting(&calls));
    for _ in 0..100 {
        assert!(svc.clone().oneshot(1).await.is_err());
    }
    assert_eq!(chaos.metrics().responses, 0);
}

/// The exported families carry `metrics()`'s figures (faults by kind, calls, delay total) and
/// the on/off state, each (family, labels) once, every family in `FAMILIES`.
#[tokio::test(start_paused = true)]
async fn export_matches_metrics() {
    use battlement_core::testing::RecordingVisitor;

    let chaos = Chaos::builder("mixed")
        .seed(5)
        .enabled(true)
        .latency(1.0, Latency::Fixed(Duration::from_millis(200)))
        .error(0.5)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = chaos.layer().layer(counting(&calls));
    for _ in 0..10 {
        let _ = svc.clone().oneshot(1).await;
    }
    let m = chaos.metrics();
    assert_eq!((m.calls, m.latencies), (10, 10));
    assert!(m.errors > 0 && m.errors < 10, "{m:?}");
    let mut out = RecordingVisitor::new();
    chaos.export(&mut out);
    out.assert_families_in(crate::FAMILIES);
    let faults = |f| out.counter_value("battlement_chaos_injected_faults", &[("fault", f)]);
    assert_eq!(
        (faults("latency"), faults("error"), faults("response")),
        (m.latencies, m.errors, m.responses)
    );
    assert_eq!(out.counter_value("battlement_chaos_calls", &[]), m.calls);
    assert_eq!(out.gauge_value("battlement_chaos_enabled", &[]), 1.0);
    assert_eq!(
        out.gauge_value("battlement_chaos_injected_latency_seconds", &[]),
        m.latency_total.as_secs_f64()
    );
    assert_eq!(m.latency_total, Duration::from_secs(2));

    chaos.disable();
    let mut out = RecordingVisitor::new();
    chaos.export(&mut out);
    assert_eq!(out.gauge_value("battlement_chaos_enabled", &[]), 0.0);
}
