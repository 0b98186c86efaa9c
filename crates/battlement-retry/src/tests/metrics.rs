//! The counters, the health snapshot and the export.

use super::*;
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
use battlement_core::{ComponentKind, HealthSource, HealthStatus};
use battlement_health::HealthRegistry;

/// An exporter that keeps (family name, labels, value).
#[derive(Default)]
struct Seen(Vec<(&'static str, String, f64)>);

impl MetricsVisitor for Seen {
    fn counter(&mut self, family: &'static Family, labels: Labels<'_>, value: u64) {
        self.0
            .push((family.name, format!("{labels:?}"), value as f64));
    }
    fn gauge(&mut self, family: &'static Family, labels: Labels<'_>, value: f64) {
        self.0.push((family.name, format!("{labels:?}"), value));
    }
    fn histogram(&mut self, family: &'static Family, labels: Labels<'_>, h: &HistogramSnapshot) {
        self.0
            .push((family.name, format!("{labels:?}"), h.count as f64));
    }
}

impl Seen {
    fn value(&self, name: &str, label: &str) -> f64 {
        let found: Vec<_> = self
            .0
            .iter()
            .filter(|(n, l, _)| *n == name && l.contains(label))
            .collect();
        assert_eq!(found.len(), 1, "{name} {label}: {found:?}");
        found[0].2
    }
}

fn fixed(n: u32) -> RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_attempts(n)
        .backoff(Backoff::fixed(ms(10)))
}

#[tokio::test(start_paused = true)]
async fn each_call_counts_once_by_how_it_ended() {
    let policy = fixed(3).build().unwrap();
    let run = |failures: usize| {
        let policy = policy.clone();
        async move {
            let log = Log::default();
            let svc = ServiceBuilder::new()
                .layer(crate::RetryLayer::new(policy))
                .service(flaky(&log, failures));
            svc.oneshot("x").await
        }
    };
    assert!(run(0).await.is_ok()); // first attempt
    assert!(run(2).await.is_ok()); // fails twice, then answers: 2 retries
    assert!(run(9).await.is_err()); // three attempts, all failed
    let m = policy.metrics();
    assert_eq!(m.succeeded_without_retry, 1);
    assert_eq!(m.succeeded_after_retry, 1);
    assert_eq!(m.failed_after_retry, 1);
    assert_eq!(m.failed_without_retry, 0);
    assert_eq!(m.retries, 2 + 2);
    assert_eq!(m.gave_up_max_attempts, 1);
    assert_eq!(m.calls(), 3);

    // A failure the rules do not retry: failed without retry, not retryable.
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service_fn(|_: ()| async { Err::<(), BoxError>("bad input".into()) });
    assert!(svc.oneshot(()).await.is_err());
    let m = policy.metrics();
    assert_eq!((m.failed_without_retry, m.not_retryable), (1, 1));
    assert_eq!(m.retries, 4, "no retry for it");
}

#[tokio::test(start_paused = true)]
async fn give_ups_count_their_reason() {
    // Time limit: the second wait (10 ms) would end past 15 ms.
    let policy = fixed(5).time_limit(ms(15)).build().unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, 9));
    assert!(svc.oneshot("x").await.is_err());
    let m = policy.metrics();
    assert_eq!(
        (m.gave_up_time_limit, m.failed_after_retry, m.retries),
        (1, 1, 1)
    );

    // Budget: no reserve, no deposits earn anything: the first retry is refused.
    let policy = fixed(5).budget(0.0, 0).build().unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, 9));
    assert!(svc.oneshot("x").await.is_err());
    let m = policy.metrics();
    assert_eq!(
        (m.refused_by_budget, m.failed_without_retry, m.retries),
        (1, 1, 0)
    );
    assert!(m.budget_refusing);

    // A breaker's retry-after beyond max_retry_after.
    let policy = fixed(5)
        .retry_rejected(true)
        .max_retry_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service_fn(|_: ()| async {
            Err::<(), BoxError>(Box::new(BreakerOpen::new(
                "db".into(),
                Some(Duration::from_secs(30)),
            )))
        });
    assert!(svc.oneshot(()).await.is_err());
    assert_eq!(policy.metrics().gave_up_retry_after, 1);
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_share_the_counters() {
    let policy = fixed(3).build().unwrap();
    let a = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&Log::default(), 1));
    let b = ServiceBuilder::new()
        .layer(policy.clone().into_layer())
        .service(flaky(&Log::default(), 0));
    a.oneshot("x").await.unwrap();
    b.oneshot("x").await.unwrap();
    let m = policy.clone().metrics();
    assert_eq!((m.succeeded_after_retry, m.succeeded_without_retry), (1, 1));
    assert_eq!(policy.metrics(), m);
}

