//! The replay body: what a copy sends after a partial or whole read, the cap, size hints,
//! end of stream, copies that wait, and the policy's give-up on a body beyond the cap.

use super::*;
use ::http::{HeaderMap, HeaderValue, Request, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A body fed frame by frame from the test, like hyper's `Incoming` as the peer sends.
struct Fed {
    rx: mpsc::UnboundedReceiver<Result<Frame<Bytes>, io::Error>>,
    hint: SizeHint,
}

impl Body for Fed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

type Feed = mpsc::UnboundedSender<Result<Frame<Bytes>, io::Error>>;

fn fed(hint: SizeHint) -> (Feed, Fed) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Fed { rx, hint })
}

fn data(s: &'static str) -> Result<Frame<Bytes>, io::Error> {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

fn trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("x-checksum", HeaderValue::from_static("abc"));
    t
}

/// The next frame if one is ready now: `Ready(None)` at the end, `Pending` if it would wait.
fn next_now<B>(body: &mut B) -> Poll<Option<Frame<Bytes>>>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    match body.frame().now_or_never() {
        Some(frame) => Poll::Ready(frame.map(|r| r.expect("no error"))),
        None => Poll::Pending,
    }
}

fn as_data(frame: Poll<Option<Frame<Bytes>>>) -> Bytes {
    match frame {
        Poll::Ready(Some(frame)) => frame.into_data().expect("data"),
        other => panic!("expected data, got {other:?}"),
    }
}

/// Everything a body sends: its data and its trailers.
async fn collect<B>(body: B) -> Result<(Bytes, Option<HeaderMap>), BoxError>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    let c = body.collect().await?;
    let t = c.trailers().cloned();
    Ok((c.to_bytes(), t))
}

#[tokio::test]
async fn first_attempt_streams_each_frame_as_it_arrives() {
    let (tx, inner) = fed(SizeHint::new());
    let mut first = ReplayBody::new(inner, 1024);
    // Nothing yet: the body waits, as the inner one does.
    assert!(next_now(&mut first).is_pending());
    tx.send(data("a")).unwrap();
    // Passed on at once, without waiting for the rest of the body.
    assert_eq!(as_data(next_now(&mut first)), "a");
    assert!(next_now(&mut first).is_pending());
    tx.send(data("b")).unwrap();
    assert_eq!(as_data(next_now(&mut first)), "b");
}

#[tokio::test]
async fn copy_replays_a_partial_read_then_reads_on_with_trailers() {
    let (tx, inner) = fed(SizeHint::new());
    let mut first = ReplayBody::new(inner, 1024);
    let copy = first.clone();
    tx.send(data("one,")).unwrap();
    tx.send(data("two,")).unwrap();
    assert_eq!(as_data(next_now(&mut first)), "one,");
    assert_eq!(as_data(next_now(&mut first)), "two,");
    // The first attempt ends (its connection answered 503) having read two chunks of three.
    drop(first);
    let third = copy.clone();
    tx.send(data("three")).unwrap();
    tx.send(Ok(Frame::trailers(trailers()))).unwrap();
    let (bytes, t) = collect(copy).await.unwrap();
    assert_eq!(bytes, "one,two,three");
    assert_eq!(t, Some(trailers()));
    // A later copy replays the whole body, trailers included, from what was kept.
    let (bytes, t) = collect(third).await.unwrap();
    assert_eq!(bytes, "one,two,three");
    assert_eq!(t, Some(trailers()));
}

#[tokio::test]
async fn copies_of_a_whole_body_replay_side_by_side() {
    let first = ReplayBody::new(Full::new(Bytes::from_static(b"payload")), 1024);
    let (a, b) = (first.clone(), first.clone());
    assert_eq!(collect(first).await.unwrap().0, "payload");
    // Both copies replay from the frozen body, each at its own pace.
    let (mut a, mut b) = (a, b);
    assert_eq!(as_data(next_now(&mut a)), "payload");
    assert_eq!(as_data(next_now(&mut b)), "payload");
    assert!(matches!(next_now(&mut a), Poll::Ready(None)));
    assert!(matches!(next_now(&mut b), Poll::Ready(None)));
}

