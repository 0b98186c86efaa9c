//! Key extractors: what a keyed rate limiter counts each call against.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

/// What a rate limiter counts calls against: one limit for every call ([`Unkeyed`]) or one per
/// key (a client address, a header value, …). The key type is fixed by the extractor; how a key
/// is read from a request is [`ExtractKey`].
pub trait KeyExtractor: Send + Sync + 'static {
    /// The key calls are counted against.
    type Key: Hash + Eq + Clone + Send + Sync + 'static;
}

/// Reads a key from a request of type `Req`.
///
/// `None` means the request has no key (no such header, no connection address): such calls
/// share one limit of their own, with the same rate and burst (chosen so a missing key is
/// neither a way around the limit nor a reason to refuse every call).
///
/// ```
/// use battlement_rate_limit::{key_fn, ExtractKey};
///
/// let by_user = key_fn(|req: &(u32, &str)| Some(req.0));
/// assert_eq!(by_user.extract(&(7, "GET /")), Some(7));
/// ```
pub trait ExtractKey<Req>: KeyExtractor {
    /// The request's key, if it has one.
    fn extract(&self, req: &Req) -> Option<Self::Key>;
}

/// No key: one limit for every call through the limiter (the default).
///
/// ```
/// use battlement_rate_limit::{RateLimit, Unkeyed};
/// use std::time::Duration;
///
/// let limit: RateLimit<Unkeyed> = RateLimit::builder("api")
///     .rate(100, Duration::from_secs(1))
///     .build()
///     .unwrap();
/// assert!(!limit.is_keyed());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Unkeyed;

impl KeyExtractor for Unkeyed {
    type Key = ();
}

impl<Req> ExtractKey<Req> for Unkeyed {
    #[inline]
    fn extract(&self, _: &Req) -> Option<()> {
        None
    }
}

/// A key read by a closure `Fn(&Req) -> Option<K>` ([`key_fn`]).
pub struct KeyFn<F, K> {
    f: F,
    _key: PhantomData<fn() -> K>,
}

/// Keys calls by a closure over the request.
///
/// ```
/// use battlement_rate_limit::{key_fn, RateLimit};
/// use std::time::Duration;
///
/// // Requests are (tenant, payload) pairs here; each tenant gets 10 calls a second.
/// let limit = RateLimit::builder("tenants")
///     .rate(10, Duration::from_secs(1))
///     .keyed(key_fn(|req: &(String, Vec<u8>)| Some(req.0.clone())))
///     .build()
///     .unwrap();
/// assert!(limit.is_keyed());
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

impl<F, K> KeyExtractor for KeyFn<F, K>
where
    F: Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Key = K;
}

impl<F, K, Req> ExtractKey<Req> for KeyFn<F, K>
where
    F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    #[inline]
    fn extract(&self, req: &Req) -> Option<K> {
        (self.f)(req)
    }
}

#[cfg(feature = "http")]
pub use self::http_keys::{ClientIp, Extension, ForwardedFor, Header};

#[cfg(feature = "http")]
mod http_keys {
    use super::{ExtractKey, KeyExtractor};
    use http::{HeaderName, HeaderValue, Request};
    use std::fmt;
    use std::hash::Hash;
    use std::marker::PhantomData;
    use std::net::{IpAddr, SocketAddr};

    /// Keys HTTP requests by the client's IP address, read from the connection: axum's
    /// `ConnectInfo<SocketAddr>` (with the feature `axum`; serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`), else a `SocketAddr` request
    /// extension (what a hyper server loop inserts by hand). No address: no key.
    ///
    /// Behind a proxy every call comes from the proxy's address: use [`ForwardedFor`] there.
    ///
    /// ```
    /// use battlement_rate_limit::{ClientIp, ExtractKey};
    /// use std::net::SocketAddr;
    ///
    /// let mut req = http::Request::new(());
    /// req.extensions_mut().insert("192.0.2.7:5000".parse::<SocketAddr>().unwrap());
    /// assert_eq!(ClientIp.extract(&req), Some("192.0.2.7".parse().unwrap()));
    /// assert_eq!(ClientIp.extract(&http::Request::new(())), None);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct ClientIp;

    impl KeyExtractor for ClientIp {
        type Key = IpAddr;
    }

