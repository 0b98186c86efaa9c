//! Per-request overrides for HTTP and gRPC requests (feature `http`).

use crate::TimeoutPolicy;
use http::{HeaderName, HeaderValue, Request};
use std::time::Duration;
use tokio::time::Instant;

/// A request extension that sets this request's time limit in place of the layer's default.
///
/// Under [`HttpTimeouts`], it can shorten the limit; it lengthens it only as far as
/// [`allow_extension`](HttpTimeouts::allow_extension) allows (by default not at all), because
/// middleware may set it from a header a client sent.
///
/// ```
/// use battlement_timeout::Timeout;
/// use std::time::Duration;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Timeout(Duration::from_millis(250)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

/// A request extension that sets an absolute deadline for this request; the limit is the time
/// left until it (zero if it has passed), bounded like a [`Timeout`].
///
/// ```
/// use battlement_timeout::Deadline;
/// use std::time::Duration;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Deadline(tokio::time::Instant::now() + Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// The header gRPC uses to carry a call's time limit.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// [`GRPC_TIMEOUT`] parsed once: a `HeaderName` key is hashed directly, where a `&str` key is
/// parsed and validated on every lookup.
const GRPC_TIMEOUT_NAME: HeaderName = HeaderName::from_static(GRPC_TIMEOUT);

/// Per-request limits for `http::Request`s.
///
/// In order of precedence: a [`Deadline`] extension, a [`Timeout`] extension, then (if
/// [`grpc`](Self::grpc) is on) an incoming `grpc-timeout` header, then the layer's default.
/// With [`propagate_grpc`](Self::propagate_grpc), the chosen limit is written into the request's
/// `grpc-timeout` header, so the next hop knows how long is left.
///
/// **The layer's limit is a ceiling.** A per-request limit may shorten it but not lengthen it:
/// a client sending `grpc-timeout: 99999H` still gets the layer's limit. The extensions are held
/// to the same ceiling, because middleware may set them from a client's header. To let requests
/// have more time, [`allow_extension`](Self::allow_extension) names how much at most.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use battlement_timeout::{HttpTimeouts, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let svc = ServiceBuilder::new()
///     .layer(TimeoutLayer::new(Duration::from_secs(1)).policy(HttpTimeouts::new().grpc(true)))
///     .service(service_fn(|_req: http::Request<()>| async {
///         tokio::time::sleep(Duration::from_millis(600)).await;
///         Ok::<_, std::convert::Infallible>(())
///     }));
/// // The caller allows 500 ms: that wins over the layer's 1 s.
/// let req = http::Request::builder().header("grpc-timeout", "500m").body(()).unwrap();
/// assert!(svc.clone().oneshot(req).await.is_err());
/// // A caller asking for an hour gets the layer's 1 s, which is enough here.
/// let req = http::Request::builder().header("grpc-timeout", "1H").body(()).unwrap();
/// assert!(svc.oneshot(req).await.is_ok());
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpTimeouts {
    grpc: bool,
    propagate: bool,
    /// The longest per-request limit, when it may exceed the layer's default.
    max_extension: Option<Duration>,
}

impl HttpTimeouts {
    /// Extensions only; per-request limits can only shorten the layer's.
    pub fn new() -> Self {
        Self::default()
    }

    /// Honour an incoming `grpc-timeout` header (within the ceiling).
    pub fn grpc(mut self, on: bool) -> Self {
        self.grpc = on;
        self
    }

    /// Write the chosen limit into the outbound request's `grpc-timeout` header.
    pub fn propagate_grpc(mut self, on: bool) -> Self {
        self.propagate = on;
        self
    }

    /// Lets a per-request limit (a `grpc-timeout`, a [`Timeout`] or [`Deadline`] extension) be
    /// longer than the layer's default, up to `max`; a longer request is cut to `max`. A `max`
    /// below the layer's default leaves the default as the ceiling. Off by default: the
    /// layer's limit is the ceiling.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use battlement_timeout::{Elapsed, HttpTimeouts, Timeout, TimeoutLayer};
    /// use std::time::Duration;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// let policy = HttpTimeouts::new().grpc(true).allow_extension(Duration::from_secs(10));
    /// let svc = TimeoutLayer::new(Duration::from_secs(1))
    ///     .policy(policy)
    ///     .layer(service_fn(|_req: http::Request<()>| async {
    ///         tokio::time::sleep(Duration::from_secs(5)).await;
    ///         Ok::<_, std::convert::Infallible>(())
    ///     }));
    /// // A handler grants a report 8 s.
    /// let mut req = http::Request::new(());
    /// req.extensions_mut().insert(Timeout(Duration::from_secs(8)));
    /// assert!(svc.clone().oneshot(req).await.is_ok());
    /// // A client asking for an hour gets 10 s at most.
    /// let req = http::Request::builder().header("grpc-timeout", "1H").body(()).unwrap();
    /// assert!(svc.oneshot(req).await.is_ok());
    /// # }
    /// ```
    pub fn allow_extension(mut self, max: Duration) -> Self {
        self.max_extension = Some(max);
        self
    }

