use crate::*;
use battlement_breaker::{BreakerOpen, CircuitBreaker, State};
use battlement_bulkhead::{Bulkhead, BulkheadFull};
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
use battlement_core::{HealthSource, HealthStatus, ResultClassifier};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::{pending, ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

/// Requests are (key, fail?) pairs.
type Req = (u32, bool);

fn breakers(max_keys: usize) -> KeyedCircuitBreaker<u32> {
    KeyedBuilder::<CircuitBreaker, u32>::new("hosts")
        .template(|name| {
            CircuitBreaker::builder(name)
                .minimum_calls(2)
                .failure_rate_threshold(0.5)
        })
        .max_keys(max_keys)
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn failing_by_flag() -> impl Service<
    Req,
    Response = (),
    Error = std::io::Error,
    Future = std::future::Ready<Result<(), std::io::Error>>,
> + Clone {
    service_fn(|req: Req| {
        ready(if req.1 {
            Err(std::io::Error::other("boom"))
        } else {
            Ok(())
        })
    })
}

fn by_key() -> KeyFn<impl Fn(&Req) -> Option<u32> + Clone + Send + Sync + 'static, u32> {
    key_fn(|req: &Req| Some(req.0))
}

#[tokio::test]
async fn a_failing_key_opens_only_its_own_breaker() {
    let hosts = breakers(100);
    let svc = hosts
        .layer(by_key())
        .classifier(ResultClassifier)
        .layer(failing_by_flag());
    for _ in 0..4 {
        let _ = svc.clone().oneshot((1, true)).await;
        svc.clone().oneshot((2, false)).await.unwrap();
    }
    assert_eq!(hosts.state(&1), Some(State::Open));
    assert_eq!(hosts.state(&2), Some(State::Closed));
    let err = svc.clone().oneshot((1, false)).await.unwrap_err();
    assert_eq!(err.downcast_ref::<BreakerOpen>().unwrap().name(), "hosts/1");
    svc.oneshot((2, false)).await.unwrap();
    assert_eq!(hosts.keys_in(State::Open), vec![1]);
    assert_eq!(hosts.get(&1).unwrap().name(), "hosts/1");
}

#[tokio::test]
async fn force_open_and_reset_act_on_one_key() {
    let hosts = breakers(100);
    let svc = hosts
        .layer(by_key())
        .classifier(ResultClassifier)
        .layer(failing_by_flag());
    svc.clone().oneshot((1, false)).await.unwrap();
    hosts.force_open(&1, "agent misbehaving");
    hosts.force_open(&3, "never called yet");
    assert!(svc.clone().oneshot((1, false)).await.is_err());
    assert!(svc.clone().oneshot((3, false)).await.is_err());
    svc.clone().oneshot((2, false)).await.unwrap();
    let mut forced = hosts.keys_in(State::ForcedOpen);
    forced.sort_unstable();
    assert_eq!(forced, vec![1, 3]);
    assert!(hosts.reset(&1));
    assert!(!hosts.reset(&99));
    svc.oneshot((1, false)).await.unwrap();
    assert_eq!(hosts.metrics(&1).unwrap().successes, 2);
}

#[tokio::test]
async fn calls_without_a_key_go_through_the_overflow_component() {
    let hosts = breakers(100);
    let svc = hosts
        .layer(key_fn(|_: &Req| None::<u32>))
        .classifier(ResultClassifier)
        .layer(failing_by_flag());
    svc.clone().oneshot((1, false)).await.unwrap();
    svc.oneshot((2, false)).await.unwrap();
    assert!(hosts.is_empty());
    assert_eq!(hosts.overflow().name(), "hosts/*");
    assert_eq!(hosts.overflow().metrics().successes, 2);
    assert_eq!(hosts.group_metrics().overflow_calls, 2);
}

#[tokio::test]
async fn a_flood_of_keys_stays_under_the_bound() {
    let hosts = breakers(1000);
    let mut svc = hosts
        .layer(by_key())
        .classifier(ResultClassifier)
        .layer(failing_by_flag());
    for key in 0..100_000u32 {
        svc.ready().await.unwrap().call((key, false)).await.unwrap();
        assert!(hosts.len() <= 1000);
    }
    let m = hosts.group_metrics();
    assert!(m.keys <= 1000 && m.keys > 0);
    assert!(m.evicted_full >= 99_000, "{m:?}");
    assert_eq!(m.created, 100_000 - m.overflow_calls);
    // The table really holds what it counts.
    assert_eq!(hosts.table.map.len(), m.keys);
}

#[tokio::test]
async fn eviction_keeps_open_and_forced_keys_before_closed_ones() {
    let hosts = breakers(16);
    let svc = hosts
        .layer(by_key())
        .classifier(ResultClassifier)
        .layer(failing_by_flag());
    for _ in 0..2 {
        let _ = svc.clone().oneshot((1, true)).await;
    }
    hosts.force_open(&2, "operator");
    assert_eq!(hosts.state(&1), Some(State::Open));
    for key in 100..400 {
        svc.clone().oneshot((key, false)).await.unwrap();
    }
    assert_eq!(hosts.state(&1), Some(State::Open));
    assert_eq!(hosts.state(&2), Some(State::ForcedOpen));
}

#[tokio::test]
async fn a_key_held_by_a_call_is_not_evicted() {
    let hosts = KeyedBuilder::<Bulkhead, u32>::new("pool")
        .template(|name| Bulkhead::builder(name).max_concurrent(1))
        .max_keys(4)
        .build()
        .unwrap();
    let svc = hosts
        .layer(by_key())
        .layer(service_fn(|req: Req| async move {
            if req.1 {
                pending::<()>().await;
            }
            Ok::<_, std::io::Error>(())
        }));
    let mut held = svc.clone();
    let in_flight = held.ready().await.unwrap().call((1, true));
    for key in 10..1000 {
        svc.clone().oneshot((key, false)).await.unwrap();
    }
    assert!(
        hosts.contains(&1),
        "a key with a call in flight was evicted"
    );
    // Its permit is still the one that counts: a second call for key 1 is rejected.
    let err = svc.clone().oneshot((1, false)).await.unwrap_err();
    assert!(err.downcast_ref::<BulkheadFull>().is_some());
    drop(in_flight);
    assert!(hosts.remove(&1));
}

#[tokio::test(start_paused = true)]
async fn idle_keys_expire() {
    let hosts = breakers(100);
    let svc = hosts
        .layer(by_key())
        .classifier(ResultClassifier)
        .layer(failing_by_flag());
    svc.clone().oneshot((1, false)).await.unwrap();
    svc.clone().oneshot((2, false)).await.unwrap();
    tokio::time::advance(Duration::from_secs(40)).await;
    svc.clone().oneshot((2, false)).await.unwrap();
    assert_eq!(hosts.evict_idle(), 0); // notes 2's use
    tokio::time::advance(Duration::from_secs(30)).await;
    // Key 1: idle for 70 s; key 2: seen 30 s ago.
    assert_eq!(hosts.evict_idle(), 1);
    assert!(!hosts.contains(&1));
    assert!(hosts.contains(&2));
    // A sweep also runs on its own on the path of a new key.
    tokio::time::advance(Duration::from_secs(61)).await;
    svc.oneshot((3, false)).await.unwrap();
    assert!(!hosts.contains(&2));
    assert_eq!(hosts.group_metrics().evicted_idle, 2);
}

#[tokio::test]
async fn keyed_bulkheads_isolate_concurrency_per_key() {
    let tenants = KeyedBuilder::<Bulkhead, u32>::new("tenants")
        .template(|name| Bulkhead::builder(name).max_concurrent(1))
        .build()
        .unwrap();
    let svc = tenants.layer(by_key()).layer(service_fn(|_: Req| async {
        pending::<()>().await;
        Ok::<_, std::io::Error>(())
    }));
    let mut a = svc.clone();
    let _busy = a.ready().await.unwrap().call((1, false));
    let err = svc.clone().oneshot((1, false)).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<BulkheadFull>().unwrap().name(),
        "tenants/1"
    );
    let mut b = svc.clone();
    let other = b.ready().await.unwrap().call((2, false));
    assert_eq!(tenants.metrics(&2).unwrap().in_flight, 1);
    assert_eq!(tenants.state(&1), Some(BulkheadState::Saturated));
    drop(other);
}

