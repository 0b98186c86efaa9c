//! Retrying requests whose bodies stream, over real hyper connections on 127.0.0.1: a
//! `ReplayBodyLayer` outside the retry keeps what the first attempt sends (up to its cap) and
//! replays it, trailers included, after a 503; a body beyond the cap is sent once. And a hedge
//! (in memory, paused clock) replays a streamed body.

use battlement::core::error::BoxError;
use battlement::retry::{Backoff, ReplayBody, ReplayBodyLayer, RetryPolicy};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};

/// What the server received: each request's body and trailers.
type Seen = Arc<Mutex<Vec<(Bytes, Option<HeaderMap>)>>>;

/// A server that reads each request's whole body (trailers too), answers the first with 503
/// and the others with 200 and the body it read.
async fn serve() -> (std::net::SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let log = log.clone();
                async move {
                    let collected = req.into_body().collect().await.unwrap();
                    let trailers = collected.trailers().cloned();
                    let body = collected.to_bytes();
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push((body.clone(), trailers));
                        log.len()
                    };
                    let status = if n == 1 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    let res = Response::builder()
                        .status(status)
                        .body(Full::new(body))
                        .unwrap();
                    Ok::<_, Infallible>(res)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A request body the client streams chunk by chunk as they are produced (like a proxy
/// forwarding hyper's `Incoming`): it cannot be cloned.
struct Streamed(mpsc::Receiver<Frame<Bytes>>);

impl Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// `chunks` chunks of `size` bytes each (chunk `i` filled with letter `a + i`), sent a
/// millisecond apart, then `trailers` if any.
fn streamed(chunks: usize, size: usize, trailers: Option<HeaderMap>) -> (Streamed, Bytes) {
    let (tx, rx) = mpsc::channel(1);
    let mut whole = Vec::new();
    let parts: Vec<Bytes> = (0..chunks)
        .map(|i| {
            let part = vec![b'a' + (i % 26) as u8; size];
            whole.extend_from_slice(&part);
            Bytes::from(part)
        })
        .collect();
    tokio::spawn(async move {
        for part in parts {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if tx.send(Frame::data(part)).await.is_err() {
                return;
            }
        }
        if let Some(t) = trailers {
            let _ = tx.send(Frame::trailers(t)).await;
        }
    });
    (Streamed(rx), Bytes::from(whole))
}

fn policy() -> RetryPolicy<battlement::retry::HttpRules> {
    RetryPolicy::http_builder()
        .name("upload")
        .max_attempts(3)
        .backoff(Backoff::fixed(Duration::from_millis(10)))
        .build()
        .unwrap()
}

/// PUTs `body` through replay (with `cap`) → retry → hyper's client.
async fn put(
    addr: std::net::SocketAddr,
    policy: &RetryPolicy<battlement::retry::HttpRules>,
    cap: usize,
    body: Streamed,
    trailer_header: bool,
) -> Response<Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Streamed>>();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(cap))
        .layer(policy.clone().into_layer())
        .map_err(BoxError::from)
        .service(client);
    let mut req = Request::put(format!("http://{addr}/upload"));
    if trailer_header {
        // HTTP/1.1 sends only the trailers the head announces.
        req = req.header(http::header::TRAILER, "x-checksum");
    }
    svc.oneshot(req.body(body).unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_streamed_body_within_the_cap_is_replayed_after_a_503() {
    let (addr, seen) = serve().await;
    let policy = policy();
    let (body, whole) = streamed(8, 1024, None);
    let res = put(addr, &policy, 64 * 1024, body, false).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), whole);
    // The server read the same 8 KiB twice: the 503'd attempt and the retry.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, whole);
    assert_eq!(seen[1].0, whole);
    let m = policy.metrics();
    assert_eq!((m.retries, m.succeeded_after_retry), (1, 1));
}

#[tokio::test]
async fn a_streamed_body_beyond_the_cap_is_sent_once_and_the_reason_counted() {
    let (addr, seen) = serve().await;
    let policy = policy();
    let (body, whole) = streamed(8, 1024, None);
    let res = put(addr, &policy, 4 * 1024, body, false).await;
    // Sent once, whole (the first attempt is not cut at the cap); its 503 comes back.
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, whole);
    }
    let m = policy.metrics();
    assert_eq!(m.retries, 0);
    assert_eq!(m.gave_up_body_too_large, 1);
    assert_eq!(m.failed_without_retry, 1);
}

#[tokio::test]
async fn trailers_are_kept_on_the_replay() {
    let (addr, seen) = serve().await;
    let policy = policy();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("crc32=7a2b"));
    let (body, whole) = streamed(4, 512, Some(trailers.clone()));
    let res = put(addr, &policy, 64 * 1024, body, true).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (body, t) in seen.iter() {
        assert_eq!(body, &whole);
        assert_eq!(t.as_ref(), Some(&trailers));
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_replays_a_streamed_body() {
    use battlement::hedge::HedgeLayer;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let hedging = HedgeLayer::builder()
        .name("upload")
        .delay(Duration::from_millis(50))
        .max_attempts(2)
        .build()
        .unwrap();
    let seen: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let log = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::default())
        .layer(hedging)
        .service_fn(move |req: Request<ReplayBody<Streamed>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let log = log.clone();
            async move {
                let body = req.into_body().collect().await?.to_bytes();
                log.lock().unwrap().push(body.clone());
                if n == 0 {
                    // The first attempt read the body, then its upstream stalls.
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok::<_, BoxError>(Response::new(body))
            }
        });
    let (body, whole) = streamed(8, 1024, None);
    let req = Request::put("http://upstream/upload").body(body).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    // The hedge answered, with the whole body replayed.
    assert_eq!(res.into_body(), whole);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|b| *b == whole));
}
