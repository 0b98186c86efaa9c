//! HTTP response classification (feature `http`).

use crate::classify::status_failure_kind;
use crate::error::{failure_kind, AsDynError};
use crate::{Classify, ConfigError, Outcome, ResponseOutcome};
use std::fmt;

/// A set of HTTP status codes (100..=999), stored as a bitmap: lookups cost one shift.
///
/// ```
/// use battlement_core::StatusSet;
///
/// let set = StatusSet::range(500, 599).unwrap().with(429).unwrap();
/// assert!(set.contains(503));
/// assert!(set.contains(429));
/// assert!(!set.contains(404));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusSet {
    bits: [u64; 16],
}

impl StatusSet {
    /// The empty set.
    pub const fn empty() -> Self {
        StatusSet { bits: [0; 16] }
    }

    fn check(code: u16) -> Result<(), ConfigError> {
        if (100..=999).contains(&code) {
            Ok(())
        } else {
            Err(ConfigError::new(
                "http classifier",
                "status",
                code,
                "an HTTP status code must be within 100..=999",
            ))
        }
    }

    /// The codes `from..=to`.
    pub fn range(from: u16, to: u16) -> Result<Self, ConfigError> {
        Self::check(from)?;
        Self::check(to)?;
        if from > to {
            return Err(ConfigError::new(
                "http classifier",
                "status range",
                (from, to),
                "the range's start is after its end",
            ));
        }
        let mut set = Self::empty();
        for code in from..=to {
            set.insert_unchecked(code);
        }
        Ok(set)
    }

    /// The given codes.
    pub fn of(codes: impl IntoIterator<Item = u16>) -> Result<Self, ConfigError> {
        let mut set = Self::empty();
        for code in codes {
            set = set.with(code)?;
        }
        Ok(set)
    }

    /// This set with `code` added.
    pub fn with(mut self, code: u16) -> Result<Self, ConfigError> {
        Self::check(code)?;
        self.insert_unchecked(code);
        Ok(self)
    }

    /// This set without `code`.
    pub fn without(mut self, code: u16) -> Self {
        if (100..=999).contains(&code) {
            self.bits[(code / 64) as usize] &= !(1u64 << (code % 64));
        }
        self
    }

    /// The union of two sets.
    pub fn union(mut self, other: StatusSet) -> Self {
        for (a, b) in self.bits.iter_mut().zip(other.bits) {
            *a |= b;
        }
        self
    }

    fn insert_unchecked(&mut self, code: u16) {
        self.bits[(code / 64) as usize] |= 1u64 << (code % 64);
    }

    /// Whether `code` is in the set.
    #[inline]
    pub fn contains(&self, code: u16) -> bool {
        code < 1024 && self.bits[(code / 64) as usize] & (1u64 << (code % 64)) != 0
    }

    /// Iterates over the codes in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (100u16..=999).filter(|c| self.contains(*c))
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Classifies HTTP responses: by default 5xx and 429 fail, every other status succeeds;
/// transport errors fail with the kind read from their source chain.
///
/// The failing and ignored status sets are configurable; a status in the ignored set counts as
/// neither success nor failure.
///
/// A breaker or health probe keeps a copy of its classifier in every call's response future, so
/// copying the classifier must write nothing shared. Its two status sets (256 bytes) are
/// therefore stored once and referred to: the default configuration costs no storage, and the
/// first 64 other distinct configurations are interned for the life of the process (each stored
/// once, however many classifiers use it). Past that bound the table stops growing: a classifier
/// with a configuration not in it holds its sets behind an `Arc`, freed with the last classifier
/// that uses it, and each copy of such a classifier (one per call) updates that `Arc`'s count.
/// Memory is so bounded by 64 configurations plus those in use. Build classifiers when the stack
/// is built, not per request.
///
/// ```
/// use battlement_core::{Classify, FailureKind, HttpClassifier, Outcome, error::BoxError};
/// use http::Response;
///
/// let c = HttpClassifier::new().ignore(404).unwrap();
/// let res = |code: u16| Response::builder().status(code).body(()).unwrap();
/// let classify = |code| Classify::<_, BoxError>::classify(&c, Ok(&res(code)));
/// assert_eq!(classify(503), Outcome::Failure(FailureKind::ServerError));
/// assert_eq!(classify(429), Outcome::Failure(FailureKind::RateLimited));
/// assert_eq!(classify(404), Outcome::Ignored);
/// assert_eq!(classify(200), Outcome::Success);
/// assert!(std::mem::size_of::<HttpClassifier>() <= 2 * std::mem::size_of::<usize>());
/// ```
#[derive(Clone)]
pub struct HttpClassifier {
    sets: Sets,
}

/// Where an [`HttpClassifier`]'s sets live.
#[derive(Clone)]
enum Sets {
    /// The default configuration or an interned one: copying writes nothing.
    Stored(&'static StatusSets),
    /// A configuration past the interning bound.
    Shared(std::sync::Arc<StatusSets>),
}

impl std::ops::Deref for Sets {
    type Target = StatusSets;