#[derive(Default)]
struct Collect(HashMap<String, f64>);

impl MetricsVisitor for Collect {
    fn counter(&mut self, family: &'static Family, labels: Labels<'_>, value: u64) {
        self.0
            .insert(format!("{}{labels:?}", family.name), value as f64);
    }
    fn gauge(&mut self, family: &'static Family, labels: Labels<'_>, value: f64) {
        self.0.insert(format!("{}{labels:?}", family.name), value);
    }
    fn histogram(&mut self, _: &'static Family, _: Labels<'_>, _: &HistogramSnapshot) {}
}

#[tokio::test]
async fn health_reports_the_group_and_its_worst_keys() {
    let hosts = breakers(100);
    let svc = hosts
        .layer(by_key())
        .classifier(ResultClassifier)
        .layer(failing_by_flag());
    for key in 1..=4 {
        svc.clone().oneshot((key, false)).await.unwrap();
    }
    assert_eq!(hosts.snapshot().status, HealthStatus::Pass);
    for _ in 0..2 {
        let _ = svc.clone().oneshot((3, true)).await;
    }
    let snap = hosts.snapshot();
    assert_eq!(snap.status, HealthStatus::Warn);
    assert_eq!(snap.metric("keys"), Some(4.0));
    assert_eq!(snap.metric("keys_open"), Some(1.0));
    assert_eq!(snap.metric("keys_closed"), Some(3.0));
    let msg = snap.message.unwrap();
    assert!(
        msg.starts_with("1 of 4 keys failing; worst: 3 open"),
        "{msg}"
    );
    for key in [1, 2, 4] {
        hosts.force_open(&key, "all down");
    }
    assert_eq!(hosts.snapshot().status, HealthStatus::Fail);

    let mut out = Collect::default();
    hosts.export(&mut out);
    assert_eq!(out.0[r#"battlement_keyed_keys[("state", "open")]"#], 1.0);
    assert_eq!(
        out.0[r#"battlement_keyed_keys[("state", "forced_open")]"#],
        3.0
    );
    assert_eq!(out.0["battlement_keyed_created_keys[]"], 4.0);
    assert!(
        out.0.keys().all(|k| !k.contains("key_")),
        "per-key metrics are opt-in"
    );
    for name in out.0.keys() {
        let family = name.split('[').next().unwrap();
        assert!(
            FAMILIES.iter().any(|f| f.name == family),
            "{family} not in FAMILIES"
        );
    }
}

#[tokio::test]
async fn per_key_metrics_are_limited_to_the_worst_keys() {
    let hosts = KeyedBuilder::<CircuitBreaker, u32>::new("hosts")
        .per_key_metrics(2)
        .build()
        .unwrap();
    for key in 0..10 {
        hosts.get_or_create(&key).unwrap();
    }
    for key in [3, 5, 7] {
        hosts.force_open(&key, "down");
    }
    let mut out = Collect::default();
    hosts.export(&mut out);
    let rates: Vec<_> = out
        .0
        .keys()
        .filter(|k| k.starts_with("battlement_keyed_key_failure_rate"))
        .collect();
    assert_eq!(rates.len(), 2);
    let states = out
        .0
        .keys()
        .filter(|k| k.starts_with("battlement_keyed_key_state"))
        .count();
    assert_eq!(states, 2 * State::ALL.len());
}

#[tokio::test]
async fn a_full_table_of_held_keys_refuses_new_keys_without_forcing_the_overflow() {
    let hosts = breakers(2);
    let a = hosts.get_or_create(&1).unwrap();
    let b = hosts.get_or_create(&2).unwrap();
    assert!(hosts.get_or_create(&3).is_none());
    assert!(!hosts.force_open(&3, "no room"));
    assert_eq!(hosts.overflow().state(), State::Closed);
    drop((a, b));
    assert!(hosts.force_open(&3, "room now"));
    assert_eq!(hosts.state(&3), Some(State::ForcedOpen));
}

#[test]
fn builder_validates() {
    let err = KeyedCircuitBreaker::builder("h")
        .idle_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "idle_timeout");
    let err = KeyedCircuitBreaker::builder("h")
        .template(|name| CircuitBreaker::builder(name).failure_rate_threshold(2.0))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "failure_rate_threshold");
    let err = KeyedCircuitBreaker::builder("").build().unwrap_err();
    assert_eq!(err.setting(), "name");
}

/// Threads call through per-key bulkheads of one permit while others evict (idle sweeps with a
/// zero-length idle, removals, and a flood of new keys filling the table). If a component were
/// dropped while a call held its permit, a later call for the same key would get a fresh
/// component and a second permit: two calls of one key inside the inner service at once.
/// (Fails if `Component::held` is made to return `false`.)
#[test]
fn eviction_never_drops_a_component_a_call_holds() {
    const KEYS: usize = 8;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let rt = &rt;
    let _guard = rt.enter();
    let table = KeyedBuilder::<Bulkhead, usize>::new("stress")
        .template(|name| Bulkhead::builder(name).max_concurrent(1))
        .max_keys(16)
        .idle_timeout(Duration::from_nanos(1))
        .build()
        .unwrap();
    // The overflow component (new keys while the table is full and a sweep is busy) is a
    // bulkhead of its own: keep its one permit taken, so only per-key components admit calls.
    let _overflow_busy = table.overflow().try_call();
    let inside: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let violations = Arc::new(AtomicUsize::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4 {
            let table = table.clone();
            let inside = inside.clone();
            let violations = violations.clone();
            let admitted = admitted.clone();
            s.spawn(move || {
                let _guard = rt.enter();
                let mut svc = service_fn(|key: usize| {
                    if inside[key].fetch_add(1, Ordering::SeqCst) != 0 {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    admitted.fetch_add(1, Ordering::Relaxed);
                    for _ in 0..50 {
                        std::hint::spin_loop();
                    }
                    inside[key].fetch_sub(1, Ordering::SeqCst);
                    ready(Ok::<_, std::io::Error>(()))
                });
                for i in 0..20_000usize {
                    let key = (i * 7 + t) % KEYS;
                    let ticket = table.admit(Cow::Borrowed(&key));
                    let fut = battlement_bulkhead::ResponseFuture::new(ticket, &mut svc, key);
                    drop(fut);
                }
            });
        }
        let evictor = table.clone();
        s.spawn(move || {
            let _guard = rt.enter();
            for i in 0..20_000usize {
                evictor.evict_idle();
                evictor.remove(&(i % KEYS));
                // New keys fill the table and force evictions of the least recent.
                let _ = evictor.get_or_create(&(1000 + i));
            }
        });
    });
    assert_eq!(violations.load(Ordering::SeqCst), 0);
    assert!(admitted.load(Ordering::Relaxed) > 0);
    let m = table.group_metrics();
    assert!(m.evicted_idle + m.evicted_full > 0, "{m:?}");
    assert!(table.len() <= 16);
}
