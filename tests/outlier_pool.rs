//! Outlier detection in front of five real upstream servers on 127.0.0.1, balanced by
//! `tower::balance` (power-of-two-choices): one upstream answers 503 for a while; the pool ejects
//! it after its run of gateway failures, sends every later call to the four healthy ones, and
//! readmits it once it has recovered and its ejection time has passed.

use battlement::core::{BoxError, HealthSource, HealthStatus};
use battlement::outlier::{OutlierDetector, OutlierEvent, Reason};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tower::balance::p2c::Balance;
use tower::discover::Change;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::{Layer, Service, ServiceExt};

/// The ejection time of a first ejection: long enough that the first phase (a hundred local
/// calls) ends well within it, short enough for the test to wait it out.
const BASE: Duration = Duration::from_secs(3);

/// An upstream answering the status its `status` holds, counting the requests that reach it.
struct Upstream {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let status = Arc::new(AtomicU16::new(200));
    let hits = Arc::new(AtomicUsize::new(0));
    let (s, h) = (status.clone(), hits.clone());
    let app = axum::Router::new().fallback(move || {
        h.fetch_add(1, SeqCst);
        let code = StatusCode::from_u16(s.load(SeqCst)).unwrap();
        async move { (code, "hello") }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an upstream on 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream { addr, status, hits }
}

fn hits(upstreams: &[Upstream]) -> Vec<usize> {
    upstreams.iter().map(|u| u.hits.load(SeqCst)).collect()
}

#[tokio::test]
async fn the_pool_ejects_the_failing_upstream_and_readmits_it_after_recovery(
) -> Result<(), BoxError> {
    let mut upstreams = Vec::new();
    for _ in 0..5 {
        upstreams.push(upstream().await);
    }
    let bad = &upstreams[2];
    bad.status.store(503, SeqCst);
    let bad_label = bad.addr.to_string();

    let detector = OutlierDetector::builder("upstreams")
        .consecutive_gateway_failures(3)
        .base_ejection_time(BASE)
        .max_ejection_percent(20)
        .build()?;
    let mut events = detector.subscribe();

    // One hyper client; each endpoint sends to its own upstream. The `Discover` inserts the
    // five, keyed (and labelled) by address.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let changes: Vec<Result<_, Infallible>> = upstreams
        .iter()
        .map(|u| {
            let addr = u.addr;
            let endpoint = client
                .clone()
                .map_request(move |mut req: Request<Empty<Bytes>>| {
                    *req.uri_mut() = format!("http://{addr}{}", req.uri().path())
                        .parse()
                        .unwrap();
                    req
                });
            Ok(Change::Insert(addr, endpoint))
        })
        .collect();
    let discover = detector.layer().layer(futures::stream::iter(changes));
    let mut pool = Balance::new(PendingRequestsDiscover::new(
        discover,
        CompleteOnResponse::default(),
    ));
    let get = || Request::get("http://pool/").body(Empty::new()).unwrap();

    // Phase 1: the bad upstream fails three calls in a row and is ejected; every later call
    // goes to the four healthy ones.
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let res = pool.ready().await?.call(get()).await?;
        statuses.push(res.status());
    }
    let failed = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(failed, 3, "exactly the run that ejected it");
    assert_eq!(bad.hits.load(SeqCst), 3);
    assert!(
        detector.is_ejected(&bad_label),
        "still ejected: the phase ended within its ejection time"
    );
    let served = hits(&upstreams);
    assert_eq!(served.iter().sum::<usize>(), 100);
    for (i, n) in served.iter().enumerate() {
        if i != 2 {
            assert!(*n > 0, "every healthy upstream served: {served:?}");
        }
    }
    match events.recv().await? {
        OutlierEvent::Ejected {
            endpoint,
            reason,
            ejections,
            duration,
            ..
        } => {
            assert_eq!(&*endpoint, bad_label);
            assert_eq!(reason, Reason::ConsecutiveGatewayFailure);
            assert_eq!((ejections, duration), (1, BASE));
        }
        other => panic!("unexpected {other:?}"),
    }

    // Health says which endpoint is out, and why.
    let snap = detector.snapshot();
    assert_eq!(snap.status, HealthStatus::Warn);
    assert_eq!(snap.metric("ejected"), Some(1.0));
    assert_eq!(snap.metric("endpoints"), Some(5.0));
    let msg = snap.message.unwrap();
    assert!(
        msg.contains(&format!(
            "{bad_label} (consecutive_gateway_failure, ejection 1"
        )),
        "{msg}"
    );

    // Phase 2: it recovers. Until its ejection time passes it gets nothing.
    bad.status.store(200, SeqCst);
    for _ in 0..20 {
        let res = pool.ready().await?.call(get()).await?;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(bad.hits.load(SeqCst), 3);
    // Wait out the rest of its ejection time (the detector says how long), then the balancer
    // gets it back: the next calls reach it again.
    let left = detector
        .endpoints()
        .into_iter()
        .find(|e| *e.label == *bad_label)
        .and_then(|e| e.ejected)
        .map(|(_, left)| left)
        .expect("still ejected");
    tokio::time::sleep(left).await;
    let mut calls = 0;
    while bad.hits.load(SeqCst) == 3 {
        calls += 1;
        assert!(calls <= 500, "the readmitted upstream was never chosen");
        let res = pool.ready().await?.call(get()).await?;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert!(!detector.is_ejected(&bad_label));
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(10), events.recv()).await??,
        OutlierEvent::Readmitted { endpoint, .. } if *endpoint == *bad_label
    ));
    let m = detector.metrics();
    assert_eq!((m.ejected, m.ejections(), m.readmissions), (0, 1, 1));
    assert_eq!(detector.snapshot().status, HealthStatus::Pass);
    Ok(())
}