#[tokio::test]
async fn a_copy_waits_for_the_reader_then_replays() {
    let (tx, inner) = fed(SizeHint::new());
    let mut first = ReplayBody::new(inner, 1024);
    tx.send(data("x")).unwrap();
    assert_eq!(as_data(next_now(&mut first)), "x");
    // A hedge's copy while the first still reads: it waits (no panic, no partial body).
    let copy = tokio::spawn(collect(first.clone()));
    tokio::task::yield_now().await;
    assert!(!copy.is_finished());
    tx.send(data("y")).unwrap();
    drop(tx);
    assert_eq!(as_data(next_now(&mut first)), "y");
    assert!(matches!(next_now(&mut first), Poll::Ready(None)));
    // The first read the body to its end: the copy is woken and sends all of it.
    assert_eq!(copy.await.unwrap().unwrap().0, "xy");
}

#[tokio::test]
async fn beyond_the_cap_the_first_streams_and_a_copy_fails() {
    let (tx, inner) = fed(SizeHint::new());
    let mut first = ReplayBody::new(inner, 8);
    let copy = first.clone();
    tx.send(data("12345")).unwrap();
    tx.send(data("67890")).unwrap();
    drop(tx);
    assert!(!first.is_capped());
    assert_eq!(as_data(next_now(&mut first)), "12345");
    // Ten bytes, over a cap of eight: the first attempt still gets all of it.
    assert_eq!(as_data(next_now(&mut first)), "67890");
    assert!(first.is_capped() && copy.is_capped());
    assert!(crate::CloneBody::replay_refused(&copy));
    assert!(matches!(next_now(&mut first), Poll::Ready(None)));
    let err = collect(copy).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<ReplayError>(),
        Some(&ReplayError::BodyTooLarge { cap: 8 })
    );
}

#[tokio::test]
async fn a_size_hint_beyond_the_cap_is_never_kept() {
    let first = ReplayBody::new(Full::new(Bytes::from_static(b"0123456789")), 4);
    assert!(first.is_capped());
    let copy = first.clone();
    assert_eq!(collect(first).await.unwrap().0, "0123456789");
    assert!(matches!(
        collect(copy)
            .await
            .unwrap_err()
            .downcast_ref::<ReplayError>(),
        Some(ReplayError::BodyTooLarge { cap: 4 })
    ));
    // At the cap exactly: kept.
    let first = ReplayBody::new(Full::new(Bytes::from_static(b"0123")), 4);
    let copy = first.clone();
    assert_eq!(collect(first).await.unwrap().0, "0123");
    assert_eq!(collect(copy).await.unwrap().0, "0123");
}

#[tokio::test]
async fn a_failed_body_is_not_replayed() {
    let (tx, inner) = fed(SizeHint::new());
    let first = ReplayBody::new(inner, 1024);
    let copy = first.clone();
    tx.send(data("a")).unwrap();
    tx.send(Err(io::Error::from(io::ErrorKind::UnexpectedEof)))
        .unwrap();
    assert!(collect(first).await.is_err());
    assert!(matches!(
        collect(copy)
            .await
            .unwrap_err()
            .downcast_ref::<ReplayError>(),
        Some(ReplayError::BodyFailed)
    ));
}

#[tokio::test]
async fn size_hints() {
    // The original's hint passes through; a copy not yet polled has the original's.
    let first = ReplayBody::new(Full::new(Bytes::from_static(b"abcdef")), 1024);
    assert_eq!(first.size_hint().exact(), Some(6));
    let copy = first.clone();
    assert_eq!(copy.size_hint().exact(), Some(6));
    collect(first).await.unwrap();
    // Once the whole body is kept, a copy knows exactly what it has left to send.
    let mut copy = copy;
    assert_eq!(copy.size_hint().exact(), Some(6));
    assert_eq!(as_data(next_now(&mut copy)), "abcdef");
    assert_eq!(copy.size_hint().exact(), Some(0));

    // A partial read: kept bytes not yet sent plus the inner body's hint.
    let mut hint = SizeHint::new();
    hint.set_lower(2);
    hint.set_upper(10);
    let (tx, inner) = fed(hint);
    let mut first = ReplayBody::new(inner, 1024);
    tx.send(data("abc")).unwrap();
    assert_eq!(as_data(next_now(&mut first)), "abc");
    let mut copy = first.clone();
    drop(first);
    assert!(next_now(&mut copy).is_ready()); // takes the state, replays "abc"
    let mut copy2 = copy.clone();
    drop(copy);
    // copy2 holds nothing yet: the original hint.
    assert_eq!(copy2.size_hint().lower(), 2);
    assert_eq!(as_data(next_now(&mut copy2)), "abc");
    assert!(next_now(&mut copy2).is_pending());
    let h = copy2.size_hint();
    assert_eq!((h.lower(), h.upper()), (2, Some(10)));
    drop(tx);
}

