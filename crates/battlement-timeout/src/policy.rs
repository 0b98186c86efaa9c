//! How long one call may take: the layer's default, or a per-request override.

use std::time::Duration;

/// Decides the time limit of one call, and may mark the request with it.
///
/// The layer's default is passed in; an implementation returns the limit for this request
/// (shorter or longer than the default). [`DefaultOnly`] always returns the default;
/// [`HttpTimeouts`](crate::HttpTimeouts) (feature `http`) reads request extensions and
/// `grpc-timeout`. Any `Fn(&Req, Duration) -> Duration` closure works too.
///
/// ```
/// use battlement_timeout::{TimeoutLayer, TimeoutPolicy};
/// use std::time::Duration;
///
/// // Requests carrying a priority get more time.
/// struct Job { urgent: bool }
/// let layer = TimeoutLayer::new(Duration::from_secs(1))
///     .policy(|job: &Job, default: Duration| if job.urgent { default * 5 } else { default });
/// # drop(layer);
/// ```
pub trait TimeoutPolicy<Req> {
    /// The limit for `req`, given the layer's `default`. May write the limit into the request
    /// (e.g. an outbound `grpc-timeout` header).
    fn limit(&self, req: &mut Req, default: Duration) -> Duration;

    /// [`limit`](Self::limit) in whole nanoseconds (saturating at about 584 years): what the
    /// layer calls, since it keeps limits in nanoseconds and makes a `Duration` only when it
    /// arms a timer or reports [`Elapsed`](crate::Elapsed). The provided implementation converts
    /// both ways around `limit`; [`DefaultOnly`] returns `default` as it is, so its calls
    /// convert nothing.
    #[inline]
    fn limit_nanos(&self, req: &mut Req, default: u64) -> u64 {
        crate::layer::nanos(self.limit(req, Duration::from_nanos(default)))
    }
}

/// The layer's default limit for every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultOnly;

impl<Req> TimeoutPolicy<Req> for DefaultOnly {
    #[inline]
    fn limit(&self, _req: &mut Req, default: Duration) -> Duration {
        default
    }

    #[inline]
    fn limit_nanos(&self, _req: &mut Req, default: u64) -> u64 {
        default
    }
}

impl<Req, F> TimeoutPolicy<Req> for F
where
    F: Fn(&Req, Duration) -> Duration,
{
    #[inline]
    fn limit(&self, req: &mut Req, default: Duration) -> Duration {
        self(req, default)
    }
}
