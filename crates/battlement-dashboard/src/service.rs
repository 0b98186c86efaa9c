//! The HTTP side: routing, the page, the stream, the snapshot and the control endpoint.

use crate::control::Action;
use crate::dashboard::Dashboard;
use crate::event::Event;
use crate::sse::DashboardBody;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use tower_service::Service;

/// The page: markup, styles and script in one file, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page.html");

/// The header the page's control requests carry. A cross-site form cannot send it, and a
/// cross-site script cannot without the server's CORS consent, which the dashboard never gives:
/// another site cannot make an operator's browser press a button.
pub const CONTROL_HEADER: &str = "x-battlement-control";

/// The page's Content-Security-Policy: its own inline script and styles, connections to its
/// own origin (the stream, the controls), nothing else.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

impl<B> Service<Request<B>> for Dashboard {
    type Response = Response<DashboardBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.shared.start();
        let (parts, _body) = req.into_parts();
        ready(Ok(self.respond(&parts)))
    }
}

impl Dashboard {
    fn respond(&self, parts: &http::request::Parts) -> Response<DashboardBody> {
        let path = parts.uri.path();
        let (allowed, handler): (&[Method], fn(&Dashboard, &http::request::Parts) -> _) = match path
        {
            "" | "/" | "/index.html" => (&[Method::GET, Method::HEAD], Dashboard::page),
            "/events" => (&[Method::GET], Dashboard::events),
            "/snapshot" => (&[Method::GET, Method::HEAD], Dashboard::snapshot_json),
            "/control" => (&[Method::POST], Dashboard::control),
            _ => return text(StatusCode::NOT_FOUND, "not found\n"),
        };
        if !allowed.contains(&parts.method) {
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                res.headers_mut().insert(ALLOW, v);
            }
            return res;
        }
        let mut res = handler(self, parts);
        if parts.method == Method::HEAD {
            *res.body_mut() = DashboardBody::from(Bytes::new());
        }
        res
    }

    fn authorized(&self, parts: &http::request::Parts) -> bool {
        self.shared
            .authorize
            .as_ref()
            .is_some_and(|authorize| authorize(parts))
    }

    fn page(&self, parts: &http::request::Parts) -> Response<DashboardBody> {
        let snapshot = serde_json::to_string(&*self.shared.latest().0).unwrap_or_default();
        let events = serde_json::to_string(&self.recent_events()).unwrap_or_default();
        let title = html_escape(&self.shared.settings.title);
        let page = PAGE
            .replace("{{TITLE}}", &title)
            .replace(
                "{{CONTROLS}}",
                if self.authorized(parts) {
                    "true"
                } else {
                    "false"
                },
            )
            .replace("{{SNAPSHOT}}", &script_safe(&snapshot))
            .replace("{{EVENTS}}", &script_safe(&events));
        let mut res = Response::new(DashboardBody::from(page));
        let h = res.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        h.insert(
            http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        res
    }

    fn events(&self, _parts: &http::request::Parts) -> Response<DashboardBody> {
        let mut res = Response::new(self.shared.connect());
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        // nginx buffers responses unless told not to.
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        res
    }

    fn snapshot_json(&self, _parts: &http::request::Parts) -> Response<DashboardBody> {
        let json = serde_json::to_string(&*self.shared.latest().0).unwrap_or_default();
        let mut res = Response::new(DashboardBody::from(json));
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        res
    }

    /// `POST control?kind=…&name=…&action=…` with the header [`CONTROL_HEADER`].
    fn control(&self, parts: &http::request::Parts) -> Response<DashboardBody> {
        if self.shared.authorize.is_none() {
            return text(StatusCode::FORBIDDEN, "controls are disabled\n");
        }
        if !parts.headers.contains_key(CONTROL_HEADER) {
            return text(
                StatusCode::FORBIDDEN,
                "control requests must carry the x-battlement-control header\n",
            );
        }
        if !self.authorized(parts) {
            return text(StatusCode::FORBIDDEN, "not authorized\n");
        }
        let query = parts.uri.query().unwrap_or("");
        let (mut kind, mut name, mut action) = (None, None, None);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(v) = percent_decode(v) else {
                return text(StatusCode::BAD_REQUEST, "bad percent-encoding\n");
            };
            match k {
                "kind" => kind = Some(v),
                "name" => name = Some(v),
                "action" => action = Some(v),
                _ => {}
            }
        }
        let (Some(kind), Some(name), Some(action)) = (kind, name, action) else {
            return text(
                StatusCode::BAD_REQUEST,
                "kind, name and action are required\n",
            );
        };
        let Some(action) = Action::parse(&action) else {
            return text(StatusCode::BAD_REQUEST, "unknown action\n");
        };
        let Some(control) = self
            .shared
            .controls
            .iter()
            .find(|c| c.kind().as_str() == kind && c.name() == name)
        else {
            return text(
                StatusCode::NOT_FOUND,
                "no control handle for that component\n",
            );
        };
        if !control.apply(action) {
            return text(
                StatusCode::BAD_REQUEST,
                "that component does not take that action\n",
            );
        }
        tracing::info!(
            kind = %control.kind(),
            name = control.name(),
            action = action.as_str(),
            "dashboard: operator action"
        );
        self.publish(Event::new(
            control.kind(),
            control.name(),
            "operator",
            format!("{action} from the dashboard"),
        ));
        let mut res = Response::new(DashboardBody::from(Bytes::new()));
        *res.status_mut() = StatusCode::NO_CONTENT;
        res
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<DashboardBody> {
    let mut res = Response::new(DashboardBody::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// JSON made safe inside a `<script>` element: no `<` at all (so no `</script>` nor `<!--`),
/// and no line or paragraph separators; `\u003c` and friends are the same JSON.
pub(crate) fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` value decoding (`+` is a space); `None` for a broken
/// escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