#[tokio::test]
async fn is_end_stream() {
    // An empty body is at its end for every copy.
    let empty = ReplayBody::new(http_body_util::Empty::<Bytes>::new(), 16);
    assert!(empty.is_end_stream());
    assert!(empty.clone().is_end_stream());

    let first = ReplayBody::new(Full::new(Bytes::from_static(b"x")), 16);
    assert!(!first.is_end_stream());
    let copy = first.clone();
    assert!(!copy.is_end_stream());
    collect(first).await.unwrap();
    let mut copy = copy;
    // Kept data still to send: not at the end.
    assert!(!copy.is_end_stream());
    assert_eq!(as_data(next_now(&mut copy)), "x");
    assert!(copy.is_end_stream());
    // Kept trailers still to send: not at the end either.
    let (tx, inner) = fed(SizeHint::new());
    let first = ReplayBody::new(inner, 16);
    let mut copy = first.clone();
    tx.send(Ok(Frame::trailers(trailers()))).unwrap();
    collect(first).await.unwrap();
    assert!(!copy.is_end_stream());
    let Poll::Ready(Some(frame)) = next_now(&mut copy) else {
        panic!("expected the trailers");
    };
    assert_eq!(frame.into_trailers().unwrap(), trailers());
    assert!(copy.is_end_stream());
}

/// An upstream that answers 503 to its first attempt, then 200, reading each request's body.
fn busy_once(
    bodies: &Arc<Mutex<Vec<Bytes>>>,
) -> impl Service<
    Request<ReplayBody<Fed>>,
    Response = Response<()>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<()>, BoxError>>,
> + Clone {
    let bodies = bodies.clone();
    tower::service_fn(move |req: Request<ReplayBody<Fed>>| {
        let bodies = bodies.clone();
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            let n = {
                let mut bodies = bodies.lock().unwrap();
                bodies.push(body);
                bodies.len()
            };
            let status = if n == 1 { 503 } else { 200 };
            Ok(Response::builder().status(status).body(()).unwrap())
        }
    })
}

fn streamed(chunks: &[&'static str]) -> Fed {
    let (tx, inner) = fed(SizeHint::new());
    for c in chunks {
        tx.send(data(c)).unwrap();
    }
    inner
}

#[tokio::test(start_paused = true)]
async fn policy_retries_a_replayed_body_within_the_cap() {
    let policy = RetryPolicy::http_builder().build().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(16))
        .layer(policy.clone().into_layer())
        .service(busy_once(&bodies));
    let req = Request::put("/a")
        .body(streamed(&["0123", "4567"]))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(*bodies.lock().unwrap(), ["01234567", "01234567"]);
    let m = policy.metrics();
    assert_eq!((m.retries, m.succeeded_after_retry), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn policy_gives_up_on_a_body_beyond_the_cap_even_if_a_predicate_says_retry() {
    let policy = RetryPolicy::http_builder()
        .retry_if(|_: &RetryContext<'_, Request<ReplayBody<Fed>>, Response<()>, BoxError>| true)
        .build()
        .unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(6))
        .layer(policy.clone().into_layer())
        .service(busy_once(&bodies));
    let req = Request::put("/a")
        .body(streamed(&["0123", "4567"]))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    // Sent once, whole; the 503 comes back, and the reason is counted.
    assert_eq!(res.status(), 503);
    assert_eq!(*bodies.lock().unwrap(), ["01234567"]);
    let m = policy.metrics();
    assert_eq!(m.retries, 0);
    assert_eq!(m.gave_up_body_too_large, 1);
    assert_eq!((m.failed_without_retry, m.not_retryable), (1, 0));
}