    /// The longest limit a request may have, given the layer's `default`.
    #[inline]
    fn ceiling(&self, default: Duration) -> Duration {
        match self.max_extension {
            Some(max) => max.max(default),
            None => default,
        }
    }
}

impl<B> TimeoutPolicy<Request<B>> for HttpTimeouts {
    #[inline]
    fn limit(&self, req: &mut Request<B>, default: Duration) -> Duration {
        let ext = req.extensions();
        let asked = if let Some(Deadline(at)) = ext.get::<Deadline>() {
            at.saturating_duration_since(Instant::now())
        } else if let Some(Timeout(d)) = ext.get::<Timeout>() {
            *d
        } else if self.grpc {
            grpc_limit(req.headers(), default)
        } else {
            default
        };
        let ceiling = self.ceiling(default);
        let limit = if asked > ceiling {
            capped(asked, ceiling)
        } else {
            asked
        };
        if self.propagate {
            propagate(req.headers_mut(), limit);
        }
        limit
    }
}

/// A request asked for more time than the ceiling: it gets the ceiling. Out of line: the cold
/// path.
#[cold]
#[inline(never)]
fn capped(asked: Duration, ceiling: Duration) -> Duration {
    tracing::debug!(
        ?asked,
        ?ceiling,
        "per-request time limit above the ceiling; using the ceiling"
    );
    ceiling
}

/// The limit an incoming `grpc-timeout` header gives; `default` without one, or (with a warning)
/// when it is malformed. Out of line, so the policy stays small enough to inline into `call`
/// (inlined, the lookup made every call slower, grpc on or off).
#[inline(never)]
fn grpc_limit(headers: &http::HeaderMap, default: Duration) -> Duration {
    let Some(value) = headers.get(&GRPC_TIMEOUT_NAME) else {
        return default;
    };
    match value.to_str().ok().and_then(parse_grpc_timeout) {
        Some(d) => d,
        None => {
            tracing::warn!(
                value = ?value,
                "ignoring malformed grpc-timeout header; using the default limit"
            );
            default
        }
    }
}

/// Out of line, like [`grpc_limit`].
#[cold]
#[inline(never)]
fn propagate(headers: &mut http::HeaderMap, limit: Duration) {
    headers.insert(GRPC_TIMEOUT_NAME, format_grpc_timeout(limit));
}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (`H` hours, `M` minutes,
/// `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds). Anything else is `None`.
///
/// ```
/// use battlement_timeout::parse_grpc_timeout;
/// use std::time::Duration;
///
/// assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
/// assert_eq!(parse_grpc_timeout("123456789S"), None); // more than 8 digits
/// assert_eq!(parse_grpc_timeout("10x"), None);
/// ```
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    // Bytes, not chars: a multi-byte last character must be refused, not split.
    let (&unit, digits) = value.as_bytes().split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits: no overflow, even in hours.
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Writes a duration as a `grpc-timeout` value, in the finest unit whose count fits 8 digits
/// (rounding up, so the next hop never gets more time than is left).
///
/// ```
/// use battlement_timeout::format_grpc_timeout;
/// use std::time::Duration;
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(3 * 3600)), "10800000m");
/// ```
pub fn format_grpc_timeout(limit: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = limit.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in units {
        let n = nanos.div_ceil(per);
        if n <= MAX {
            return HeaderValue::from_str(&format!("{n}{unit}")).expect("ascii");
        }
    }
    HeaderValue::from_static("99999999H")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_unit_parses() {
        let cases = [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("4S", Duration::from_secs(4)),
            ("5m", Duration::from_millis(5)),
            ("6u", Duration::from_micros(6)),
            ("7n", Duration::from_nanos(7)),
            ("99999999S", Duration::from_secs(99_999_999)),
            ("0m", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_grpc_timeout(text), Some(want), "{text}");
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        for text in [
            "",
            "S",
            "m",
            "10",
            "10s",
            "1.5S",
            "-1S",
            " 1S",
            "1S ",
            "123456789m",
            "1 S",
            "٣S",
            "1é",
            "é",
            "12\u{1F600}",
            "99999999\u{1F600}",
        ] {
            assert_eq!(parse_grpc_timeout(text), None, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,12}") {
            let _ = parse_grpc_timeout(&text);
        }

        #[test]
        fn format_round_trips_without_granting_more_time(nanos in 0u64..(1 << 60)) {
            let d = Duration::from_nanos(nanos);
            let v = format_grpc_timeout(d);
            let back = parse_grpc_timeout(v.to_str().unwrap()).unwrap();
            prop_assert!(back >= d, "{:?} -> {:?} -> {:?}", d, v, back);
            // Rounding up costs less than one unit, and a coarser unit is chosen only when the
            // finer one overflows 8 digits: at most about 1 part in 10^5.
            prop_assert!(back.as_nanos() - d.as_nanos() <= d.as_nanos() / 99_999);
        }
    }
}