    #[inline]
    fn deref(&self) -> &StatusSets {
        match self {
            Sets::Stored(sets) => sets,
            Sets::Shared(sets) => sets,
        }
    }
}

/// The failing and ignored statuses of an [`HttpClassifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatusSets {
    failures: StatusSet,
    ignored: StatusSet,
}

/// 5xx and 429 fail; nothing is ignored.
static DEFAULT_SETS: StatusSets = StatusSets {
    failures: default_failures(),
    ignored: StatusSet::empty(),
};

const fn default_failures() -> StatusSet {
    let mut bits = [0u64; 16];
    let mut code = 500u16;
    while code <= 599 {
        bits[(code / 64) as usize] |= 1u64 << (code % 64);
        code += 1;
    }
    bits[(429 / 64) as usize] |= 1u64 << (429 % 64);
    StatusSet { bits }
}

/// How many distinct configurations are interned at most.
const MAX_INTERNED: usize = 64;

/// The interned configurations (the default one aside).
static STORED: std::sync::Mutex<Vec<&'static StatusSets>> = std::sync::Mutex::new(Vec::new());

impl StatusSets {
    /// These sets as a classifier keeps them: the default's, the one interned already, or a new
    /// one interned now while fewer than [`MAX_INTERNED`] are; past that, behind an `Arc` of
    /// their own.
    fn intern(self) -> Sets {
        if self == DEFAULT_SETS {
            return Sets::Stored(&DEFAULT_SETS);
        }
        let mut stored = STORED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = stored.iter().find(|s| ***s == self) {
            return Sets::Stored(found);
        }
        if stored.len() < MAX_INTERNED {
            let leaked: &'static StatusSets = Box::leak(Box::new(self));
            stored.push(leaked);
            return Sets::Stored(leaked);
        }
        Sets::Shared(std::sync::Arc::new(self))
    }
}

impl fmt::Debug for HttpClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClassifier")
            .field("failures", &self.sets.failures)
            .field("ignored", &self.sets.ignored)
            .finish()
    }
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClassifier {
    /// 5xx and 429 fail; nothing is ignored.
    pub fn new() -> Self {
        HttpClassifier {
            sets: Sets::Stored(&DEFAULT_SETS),
        }
    }

    fn with_sets(self, f: impl FnOnce(&mut StatusSets)) -> Self {
        let mut sets = *self.sets;
        f(&mut sets);
        HttpClassifier {
            sets: sets.intern(),
        }
    }

    /// Replaces the set of failing statuses.
    pub fn failure_statuses(self, set: StatusSet) -> Self {
        self.with_sets(|s| s.failures = set)
    }

    /// Replaces the set of ignored statuses (they win over failing ones).
    pub fn ignored_statuses(self, set: StatusSet) -> Self {
        self.with_sets(|s| s.ignored = set)
    }

    /// Adds one failing status.
    pub fn fail(self, code: u16) -> Result<Self, ConfigError> {
        let failures = self.sets.failures.with(code)?;
        Ok(self.with_sets(|s| s.failures = failures))
    }

    /// Adds one ignored status.
    pub fn ignore(self, code: u16) -> Result<Self, ConfigError> {
        let ignored = self.sets.ignored.with(code)?;
        Ok(self.with_sets(|s| s.ignored = ignored))
    }

    /// The failing statuses.
    pub fn failures(&self) -> StatusSet {
        self.sets.failures
    }

    /// The ignored statuses.
    pub fn ignored(&self) -> StatusSet {
        self.sets.ignored
    }

    /// Classifies a bare status code.
    #[inline]
    pub fn classify_status(&self, status: http::StatusCode) -> Outcome {
        let code = status.as_u16();
        if self.sets.ignored.contains(code) {
            Outcome::Ignored
        } else if self.sets.failures.contains(code) {
            Outcome::Failure(status_failure_kind(code))
        } else {
            Outcome::Success
        }
    }
}

