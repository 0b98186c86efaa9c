//! Behavior tests on paused time.

use crate::*;
use battlement_core::{BoxError, Classify, FailureKind, Outcome, ResultClassifier};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

mod timer;

/// A service that answers after the delay given in the request, and counts dropped futures.
fn sleeper(
    dropped: Arc<AtomicUsize>,
) -> impl Service<Duration, Response = Duration, Error = std::io::Error> + Clone {
    service_fn(move |d: Duration| {
        let guard = DropCount(dropped.clone(), true);
        async move {
            tokio::time::sleep(d).await;
            let mut guard = guard;
            guard.1 = false;
            Ok(d)
        }
    })
}

struct DropCount(Arc<AtomicUsize>, bool);
impl Drop for DropCount {
    fn drop(&mut self) {
        if self.1 {
            self.0.fetch_add(1, SeqCst);
        }
    }
}

/// Polls `fut` once: its output if ready, else `None`.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

fn elapsed(err: &BoxError) -> &Elapsed {
    err.downcast_ref::<Elapsed>().expect("Elapsed")
}

#[tokio::test(start_paused = true)]
async fn default_limit_applies_and_drops_the_inner_future() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::new(Duration::from_millis(100))
        .name("t")
        .layer(sleeper(dropped.clone()));
    assert_eq!(
        svc.clone()
            .oneshot(Duration::from_millis(99))
            .await
            .unwrap(),
        Duration::from_millis(99)
    );
    let start = Instant::now();
    let err = svc.oneshot(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    let e = elapsed(&err);
    assert_eq!((e.name(), e.limit()), ("t", Duration::from_millis(100)));
    assert_eq!(dropped.load(SeqCst), 1, "the timed-out call was cancelled");
    assert_eq!(
        ResultClassifier.classify(Err::<&(), _>(&err)),
        Outcome::Failure(FailureKind::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn the_limit_runs_from_the_first_poll_and_only_pending_calls_arm_a_timer() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut svc = TimeoutLayer::new(Duration::from_millis(100)).layer(sleeper(dropped));

    // A call that is ready on its first poll succeeds however late that poll comes.
    let fut = svc.ready().await.unwrap().call(Duration::ZERO);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(fut.await.unwrap(), Duration::ZERO);

    // A call polled late gets its whole limit from that first poll: it answers after 90 ms
    // (within the limit counted from the poll, though not from `call`).
    let fut = svc.ready().await.unwrap().call(Duration::from_millis(90));
    tokio::time::advance(Duration::from_secs(1)).await;
    let start = Instant::now();
    assert_eq!(fut.await.unwrap(), Duration::from_millis(90));
    assert_eq!(start.elapsed(), Duration::from_millis(90));

    // And one that needs longer fails exactly `limit` after its first poll.
    let fut = svc.ready().await.unwrap().call(Duration::from_secs(5));
    let start = Instant::now();
    let err = fut.await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(elapsed(&err).limit(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unchanged() {
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|_: ()| async {
        Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

#[tokio::test(start_paused = true)]
async fn zero_limit_is_refused_by_try_new() {
    assert_eq!(
        TimeoutLayer::try_new(Duration::ZERO).unwrap_err().setting(),
        "limit"
    );
    assert!(TimeoutLayer::try_new(Duration::from_nanos(1)).is_ok());
}

#[tokio::test(start_paused = true)]
async fn closure_policy_picks_per_request_limits() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::new(Duration::from_millis(100))
        .policy(|d: &Duration, default: Duration| if *d > default { *d * 2 } else { default })
        .layer(sleeper(dropped));
    assert!(svc
        .clone()
        .oneshot(Duration::from_millis(500))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn name_may_be_any_string() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let name = format!("{}-{}", "inventory", 7);
    let layer = TimeoutLayer::new(Duration::from_millis(10)).name(&name);
    let err = layer
        .layer(sleeper(dropped.clone()))
        .oneshot(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(elapsed(&err).name(), "inventory-7");
    let owned: Arc<str> = Arc::from("shared");
    let err = TimeoutLayer::new(Duration::from_millis(10))
        .name(owned)
        .layer(sleeper(dropped))
        .oneshot(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(elapsed(&err).name(), "shared");
}

#[cfg(feature = "http")]
mod http_overrides {
    use super::*;
    use ::http::Request;

    fn http_sleeper(
    ) -> impl Service<Request<Duration>, Response = Duration, Error = std::io::Error> + Clone {
        service_fn(|req: Request<Duration>| async move {
            tokio::time::sleep(*req.body()).await;
            Ok(*req.body())
        })
    }

    fn layer() -> TimeoutLayer<HttpTimeouts> {
        TimeoutLayer::new(Duration::from_millis(100)).policy(HttpTimeouts::new().grpc(true))
    }

    async fn run(req: Request<Duration>) -> Result<Duration, BoxError> {
        layer().layer(http_sleeper()).oneshot(req).await
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_extension_shortens_but_does_not_lengthen_by_default() {
        let mut shorter = Request::new(Duration::from_millis(60));
        shorter
            .extensions_mut()
            .insert(Timeout(Duration::from_millis(50)));
        let err = run(shorter).await.unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(50));

        // Middleware may have set it from a client's header: held to the layer's 100 ms.
        let mut longer = Request::new(Duration::from_millis(300));
        longer
            .extensions_mut()
            .insert(Timeout(Duration::from_millis(400)));
        let start = Instant::now();
        let err = run(longer).await.unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(100));
        assert_eq!(start.elapsed(), Duration::from_millis(100));

        // A deadline far ahead, the same.
        let mut req = Request::new(Duration::from_secs(5));
        req.extensions_mut()
            .insert(Deadline(Instant::now() + Duration::from_secs(3600)));
        let err = run(req).await.unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_cannot_extend_the_limit_by_default() {
        // A 1 s layer; a client asks for 99999 hours; the call takes 5 s.
        let svc = TimeoutLayer::new(Duration::from_secs(1))
            .policy(HttpTimeouts::new().grpc(true))
            .layer(http_sleeper());
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "99999H")
            .body(Duration::from_secs(5))
            .unwrap();
        let start = Instant::now();
        let err = svc.oneshot(req).await.unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_secs(1));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn allow_extension_lengthens_up_to_its_maximum() {
        let layer = |max| {
            TimeoutLayer::new(Duration::from_millis(100))
                .policy(HttpTimeouts::new().grpc(true).allow_extension(max))
                .layer(http_sleeper())
        };
        let svc = layer(Duration::from_millis(500));
        // Within the maximum: granted.
        let mut req = Request::new(Duration::from_millis(300));
        req.extensions_mut()
            .insert(Timeout(Duration::from_millis(400)));
        assert!(svc.clone().oneshot(req).await.is_ok());
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "400m")
            .body(Duration::from_millis(300))
            .unwrap();
        assert!(svc.clone().oneshot(req).await.is_ok());
        // Beyond it: cut to the maximum.
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "99999H")
            .body(Duration::from_secs(5))
            .unwrap();
        let err = svc.clone().oneshot(req).await.unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(500));
        // Shorter still shortens.
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "20m")
            .body(Duration::from_secs(5))
            .unwrap();
        let err = svc.oneshot(req).await.unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(20));
        // A maximum below the default leaves the default as the ceiling.
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "1S")
            .body(Duration::from_secs(5))
            .unwrap();
        let err = layer(Duration::from_millis(10))
            .oneshot(req)
            .await
            .unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn huge_limits_never_panic() {
        // The largest grpc-timeout there is, allowed in full: about 11,000 years.
        let most = Duration::from_secs(99_999_999 * 3600);
        let svc = TimeoutLayer::new(Duration::from_millis(100))
            .policy(
                HttpTimeouts::new()
                    .grpc(true)
                    .propagate_grpc(true)
                    .allow_extension(Duration::MAX),
            )
            .layer(service_fn(|req: Request<()>| async move {
                Ok::<_, std::io::Error>(req.headers().get(GRPC_TIMEOUT).cloned())
            }));
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "99999999H")
            .body(())
            .unwrap();
        let sent = svc.clone().oneshot(req).await.unwrap().unwrap();
        assert_eq!(parse_grpc_timeout(sent.to_str().unwrap()), Some(most));
        // A Timeout extension of Duration::MAX and a deadline far ahead, written out too.
        let mut req = Request::new(());
        req.extensions_mut().insert(Timeout(Duration::MAX));
        let sent = svc.clone().oneshot(req).await.unwrap().unwrap();
        assert_eq!(sent, "99999999H");
        // Waited on: the timer is armed without overflowing the clock.
        let pending = TimeoutLayer::new(Duration::from_millis(100))
            .policy(
                HttpTimeouts::new()
                    .grpc(true)
                    .allow_extension(Duration::MAX),
            )
            .layer(service_fn(|_: Request<()>| {
                std::future::pending::<Result<(), std::io::Error>>()
            }));
        let mut req = Request::new(());
        req.extensions_mut().insert(Timeout(Duration::MAX));
        let call = pending.clone().oneshot(req);
        tokio::pin!(call);
        assert!(futures_poll_once(call.as_mut()).await.is_none());
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "99999999H")
            .body(())
            .unwrap();
        let call = pending.oneshot(req);
        tokio::pin!(call);
        assert!(futures_poll_once(call.as_mut()).await.is_none());
        // And so is a layer whose own limit is Duration::MAX.
        let call = TimeoutLayer::new(Duration::MAX)
            .layer(service_fn(|_: ()| {
                std::future::pending::<Result<(), std::io::Error>>()
            }))
            .oneshot(());
        tokio::pin!(call);
        assert!(futures_poll_once(call.as_mut()).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_extension_gives_the_time_left() {
        let mut req = Request::new(Duration::from_millis(500));
        req.extensions_mut()
            .insert(Deadline(Instant::now() + Duration::from_millis(70)));
        let start = Instant::now();
        let err = run(req).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(70));
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(70));
        // A deadline in the past fails at once.
        let mut req = Request::new(Duration::from_millis(1));
        req.extensions_mut()
            .insert(Deadline(Instant::now() - Duration::from_millis(1)));
        assert_eq!(
            elapsed(&run(req).await.unwrap_err()).limit(),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_header_is_honoured_in_every_unit() {
        // Extension allowed up to two hours, so every unit can be seen.
        let svc = TimeoutLayer::new(Duration::from_millis(100))
            .policy(
                HttpTimeouts::new()
                    .grpc(true)
                    .allow_extension(Duration::from_secs(7200)),
            )
            .layer(http_sleeper());
        for (header, limit) in [
            ("30000000n", Duration::from_millis(30)),
            ("300000u", Duration::from_millis(300)),
            ("300m", Duration::from_millis(300)),
            ("1S", Duration::from_secs(1)),
            ("1M", Duration::from_secs(60)),
            ("1H", Duration::from_secs(3600)),
        ] {
            let req = Request::builder()
                .header(GRPC_TIMEOUT, header)
                .body(limit + Duration::from_millis(1))
                .unwrap();
            let err = svc.clone().oneshot(req).await.unwrap_err();
            assert_eq!(elapsed(&err).limit(), limit, "{header}");
        }
    }

    /// Counts `WARN` events, to show a malformed header is reported, not only ignored.
    struct WarnCounter(Arc<AtomicUsize>);

    impl tracing::Subscriber for WarnCounter {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, SeqCst);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_grpc_timeout_falls_back_to_the_default() {
        let warnings = Arc::new(AtomicUsize::new(0));
        // The test runs on a current-thread runtime: a thread default sees every event.
        let _guard = tracing::subscriber::set_default(WarnCounter(warnings.clone()));
        let malformed = ["soon", "1.5S", "123456789m", "10", "1s", "-1S", "S"];
        for header in malformed {
            let req = Request::builder()
                .header(GRPC_TIMEOUT, header)
                .body(Duration::from_secs(1))
                .unwrap();
            let err = run(req).await.unwrap_err();
            assert_eq!(
                elapsed(&err).limit(),
                Duration::from_millis(100),
                "{header}"
            );
        }
        assert_eq!(warnings.load(SeqCst), malformed.len(), "one warning each");
        // A header that is not even visible ASCII is malformed too, and does not panic.
        let req = Request::builder()
            .header(
                GRPC_TIMEOUT,
                ::http::HeaderValue::from_bytes(b"1\xe9").unwrap(),
            )
            .body(Duration::from_secs(1))
            .unwrap();
        let err = run(req).await.unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(100));
        assert_eq!(warnings.load(SeqCst), malformed.len() + 1);
        // A well-formed header warns about nothing.
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "5m")
            .body(Duration::from_secs(1))
            .unwrap();
        run(req).await.unwrap_err();
        assert_eq!(warnings.load(SeqCst), malformed.len() + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_header_ignored_unless_asked() {
        let req = Request::builder()
            .header(GRPC_TIMEOUT, "1S")
            .body(Duration::from_millis(500))
            .unwrap();
        let err = TimeoutLayer::new(Duration::from_millis(100))
            .policy(HttpTimeouts::new())
            .layer(http_sleeper())
            .oneshot(req)
            .await
            .unwrap_err();
        assert_eq!(elapsed(&err).limit(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn outbound_grpc_timeout_is_written_from_the_limit() {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let svc = TimeoutLayer::new(Duration::from_millis(100))
            .policy(HttpTimeouts::new().propagate_grpc(true))
            .layer(service_fn({
                let seen = seen.clone();
                move |req: Request<()>| {
                    *seen.lock().unwrap() = req.headers().get(GRPC_TIMEOUT).cloned();
                    async { Ok::<_, std::io::Error>(()) }
                }
            }));
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(Timeout(Duration::from_millis(40)));
        svc.oneshot(req).await.unwrap();
        let value = seen.lock().unwrap().clone().unwrap();
        assert_eq!(
            parse_grpc_timeout(value.to_str().unwrap()),
            Some(Duration::from_millis(40))
        );
    }
}

mod operate {
    //! Counters, export, registration and reload.

    use crate::{TimeoutLayer, FAMILIES};
    use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricsVisitor};
    use battlement_core::{ComponentKind, HealthSource, HealthStatus};
    use battlement_health::HealthRegistry;
    use std::time::Duration;
    use tower::{service_fn, Layer, ServiceExt};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// An upstream that takes `delay`.
    fn slow(
        layer: &TimeoutLayer,
    ) -> impl tower::Service<Duration, Response = (), Error = battlement_core::BoxError> + Clone
    {
        layer.layer(service_fn(|delay: Duration| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::io::Error>(())
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn counters_are_shared_by_clones_and_their_services() {
        let layer = TimeoutLayer::builder("op-counters")
            .limit(ms(100))
            .build()
            .unwrap();
        let other = layer.clone();
        slow(&layer).oneshot(ms(10)).await.unwrap();
        slow(&other).oneshot(ms(500)).await.unwrap_err();
        slow(&other).oneshot(Duration::ZERO).await.unwrap();
        let m = layer.metrics();
        assert_eq!((m.calls, m.elapsed, m.limit), (3, 1, ms(100)));
        assert_eq!(other.metrics(), m);
    }

    #[derive(Default)]
    struct Seen(Vec<(&'static str, f64)>);
    impl MetricsVisitor for Seen {
        fn counter(&mut self, f: &'static Family, l: Labels<'_>, v: u64) {
            assert!(l.is_empty());
            self.0.push((f.name, v as f64));
        }
        fn gauge(&mut self, f: &'static Family, l: Labels<'_>, v: f64) {
            assert!(l.is_empty());
            self.0.push((f.name, v));
        }
        fn histogram(&mut self, f: &'static Family, _: Labels<'_>, h: &HistogramSnapshot) {
            self.0.push((f.name, h.count as f64));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn export_reports_every_family_once() {
        let layer = TimeoutLayer::builder("op-export")
            .limit(ms(250))
            .build()
            .unwrap();
        slow(&layer).oneshot(ms(300)).await.unwrap_err();
        let mut seen = Seen::default();
        layer.export(&mut seen);
        let names: Vec<_> = seen.0.iter().map(|(n, _)| *n).collect();
        let families: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        assert_eq!(names, families, "each family once, in FAMILIES");
        assert!(families
            .iter()
            .all(|n| n.starts_with("battlement_timeout_")));
        assert_eq!(
            seen.0,
            [
                ("battlement_timeout_calls", 1.0),
                ("battlement_timeout_elapsed", 1.0),
                ("battlement_timeout_limit_seconds", 0.25),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reload_changes_the_limit_of_new_calls_only() {
        let layer = TimeoutLayer::builder("op-reload")
            .limit(ms(100))
            .build()
            .unwrap();
        let svc = slow(&layer.clone());
        // A call in flight keeps the limit it started with.
        let reload = async {
            tokio::time::sleep(ms(1)).await;
            layer
                .reload(&TimeoutLayer::builder("op-reload").limit(ms(200)))
                .unwrap();
        };
        let (in_flight, ()) = tokio::join!(svc.clone().oneshot(ms(150)), reload);
        assert!(in_flight.is_err(), "kept its 100 ms");
        // New calls, through services made before the reload, get 200 ms.
        svc.clone().oneshot(ms(150)).await.unwrap();
        assert_eq!(layer.limit(), ms(200));

        // An invalid reload changes nothing.
        let err = layer
            .reload(&TimeoutLayer::builder("op-reload").limit(Duration::ZERO))
            .unwrap_err();
        assert_eq!(err.setting(), "limit");
        svc.oneshot(ms(150)).await.unwrap();
        assert_eq!(layer.metrics().limit, ms(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_registered_timeout_is_in_the_health_report() {
        let registry = HealthRegistry::new();
        let layer = TimeoutLayer::builder("op-health")
            .limit(ms(100))
            .registry(&registry)
            .build()
            .unwrap();
        slow(&layer).oneshot(ms(200)).await.unwrap_err();
        let report = registry.report();
        let me = report
            .components
            .iter()
            .find(|c| c.name() == "op-health")
            .unwrap();
        assert_eq!(me.snapshot.kind, ComponentKind::Timeout);
        assert_eq!(me.snapshot.status, HealthStatus::Pass);
        assert!(!me.critical);
        let elapsed = me
            .snapshot
            .metrics
            .iter()
            .find(|m| m.name == "elapsed")
            .unwrap();
        assert_eq!(elapsed.value, 1.0);
        // (kind, name) is unique.
        let err = TimeoutLayer::builder("op-health")
            .registry(&registry)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "name");
    }
}
