//! Behaviour tests, with paused tokio time (governor reads a clock over `tokio::time`).

use crate::*;
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
use battlement_core::testing::RecordingSink;
use battlement_core::{BoxError, HealthSource, HealthStatus};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::advance;
use tower::{service_fn, Service, ServiceExt};

const SEC: Duration = Duration::from_secs(1);

type Echo = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, BoxError>>>;

fn echo() -> Echo {
    service_fn(|x: u32| std::future::ready(Ok(x)))
}

/// Keyed by the request itself: request `k` is a call of client `k`.
fn by_request() -> KeyFn<fn(&u32) -> Option<u32>, u32> {
    key_fn(|req: &u32| Some(*req))
}

async fn call<X: ExtractKey<u32>>(limit: &RateLimit<X>, req: u32) -> Result<u32, BoxError> {
    limit.layer().layer_into(echo()).oneshot(req).await
}

trait LayerInto {
    fn layer_into<S>(&self, s: S) -> <Self as tower_layer::Layer<S>>::Service
    where
        Self: tower_layer::Layer<S>,
    {
        self.layer(s)
    }
}
impl<X: KeyExtractor> LayerInto for RateLimitLayer<X> {}

fn retry_after(err: &BoxError) -> Duration {
    err.downcast_ref::<RateLimited>()
        .unwrap_or_else(|| panic!("not RateLimited: {err}"))
        .retry_after()
}

#[tokio::test(start_paused = true)]
async fn a_burst_passes_then_calls_are_spaced_by_the_emission_interval() {
    // 10 a second, bursts of 3: three at once, then one every 100 ms.
    let limit = RateLimit::builder("api")
        .rate(10, SEC)
        .burst(3)
        .build()
        .unwrap();
    for i in 0..3 {
        assert_eq!(call(&limit, i).await.unwrap(), i);
    }
    let err = call(&limit, 3).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_millis(100));
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(
        (limited.name(), limited.quota(), limited.window()),
        ("api", 10, SEC)
    );

    advance(Duration::from_millis(99)).await;
    assert_eq!(
        retry_after(&call(&limit, 4).await.unwrap_err()),
        Duration::from_millis(1)
    );
    advance(Duration::from_millis(1)).await;
    call(&limit, 5).await.unwrap();
    call(&limit, 6).await.unwrap_err();
    let m = limit.metrics();
    assert_eq!((m.admitted, m.rejected, m.waited), (4, 3, 0));
}