impl<B, E: AsDynError> Classify<http::Response<B>, E> for HttpClassifier {
    #[inline]
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
        match result {
            Ok(res) => self.classify_status(res.status()),
            Err(e) => Outcome::Failure(failure_kind(e.as_dyn_error())),
        }
    }
}

/// The `grpc-status` header name, built once.
pub(crate) const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The outcome a numeric gRPC status code maps to; see
/// [`grpc_code_outcome`](crate::grpc_code_outcome) (feature `grpc`) for the table. Unknown codes
/// count as `UNKNOWN` does (a server error), as tonic reads them.
pub(crate) fn grpc_status_outcome(code: i32) -> Outcome {
    use crate::FailureKind;
    match code {
        0 => Outcome::Success,                                     // OK
        4 => Outcome::Failure(FailureKind::Timeout),               // DEADLINE_EXCEEDED
        14 => Outcome::Failure(FailureKind::Connection),           // UNAVAILABLE
        8 => Outcome::Failure(FailureKind::RateLimited),           // RESOURCE_EXHAUSTED
        13 | 2 | 15 => Outcome::Failure(FailureKind::ServerError), // INTERNAL, UNKNOWN, DATA_LOSS
        1 | 3 | 5 | 6 | 7 | 9 | 10 | 11 | 12 | 16 => Outcome::Ignored,
        _ => Outcome::Failure(FailureKind::ServerError),
    }
}

/// The outcome of the `grpc-status` in `headers` (a trailers-only response's head, or trailers),
/// or `None` when there is none. A value that is not a number fails with kind `Other`.
#[inline]
pub(crate) fn grpc_status_in(headers: &http::HeaderMap) -> Option<Outcome> {
    let value = headers.get(&GRPC_STATUS)?;
    Some(
        match std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            Some(code) => grpc_status_outcome(code),
            None => Outcome::Failure(crate::FailureKind::Other),
        },
    )
}

/// 5xx and 429 fail (kinds by [`status_failure_kind`]); every other status succeeds.
impl ResponseOutcome for http::StatusCode {
    #[inline]
    fn outcome(&self) -> Outcome {
        let code = self.as_u16();
        if code >= 500 || code == 429 {
            Outcome::Failure(status_failure_kind(code))
        } else {
            Outcome::Success
        }
    }
}

