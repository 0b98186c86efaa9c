//! The crate's own `Retry` service against tower's, driven by the same policy.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_request_leaves_the_policys_shared_count_alone() {
    // Tower's `Retry` clones the policy for each request, so the shared state's reference count
    // (one word every core writes) goes up with every request in flight; ours does not.
    let policy = RetryPolicy::builder().build().unwrap();
    let layer = crate::RetryLayer::new(policy.clone());
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
    let before = Arc::strong_count(policy.shared());
    let mut in_flight = Vec::new();
    for i in 0..8 {
        in_flight.push(svc.ready().await.unwrap().call(i));
    }
    assert_eq!(Arc::strong_count(policy.shared()), before);

    let mut towers = ServiceBuilder::new()
        .retry(policy.clone())
        .service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
    let mut more = Vec::new();
    for i in 0..8 {
        more.push(towers.ready().await.unwrap().call(i));
    }
    assert_eq!(
        Arc::strong_count(policy.shared()),
        before + 1 + 8,
        "tower's clones it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leaked_retry_counts_no_reference_for_its_clones_or_its_requests() {
    // Counted, each request in flight holds its stripe's reference and each clone of the
    // service the stripes' list; leaked, neither is counted.
    for leak in [false, true] {
        let layer = crate::RetryLayer::new(RetryPolicy::builder().build().unwrap());
        let layer = if leak { layer.leak() } else { layer };
        let mut svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
        let counts = |svc: &crate::Retry<_>| {
            let list = svc.locals.strong_count();
            // Each stripe once: the handles past the stripe count repeat them.
            let stripes: Option<usize> = svc
                .locals
                .stripes
                .iter()
                .take(battlement_core::stripe::stripe_count())
                .map(|stripe| stripe.strong_count())
                .sum();
            (list, stripes)
        };
        let (list, stripes) = counts(&svc);
        let mut in_flight = Vec::new();
        for i in 0..8 {
            in_flight.push(svc.ready().await.unwrap().call(i));
        }
        let clones: Vec<_> = (0..3).map(|_| svc.clone()).collect();
        if leak {
            assert_eq!(counts(&svc), (None, None));
            assert!(clones.iter().all(crate::Retry::is_leaked));
        } else {
            assert_eq!(counts(&svc), (list.map(|n| n + 3), stripes.map(|n| n + 8)));
        }
        drop((in_flight, clones));
        assert_eq!(counts(&svc), (list, stripes));
    }
}

/// Runs `failures` failing attempts then an answer through `svc`, returning the result and
/// the waits between attempts.
async fn scripted<S>(svc: impl FnOnce(Log) -> S) -> (Result<usize, BoxError>, Vec<Duration>)
where
    S: Service<&'static str, Response = usize, Error = BoxError>,
{
    let log = Log::default();
    let result = svc(log.clone()).oneshot("x").await;
    (result, log.gaps())
}

#[tokio::test(start_paused = true)]
async fn the_layer_decides_as_towers_retry_does_with_the_same_policy() {
    let build = || {
        RetryPolicy::builder()
            .max_attempts(4)
            .backoff(Backoff::exponential(ms(10), 2.0))
            .jitter(Jitter::Full)
            .seed(7)
            .build()
            .unwrap()
    };
    for (failures, leak) in [
        (0, false),
        (2, false),
        (9, false),
        (0, true),
        (2, true),
        (9, true),
    ] {
        let (ours, theirs) = (build(), build());
        let (a, gaps_a) = scripted(|log| {
            let layer = ours.clone().into_layer();
            let layer = if leak { layer.leak() } else { layer };
            let svc = ServiceBuilder::new()
                .layer(layer)
                .service(flaky(&log, failures));
            assert_eq!(svc.is_leaked(), leak);
            svc
        })
        .await;
        let (b, gaps_b) = scripted(|log| {
            ServiceBuilder::new()
                .retry(theirs.clone())
                .service(flaky(&log, failures))
        })
        .await;
        assert_eq!(gaps_a, gaps_b, "{failures} failures");
        assert_eq!(gaps_a.len(), failures.min(3));
        match (a, b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
            (a, b) => panic!("{a:?} against {b:?}"),
        }
        let (ma, mb) = (ours.metrics(), theirs.metrics());
        assert_eq!(format!("{ma:?}"), format!("{mb:?}"));
        assert_eq!(ma.calls(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_for_the_inner_service_and_returns_its_readiness_error() {
    // Ready for the first attempt, then refusing: the retry's readiness error comes back.
    #[derive(Clone)]
    struct Once(Arc<std::sync::atomic::AtomicU32>);
    impl Service<u32> for Once {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), BoxError>> {
            let n = self.0.load(std::sync::atomic::Ordering::SeqCst);
            std::task::Poll::Ready(if n == 0 {
                Ok(())
            } else {
                Err("not ready".into())
            })
        }
        fn call(&mut self, _: u32) -> Self::Future {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(Err(reset(0)))
        }
    }
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let svc = crate::Retry::new(policy, Once(Arc::default()));
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.to_string(), "not ready");
}

#[test]
fn the_service_and_its_future_are_send() {
    fn send<T: Send + Sync>(_: &T) {}
    fn send_fut<T: Send>(_: &T) {}
    let policy = RetryPolicy::builder().build().unwrap();
    let mut svc = crate::Retry::new(
        policy,
        tower::service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }),
    );
    send(&svc);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    send_fut(&svc.call(1));
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_does_not_clone_the_inner_service_and_a_retry_clones_it_once() {
    // Each clone of the inner service would write the reference counts its components share
    // between cores; tower's `Retry` clones it for every request.
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    struct Counted {
        clones: Arc<AtomicU32>,
        calls: Arc<AtomicU32>,
    }
    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.clones.fetch_add(1, SeqCst);
            Counted {
                clones: self.clones.clone(),
                calls: self.calls.clone(),
            }
        }
    }
    impl Service<u32> for Counted {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), BoxError>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, x: u32) -> Self::Future {
            // Odd requests fail on their first attempt.
            let n = self.calls.fetch_add(1, SeqCst);
            std::future::ready(if x % 2 == 1 && n % 2 == 0 {
                Err(reset(0))
            } else {
                Ok(x)
            })
        }
    }
    let clones = Arc::new(AtomicU32::new(0));
    let inner = Counted {
        clones: clones.clone(),
        calls: Arc::default(),
    };
    let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(policy.into_layer())
        .service(inner);
    let made = clones.load(SeqCst);
    for _ in 0..10 {
        assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    }
    assert_eq!(clones.load(SeqCst), made, "no clone for a first attempt");
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(clones.load(SeqCst), made + 1, "one clone for the retry");
}
