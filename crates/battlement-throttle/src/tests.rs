//! Behaviour tests, with paused tokio time and seeded random draws.

use crate::*;
use battlement_core::error::BreakerOpen;
use battlement_core::testing::{RecordingSink, RecordingVisitor};
use battlement_core::{classify_fn, BoxError, FailureKind, HealthSource, HealthStatus, Outcome};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::advance;
use tower::{service_fn, Layer, Service, ServiceExt};

const TICK: Duration = Duration::from_millis(10);
const WINDOW: Duration = Duration::from_secs(10);

fn throttle() -> Throttle {
    Throttle::builder("dep")
        .window(WINDOW)
        .buckets(20)
        .seed(42)
        .build()
        .unwrap()
}

/// What a simulated dependency does with a call that reaches it.
#[derive(Clone)]
struct Backend {
    /// Calls that reached it.
    reached: Arc<AtomicU64>,
    /// Calls it accepted.
    accepted: Arc<AtomicU64>,
    decide: Arc<dyn Fn(u64) -> bool + Send + Sync>,
}

impl Backend {
    fn new(decide: impl Fn(u64) -> bool + Send + Sync + 'static) -> Self {
        Backend {
            reached: Arc::default(),
            accepted: Arc::default(),
            decide: Arc::new(decide),
        }
    }

    /// A service answering 200 when it accepts a call, 503 when it refuses it.
    fn service(
        &self,
    ) -> impl Service<
        (),
        Response = http::Response<()>,
        Error = BoxError,
        Future = impl std::future::Future<Output = Result<http::Response<()>, BoxError>> + Send,
    > + Clone
           + Send {
        let backend = self.clone();
        service_fn(move |()| {
            let n = backend.reached.fetch_add(1, Relaxed);
            let accept = (backend.decide)(n);
            if accept {
                backend.accepted.fetch_add(1, Relaxed);
            }
            let status = if accept { 200 } else { 503 };
            std::future::ready(Ok(http::Response::builder()
                .status(status)
                .body(())
                .unwrap()))
        })
    }

    /// Accepts at most `per_second` calls each second (of paused time), refusing the rest,
    /// unless `healthy` is set (then it accepts everything).
    fn with_capacity(per_second: u64, healthy: Arc<std::sync::atomic::AtomicBool>) -> Self {
        let start = tokio::time::Instant::now();
        let second = AtomicU64::new(u64::MAX);
        let used = AtomicU64::new(0);
        Backend::new(move |_| {
            let now = start.elapsed().as_secs();
            if second.swap(now, Relaxed) != now {
                used.store(0, Relaxed);
            }
            healthy.load(Relaxed) || used.fetch_add(1, Relaxed) < per_second
        })
    }

    fn counts(&self) -> (u64, u64) {
        (self.reached.load(Relaxed), self.accepted.load(Relaxed))
    }
}

/// Offers `calls` calls, one per [`TICK`]; returns how many were throttled.
async fn offer<S>(svc: &mut S, calls: u64) -> u64
where
    S: Service<(), Error = BoxError>,
{
    let mut throttled = 0;
    for _ in 0..calls {
        match svc.ready().await.unwrap().call(()).await {
            Ok(_) => {}
            Err(e) => {
                assert!(e.is::<Throttled>(), "{e}");
                throttled += 1;
            }
        }
        advance(TICK).await;
    }
    throttled
}

/// The SRE book's case: a dependency with capacity for 30 % of the offered load (100 calls a
/// second offered, at most 30 a second accepted, the rest refused with 503). With K = 2 the rule
/// settles where `requests − 2 × accepts ≈ p × requests`: the client sends about K × accepts,
/// i.e. 60 % of its calls, and throttles the other 40 %.
#[tokio::test(start_paused = true)]
async fn a_dependency_at_30_percent_capacity_is_sent_about_k_times_what_it_accepts() {
    let throttle = throttle();
    let backend = Backend::with_capacity(30, Arc::default());
    let mut svc = throttle.layer().layer(backend.service());

    // Warm-up: two windows.
    offer(&mut svc, 2_000).await;
    let (reached0, accepted0) = backend.counts();
    // Measured: 60 s, 6,000 calls offered.
    let throttled = offer(&mut svc, 6_000).await;
    let (reached, accepted) = backend.counts();
    let (reached, accepted) = (reached - reached0, accepted - accepted0);

    assert_eq!(reached + throttled, 6_000);
    let share = reached as f64 / 6_000.0;
    // The prediction: K × capacity / offered = 2 × 30 / 100 = 0.6 (the `+ 1` of the rule
    // moves it by 0.1 %). Tolerance: ±0.03.
    assert!((share - 0.6).abs() < 0.03, "share reaching {share}");
    assert!(
        (accepted as f64 / 6_000.0 - 0.3).abs() < 0.01,
        "accepted {accepted}"
    );
    // Requests reaching the dependency ≈ K × accepts, within 5 %.
    let ratio = reached as f64 / accepted as f64;
    assert!((ratio - 2.0).abs() < 0.1, "reached / accepted = {ratio}");
    let p = throttle.rejection_probability();
    assert!((p - 0.4).abs() < 0.05, "{p}");
    assert_eq!(throttle.snapshot().status, HealthStatus::Warn);
}

