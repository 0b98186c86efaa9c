//! Retrying requests whose bodies stream (feature `http`): a body that keeps what the first
//! attempt reads, up to a cap, and replays it for the next.

use battlement_core::error::BoxError;
use bytes::{Buf, Bytes};
use http::{HeaderMap, Request};
use http_body::{Body, Frame, SizeHint};
use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use tower::Service;
use tower_layer::Layer;

/// The default replay cap of [`ReplayBodyLayer`]: 64 KiB, as linkerd's proxy has it.
pub const DEFAULT_REPLAY_CAP: usize = 64 * 1024;

/// A request body that can be sent again: it wraps any [`http_body::Body`] (axum's `Body`,
/// hyper's `Incoming`, a stream), keeps what the first attempt reads, up to a cap, and replays
/// it for the next attempt.
///
/// - **The first attempt is never delayed**: each frame is passed on as soon as the inner body
///   yields it; keeping it costs a reference count ([`Bytes`] are shared, not copied).
/// - **Copies** ([`Clone`]) share the kept data. A copy sends the frames kept so far (the
///   trailers too), then goes on reading the inner body where the last reader stopped, keeping
///   what it reads for the copy after it. Once the inner body has been read to its end, any
///   number of copies replay it at once and side by side (a retry, a hedge).
/// - **The cap**: a body that grows beyond `cap` bytes (or whose size hint says it will) is not
///   kept: the attempt that reads it goes on streaming, but a copy polled after that fails with
///   [`ReplayError::BodyTooLarge`] instead of sending a truncated body, and the retry policy
///   gives up with reason `body_too_large` (see [`CloneBody::replay_refused`](crate::CloneBody)).
/// - A copy's size hint is exact only if the original's was, so over HTTP/1.1 a copy is sent
///   as the original was: with a `content-length`, or chunked (with its trailers).
/// - A copy polled while another still reads the unfinished inner body waits until that one has
///   read it to the end or is dropped (hyper drops a request's body once sent or abandoned).
///
/// Use it through a [`ReplayBodyLayer`] outside the retry (or hedge) layer. The inner body must be
/// `Unpin` (pin a body that is not with `http_body_util::BodyExt::boxed_unsync`). Each request
/// allocates its shared state and the list of kept chunks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_retry::ReplayBody;
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, StreamBody};
/// use http_body::Frame;
///
/// let chunks = ["hello", " ", "world"].map(|s| Ok::<_, std::io::Error>(Frame::data(Bytes::from(s))));
/// let first = ReplayBody::new(StreamBody::new(futures_util::stream::iter(chunks)), 1024);
/// let retry = first.clone();
/// assert_eq!(first.collect().await.unwrap().to_bytes(), "hello world");
/// assert_eq!(retry.collect().await.unwrap().to_bytes(), "hello world");
/// # }
/// ```
pub struct ReplayBody<B> {
    shared: Arc<Shared<B>>,
    /// The reading state, while this copy reads the inner body.
    state: Option<State<B>>,
    /// Whether this copy sends the kept frames before reading on (every copy but the original).
    replay: bool,
    /// The index of the next kept chunk this copy sends.
    next: usize,
    /// Whether this copy sent the kept trailers.
    trailers_sent: bool,
    /// Whether this copy has ended (sent its last frame, or an error).
    done: bool,
}

/// What every copy of a body shares.
struct Shared<B> {
    cap: usize,
    /// The inner body's size hint when it was wrapped.
    size_hint: SizeHint,
    /// Whether the inner body was empty when wrapped.
    was_empty: bool,
    /// Set once the body outgrew the cap; read by the retry policy.
    capped: AtomicBool,
    /// The reading state while no copy holds it, and the copies waiting for it.
    slot: Mutex<Slot<B>>,
    /// The whole body, once a copy has read the inner body to its end (or failed).
    frozen: OnceLock<Frozen>,
}

struct Slot<B> {
    state: Option<State<B>>,
    waiters: Vec<Waker>,
}

/// The reading state: the inner body and what has been kept of it.
struct State<B> {
    inner: B,
    chunks: Vec<Bytes>,
    kept: usize,
    capped: bool,
}

