//! Behaviour tests, with paused tokio time.

use crate::*;
use battlement_core::error::BreakerOpen;
use battlement_core::testing::{RecordingSink, RecordingVisitor};
use battlement_core::{BoxError, HealthSource, HealthStatus};
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::advance;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::{service_fn, Layer, Service, ServiceExt};

const BASE: Duration = Duration::from_secs(30);

type Reply = http::Response<usize>;

/// An endpoint whose status a test sets: answers `status` with its index as the body.
#[derive(Clone)]
struct Backend {
    index: usize,
    status: Arc<AtomicU16>,
}

impl Backend {
    fn new(index: usize) -> Self {
        Backend {
            index,
            status: Arc::new(AtomicU16::new(200)),
        }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Relaxed);
    }

    fn service(
        &self,
    ) -> impl Service<
        (),
        Response = Reply,
        Error = BoxError,
        Future = impl std::future::Future<Output = Result<Reply, BoxError>> + Send,
    > + Clone
           + Send {
        let b = self.clone();
        service_fn(move |()| {
            let res = http::Response::builder()
                .status(b.status.load(Relaxed))
                .body(b.index)
                .unwrap();
            std::future::ready(Ok(res))
        })
    }
}

fn builder() -> OutlierDetectorBuilder {
    OutlierDetector::builder("pool")
        .success_rate(false)
        .max_ejection_percent(100)
}

/// Calls a watched endpoint once (waiting until it is ready).
async fn hit<S>(svc: &mut S) -> Result<Reply, BoxError>
where
    S: Service<(), Response = Reply, Error = BoxError>,
{
    svc.ready().await?.call(()).await
}

/// Whether the service is ready now, without waiting.
fn ready_now<S: Service<()>>(svc: &mut S) -> bool {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    matches!(svc.poll_ready(&mut cx), std::task::Poll::Ready(Ok(())))
}

#[tokio::test(start_paused = true)]
async fn consecutive_5xx_ejects_at_the_threshold_and_a_success_resets_the_run() {
    let d = builder().consecutive_5xx(3).build().unwrap();
    let b = Backend::new(0);
    let _other = d.endpoint("other", Backend::new(1).service());
    let mut svc = d.endpoint("a", b.service());
    b.set(500);
    hit(&mut svc).await.unwrap();
    hit(&mut svc).await.unwrap();
    b.set(200);
    hit(&mut svc).await.unwrap(); // resets the run
    b.set(500);
    hit(&mut svc).await.unwrap();
    hit(&mut svc).await.unwrap();
    assert!(!d.is_ejected("a"), "two in a row, after a success");
    assert!(ready_now(&mut svc));
    hit(&mut svc).await.unwrap();
    assert!(d.is_ejected("a"));
    assert!(!ready_now(&mut svc), "ejected: not ready");
    let m = d.metrics();
    assert_eq!(
        (m.ejected, m.ejections_consecutive_5xx, m.ejections()),
        (1, 1, 1)
    );
    let e = &d.endpoints()[1];
    assert_eq!(e.ejected.map(|x| x.0), Some(Reason::Consecutive5xx));
    assert_eq!(e.ejected.map(|x| x.1), Some(BASE));
}

#[tokio::test(start_paused = true)]
async fn errors_that_reached_the_endpoint_count_and_local_rejections_do_not() {
    let d = builder().consecutive_5xx(2).build().unwrap();
    let _other = d.endpoint("other", Backend::new(1).service());
    let rejected = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let r = rejected.clone();
    let mut svc = d.endpoint(
        "a",
        service_fn(move |()| {
            let err: BoxError = if r.load(Relaxed) {
                Box::new(BreakerOpen::new("inner".into(), None))
            } else {
                Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
            };
            std::future::ready(Err::<Reply, _>(err))
        }),
    );
    for _ in 0..5 {
        assert!(hit(&mut svc).await.is_err());
    }
    assert!(
        !d.is_ejected("a"),
        "an inner layer's rejection never reached it"
    );
    rejected.store(false, Relaxed);
    hit(&mut svc).await.unwrap_err();
    hit(&mut svc).await.unwrap_err();
    assert!(d.is_ejected("a"), "refused connections are failures");
}