/// A dependency that accepts each call it receives with probability 0.3 whatever the load (a
/// broken dependency, not an overloaded one). Then `K × accepts` stays below `requests` however
/// little is sent, and the rule's fixed point is `p = r / (r + 1)` with `r = requests × (1 −
/// K × 0.3)`: with 1,000 requests in the window, `1 − p ≈ 1 / 401`. The client sends almost
/// nothing, but still a trickle (the `+ 1`), which tells it when the dependency recovers.
#[tokio::test(start_paused = true)]
async fn a_dependency_accepting_30_percent_of_what_it_gets_is_sent_a_trickle() {
    let throttle = throttle();
    let rng = AtomicU64::new(7);
    let backend = Backend::new(move |_| {
        // The dependency's own (seeded) coin: xorshift.
        let mut x = rng.load(Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.store(x, Relaxed);
        x % 10 < 3
    });
    let mut svc = throttle.layer().layer(backend.service());
    // Warm-up: the share sent shrinks about 0.6-fold per window; 40 windows.
    offer(&mut svc, 40_000).await;
    let (reached0, _) = backend.counts();
    offer(&mut svc, 6_000).await;
    let reached = backend.counts().0 - reached0;
    // Predicted 6,000 / 401 ≈ 15; allowed 3 to 60 (0.05 % to 1 %).
    assert!((3..=60).contains(&reached), "{reached} reached");
}

/// A dependency that accepts every call is never throttled; neither is one that refuses less
/// than `1 − 1/K` of them (here 40 % with K = 2).
#[tokio::test(start_paused = true)]
async fn a_healthy_dependency_is_never_throttled() {
    for refuse_every in [None, Some(5u64)] {
        let throttle = throttle();
        // Refuses 2 calls of every 5 (40 %), or none.
        let backend = Backend::new(move |n| refuse_every.is_none_or(|m| n % m >= 2));
        let mut svc = throttle.layer().layer(backend.service());
        let mut events = throttle.subscribe();
        assert_eq!(offer(&mut svc, 5_000).await, 0);
        let m = throttle.metrics();
        assert_eq!(m.throttled, 0);
        assert_eq!(m.requests, 5_000);
        assert_eq!(m.rejection_probability, 0.0);
        assert_eq!(throttle.snapshot().status, HealthStatus::Pass);
        assert!(events.try_recv().is_err(), "no event");
    }
}

/// After the dependency recovers, throttling stops within the window (plus the bucket the
/// probability is recomputed at), and a `Stopped` event says so.
#[tokio::test(start_paused = true)]
async fn throttling_stops_within_a_window_of_the_dependency_recovering() {
    let throttle = throttle();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Overloaded: capacity for 30 % of the offered load.
    let backend = Backend::with_capacity(30, healthy.clone());
    let mut svc = throttle.layer().layer(backend.service());
    let mut events = throttle.subscribe();
    offer(&mut svc, 2_000).await;
    assert!(throttle.rejection_probability() > 0.0);
    assert!(matches!(
        events.try_recv().unwrap(),
        ThrottleEvent::Started { .. }
    ));

    healthy.store(true, Relaxed);
    // A window and a bucket later, nothing is throttled any more.
    offer(
        &mut svc,
        (WINDOW.as_millis() / TICK.as_millis()) as u64 + 50,
    )
    .await;
    assert_eq!(throttle.rejection_probability(), 0.0);
    assert!(matches!(
        events.try_recv().unwrap(),
        ThrottleEvent::Stopped { .. }
    ));
    assert_eq!(offer(&mut svc, 1_000).await, 0);
    assert_eq!(throttle.snapshot().status, HealthStatus::Pass);
}

/// A window without calls counts nothing: a client that went quiet after its dependency
/// refused everything sends again once a window has passed.
#[tokio::test(start_paused = true)]
async fn a_quiet_window_forgets_the_refusals() {
    let throttle = throttle();
    let backend = Backend::new(|_| false);
    let mut svc = throttle.layer().layer(backend.service());
    offer(&mut svc, 500).await;
    let p = throttle.rejection_probability();
    assert!(p > 0.99, "{p}");
    advance(WINDOW - Duration::from_secs(1)).await;
    assert!(throttle.rejection_probability() > 0.0, "still remembered");
    advance(Duration::from_secs(1)).await;
    assert_eq!(throttle.rejection_probability(), 0.0);
    let m = throttle.metrics();
    assert_eq!((m.window_requests, m.window_accepts), (0, 0));
    let reached = backend.counts().0;
    svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(backend.counts().0, reached + 1);
}

/// A call an inner layer rejected locally (an open breaker: `Rejected`), a call classified
/// `Ignored` and a cancelled call leave the count; a refused call stays as a request without
/// an accept.
#[tokio::test(start_paused = true)]
async fn local_rejections_ignored_and_cancelled_calls_leave_the_count() {
    let throttle = throttle();
    let open = throttle.layer().layer(service_fn(|()| {
        std::future::ready(Err::<(), BoxError>(Box::new(BreakerOpen::new(
            "inner".into(),
            None,
        ))))
    }));
    for _ in 0..10 {
        open.clone().oneshot(()).await.unwrap_err();
    }
    // A classifier that ignores 404s.
    let ignoring = ThrottleLayer::new(&throttle)
        .classifier(classify_fn(|r: Result<&u16, &BoxError>| match r {
            Ok(404) => Outcome::Ignored,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure(FailureKind::Other),
        }))
        .layer(service_fn(|code: u16| {
            std::future::ready(Ok::<_, BoxError>(code))
        }));
    ignoring.clone().oneshot(404).await.unwrap();
    ignoring.clone().oneshot(200).await.unwrap();
    // Cancelled: dropped before its outcome.
    let pending = throttle.layer().layer(service_fn(|()| {
        std::future::pending::<Result<(), BoxError>>()
    }));
    let mut call = Box::pin(pending.clone().oneshot(()));
    assert!(futures::poll!(call.as_mut()).is_pending());
    drop(call);
    // Refused: a 503.
    let refused = Backend::new(|_| false);
    throttle
        .layer()
        .layer(refused.service())
        .oneshot(())
        .await
        .unwrap();

    let m = throttle.metrics();
    assert_eq!((m.requests, m.accepts, m.discarded), (14, 1, 12));
    advance(WINDOW / 20).await;
    let m = throttle.metrics();
    assert_eq!((m.window_requests, m.window_accepts), (2, 1));
    assert_eq!(m.rejection_probability, 0.0);
}

/// With the same seed, the same calls are rejected.
#[tokio::test(start_paused = true)]
async fn a_seed_makes_the_rejections_repeatable() {
    async fn pattern(seed: u64) -> Vec<bool> {
        let throttle = Throttle::builder("dep")
            .window(WINDOW)
            .buckets(1)
            .seed(seed)
            .build()
            .unwrap();
        let backend = Backend::new(|n| n % 4 == 0);
        let svc = throttle.layer().layer(backend.service());
        for _ in 0..100 {
            svc.clone().oneshot(()).await.unwrap();
        }
        advance(WINDOW).await;
        let mut out = Vec::new();
        for _ in 0..200 {
            out.push(svc.clone().oneshot(()).await.is_err());
        }
        out
    }
    let a = pattern(1).await;
    assert_eq!(a, pattern(1).await);
    assert_ne!(a, pattern(2).await);
    let rejected = a.iter().filter(|r| **r).count();
    // p = (100 − 2 × 25) / 101 ≈ 0.495: about 99 of 200.
    assert!((70..=130).contains(&rejected), "{rejected}");
}

/// Calls on many threads are all counted (each thread its own cell, others the overflow cell).
#[test]
fn calls_from_many_threads_are_all_counted() {
    let throttle = Throttle::builder("dep").build().unwrap();
    let svc = throttle
        .layer()
        .layer(service_fn(|()| std::future::ready(Ok::<_, BoxError>(()))));
    std::thread::scope(|s| {
        for _ in 0..80 {
            let svc = svc.clone();
            s.spawn(move || {
                futures::executor::block_on(async {
                    for _ in 0..100 {
                        svc.clone().oneshot(()).await.unwrap();
                    }
                })
            });
        }
    });
    let m = throttle.metrics();
    assert_eq!((m.requests, m.accepts, m.throttled), (8_000, 8_000, 0));
}

#[test]
fn bad_settings_are_config_errors() {
    let b = || Throttle::builder("dep");
    let cases: Vec<(ThrottleBuilder, &str)> = vec![
        (b().k(0.99), "k"),
        (b().k(0.0), "k"),
        (b().k(-2.0), "k"),
        (b().k(f64::NAN), "k"),
        (b().k(f64::INFINITY), "k"),
        (b().window(Duration::ZERO), "window"),
        (b().window(Duration::MAX), "window"),
        (b().buckets(0), "buckets"),
        (b().buckets(MAX_BUCKETS + 1), "buckets"),
        (b().window(Duration::from_millis(10)).buckets(20), "buckets"),
        (b().event_capacity(0), "event_capacity"),
        (Throttle::builder(""), "name"),
    ];
    for (builder, setting) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.setting(), setting, "{err}");
        assert_eq!(err.kind(), Some(battlement_core::ComponentKind::Throttle));
    }
    assert!(b().k(1.0).build().is_ok());
    assert!(b()
        .window(Duration::from_millis(20))
        .buckets(20)
        .build()
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn registers_non_critical_and_exports_its_families() {
    let sink = RecordingSink::new();
    let throttle = Throttle::builder("dep")
        .window(WINDOW)
        .buckets(10)
        .seed(3)
        .registry(&sink)
        .build()
        .unwrap();
    let registered = sink.registered();
    assert_eq!(registered.len(), 1);
    assert_eq!(
        registered[0].0.kind(),
        battlement_core::ComponentKind::Throttle
    );
    assert!(!registered[0].1, "non-critical by default");

    let backend = Backend::new(|_| false);
    let svc = throttle.layer().layer(backend.service());
    for _ in 0..20 {
        svc.clone().oneshot(()).await.unwrap();
    }
    advance(Duration::from_secs(1)).await;
    let mut throttled = 0;
    for _ in 0..20 {
        throttled += u64::from(svc.clone().oneshot(()).await.is_err());
    }
    let snap = throttle.snapshot();
    assert_eq!(
        (&*snap.state, snap.status),
        ("throttling", HealthStatus::Warn)
    );
    assert!(snap.message.unwrap().contains("accepted 0 of 20"));

    let mut out = RecordingVisitor::new();
    throttle.export(&mut out);
    out.assert_families_in(FAMILIES);
    assert_eq!(out.family_names().len(), FAMILIES.len());
    assert_eq!(out.counter_value("battlement_throttle_requests", &[]), 40);
    assert_eq!(out.counter_value("battlement_throttle_accepts", &[]), 0);
    assert_eq!(
        out.counter_value("battlement_throttle_throttled", &[]),
        throttled
    );
    assert!(
        (out.gauge_value("battlement_throttle_rejection_probability", &[]) - 20.0 / 21.0).abs()
            < 1e-9
    );
    assert_eq!(
        out.gauge_value("battlement_throttle_window_requests", &[]),
        20.0
    );
    assert!(FAMILIES
        .iter()
        .all(|f| f.name.starts_with("battlement_throttle_")));
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_k_applies_from_the_next_bucket() {
    let throttle = Throttle::builder("k")
        .window(Duration::from_secs(10))
        .buckets(10)
        .seed(3)
        .build()
        .unwrap();
    // 30 requests, 10 accepted: with K = 2, p = (30 - 20) / 31; with K = 3, 0.
    let backend = Backend::new(|n| n < 10);
    let mut svc = throttle.layer().layer(backend.service());
    for _ in 0..30 {
        // One bucket: the probability (0 at first) is not recomputed in it.
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    assert_eq!(backend.counts(), (30, 10));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!((throttle.rejection_probability() - 10.0 / 31.0).abs() < 1e-9);
    throttle
        .reload(
            &Throttle::builder("k")
                .k(3.0)
                .window(Duration::from_secs(10))
                .buckets(10),
        )
        .unwrap();
    assert_eq!(throttle.k(), 3.0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(throttle.rejection_probability(), 0.0);
    // Refused: K below 1, a new window; nothing changes.
    let base = || {
        Throttle::builder("k")
            .window(Duration::from_secs(10))
            .buckets(10)
    };
    assert_eq!(throttle.reload(&base().k(0.5)).unwrap_err().setting(), "k");
    assert_eq!(
        throttle.reload(&base().buckets(20)).unwrap_err().setting(),
        "buckets"
    );
    assert_eq!(throttle.k(), 3.0);
}