#[tokio::test(start_paused = true)]
async fn keyed_limits_isolate_keys() {
    let limit = RateLimit::builder("per-client")
        .rate(1, SEC)
        .keyed(by_request())
        .build()
        .unwrap();
    call(&limit, 1).await.unwrap();
    // Client 1 is spent; clients 2 and 3 are not.
    assert_eq!(retry_after(&call(&limit, 1).await.unwrap_err()), SEC);
    call(&limit, 2).await.unwrap();
    call(&limit, 3).await.unwrap();
    call(&limit, 2).await.unwrap_err();
    assert_eq!(limit.metrics().keys_tracked, 3);
    advance(SEC).await;
    call(&limit, 1).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn calls_without_a_key_share_one_limit_of_their_own() {
    let limit = RateLimit::builder("per-client")
        .rate(1, SEC)
        .keyed(key_fn(|req: &u32| (*req != 0).then_some(*req)))
        .build()
        .unwrap();
    call(&limit, 0).await.unwrap();
    call(&limit, 0).await.unwrap_err(); // the keyless share one limit
    call(&limit, 7).await.unwrap(); // keyed calls are not affected
    assert_eq!(limit.metrics().keys_tracked, 1);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_distinct_keys_never_tracks_more_than_max_keys() {
    let limit = RateLimit::builder("flood")
        .rate(1, SEC)
        .keyed(by_request())
        .max_keys(1_000)
        .build()
        .unwrap();
    let mut svc = limit.layer().layer_into(echo());
    let (mut admitted, mut rejected) = (0u32, 0u32);
    for key in 0..100_000u32 {
        if key % 10_000 == 0 {
            // Time passes now and then: earlier keys become idle and can be evicted.
            advance(Duration::from_millis(500)).await;
        }
        match svc.ready().await.unwrap().call(key).await {
            Ok(_) => admitted += 1,
            Err(e) => {
                assert!(e.is::<RateLimited>());
                rejected += 1;
            }
        }
        if key % 97 == 0 {
            assert!(limit.metrics().keys_tracked <= 1_000);
        }
        assert!(limit.inner.keys.as_ref().unwrap().map.len() <= 1_000);
    }
    let m = limit.metrics();
    assert!(m.keys_tracked <= 1_000);
    // Each key's burst refills in 1 s: keys seen 1 s ago were evicted to make room.
    assert!(m.keys_evicted >= 1_000, "{m:?}");
    assert_eq!(m.admitted, u64::from(admitted));
    assert_eq!(m.keys_overflow_rejected, u64::from(rejected));
    assert!(rejected > 0 && admitted > 1_000, "{m:?}");
    assert_eq!(limit.snapshot().state, "keys_full");
}

#[tokio::test(start_paused = true)]
async fn a_full_table_rejects_new_keys_by_default_and_admits_them_when_told() {
    for when_full in [KeysFull::Reject, KeysFull::Admit] {
        let mut builder = RateLimit::builder("full")
            .rate(1, SEC)
            .keyed(by_request())
            .max_keys(2);
        if when_full == KeysFull::Admit {
            builder = builder.when_full(KeysFull::Admit);
        }
        let limit = builder.build().unwrap();
        let mut events = limit.subscribe();
        call(&limit, 1).await.unwrap();
        call(&limit, 2).await.unwrap();
        // Tracked keys keep their limits either way.
        call(&limit, 1).await.unwrap_err();
        let third = call(&limit, 3).await;
        let again = call(&limit, 3).await;
        match when_full {
            KeysFull::Reject => {
                assert_eq!(retry_after(&third.unwrap_err()), SEC);
                again.unwrap_err();
                assert_eq!(limit.metrics().keys_overflow_rejected, 2);
            }
            KeysFull::Admit => {
                // Untracked: admitted every time, unlimited.
                third.unwrap();
                again.unwrap();
                assert_eq!(limit.metrics().keys_overflow_admitted, 2);
            }
        }
        assert_eq!(limit.metrics().keys_tracked, 2);
        let full = std::iter::from_fn(|| events.try_recv().ok())
            .filter(|e| matches!(e, RateLimitEvent::KeysFull { .. }))
            .count();
        assert_eq!(full, 1, "{when_full:?}: one event until a slot frees");

        // Once keys 1 and 2 are idle, key 3 takes a slot and is limited like any other.
        advance(2 * SEC).await;
        call(&limit, 3).await.unwrap();
        call(&limit, 3).await.unwrap_err();
        let m = limit.metrics();
        assert_eq!((m.keys_tracked, m.keys_evicted), (1, 2));
    }
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted_when_a_new_key_arrives_after_the_eviction_interval() {
    let limit = RateLimit::builder("idle")
        .rate(1, SEC)
        .keyed(by_request())
        .eviction_interval(10 * SEC)
        .build()
        .unwrap();
    for key in 0..50 {
        call(&limit, key).await.unwrap();
    }
    advance(5 * SEC).await;
    call(&limit, 100).await.unwrap();
    // The first new key swept (none idle then); the next sweep waits for the interval.
    assert_eq!(limit.metrics().keys_tracked, 51);
    advance(5 * SEC).await;
    call(&limit, 101).await.unwrap();
    let m = limit.metrics();
    assert_eq!((m.keys_tracked, m.keys_evicted), (1, 51));
    // By hand, too.
    advance(2 * SEC).await;
    assert_eq!(limit.evict_idle(), 1);
    assert_eq!(limit.metrics().keys_tracked, 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_is_admitted_when_its_turn_comes() {
    let limit = RateLimit::builder("wait")
        .rate(1, SEC)
        .max_delay(2 * SEC)
        .build()
        .unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let svc = limit.layer().layer_into(service_fn({
        let calls = calls.clone();
        move |x: u32| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(Ok::<_, BoxError>(x))
        }
    }));
    svc.clone().oneshot(1).await.unwrap();
    let start = tokio::time::Instant::now();
    let mut waiting = pin!(svc.clone().oneshot(2));
    // Not admitted yet: the inner service is not called while the call waits.
    assert!(futures::poll!(waiting.as_mut()).is_pending());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(waiting.await.unwrap(), 2);
    assert_eq!(start.elapsed(), SEC);
    let m = limit.metrics();
    assert_eq!((m.admitted, m.rejected, m.waited), (2, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_wait_exceeds_max_delay_is_rejected_at_once() {
    let limit = RateLimit::builder("wait")
        .rate(1, SEC)
        .max_delay(Duration::from_millis(500))
        .build()
        .unwrap();
    call(&limit, 1).await.unwrap();
    let start = tokio::time::Instant::now();
    let err = call(&limit, 2).await.unwrap_err();
    assert_eq!(retry_after(&err), SEC);
    assert_eq!(start.elapsed(), Duration::ZERO, "rejected without waiting");
    // Half a second on, the wait fits: it waits, then is admitted.
    advance(Duration::from_millis(500)).await;
    call(&limit, 3).await.unwrap();
    assert_eq!(start.elapsed(), SEC);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_loses_its_turn_is_rejected_at_its_deadline() {
    let limit = RateLimit::builder("wait")
        .rate(1, SEC)
        .max_delay(Duration::from_millis(1_500))
        .build()
        .unwrap();
    call(&limit, 1).await.unwrap();
    let svc = limit.layer().layer_into(echo());
    let mut waiting = pin!(svc.clone().oneshot(2));
    assert!(futures::poll!(waiting.as_mut()).is_pending());
    // Just as its turn comes, another call (with no wait) takes it.
    advance(SEC).await;
    call(&limit, 3).await.unwrap();
    // The waiter's next turn is a second later: past its 1.5 s deadline.
    let err = waiting.await.unwrap_err();
    assert_eq!(retry_after(&err), SEC);
    let m = limit.metrics();
    assert_eq!((m.admitted, m.rejected, m.waited), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiting_call_holds_nothing() {
    let limit = RateLimit::builder("cancel")
        .rate(1, SEC)
        .max_delay(5 * SEC)
        .build()
        .unwrap();
    call(&limit, 1).await.unwrap();
    let svc = limit.layer().layer_into(echo());
    {
        let mut waiting = pin!(svc.clone().oneshot(2));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
    } // dropped while waiting
    advance(SEC).await;
    // The turn it was waiting for goes to the next call, at once.
    let start = tokio::time::Instant::now();
    call(&limit, 3).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let m = limit.metrics();
    assert_eq!((m.admitted, m.rejected, m.waited), (2, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn health_warns_while_it_rejected_recently() {
    let sink = RecordingSink::new();
    let limit = RateLimit::builder("api")
        .rate(1, SEC)
        .rejection_window(10 * SEC)
        .registry(&sink)
        .build()
        .unwrap();
    assert_eq!(sink.registered().len(), 1);
    assert!(!sink.registered()[0].1, "not critical by default");
    assert_eq!(limit.snapshot().status, HealthStatus::Pass);
    call(&limit, 1).await.unwrap();
    assert_eq!(limit.snapshot().state, "admitting");
    call(&limit, 2).await.unwrap_err();
    let snap = limit.snapshot();
    assert_eq!(
        (&*snap.state, snap.status),
        ("limiting", HealthStatus::Warn)
    );
    assert_eq!(snap.metric("rejected"), Some(1.0));
    advance(10 * SEC).await;
    assert_eq!(limit.snapshot().status, HealthStatus::Warn);
    advance(Duration::from_millis(1)).await;
    assert_eq!(limit.snapshot().status, HealthStatus::Pass);
}

#[tokio::test(start_paused = true)]
async fn a_rejecting_event_marks_the_start_of_each_spell_of_rejections() {
    let limit = RateLimit::builder("api")
        .rate(1, SEC)
        .rejection_window(5 * SEC)
        .build()
        .unwrap();
    let mut events = limit.subscribe();
    call(&limit, 1).await.unwrap();
    for _ in 0..3 {
        call(&limit, 2).await.unwrap_err();
    }
    advance(6 * SEC).await;
    call(&limit, 3).await.unwrap();
    call(&limit, 4).await.unwrap_err();
    let n = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, RateLimitEvent::Rejecting { .. }))
        .count();
    assert_eq!(n, 2);
}

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
    fn histogram(&mut self, family: &'static Family, _: Labels<'_>, _: &HistogramSnapshot) {
        panic!("no histogram expected: {}", family.name);
    }
}

#[tokio::test(start_paused = true)]
async fn export_reports_every_family_under_its_name() {
    let limit = RateLimit::builder("api")
        .rate(1, SEC)
        .keyed(by_request())
        .max_keys(10)
        .build()
        .unwrap();
    call(&limit, 1).await.unwrap();
    call(&limit, 1).await.unwrap_err();
    let mut seen = Seen::default();
    limit.export(&mut seen);
    let value = |name: &str, labels: &str| {
        seen.0
            .iter()
            .find(|(n, l, _)| *n == name && l == labels)
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("{name}{labels} not reported"))
    };
    assert_eq!(
        value(
            "battlement_rate_limit_calls",
            r#"[("outcome", "admitted")]"#
        ),
        1.0
    );
    assert_eq!(
        value(
            "battlement_rate_limit_calls",
            r#"[("outcome", "rejected")]"#
        ),
        1.0
    );
    assert_eq!(value("battlement_rate_limit_keys", "[]"), 1.0);
    assert_eq!(value("battlement_rate_limit_max_keys", "[]"), 10.0);
    for family in FAMILIES {
        assert!(family.name.starts_with("battlement_rate_limit_"));
        assert!(!family.name.ends_with("_total"));
        assert!(
            seen.0.iter().any(|(n, _, _)| *n == family.name),
            "{} not reported",
            family.name
        );
    }
    // Unkeyed: no key families.
    let unkeyed = RateLimit::builder("u").rate(1, SEC).build().unwrap();
    let mut seen = Seen::default();
    unkeyed.export(&mut seen);
    assert!(seen.0.iter().all(|(n, _, _)| !n.contains("keys")));
}

#[test]
fn bad_settings_are_config_errors() {
    let scoped = |r: Result<RateLimit<KeyFn<fn(&u32) -> Option<u32>, u32>>, ConfigError>| {
        let e = r.unwrap_err();
        assert_eq!(e.component(), "rate limiter `x`");
        e.setting()
    };
    let base = || RateLimit::builder("x").keyed(by_request());
    assert_eq!(scoped(base().build()), "rate");
    assert_eq!(scoped(base().rate(0, SEC).build()), "rate");
    assert_eq!(scoped(base().rate(1, Duration::ZERO).build()), "rate");
    assert_eq!(
        scoped(base().rate(10, Duration::from_nanos(5)).build()),
        "rate"
    );
    assert_eq!(scoped(base().rate(1, SEC).burst(0).build()), "burst");
    assert_eq!(scoped(base().rate(1, SEC).max_keys(0).build()), "max_keys");
    assert_eq!(
        scoped(
            base()
                .rate(1, SEC)
                .eviction_interval(Duration::ZERO)
                .build()
        ),
        "eviction_interval"
    );
    assert_eq!(
        scoped(base().rate(1, SEC).event_capacity(0).build()),
        "event_capacity"
    );
    assert!(base().rate(1, SEC).validate().is_ok());
    let err = RateLimit::builder("").rate(1, SEC).build().unwrap_err();
    assert_eq!(err.setting(), "name");
}

/// Two tasks on two threads share one unkeyed limit: together they get the burst, no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_limit() {
    let limit = RateLimit::builder("shared")
        .rate(100, Duration::from_secs(3600))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let svc =
                limit.layer().layer_into(service_fn(
                    |x: u32| async move { Ok::<_, std::io::Error>(x) },
                ));
            tokio::spawn(async move {
                let mut ok = 0;
                for i in 0..1_000 {
                    ok += u32::from(svc.clone().oneshot(i).await.is_ok());
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!(ok, 100);
    assert_eq!(limit.metrics().admitted, 100);
}

#[test]
fn the_rejected_future_is_ready_at_once_without_a_runtime() {
    // Reject mode needs no timer: a call over the rate fails on its first poll.
    let limit = RateLimit::builder("sync").rate(1, SEC).build().unwrap();
    let mut svc = limit.layer().layer_into(echo());
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for expect_ok in [true, false] {
        let mut fut = pin!(svc.call(1));
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(r) => assert_eq!(r.is_ok(), expect_ok),
            Poll::Pending => panic!("pending"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_changes_the_rate_and_keeps_the_state() {
    let settings = |n| RateLimit::builder("api").rate(n, SEC).burst(2);
    let limit = settings(2).build().unwrap();
    call(&limit, 1).await.unwrap();
    call(&limit, 2).await.unwrap();
    call(&limit, 3).await.unwrap_err();
    // Ten a second, bursts of 2: the spent burst stays spent (a reload does not refill it).
    // The old state's theoretical arrival time is 1 s; the new tolerance is 100 ms, so the
    // next call conforms at 900 ms (the old settings said 500 ms; a fresh state, now).
    limit.reload(&settings(10)).unwrap();
    assert_eq!((limit.quota(), limit.burst()), (10, 2));
    let err = call(&limit, 4).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_millis(900));
    assert_eq!(
        err.downcast_ref::<RateLimited>().unwrap().quota(),
        10,
        "the error reports the new quota"
    );
    advance(retry_after(&err)).await;
    call(&limit, 5).await.unwrap();
    // Then calls are spaced by 100 ms, not 500.
    let err = call(&limit, 6).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_a_limited_key_limited_and_applies_the_key_table_settings() {
    let limit = RateLimit::builder("api")
        .rate(1, SEC)
        .keyed(by_request())
        .build()
        .unwrap();
    call(&limit, 7).await.unwrap();
    call(&limit, 7).await.unwrap_err();
    let settings = RateLimit::builder("api")
        .rate(1, SEC)
        .max_keys(1)
        .when_full(KeysFull::Reject);
    limit.reload(&settings).unwrap();
    assert!(
        limit.is_keyed(),
        "the extractor is the limiter's, not the settings'"
    );
    // Key 7 is still limited (its state survived the reload).
    call(&limit, 7).await.unwrap_err();
    // The table now holds one key, and 7 is it: a new key is refused.
    call(&limit, 8).await.unwrap_err();
    assert_eq!(limit.metrics().max_keys, Some(1));
    assert_eq!(limit.metrics().keys_overflow_rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_reload_changes_nothing() {
    let limit = RateLimit::builder("api")
        .rate(5, SEC)
        .max_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let bad = RateLimit::builder("api").rate(0, SEC);
    assert_eq!(limit.reload(&bad).unwrap_err().setting(), "rate");
    let bad = RateLimit::builder("api").rate(5, SEC).burst(0);
    assert_eq!(limit.reload(&bad).unwrap_err().setting(), "burst");
    let keyed = RateLimit::builder("k")
        .rate(5, SEC)
        .keyed(by_request())
        .build()
        .unwrap();
    let bad = RateLimit::builder("k").rate(5, SEC).max_keys(0);
    assert_eq!(keyed.reload(&bad).unwrap_err().setting(), "max_keys");
    assert_eq!(
        (limit.quota(), limit.burst(), limit.max_delay()),
        (5, 5, Duration::from_millis(10))
    );
    // max_delay and the rejection window reload too.
    let good = RateLimit::builder("api")
        .rate(5, SEC)
        .rejection_window(Duration::ZERO);
    limit.reload(&good).unwrap();
    assert_eq!(limit.max_delay(), Duration::ZERO);
    assert_eq!(limit.rejection_window(), Duration::ZERO);
}