#[tokio::test(start_paused = true)]
async fn consecutive_gateway_failures_eject_and_another_5xx_resets_their_run() {
    let d = builder()
        .consecutive_5xx(0)
        .consecutive_gateway_failures(3)
        .build()
        .unwrap();
    let _other = d.endpoint("other", Backend::new(1).service());
    let b = Backend::new(0);
    let mut svc = d.endpoint("a", b.service());
    for status in [502, 503, 500, 504, 503] {
        b.set(status);
        hit(&mut svc).await.unwrap();
    }
    assert!(!d.is_ejected("a"), "the 500 broke the run; 5xx rule off");
    b.set(502);
    hit(&mut svc).await.unwrap();
    assert!(d.is_ejected("a"));
    let m = d.metrics();
    assert_eq!(
        (
            m.ejections_consecutive_gateway_failure,
            m.ejections_consecutive_5xx
        ),
        (1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn success_rate_outliers_are_ejected_at_the_interval() {
    let d = OutlierDetector::builder("pool")
        .consecutive_5xx(0)
        .success_rate_minimum_hosts(5)
        .success_rate_request_volume(10)
        .interval(Duration::from_secs(10))
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let backends: Vec<Backend> = (0..5).map(Backend::new).collect();
    let mut svcs: Vec<_> = backends
        .iter()
        .map(|b| d.endpoint(b.index, b.service()))
        .collect();
    // Endpoint 4 fails every other call; the others never fail.
    for round in 0..20 {
        for (i, svc) in svcs.iter_mut().enumerate() {
            backends[i].set(if i == 4 && round % 2 == 0 { 500 } else { 200 });
            hit(svc).await.unwrap();
        }
    }
    assert_eq!(d.metrics().ejected, 0, "not evaluated before the interval");
    advance(Duration::from_secs(10)).await;
    hit(&mut svcs[0]).await.unwrap(); // the first call of the next interval evaluates
    assert!(d.is_ejected("4"));
    assert_eq!(d.metrics().ejections_success_rate, 1);
    for i in 0..4 {
        assert!(!d.is_ejected(&i.to_string()));
    }
}

#[tokio::test(start_paused = true)]
async fn success_rate_ejects_the_worst_first_when_the_max_allows_only_one() {
    let d = OutlierDetector::builder("pool")
        .consecutive_5xx(0)
        .success_rate_minimum_hosts(5)
        .success_rate_request_volume(10)
        .success_rate_stdev_factor(1.0)
        .max_ejection_percent(20)
        .always_eject_one_host(false)
        .build()
        .unwrap();
    let backends: Vec<Backend> = (0..6).map(Backend::new).collect();
    let mut svcs: Vec<_> = backends
        .iter()
        .map(|b| d.endpoint(b.index, b.service()))
        .collect();
    // Rates over 10 calls: 1.0 for 0..4, 0.5 for 4, 0.3 for 5. Mean 0.8, stdev 0.29: both
    // outliers are below 0.51, but 20 % of 6 endpoints is one ejection.
    for round in 0..10 {
        for (i, svc) in svcs.iter_mut().enumerate() {
            let fail = (i == 4 && round < 5) || (i == 5 && round < 7);
            backends[i].set(if fail { 500 } else { 200 });
            hit(svc).await.unwrap();
        }
    }
    d.evaluate();
    assert!(d.is_ejected("5"), "the worst");
    assert!(!d.is_ejected("4"));
    let m = d.metrics();
    assert_eq!((m.ejected, m.ejections_success_rate, m.overflow), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn success_rate_needs_enough_hosts_with_enough_calls() {
    let d = OutlierDetector::builder("pool")
        .consecutive_5xx(0)
        .success_rate_minimum_hosts(5)
        .success_rate_request_volume(10)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let backends: Vec<Backend> = (0..5).map(Backend::new).collect();
    let mut svcs: Vec<_> = backends
        .iter()
        .map(|b| d.endpoint(b.index, b.service()))
        .collect();
    backends[4].set(500);
    // Endpoint 0 gets 9 calls (below the volume): only four endpoints qualify.
    for round in 0..20 {
        for (i, svc) in svcs.iter_mut().enumerate() {
            if i == 0 && round >= 9 {
                continue;
            }
            hit(svc).await.unwrap();
        }
    }
    d.evaluate();
    assert_eq!(d.metrics().ejected, 0, "four hosts qualify, five needed");
    // The next interval: every endpoint has the volume.
    for _ in 0..10 {
        for svc in svcs.iter_mut() {
            hit(svc).await.unwrap();
        }
    }
    d.evaluate();
    assert!(d.is_ejected("4"));
}

#[tokio::test(start_paused = true)]
async fn max_ejection_percent_bounds_ejections_but_one_is_always_allowed() {
    // 5 endpoints at 20 %: one ejected, the second refused.
    let d = OutlierDetector::builder("pool")
        .consecutive_5xx(1)
        .success_rate(false)
        .max_ejection_percent(20)
        .build()
        .unwrap();
    let backends: Vec<Backend> = (0..5).map(Backend::new).collect();
    let mut svcs: Vec<_> = backends
        .iter()
        .map(|b| d.endpoint(b.index, b.service()))
        .collect();
    backends[0].set(503);
    backends[1].set(503);
    hit(&mut svcs[0]).await.unwrap();
    hit(&mut svcs[1]).await.unwrap();
    assert!(d.is_ejected("0"));
    assert!(!d.is_ejected("1"), "a second ejection would be 40 %");
    let m = d.metrics();
    assert_eq!((m.ejected, m.overflow), (1, 1));
    assert!(ready_now(&mut svcs[1]));

    // At 0 %, one endpoint may still be ejected (`always_eject_one_host`, on by default).
    let d = OutlierDetector::builder("zero")
        .consecutive_5xx(1)
        .success_rate(false)
        .max_ejection_percent(0)
        .build()
        .unwrap();
    let mut svcs: Vec<_> = backends
        .iter()
        .map(|b| d.endpoint(b.index, b.service()))
        .collect();
    hit(&mut svcs[0]).await.unwrap();
    hit(&mut svcs[1]).await.unwrap();
    assert_eq!(d.metrics().ejected, 1);
    assert!(d.is_ejected("0"));

    // Unless told to enforce the percentage strictly (Envoy's `always_eject_one_host` off).
    let d = OutlierDetector::builder("strict")
        .consecutive_5xx(1)
        .success_rate(false)
        .max_ejection_percent(10)
        .always_eject_one_host(false)
        .build()
        .unwrap();
    let mut svcs: Vec<_> = backends
        .iter()
        .map(|b| d.endpoint(b.index, b.service()))
        .collect();
    hit(&mut svcs[0]).await.unwrap();
    assert_eq!((d.metrics().ejected, d.metrics().overflow), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn the_last_endpoint_in_service_is_never_ejected() {
    let d = builder().consecutive_5xx(1).build().unwrap();
    let (a, b) = (Backend::new(0), Backend::new(1));
    a.set(500);
    b.set(500);
    let mut sa = d.endpoint("a", a.service());
    let mut sb = d.endpoint("b", b.service());
    hit(&mut sa).await.unwrap();
    hit(&mut sb).await.unwrap();
    assert!(d.is_ejected("a"));
    assert!(
        !d.is_ejected("b"),
        "100 % allowed, but b is the last in service"
    );
    assert!(ready_now(&mut sb));
    // Alone in a pool, an endpoint is never ejected.
    let d = builder().consecutive_5xx(1).build().unwrap();
    let mut alone = d.endpoint("a", a.service());
    hit(&mut alone).await.unwrap();
    assert!(!d.is_ejected("a"));
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_is_readmitted_after_its_time_and_wakes_the_task() {
    let d = builder().consecutive_5xx(1).build().unwrap();
    let _other = d.endpoint("other", Backend::new(1).service());
    let b = Backend::new(0);
    b.set(500);
    let mut svc = d.endpoint("a", b.service());
    hit(&mut svc).await.unwrap();
    assert!(d.is_ejected("a"));
    b.set(200);
    let mut events = d.subscribe();
    let waiter = tokio::spawn(async move {
        svc.ready().await.unwrap();
        tokio::time::Instant::now()
    });
    let ejected_at = tokio::time::Instant::now();
    advance(BASE - Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "still ejected");
    assert!(d.is_ejected("a"));
    // Paused time auto-advances to the timer: the task is woken at the ejection's end.
    let ready_at = waiter.await.unwrap();
    assert!(ready_at >= ejected_at + BASE);
    assert!(ready_at <= ejected_at + BASE + Duration::from_millis(2));
    assert!(!d.is_ejected("a"));
    assert_eq!(d.metrics().readmissions, 1);
    assert!(matches!(
        events.recv().await.unwrap(),
        OutlierEvent::Readmitted { endpoint, .. } if &*endpoint == "a"
    ));
}

#[tokio::test(start_paused = true)]
async fn ejection_time_grows_with_each_ejection_up_to_the_max() {
    let d = builder()
        .consecutive_5xx(1)
        .base_ejection_time(BASE)
        .max_ejection_time(Duration::from_secs(75))
        .interval(Duration::from_secs(3600)) // no decay in this test
        .build()
        .unwrap();
    let _other = d.endpoint("other", Backend::new(1).service());
    let b = Backend::new(0);
    b.set(500);
    let mut svc = d.endpoint("a", b.service());
    let mut times = Vec::new();
    for _ in 0..4 {
        hit(&mut svc).await.unwrap(); // ejects
        let e = d.endpoints()[1].clone();
        times.push((e.ejections, e.ejected.unwrap().1));
        // Back after its time (ready waits for it), then fails again at once.
        svc.ready().await.unwrap();
    }
    assert_eq!(
        times,
        [
            (1, Duration::from_secs(30)),
            (2, Duration::from_secs(60)),
            (3, Duration::from_secs(75)),
            (4, Duration::from_secs(75)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_multiplier_decays_only_after_the_endpoint_stays_healthy() {
    let interval = Duration::from_secs(10);
    let d = builder()
        .consecutive_5xx(1)
        .interval(interval)
        .build()
        .unwrap();
    let _other = d.endpoint("other", Backend::new(1).service());
    let b = Backend::new(0);
    b.set(500);
    let mut svc = d.endpoint("a", b.service());
    hit(&mut svc).await.unwrap();
    svc.ready().await.unwrap(); // back after 30 s
    hit(&mut svc).await.unwrap(); // ejected again: 60 s
    svc.ready().await.unwrap();
    assert_eq!(d.endpoints()[1].multiplier, 2);
    // Healthy, but for less than a base ejection time: no decay.
    b.set(200);
    advance(Duration::from_secs(20)).await;
    d.evaluate();
    assert_eq!(d.endpoints()[1].multiplier, 2);
    // Healthy for a base ejection time: one step per interval.
    advance(Duration::from_secs(10)).await;
    d.evaluate();
    assert_eq!(d.endpoints()[1].multiplier, 1);
    advance(interval).await;
    hit(&mut svc).await.unwrap(); // the call of a new interval evaluates
    assert_eq!(d.endpoints()[1].multiplier, 0);
    // Decayed: the next ejection is a first one's length again.
    b.set(500);
    hit(&mut svc).await.unwrap();
    assert_eq!(d.endpoints()[1].ejected.unwrap().1, BASE);
    assert_eq!(d.endpoints()[1].ejections, 3);
}

#[tokio::test(start_paused = true)]
async fn a_balancer_never_picks_an_ejected_endpoint_and_gets_it_back_after_its_time() {
    let d = OutlierDetector::builder("pool")
        .consecutive_5xx(2)
        .max_ejection_percent(34)
        .build()
        .unwrap();
    let backends: Vec<Backend> = (0..3).map(Backend::new).collect();
    backends[1].set(503);
    let list = ServiceList::new(backends.iter().map(Backend::service).collect::<Vec<_>>());
    let discover =
        PendingRequestsDiscover::new(d.layer().layer(list), CompleteOnResponse::default());
    let mut pool = Balance::new(discover);
    let mut bad = 0;
    for _ in 0..60 {
        let res = hit(&mut pool).await.unwrap();
        bad += usize::from(res.status() == 503);
    }
    assert_eq!(bad, 2, "exactly the two failures that ejected it");
    assert!(d.is_ejected("1"));
    backends[1].set(200);
    advance(BASE).await;
    let mut served = [0usize; 3];
    for _ in 0..300 {
        served[hit(&mut pool).await.unwrap().into_body()] += 1;
    }
    assert!(served[1] > 0, "readmitted: {served:?}");
    assert!(!d.is_ejected("1"));
}

#[tokio::test(start_paused = true)]
async fn load_passes_through_so_the_detector_can_wrap_a_load_measuring_discover() {
    use tower::load::Load;
    let d = builder().consecutive_5xx(1).build().unwrap();
    let backends: Vec<Backend> = (0..2).map(Backend::new).collect();
    backends[0].set(500);
    let list = ServiceList::new(backends.iter().map(Backend::service).collect::<Vec<_>>());
    // The detector outside the load measurement: OutlierService<PendingRequests<_>>.
    let discover = d.layer().layer(PendingRequestsDiscover::new(
        list,
        CompleteOnResponse::default(),
    ));
    let mut pool = Balance::new(discover);
    for _ in 0..20 {
        hit(&mut pool).await.unwrap();
    }
    assert!(d.is_ejected("0"));
    let svc = d.endpoint(
        "x",
        tower::load::PendingRequests::new(Backend::new(2).service(), CompleteOnResponse::default()),
    );
    assert_eq!(svc.load(), tower::load::pending_requests::Count::default());
}

#[tokio::test(start_paused = true)]
async fn endpoints_leave_the_pool_when_their_service_is_dropped() {
    let d = builder().build().unwrap();
    let a = d.endpoint("a", Backend::new(0).service());
    let a2 = a.clone();
    let _b = d.endpoint("b", Backend::new(1).service());
    assert_eq!(d.metrics().endpoints, 2);
    drop(a);
    assert_eq!(d.metrics().endpoints, 2, "a clone still holds it");
    drop(a2);
    let labels: Vec<_> = d.endpoints().into_iter().map(|e| e.label).collect();
    assert_eq!(labels, [Arc::from("b")]);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_counts_for_nothing() {
    let d = builder().consecutive_5xx(1).build().unwrap();
    let _other = d.endpoint("other", Backend::new(1).service());
    let mut svc = d.endpoint(
        "a",
        service_fn(|()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<Reply, BoxError>("boom".into())
        }),
    );
    let fut = svc.ready().await.unwrap().call(());
    drop(fut);
    assert_eq!(d.endpoints()[1].failures, 0);
    assert!(!d.is_ejected("a"));
}

#[tokio::test(start_paused = true)]
async fn health_names_ejected_endpoints_and_export_reports_every_family() {
    let sink = RecordingSink::new();
    let d = builder()
        .consecutive_5xx(1)
        .registry(&sink)
        .build()
        .unwrap();
    let registered = sink.registered();
    assert_eq!(registered.len(), 1);
    assert!(!registered[0].1, "not critical by default");
    let b = Backend::new(0);
    b.set(500);
    let _other = d.endpoint("10.0.0.2:80", Backend::new(1).service());
    let mut svc = d.endpoint("10.0.0.1:80", b.service());
    let snap = d.snapshot();
    assert_eq!((&*snap.state, snap.status), ("serving", HealthStatus::Pass));
    hit(&mut svc).await.unwrap();
    let snap = registered[0].0.snapshot();
    assert_eq!(
        (&*snap.state, snap.status),
        ("ejecting", HealthStatus::Warn)
    );
    assert_eq!(snap.metric("ejected"), Some(1.0));
    assert_eq!(snap.metric("endpoints"), Some(2.0));
    assert_eq!(snap.metric("ejections"), Some(1.0));
    let msg = snap.message.unwrap();
    assert!(
        msg.contains("10.0.0.1:80 (consecutive_5xx, ejection 1, 30s left)"),
        "{msg}"
    );
    let mut v = RecordingVisitor::new();
    d.export(&mut v);
    v.assert_families_in(FAMILIES);
    assert_eq!(v.gauge_value("battlement_outlier_ejected", &[]), 1.0);
    assert_eq!(v.gauge_value("battlement_outlier_endpoints", &[]), 2.0);
    assert_eq!(
        v.counter_value(
            "battlement_outlier_ejections",
            &[("reason", "consecutive_5xx")]
        ),
        1
    );
    assert_eq!(
        v.counter_value(
            "battlement_outlier_ejections",
            &[("reason", "success_rate")]
        ),
        0
    );
    for family in FAMILIES {
        assert!(v.count_of(family.name) > 0, "{} not reported", family.name);
    }
}

#[test]
fn bad_settings_are_config_errors() {
    let cases: Vec<(OutlierDetectorBuilder, &str)> = vec![
        (OutlierDetector::builder(""), "name"),
        (
            OutlierDetector::builder("p").interval(Duration::ZERO),
            "interval",
        ),
        (
            OutlierDetector::builder("p").base_ejection_time(Duration::ZERO),
            "base_ejection_time",
        ),
        (
            OutlierDetector::builder("p").max_ejection_time(Duration::from_secs(1)),
            "max_ejection_time",
        ),
        (
            OutlierDetector::builder("p").max_ejection_percent(150),
            "max_ejection_percent",
        ),
        (
            OutlierDetector::builder("p").success_rate_minimum_hosts(0),
            "success_rate_minimum_hosts",
        ),
        (
            OutlierDetector::builder("p").success_rate_request_volume(0),
            "success_rate_request_volume",
        ),
        (
            OutlierDetector::builder("p").success_rate_stdev_factor(f64::NAN),
            "success_rate_stdev_factor",
        ),
        (
            OutlierDetector::builder("p").success_rate_stdev_factor(-1.0),
            "success_rate_stdev_factor",
        ),
        (
            OutlierDetector::builder("p").event_capacity(0),
            "event_capacity",
        ),
    ];
    for (builder, setting) in cases {
        assert_eq!(builder.build().unwrap_err().setting(), setting);
    }
}