    impl<B> ExtractKey<Request<B>> for ClientIp {
        #[inline]
        fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
            let ext = req.extensions();
            #[cfg(feature = "axum")]
            if let Some(info) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
                return Some(info.0.ip());
            }
            ext.get::<SocketAddr>().map(SocketAddr::ip)
        }
    }

    /// Keys HTTP requests by the client address a proxy forwarded: the first hop of
    /// `X-Forwarded-For`, else the first `for=` of `Forwarded` (RFC 7239). Neither (or not an IP
    /// address, such as `for=unknown` or an obfuscated name): no key.
    ///
    /// Only use it behind a proxy that sets (not appends to) these fields: a client talking to
    /// the server directly can write any address into them.
    ///
    /// ```
    /// use battlement_rate_limit::{ExtractKey, ForwardedFor};
    ///
    /// let req = http::Request::builder()
    ///     .header("x-forwarded-for", "203.0.113.9, 10.0.0.1")
    ///     .body(())
    ///     .unwrap();
    /// assert_eq!(ForwardedFor.extract(&req), Some("203.0.113.9".parse().unwrap()));
    ///
    /// let req = http::Request::builder()
    ///     .header("forwarded", r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.1"#)
    ///     .body(())
    ///     .unwrap();
    /// assert_eq!(ForwardedFor.extract(&req), Some("2001:db8::1".parse().unwrap()));
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct ForwardedFor;

    impl KeyExtractor for ForwardedFor {
        type Key = IpAddr;
    }

    impl<B> ExtractKey<Request<B>> for ForwardedFor {
        fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
            let headers = req.headers();
            if let Some(xff) = headers.get("x-forwarded-for") {
                let first = xff.to_str().ok()?.split(',').next()?.trim();
                return parse_node(first);
            }
            let forwarded = headers.get(http::header::FORWARDED)?.to_str().ok()?;
            let element = forwarded.split(',').next()?;
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_node(value.trim().trim_matches('"')))
        }
    }

    /// An address as proxies write it: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
    /// `[2001:db8::1]` or `[2001:db8::1]:80`.
    fn parse_node(node: &str) -> Option<IpAddr> {
        if let Ok(ip) = node.parse::<IpAddr>() {
            return Some(ip);
        }
        if let Ok(addr) = node.parse::<SocketAddr>() {
            return Some(addr.ip());
        }
        node.strip_prefix('[')?
            .strip_suffix(']')?
            .parse::<IpAddr>()
            .ok()
    }

    /// Keys HTTP requests by the value of a header (an API key, a tenant id). No such header:
    /// no key.
    ///
    /// ```
    /// use battlement_rate_limit::{ExtractKey, Header};
    ///
    /// let by_key = Header::new(http::HeaderName::from_static("x-api-key"));
    /// let req = http::Request::builder().header("x-api-key", "k-123").body(()).unwrap();
    /// assert_eq!(by_key.extract(&req).unwrap(), "k-123");
    /// ```
    #[derive(Debug, Clone)]
    pub struct Header(HeaderName);

    impl Header {
        /// Keys by the header `name`.
        pub fn new(name: HeaderName) -> Self {
            Header(name)
        }
    }

    impl KeyExtractor for Header {
        type Key = HeaderValue;
    }

    impl<B> ExtractKey<Request<B>> for Header {
        #[inline]
        fn extract(&self, req: &Request<B>) -> Option<HeaderValue> {
            req.headers().get(&self.0).cloned()
        }
    }

    /// Keys HTTP requests by a request extension of type `T` (set by an authentication layer,
    /// say). No such extension: no key.
    ///
    /// ```
    /// use battlement_rate_limit::{Extension, ExtractKey};
    ///
    /// #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    /// struct UserId(u64);
    ///
    /// let mut req = http::Request::new(());
    /// req.extensions_mut().insert(UserId(42));
    /// assert_eq!(Extension::<UserId>::new().extract(&req), Some(UserId(42)));
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

    impl<T> KeyExtractor for Extension<T>
    where
        T: Hash + Eq + Clone + Send + Sync + 'static,
    {
        type Key = T;
    }

    impl<T, B> ExtractKey<Request<B>> for Extension<T>
    where
        T: Hash + Eq + Clone + Send + Sync + 'static,
    {
        #[inline]
        fn extract(&self, req: &Request<B>) -> Option<T> {
            req.extensions().get::<T>().cloned()
        }
    }
}