/// How the inner body ended.
enum Frozen {
    /// Read to its end: every chunk and the trailers.
    Whole {
        chunks: Vec<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// It outgrew the cap; nothing was kept.
    Capped,
    /// It failed while being read.
    Failed,
}

/// Why a copy of a [`ReplayBody`] cannot send the body: the error its `poll_frame` returns.
///
/// ```
/// use battlement_retry::ReplayError;
///
/// let e = ReplayError::BodyTooLarge { cap: 1024 };
/// assert_eq!(e.to_string(), "request body larger than the replay cap of 1024 bytes: it cannot be sent again");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The body grew beyond the cap, so it was not kept.
    BodyTooLarge {
        /// The cap, in bytes.
        cap: usize,
    },
    /// The inner body failed while an earlier attempt read it.
    BodyFailed,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::BodyTooLarge { cap } => write!(
                f,
                "request body larger than the replay cap of {cap} bytes: it cannot be sent again"
            ),
            ReplayError::BodyFailed => {
                f.write_str("request body failed while first read: it cannot be sent again")
            }
        }
    }
}

impl Error for ReplayError {}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body`, keeping up to `cap` bytes of it for copies. A body whose size hint's lower
    /// bound is already beyond `cap` is never kept: it is sent once.
    pub fn new(body: B, cap: usize) -> Self {
        let size_hint = body.size_hint();
        let capped = size_hint.lower() > cap as u64;
        let was_empty = body.is_end_stream();
        ReplayBody {
            shared: Arc::new(Shared {
                cap,
                size_hint,
                was_empty,
                capped: AtomicBool::new(capped),
                slot: Mutex::new(Slot {
                    state: None,
                    waiters: Vec::new(),
                }),
                frozen: OnceLock::new(),
            }),
            state: Some(State {
                inner: body,
                chunks: Vec::new(),
                kept: 0,
                capped,
            }),
            replay: false,
            next: 0,
            trailers_sent: false,
            done: false,
        }
    }
}

impl<B> ReplayBody<B> {
    /// Whether the body outgrew the cap: a copy can no longer send it whole.
    pub fn is_capped(&self) -> bool {
        self.shared.capped.load(Ordering::Acquire)
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> usize {
        self.shared.cap
    }

    /// Records how the inner body ended, drops the reading state and wakes the waiting copies.
    fn freeze(&mut self, frozen: Frozen) {
        self.state = None;
        let _ = self.shared.frozen.set(frozen);
        self.wake_waiters(None);
    }

    /// Puts `state` (if any) back in the slot and wakes the copies waiting for it.
    fn wake_waiters(&self, state: Option<State<B>>) {
        let waiters = {
            let mut slot = self
                .shared
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if state.is_some() {
                slot.state = state;
            }
            std::mem::take(&mut slot.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

impl<B> Clone for ReplayBody<B> {
    /// A copy that replays what has been kept, then reads on.
    fn clone(&self) -> Self {
        ReplayBody {
            shared: self.shared.clone(),
            state: None,
            replay: true,
            next: 0,
            trailers_sent: false,
            done: false,
        }
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.wake_waiters(Some(state));
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayBody")
            .field("cap", &self.shared.cap)
            .field("capped", &self.is_capped())
            .field("replay", &self.replay)
            .field("reading", &self.state.is_some())
            .field("done", &self.done)
            .finish()
    }
}

/// What a poll of a copy works from.
enum Source {
    Frozen,
    Reading,
    Wait,
}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let source = if this.state.is_some() {
            Source::Reading
        } else if this.shared.frozen.get().is_some() {
            Source::Frozen
        } else {
            let mut slot = this
                .shared
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if this.shared.frozen.get().is_some() {
                Source::Frozen
            } else if let Some(state) = slot.state.take() {
                this.state = Some(state);
                Source::Reading
            } else {
                if !slot.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    slot.waiters.push(cx.waker().clone());
                }
                Source::Wait
            }
        };
        match source {
            Source::Wait => Poll::Pending,
            Source::Frozen => Poll::Ready(this.replay_frozen()),
            Source::Reading => this.poll_reading(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.done || self.shared.was_empty {
            return true;
        }
        if let Some(state) = &self.state {
            return !state.capped_for(self.replay)
                && self.next >= state.chunks.len()
                && state.inner.is_end_stream();
        }
        match self.shared.frozen.get() {
            Some(Frozen::Whole { chunks, trailers }) => {
                self.next >= chunks.len() && (trailers.is_none() || self.trailers_sent)
            }
            _ => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        let unsent = |chunks: &[Bytes]| -> u64 {
            chunks
                .get(self.next..)
                .unwrap_or_default()
                .iter()
                .map(|c| c.len() as u64)
                .sum()
        };
        if self.done {
            return SizeHint::with_exact(0);
        }
        if let Some(state) = &self.state {
            if state.capped_for(self.replay) {
                return self.shared.size_hint;
            }
            let unsent = unsent(&state.chunks);
            let rest = state.inner.size_hint();
            return self.hint(
                unsent.saturating_add(rest.lower()),
                rest.upper().map(|upper| unsent.saturating_add(upper)),
            );
        }
        match self.shared.frozen.get() {
            Some(Frozen::Whole { chunks, .. }) => {
                let unsent = unsent(chunks);
                self.hint(unsent, Some(unsent))
            }
            _ => self.shared.size_hint,
        }
    }
}

impl<B> ReplayBody<B> {
    /// A hint of `lower..=upper` bytes, exact only if the original body's was: a copy is sent
    /// the way the original was (over HTTP/1.1, chunked with its trailers, or with a length).
    fn hint(&self, lower: u64, upper: Option<u64>) -> SizeHint {
        let mut hint = SizeHint::new();
        hint.set_lower(lower);
        match upper {
            Some(upper) if upper == lower && self.shared.size_hint.exact().is_none() => {}
            Some(upper) => hint.set_upper(upper.max(lower)),
            None => {}
        }
        hint
    }
}

impl<B> State<B> {
    /// Whether a copy that `replay`s must fail: it cannot send what the cap discarded.
    fn capped_for(&self, replay: bool) -> bool {
        self.capped && replay
    }
}

impl<B> ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    /// The next frame of a copy replaying a body read to its end.
    fn replay_frozen(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        let frame = match self.shared.frozen.get() {
            Some(Frozen::Whole { chunks, trailers }) => {
                if let Some(chunk) = chunks.get(self.next) {
                    self.next += 1;
                    return Some(Ok(Frame::data(chunk.clone())));
                }
                match trailers {
                    Some(trailers) if !self.trailers_sent => {
                        self.trailers_sent = true;
                        Some(Ok(Frame::trailers(trailers.clone())))
                    }
                    _ => None,
                }
            }
            Some(Frozen::Capped) => Some(Err(Box::new(ReplayError::BodyTooLarge {
                cap: self.shared.cap,
            }) as BoxError)),
            Some(Frozen::Failed) | None => Some(Err(Box::new(ReplayError::BodyFailed) as BoxError)),
        };
        if !matches!(frame, Some(Ok(_))) {
            self.done = true;
        }
        frame
    }

    /// The next frame of the copy that holds the reading state: a kept chunk it has not sent
    /// yet, else the inner body's next frame (kept, within the cap).
    fn poll_reading(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let cap = self.shared.cap;
        let Some(state) = self.state.as_mut() else {
            return Poll::Ready(None);
        };
        if state.capped_for(self.replay) {
            self.done = true;
            return Poll::Ready(Some(Err(Box::new(ReplayError::BodyTooLarge { cap }))));
        }
        if let Some(chunk) = state.chunks.get(self.next) {
            self.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        loop {
            match Pin::new(&mut state.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    let frozen = if state.capped {
                        Frozen::Capped
                    } else {
                        Frozen::Whole {
                            chunks: std::mem::take(&mut state.chunks),
                            trailers: None,
                        }
                    };
                    self.done = true;
                    self.freeze(frozen);
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    self.freeze(Frozen::Failed);
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(mut data) => {
                            let chunk = data.copy_to_bytes(data.remaining());
                            state.keep(&chunk, cap, &self.shared.capped);
                            self.next = state.chunks.len();
                            return Poll::Ready(Some(Ok(Frame::data(chunk))));
                        }
                        Err(frame) => frame,
                    };
                    // Trailers end the body: keep them with the rest, and hand the whole body
                    // to the copies. (A kind of frame http-body does not have yet is skipped.)
                    if let Ok(trailers) = frame.into_trailers() {
                        let frozen = if state.capped {
                            Frozen::Capped
                        } else {
                            Frozen::Whole {
                                chunks: std::mem::take(&mut state.chunks),
                                trailers: Some(trailers.clone()),
                            }
                        };
                        self.done = true;
                        self.freeze(frozen);
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                }
            }
        }
    }
}

impl<B> State<B> {
    /// Keeps `chunk` for the copies, unless the body has outgrown `cap`.
    fn keep(&mut self, chunk: &Bytes, cap: usize, capped: &AtomicBool) {
        if self.capped {
            return;
        }
        let kept = self.kept.saturating_add(chunk.len());
        if kept > cap {
            self.capped = true;
            self.chunks = Vec::new();
            capped.store(true, Ordering::Release);
            tracing::debug!(
                cap,
                "request body beyond the replay cap: it is sent once, not kept"
            );
            return;
        }
        self.kept = kept;
        if !chunk.is_empty() {
            self.chunks.push(chunk.clone());
        }
    }
}

impl<B> crate::CloneBody for ReplayBody<B> {
    /// Always a copy, sharing what is kept; [`replay_refused`](crate::CloneBody::replay_refused)
    /// says when it cannot send the body whole.
    #[inline]
    fn clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }

    #[inline]
    fn replay_refused(&self) -> bool {
        self.is_capped()
    }
}

/// Wraps each request's body in a [`ReplayBody`] so the retry (or hedge) layer inside it can send
/// a request whose body streams more than once: stack it outside them.
///
/// A body up to the cap (default [`DEFAULT_REPLAY_CAP`], 64 KiB) is retried like a body that
/// clones; a longer one is sent once, and the policy counts the give-up under reason
/// `body_too_large` ([`RetryMetrics::gave_up_body_too_large`](crate::RetryMetrics)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_core::error::BoxError;
/// use battlement_retry::{ReplayBody, ReplayBodyLayer, RetryPolicy};
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, StreamBody};
/// use http_body::Frame;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let policy = RetryPolicy::http_builder().build().unwrap();
/// let busy = Arc::new(AtomicBool::new(true));
/// let svc = ServiceBuilder::new()
///     .layer(ReplayBodyLayer::new(64 * 1024))
///     .layer(policy.into_layer())
///     .service_fn(move |req: Request<ReplayBody<_>>| {
///         let first = busy.swap(false, Ordering::SeqCst);
///         async move {
///             let body = req.into_body().collect().await?.to_bytes();
///             let status = if first { 503 } else { 200 };
///             Ok::<_, BoxError>(Response::builder().status(status).body(body).unwrap())
///         }
///     });
///
/// // A streamed body: it cannot be cloned, but it can be replayed.
/// let chunks = ["{\"count\":", "3}"].map(|s| Ok::<_, BoxError>(Frame::data(Bytes::from(s))));
/// let body = StreamBody::new(futures_util::stream::iter(chunks));
/// let res = svc.oneshot(Request::put("http://inventory/items/7").body(body).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.into_body(), "{\"count\":3}");
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ReplayBodyLayer {
    cap: usize,
}

impl ReplayBodyLayer {
    /// Keeps up to `cap` bytes of each request body for retries (0: only empty bodies).
    pub fn new(cap: usize) -> Self {
        ReplayBodyLayer { cap }
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }
}

impl Default for ReplayBodyLayer {
    /// A cap of [`DEFAULT_REPLAY_CAP`] (64 KiB).
    fn default() -> Self {
        ReplayBodyLayer::new(DEFAULT_REPLAY_CAP)
    }
}

impl<S> Layer<S> for ReplayBodyLayer {
    type Service = ReplayBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReplayBodyService {
            inner,
            cap: self.cap,
        }
    }
}

/// The service a [`ReplayBodyLayer`] makes: it wraps each request's body in a [`ReplayBody`]
/// and calls the inner service.
///
/// ```
/// use battlement_retry::{ReplayBody, ReplayBodyLayer};
/// use http::Request;
/// use tower::Layer;
///
/// let svc = ReplayBodyLayer::new(1024).layer(tower::service_fn(|req: Request<ReplayBody<String>>| async move {
///     Ok::<_, std::convert::Infallible>(req.body().cap())
/// }));
/// # drop(svc);
/// ```
#[derive(Debug, Clone)]
pub struct ReplayBodyService<S> {
    inner: S,
    cap: usize,
}

impl<S> ReplayBodyService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for ReplayBodyService<S>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        let cap = self.cap;
        self.inner.call(req.map(|body| ReplayBody::new(body, cap)))
    }
}
