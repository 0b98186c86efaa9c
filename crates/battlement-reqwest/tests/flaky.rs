//! The middleware in a reqwest-middleware client against a real, flaky HTTP server on
//! 127.0.0.1: retries after the server's `Retry-After`, the breaker opening on 5xx, transport
//! errors retried and counted, non-idempotent requests sent once, per-attempt timeouts.
//!
//! Time is real (reqwest and the server use real sockets), so no test asserts an upper bound
//! on time: a wait is checked from the server's own arrival times, as a lower bound, which a
//! slow machine cannot break.

use battlement_breaker::{BreakerOpen, CircuitBreaker, State};
use battlement_core::error::Elapsed;
use battlement_core::FailureKind;
use battlement_reqwest::BattlementMiddleware;
use battlement_retry::{Backoff, DelaySource, HttpRules, RetryPolicy};
use battlement_timeout::TimeoutLayer;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server answers its `n`th request (from 0): a status, a `Retry-After`, a delay.
type Script = Arc<dyn Fn(usize) -> (u16, Option<&'static str>, Duration) + Send + Sync>;

/// When each request arrived, by the server's clock.
#[derive(Clone, Default)]
struct Hits(Arc<Mutex<Vec<Instant>>>);

impl Hits {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn gaps(&self) -> Vec<Duration> {
        let hits = self.0.lock().unwrap();
        hits.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

async fn serve(script: Script) -> (SocketAddr, Hits) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Hits::default();
    let log = hits.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (log, script) = (log.clone(), script.clone());
            let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let n = {
                    let mut hits = log.0.lock().unwrap();
                    hits.push(Instant::now());
                    hits.len() - 1
                };
                let (status, retry_after, delay) = script(n);
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let mut res = Response::builder().status(status);
                    if let Some(after) = retry_after {
                        res = res.header(http::header::RETRY_AFTER, after);
                    }
                    Ok::<_, Infallible>(res.body(Full::new(Bytes::from("ok"))).unwrap())
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

fn client(middleware: BattlementMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

fn retry(attempts: u32) -> RetryPolicy<HttpRules> {
    RetryPolicy::http_builder()
        .name("upstream")
        .max_attempts(attempts)
        .backoff(Backoff::fixed(Duration::from_millis(10)))
        .build()
        .unwrap()
}

fn breaker(consecutive: u64) -> CircuitBreaker {
    CircuitBreaker::builder("upstream")
        .consecutive_failures(consecutive)
        .fixed_open_wait(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_retry_waits_for_the_servers_retry_after() {
    let (addr, hits) = serve(Arc::new(|n| {
        if n == 0 {
            (503, Some("1"), Duration::ZERO)
        } else {
            (200, None, Duration::ZERO)
        }
    }))
    .await;
    let policy = retry(3);
    let mut events = policy.subscribe();
    let breaker = breaker(5);
    let client = client(
        BattlementMiddleware::new()
            .retry(policy.clone())
            .breaker(&breaker),
    );
    let res = client
        .get(format!("http://{addr}/stock"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(hits.count(), 2);
    // The retry came no sooner than the server asked (not after the 10 ms backoff).
    assert!(
        hits.gaps()[0] >= Duration::from_secs(1),
        "{:?}",
        hits.gaps()
    );
    let event = events.try_recv().unwrap();
    assert_eq!(event.source, DelaySource::RetryAfter);
    assert_eq!(event.delay, Duration::from_secs(1));
    assert_eq!(event.status, Some(503));
    // The breaker saw both attempts: the 503 as a failure, the 200 as a success.
    let m = breaker.metrics();
    assert_eq!((m.failures, m.successes), (1, 1));
}

#[tokio::test]
async fn the_breaker_opens_on_5xx_and_then_rejects_without_calling() {
    let (addr, hits) = serve(Arc::new(|_| (500, None, Duration::ZERO))).await;
    let breaker = breaker(3);
    let policy = retry(3);
    let client = client(
        BattlementMiddleware::new()
            .retry(policy.clone())
            .breaker(&breaker),
    );
    let url = format!("http://{addr}/stock");
    for _ in 0..3 {
        // 500 is a failure for the breaker, but not a status the policy retries.
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(breaker.state(), State::Open);
    let err = client.get(&url).send().await.unwrap_err();
    let reqwest_middleware::Error::Middleware(err) = err else {
        panic!("expected the breaker's rejection, got {err:?}");
    };
    let open = err.downcast_ref::<BreakerOpen>().expect("a BreakerOpen");
    assert_eq!(open.name(), "upstream");
    // The open breaker answered: the server saw only the three, and the policy did not retry
    // the rejection.
    assert_eq!(hits.count(), 3);
    assert_eq!(policy.metrics().retries, 0);
}

#[tokio::test]
async fn transport_errors_are_retried_and_fail_the_breaker() {
    // A port nobody listens on.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let breaker = breaker(10);
    let policy = retry(3);
    let client = client(
        BattlementMiddleware::new()
            .retry(policy.clone())
            .breaker(&breaker),
    );
    let err = client
        .get(format!("http://{addr}/stock"))
        .send()
        .await
        .unwrap_err();
    // The client's own error comes back unchanged, after every attempt.
    let reqwest_middleware::Error::Reqwest(err) = err else {
        panic!("expected reqwest's error, got {err:?}");
    };
    assert!(err.is_connect(), "{err:?}");
    let m = policy.metrics();
    assert_eq!((m.retries, m.gave_up_max_attempts), (2, 1));
    let b = breaker.metrics();
    assert_eq!(b.failures, 3);
    let connection = b
        .failures_by_kind
        .iter()
        .find(|(k, _)| *k == FailureKind::Connection)
        .unwrap();
    assert_eq!(connection.1, 3);
}

#[tokio::test]
async fn a_post_is_sent_once() {
    let (addr, hits) = serve(Arc::new(|_| (503, Some("0"), Duration::ZERO))).await;
    let policy = retry(3);
    let client = client(BattlementMiddleware::new().retry(policy.clone()));
    let res = client
        .post(format!("http://{addr}/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.count(), 1);
    assert_eq!(policy.metrics().retries, 0);
    // The same request with an idempotent method is retried.
    let res = client
        .put(format!("http://{addr}/orders/1"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.count(), 1 + 3);
}

#[tokio::test]
async fn a_slow_attempt_times_out_and_is_retried() {
    let (addr, hits) = serve(Arc::new(|n| {
        // The second request is fast, every other one slow.
        let delay = if n == 1 {
            Duration::ZERO
        } else {
            Duration::from_secs(30)
        };
        (200, None, delay)
    }))
    .await;
    let policy = retry(2);
    let breaker = breaker(5);
    let timeout = TimeoutLayer::new(Duration::from_millis(200)).name("upstream");
    let client = client(
        BattlementMiddleware::new()
            .retry(policy.clone())
            .breaker(&breaker)
            .timeout(timeout),
    );
    let res = client
        .get(format!("http://{addr}/stock"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(hits.count(), 2);
    assert_eq!(policy.metrics().retries, 1);
    let timeouts = breaker
        .metrics()
        .failures_by_kind
        .iter()
        .find(|(k, _)| *k == FailureKind::Timeout)
        .unwrap()
        .1;
    assert_eq!(timeouts, 1);

    // Without a retry, the timeout comes back as battlement's typed error.
    let client = client_without_retry(addr).await;
    let err = client.unwrap_err();
    let reqwest_middleware::Error::Middleware(err) = err else {
        panic!("expected the timeout, got {err:?}");
    };
    assert!(err.downcast_ref::<Elapsed>().is_some(), "{err:?}");
}

async fn client_without_retry(addr: SocketAddr) -> reqwest_middleware::Result<reqwest::Response> {
    let client =
        client(BattlementMiddleware::new().timeout(TimeoutLayer::new(Duration::from_millis(100))));
    client.get(format!("http://{addr}/slow")).send().await
}

#[tokio::test]
async fn reqwests_own_timeout_is_a_timeout_and_retried() {
    let (addr, hits) = serve(Arc::new(|n| {
        let delay = if n == 0 {
            Duration::from_secs(30)
        } else {
            Duration::ZERO
        };
        (200, None, delay)
    }))
    .await;
    let policy = retry(2);
    let breaker = breaker(5);
    let inner = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let client = ClientBuilder::new(inner)
        .with(
            BattlementMiddleware::new()
                .retry(policy.clone())
                .breaker(&breaker),
        )
        .build();
    let res = client
        .get(format!("http://{addr}/stock"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(hits.count(), 2);
    let timeouts = breaker
        .metrics()
        .failures_by_kind
        .iter()
        .find(|(k, _)| *k == FailureKind::Timeout)
        .unwrap()
        .1;
    assert_eq!(timeouts, 1);
}