#[tokio::test(start_paused = true)]
async fn export_reports_each_family_under_its_labels_once() {
    let policy = fixed(3).build().unwrap();
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, 2));
    svc.oneshot("x").await.unwrap();
    let mut seen = Seen::default();
    HealthSource::export(&policy, &mut seen);
    // Every family reported is listed in FAMILIES, and every listed one is reported.
    for (name, _, _) in &seen.0 {
        assert!(
            FAMILIES.iter().any(|f| f.name == *name),
            "{name} not in FAMILIES"
        );
    }
    for f in FAMILIES {
        assert!(f.name.starts_with("battlement_retry_"), "{}", f.name);
        assert!(
            seen.0.iter().any(|(n, _, _)| *n == f.name),
            "{} not reported",
            f.name
        );
    }
    let mut keys: Vec<_> = seen.0.iter().map(|(n, l, _)| (*n, l.clone())).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        seen.0.len(),
        "a (family, labels) reported twice"
    );
    assert_eq!(
        seen.value("battlement_retry_calls", "\"success_after_retry\""),
        1.0
    );
    assert_eq!(
        seen.value("battlement_retry_calls", "\"success_without_retry\""),
        0.0
    );
    assert_eq!(seen.value("battlement_retry_retries", "[]"), 2.0);
    assert_eq!(
        seen.value("battlement_retry_gave_up", "\"max_attempts\""),
        0.0
    );
    assert_eq!(seen.value("battlement_retry_max_attempts", "[]"), 3.0);
}

#[tokio::test(start_paused = true)]
async fn a_registered_policy_is_in_the_health_report_and_warns_while_its_budget_refuses() {
    let registry = HealthRegistry::new();
    let policy = fixed(3)
        .name("inventory")
        .budget(0.0, 0)
        .registry(&registry)
        .build()
        .unwrap();
    let report = registry.report();
    let me = report
        .components
        .iter()
        .find(|c| c.name() == "inventory")
        .unwrap();
    assert_eq!(me.snapshot.kind, ComponentKind::Retry);
    assert_eq!(me.snapshot.status, HealthStatus::Pass);
    assert!(!me.critical, "a retry is not critical by default");

    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy.clone()))
        .service(flaky(&log, 9));
    assert!(svc.oneshot("x").await.is_err());
    let report = registry.report();
    let me = report
        .components
        .iter()
        .find(|c| c.name() == "inventory")
        .unwrap();
    assert_eq!(me.snapshot.status, HealthStatus::Warn);
    assert_eq!(me.snapshot.state, "budget_exhausted");

    // The refusal ages out with the budget's ttl (10 s by default).
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(HealthSource::snapshot(&policy).status, HealthStatus::Pass);

    // (kind, name) is unique in a registry.
    let err = fixed(3)
        .name("inventory")
        .registry(&registry)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "name");
}

/// A request's success is counted in its stripe's cell beside the service's state when the
/// thread that finishes it owns that cell, and through the policy otherwise: none is lost
/// either way, with calls started on several threads and finished on others.
#[test]
fn successes_finished_on_other_threads_are_all_counted() {
    use futures_util::FutureExt;
    for leak in [false, true] {
        let policy = RetryPolicy::builder().build().unwrap();
        let layer = crate::RetryLayer::new(policy.clone());
        let layer = if leak { layer.leak() } else { layer };
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
        const THREADS: u32 = 4;
        const CALLS: u32 = 500;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..THREADS {
                let (tx, mut svc) = (tx.clone(), svc.clone());
                scope.spawn(move || {
                    for i in 0..CALLS {
                        let svc = svc.ready().now_or_never().unwrap().unwrap();
                        let future = svc.call(i);
                        if i % 2 == 0 {
                            // Finished on this thread.
                            assert_eq!(future.now_or_never().unwrap().unwrap(), i);
                        } else {
                            tx.send((i, future)).unwrap();
                        }
                    }
                });
            }
            drop(tx);
            // Finished on this thread, which owns no cell the callers used.
            scope.spawn(move || {
                for (i, future) in rx {
                    assert_eq!(future.now_or_never().unwrap().unwrap(), i);
                }
            });
        });
        let m = policy.metrics();
        assert_eq!(
            (m.succeeded_without_retry, m.calls()),
            (u64::from(THREADS * CALLS), u64::from(THREADS * CALLS)),
            "leaked: {leak}"
        );
    }
}
