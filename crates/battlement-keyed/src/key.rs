//! Key extractors: which key's component guards a request.
//!
//! The same idea as battlement-rate-limit's extractors, defined here because pattern crates do
//! not depend on each other. A key is read *borrowed* from the request where it can be (the
//! URI's authority, a header's value, an extension): a call for a key already in the table looks
//! it up without building an owned key, so it allocates nothing. Only a key seen for the first
//! time is copied into the table.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

/// Reads the key of a request of type `Req`.
///
/// `None` means the request has no key: such calls share the table's one *overflow* component
/// (see [`Keyed`](crate::Keyed)). The table stores the owned form of the key,
/// `<Self::Key as ToOwned>::Owned` (a `String` for `str`).
///
/// ```
/// use battlement_keyed::{key_fn, ExtractKey};
///
/// let by_tenant = key_fn(|req: &(u32, &str)| Some(req.0));
/// assert_eq!(by_tenant.extract(&(7, "GET /")).as_deref(), Some(&7));
/// ```
pub trait ExtractKey<Req>: Send + Sync + 'static {
    /// The key as it is looked up (borrowed from the request where it can be).
    type Key: ?Sized + ToOwned + Hash + Eq;

    /// The request's key, if it has one.
    fn extract<'r>(&self, req: &'r Req) -> Option<Cow<'r, Self::Key>>;
}

/// A key read by a closure `Fn(&Req) -> Option<K>` ([`key_fn`]).
pub struct KeyFn<F, K> {
    f: F,
    _key: PhantomData<fn() -> K>,
}

/// Keys calls by a closure over the request. The key is built by the closure on every call (an
/// owned value): prefer a key type that does not allocate (an integer, an `Arc<str>` clone).
///
/// ```
/// use battlement_keyed::{key_fn, ExtractKey};
///
/// // Requests are (agent id, prompt) pairs here.
/// let by_agent = key_fn(|req: &(u64, String)| Some(req.0));
/// assert_eq!(by_agent.extract(&(42, "hello".into())).as_deref(), Some(&42));
/// ```
pub fn key_fn<F, K, Req>(f: F) -> KeyFn<F, K>
where
    F: Fn(&Req) -> Option<K>,
{
    KeyFn {
        f,
        _key: PhantomData,
    }
}

impl<F: Clone, K> Clone for KeyFn<F, K> {
    fn clone(&self) -> Self {
        KeyFn {
            f: self.f.clone(),
            _key: PhantomData,
        }
    }
}

impl<F, K> fmt::Debug for KeyFn<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFn").finish_non_exhaustive()
    }
}

impl<F, K, Req> ExtractKey<Req> for KeyFn<F, K>
where
    F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
    K: Hash + Eq + Clone + 'static,
{
    type Key = K;

    #[inline]
    fn extract<'r>(&self, req: &'r Req) -> Option<Cow<'r, K>> {
        (self.f)(req).map(Cow::Owned)
    }
}

/// Keys HTTP requests by the authority they are sent to (`host:port`): the URI's authority,
/// which a client's requests carry, else the `Host` header (a server's requests). Neither: no
/// key. The key for outbound clients: one component per upstream host.
///
/// ```
/// use battlement_keyed::{Authority, ExtractKey};
///
/// let req = http::Request::get("http://api.example.com:8080/v1").body(()).unwrap();
/// assert_eq!(Authority.extract(&req).as_deref(), Some("api.example.com:8080"));
///
/// let req = http::Request::get("/v1").header("host", "tenant-a.example").body(()).unwrap();
/// assert_eq!(Authority.extract(&req).as_deref(), Some("tenant-a.example"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Authority;

impl<B> ExtractKey<http::Request<B>> for Authority {
    type Key = str;

    #[inline]
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Cow<'r, str>> {
        if let Some(authority) = req.uri().authority() {
            return Some(Cow::Borrowed(authority.as_str()));
        }
        let host = req.headers().get(http::header::HOST)?.to_str().ok()?;
        Some(Cow::Borrowed(host))
    }
}

/// Keys HTTP requests by the value of a header (a tenant id, an agent id). No such header, or a
/// value that is not visible ASCII: no key.
///
/// ```
/// use battlement_keyed::{ExtractKey, Header};
///
/// let by_tenant = Header::new(http::HeaderName::from_static("x-tenant"));
/// let req = http::Request::builder().header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(by_tenant.extract(&req).as_deref(), Some("acme"));
/// ```
#[derive(Debug, Clone)]
pub struct Header(http::HeaderName);

impl Header {
    /// Keys by the header `name`.
    pub fn new(name: http::HeaderName) -> Self {
        Header(name)
    }
}

impl<B> ExtractKey<http::Request<B>> for Header {
    type Key = str;

    #[inline]
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Cow<'r, str>> {
        req.headers().get(&self.0)?.to_str().ok().map(Cow::Borrowed)
    }
}

/// Keys HTTP requests by a request extension of type `T` (set by an authentication layer, say).
/// No such extension: no key.
///
/// ```
/// use battlement_keyed::{Extension, ExtractKey};
///
/// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
/// struct AgentId(u64);
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(AgentId(42));
/// assert_eq!(Extension::<AgentId>::new().extract(&req).as_deref(), Some(&AgentId(42)));
/// ```
pub struct Extension<T>(PhantomData<fn() -> T>);

impl<T> Extension<T> {
    /// Keys by the extension of type `T`.
    pub fn new() -> Self {
        Extension(PhantomData)
    }
}

impl<T> Default for Extension<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Extension<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Extension<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extension<{}>", std::any::type_name::<T>())
    }
}

impl<T, B> ExtractKey<http::Request<B>> for Extension<T>
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Key = T;

    #[inline]
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Cow<'r, T>> {
        req.extensions().get::<T>().map(Cow::Borrowed)
    }
}