/// By status: 5xx and 429 fail, with the kinds of [`status_failure_kind`]; every other status
/// succeeds, except a 200 whose head carries a `grpc-status` (a gRPC trailers-only response,
/// tonic's way of answering an error), which counts as its gRPC code does (`UNAVAILABLE` fails,
/// `NOT_FOUND` is ignored, ...).
///
/// Only a 200 pays for the header lookup. A gRPC status sent later, in trailers, is not seen
/// here; the breaker and the health probe judge it at end of stream with
/// [`GrpcClassifier`](crate::GrpcClassifier) (feature `grpc`).
///
/// ```
/// use battlement_core::{FailureKind, Outcome, ResponseOutcome};
///
/// let res = http::Response::builder().status(503).body(()).unwrap();
/// assert_eq!(res.outcome(), Outcome::Failure(FailureKind::ServerError));
/// let grpc = http::Response::builder().header("grpc-status", "14").body(()).unwrap();
/// assert_eq!(grpc.outcome(), Outcome::Failure(FailureKind::Connection));
/// ```
impl<B> ResponseOutcome for http::Response<B> {
    #[inline]
    fn outcome(&self) -> Outcome {
        let status = self.status();
        if status == http::StatusCode::OK {
            return match grpc_status_in_head(self.headers()) {
                Some(outcome) => outcome,
                None => Outcome::Success,
            };
        }
        status.outcome()
    }
}

/// [`grpc_status_in`] for a response head, which rarely has one: a head of a few headers is
/// scanned (comparing names is a tag check for standard headers, cheaper than hashing
/// `grpc-status`); a larger one is looked up.
#[inline]
fn grpc_status_in_head(headers: &http::HeaderMap) -> Option<Outcome> {
    const SCAN: usize = 8;
    if headers.keys_len() > SCAN {
        return grpc_status_in(headers);
    }
    if headers.keys().any(|name| *name == GRPC_STATUS) {
        return grpc_status_in(headers);
    }
    None
}

