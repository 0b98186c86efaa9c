//! How a rate limiter's key is written into a Redis key.

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

/// A rate-limit key that can name a Redis key: the global limiter counts calls against
/// `{<prefix>:rl:<limiter>}:<key>`, with the key written by [`write_key`](Self::write_key).
///
/// Implemented for the keys of battlement-rate-limit's extractors that name one (`()` for
/// [`Unkeyed`](battlement_rate_limit::Unkeyed), [`IpAddr`] for `ClientIp` and
/// `ForwardedFor`), strings and integers; implement it for a key type of your own.
///
/// ```
/// use battlement_fleet::FleetKey;
///
/// let mut out = String::new();
/// "tenant-7".write_key(&mut out);
/// assert_eq!(out, "tenant-7");
/// out.clear();
/// 42u64.write_key(&mut out);
/// assert_eq!(out, "42");
/// ```
pub trait FleetKey {
    /// Appends the key's text to `out`.
    fn write_key(&self, out: &mut String);
}

impl FleetKey for () {
    fn write_key(&self, _: &mut String) {}
}

impl FleetKey for str {
    fn write_key(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl FleetKey for String {
    fn write_key(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl FleetKey for &'static str {
    fn write_key(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl FleetKey for Arc<str> {
    fn write_key(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl FleetKey for IpAddr {
    fn write_key(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl FleetKey for $t {
            fn write_key(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
int_keys!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
