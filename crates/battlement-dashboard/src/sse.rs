//! Server-Sent Events: the framing, and the body each client's stream is.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// One message of type `event` with `data`: a line `event: …`, one `data: …` line per line of
/// `data` (a `\r\n`, `\r` or `\n` in `data` starts a new `data:` line, so a payload can never
/// end a message early or forge a field), and the blank line that ends the message.
pub(crate) fn message(event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(event.len() + data.len() + 16);
    // An event name is ours (`snapshot`, `event`); keep it to one line all the same.
    out.push_str("event: ");
    out.push_str(event.split(['\r', '\n']).next().unwrap_or(""));
    out.push('\n');
    for line in lines(data) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A comment (`: text`): EventSource ignores it; it keeps proxies and idle timers from closing a
/// quiet connection.
pub(crate) fn comment(text: &str) -> Bytes {
    let mut out = String::with_capacity(text.len() + 4);
    for line in lines(text) {
        out.push_str(": ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The `retry:` field: how long EventSource waits before reconnecting after the connection is
/// lost (a restart of the server, say).
pub(crate) fn retry(millis: u64) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}

/// The lines of `text` as SSE splits them: on `\r\n`, `\r` or `\n`.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// Counts the streams alive (bodies not yet dropped).
#[derive(Debug)]
pub(crate) struct Live(pub(crate) Arc<AtomicUsize>);

impl Live {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The body of a [`Dashboard`](crate::Dashboard) response: the page, a JSON document, a short
/// text, or a client's live event stream.
///
/// A stream yields the frames the dashboard queued for its client, in order, and ends when the
/// dashboard drops the client (it fell more than
/// [`client_buffer`](crate::DashboardBuilder::client_buffer) frames behind) or is itself
/// dropped. When the client goes away, the server drops the body, and with it the client's
/// queue: the dashboard stops feeding it at its next message.
///
/// ```
/// use battlement_dashboard::DashboardBody;
/// use http_body::Body;
///
/// let body = DashboardBody::from("ok");
/// assert_eq!(body.size_hint().exact(), Some(2));
/// ```
pub struct DashboardBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Stream {
        rx: mpsc::Receiver<Bytes>,
        _live: Live,
    },
}

impl DashboardBody {
    pub(crate) fn stream(rx: mpsc::Receiver<Bytes>, live: Live) -> Self {
        DashboardBody {
            kind: Kind::Stream { rx, _live: live },
        }
    }

    /// Whether this is a live event stream (rather than a whole document).
    pub fn is_stream(&self) -> bool {
        matches!(self.kind, Kind::Stream { .. })
    }
}

impl From<Bytes> for DashboardBody {
    fn from(bytes: Bytes) -> Self {
        DashboardBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

impl From<&'static str> for DashboardBody {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl From<String> for DashboardBody {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl fmt::Debug for DashboardBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(b) => f
                .debug_struct("DashboardBody")
                .field("len", &b.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream { .. } => f
                .debug_struct("DashboardBody")
                .field("stream", &true)
                .finish(),
        }
    }
}

impl Body for DashboardBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream { rx, .. } => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream { .. } => SizeHint::default(),
        }
    }
}