/// Whether requests with `method` are idempotent (RFC 9110 §9.2.2): GET, HEAD, OPTIONS, TRACE,
/// PUT and DELETE. Retry and hedging send only these more than once unless told otherwise.
///
/// ```
/// use battlement_core::is_idempotent;
/// use http::Method;
///
/// assert!(is_idempotent(&Method::PUT));
/// assert!(!is_idempotent(&Method::POST));
/// assert!(!is_idempotent(&Method::PATCH));
/// ```
pub fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BoxError;
    use crate::FailureKind;

    fn res(code: u16) -> http::Response<()> {
        http::Response::builder().status(code).body(()).unwrap()
    }

    #[test]
    fn defaults() {
        let c = HttpClassifier::new();
        for code in [500u16, 502, 503, 504, 599] {
            assert_eq!(
                Classify::<_, BoxError>::classify(&c, Ok(&res(code))),
                Outcome::Failure(FailureKind::ServerError)
            );
        }
        for code in [200u16, 201, 301, 400, 401, 404, 418] {
            assert_eq!(
                Classify::<_, BoxError>::classify(&c, Ok(&res(code))),
                Outcome::Success,
                "{code}"
            );
        }
    }

    #[test]
    fn custom_sets() {
        let c = HttpClassifier::new()
            .failure_statuses(StatusSet::of([503, 408]).unwrap())
            .ignored_statuses(StatusSet::range(400, 404).unwrap());
        assert_eq!(
            Classify::<_, BoxError>::classify(&c, Ok(&res(500))),
            Outcome::Success
        );
        assert_eq!(
            Classify::<_, BoxError>::classify(&c, Ok(&res(408))),
            Outcome::Failure(FailureKind::Timeout)
        );
        assert_eq!(
            Classify::<_, BoxError>::classify(&c, Ok(&res(403))),
            Outcome::Ignored
        );
    }

    #[test]
    fn status_set_validation() {
        assert!(StatusSet::range(600, 500).is_err());
        assert!(StatusSet::empty().with(42).is_err());
        assert!(StatusSet::empty().with(1000).is_err());
        let s = StatusSet::of([200, 999]).unwrap().without(200);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![999]);
    }

    fn stored(c: &HttpClassifier) -> *const StatusSets {
        &*c.sets
    }

    #[test]
    fn equal_configurations_share_one_stored_copy() {
        let a = HttpClassifier::new().ignore(404).unwrap();
        let b = HttpClassifier::new().ignore(404).unwrap();
        assert!(std::ptr::eq(stored(&a), stored(&b)));
        assert!(std::ptr::eq(
            stored(&HttpClassifier::new()),
            stored(&HttpClassifier::new().fail(500).unwrap())
        ));
        let c = a.clone().ignored_statuses(StatusSet::empty());
        assert!(std::ptr::eq(stored(&c), stored(&HttpClassifier::new())));
        assert_eq!(a.ignored().iter().collect::<Vec<_>>(), vec![404]);
        assert!(a.failures().contains(503) && a.failures().contains(429));
    }

    #[test]
    fn responses_count_by_status_and_head_grpc_status() {
        use crate::ResponseOutcome;
        assert_eq!(
            res(500).outcome(),
            Outcome::Failure(FailureKind::ServerError)
        );
        assert_eq!(
            res(503).outcome(),
            Outcome::Failure(FailureKind::ServerError)
        );
        assert_eq!(
            res(429).outcome(),
            Outcome::Failure(FailureKind::RateLimited)
        );
        for code in [200u16, 201, 204, 301, 400, 404, 408, 499] {
            assert_eq!(res(code).outcome(), Outcome::Success, "{code}");
        }
        let grpc = |code: &str| {
            http::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", code)
                .body(())
                .unwrap()
        };
        assert_eq!(
            grpc("14").outcome(),
            Outcome::Failure(FailureKind::Connection)
        );
        assert_eq!(
            grpc("13").outcome(),
            Outcome::Failure(FailureKind::ServerError)
        );
        assert_eq!(grpc("5").outcome(), Outcome::Ignored);
        assert_eq!(grpc("0").outcome(), Outcome::Success);
        assert_eq!(grpc("x").outcome(), Outcome::Failure(FailureKind::Other));
        let mut with_headers = res(200);
        with_headers
            .headers_mut()
            .insert("content-type", "text/plain".parse().unwrap());
        assert_eq!(with_headers.outcome(), Outcome::Success);
    }

    #[test]
    fn interning_is_bounded() {
        // The configuration `equal_configurations_share_one_stored_copy` checks is interned
        // first: this test fills the table, and the two run in parallel in one process, in
        // either order (that test failed when this one filled the table before it ran).
        let _ = HttpClassifier::new().ignore(404).unwrap();
        // Many distinct configurations (each a different extra failing status).
        let built: Vec<HttpClassifier> = (600u16..600 + 3 * MAX_INTERNED as u16)
            .map(|code| HttpClassifier::new().fail(code).unwrap())
            .collect();
        let len = STORED.lock().unwrap().len();
        assert!(len <= MAX_INTERNED, "{len} interned");
        // Past the bound, classifiers still classify by their own configuration.
        for (i, c) in built.iter().enumerate() {
            let code = 600 + i as u16;
            assert_eq!(
                c.classify_status(http::StatusCode::from_u16(code).unwrap()),
                Outcome::Failure(FailureKind::Other)
            );
            assert!(c.failures().contains(503));
        }
        // Past the bound, a configuration lives behind an `Arc` and is freed with its last
        // classifier: memory stays bounded however many configurations a process builds.
        let overflow: Vec<_> = built
            .iter()
            .filter_map(|c| match &c.sets {
                Sets::Shared(sets) => Some(std::sync::Arc::downgrade(sets)),
                Sets::Stored(_) => None,
            })
            .collect();
        assert!(
            overflow.len() >= 2 * MAX_INTERNED,
            "{} shared",
            overflow.len()
        );
        drop(built);
        assert!(overflow.iter().all(|w| w.upgrade().is_none()));
        assert!(STORED.lock().unwrap().len() <= MAX_INTERNED);
    }

    #[test]
    fn errors_use_default_rules() {
        let err: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            Classify::<http::Response<()>, _>::classify(&HttpClassifier::new(), Err(&err)),
            Outcome::Failure(FailureKind::Connection)
        );
    }
}
