//! Which requests may be hedged.

use std::fmt;

/// Decides whether a request may be sent more than once (it must be idempotent: sending it
/// twice must do no more harm than sending it once).
///
/// Built-ins: [`Always`] (the default: the caller vouches for every request),
/// [`PredicateFn`] (a closure, through [`HedgeBuilder::hedge_if`](crate::HedgeBuilder::hedge_if))
/// and, with feature `http`, [`IdempotentMethods`].
///
/// ```
/// use battlement_hedge::HedgePolicy;
///
/// /// Reads may be hedged, writes may not.
/// struct ReadsOnly;
/// impl HedgePolicy<(bool, u32)> for ReadsOnly {
///     fn can_hedge(&self, req: &(bool, u32)) -> bool { !req.0 }
/// }
/// assert!(ReadsOnly.can_hedge(&(false, 1)));
/// ```
pub trait HedgePolicy<Req> {
    /// Whether `req` may be hedged.
    fn can_hedge(&self, req: &Req) -> bool;
}

/// Hedges every request.
///
/// ```
/// use battlement_hedge::{Always, HedgePolicy};
///
/// assert!(Always.can_hedge(&"GET /"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Always;

impl<Req> HedgePolicy<Req> for Always {
    #[inline]
    fn can_hedge(&self, _req: &Req) -> bool {
        true
    }
}

/// Hedges the requests a closure accepts; see
/// [`HedgeBuilder::hedge_if`](crate::HedgeBuilder::hedge_if).
///
/// ```
/// use battlement_hedge::{HedgePolicy, PredicateFn};
///
/// let p = PredicateFn::new(|key: &String| !key.starts_with("write:"));
/// assert!(p.can_hedge(&"read:7".to_string()));
/// assert!(!p.can_hedge(&"write:7".to_string()));
/// ```
#[derive(Clone, Copy)]
pub struct PredicateFn<F> {
    f: F,
}

impl<F> PredicateFn<F> {
    /// Hedges the requests `f` accepts.
    pub fn new(f: F) -> Self {
        PredicateFn { f }
    }
}

impl<F> fmt::Debug for PredicateFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PredicateFn").finish_non_exhaustive()
    }
}

impl<Req, F: Fn(&Req) -> bool> HedgePolicy<Req> for PredicateFn<F> {
    #[inline]
    fn can_hedge(&self, req: &Req) -> bool {
        (self.f)(req)
    }
}

/// Hedges HTTP requests with an idempotent method: GET, HEAD, OPTIONS, PUT, DELETE, TRACE
/// (RFC 9110 §9.2.2); never POST, PATCH or CONNECT. The default policy of
/// [`HedgeLayer::http_builder`](crate::HedgeLayer::http_builder).
///
/// ```
/// use battlement_hedge::{HedgePolicy, IdempotentMethods};
///
/// let get = http::Request::get("http://search/q?x").body(()).unwrap();
/// let post = http::Request::post("http://search/index").body(()).unwrap();
/// assert!(IdempotentMethods.can_hedge(&get));
/// assert!(!IdempotentMethods.can_hedge(&post));
/// ```
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy, Default)]
pub struct IdempotentMethods;

#[cfg(feature = "http")]
impl<B> HedgePolicy<http::Request<B>> for IdempotentMethods {
    #[inline]
    fn can_hedge(&self, req: &http::Request<B>) -> bool {
        is_idempotent(req.method())
    }
}

#[cfg(feature = "http")]
pub use battlement_core::is_idempotent;
