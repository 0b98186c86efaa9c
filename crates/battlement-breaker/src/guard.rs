//! The guard of an admitted call: it records the call's outcome once, or, dropped unfinished,
//! counts the call as cancelled.

use crate::breaker::{Admission, Shard, UNTIMED};
use battlement_core::handle::Handle;
use battlement_core::stripe::CachePadded;
use battlement_core::{Finish, Outcome};
use std::fmt;

/// An admitted call of a [`CircuitBreaker`](crate::CircuitBreaker), until its outcome is
/// recorded.
///
/// The breaker's response future holds it and records the outcome when the response arrives,
/// when the classifier ([`battlement_core::Settle`]) decides at once, as most do. The
/// `GrpcClassifier` on an HTTP response whose status comes in trailers gets a guard of its own
/// that the response body (`battlement_core::GrpcBody`) keeps until the end of stream. The
/// latency recorded is the time to the response's head. Dropped without being finished, it
/// counts the call as neither success nor failure and returns any half-open trial permit it
/// held.
///
/// It appears in the response type of a breaker that judges gRPC streams at their end:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_breaker::{CallGuard, CircuitBreaker, CircuitBreakerLayer};
/// use battlement_core::{GrpcBody, GrpcClassifier};
/// use http_body_util::{BodyExt, Empty};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let breaker = CircuitBreaker::builder("orders").build().unwrap();
/// let svc = CircuitBreakerLayer::new(&breaker).classifier(GrpcClassifier).layer(service_fn(
///     |_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<bytes::Bytes>::new()))
///     },
/// ));
/// let res: http::Response<GrpcBody<Empty<bytes::Bytes>, CallGuard>> =
///     svc.oneshot(http::Request::new(())).await.unwrap();
/// // An empty body without `grpc-status` counts as UNKNOWN, a failure.
/// res.into_body().collect().await.unwrap();
/// assert_eq!(breaker.metrics().failures, 1);
/// # }
/// ```
pub struct CallGuard {
    shard: Handle<CachePadded<Shard>>,
    admission: Admission,
    /// When the call started ([`UNTIMED`] when calls are not timed); once deferred, the time
    /// to the response's head.
    time: u64,
    deferred: bool,
    done: bool,
}

impl CallGuard {
    /// Guards a call admitted as `admission`, starting its clock.
    #[inline]
    pub(crate) fn new(shard: Handle<CachePadded<Shard>>, admission: Admission) -> Self {
        let time = shard.shared.start_timer();
        Self::started(shard, admission, time)
    }

    /// Guards a call admitted as `admission` whose clock started at `time` (the breaker's
    /// `start_timer`).
    #[inline]
    pub(crate) fn started(
        shard: Handle<CachePadded<Shard>>,
        admission: Admission,
        time: u64,
    ) -> Self {
        CallGuard {
            shard,
            admission,
            time,
            deferred: false,
            done: false,
        }
    }

    /// Whether the outcome was recorded (or handed to another guard).
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Records the call's outcome, with its latency (to now, or once deferred to the response's
    /// head), and disarms the guard: the one way a call ends with an outcome.
    #[inline(always)]
    pub(crate) fn record(&mut self, outcome: Outcome) {
        debug_assert!(!self.done, "a call's outcome is recorded once");
        self.done = true;
        if self.time == UNTIMED && matches!(outcome, Outcome::Success) {
            // The common call, a success untimed, in line: none of the failure, slow-call and
            // latency branches are taken on it.
            self.shard
                .shared
                .record_success(self.shard.index, self.admission);
        } else {
            self.record_other(outcome);
        }
    }

    /// [`record`](Self::record) for any other call: a failure, an ignored outcome, or a timed
    /// call.
    #[inline]
    fn record_other(&self, outcome: Outcome) {
        let latency = if self.time == UNTIMED {
            None
        } else if self.deferred {
            Some(self.time)
        } else {
            Some(self.shard.shared.elapsed(self.time))
        };
        self.shard
            .shared
            .record(self.shard.index, self.admission, outcome, latency);
    }

    /// Hands the call to a new guard that records it later (at the end of the response's body),
    /// with the latency to the response's head taken now; this one is disarmed.
    #[cold]
    pub(crate) fn hand_off(&mut self) -> CallGuard {
        self.done = true;
        let mut later = CallGuard {
            shard: self.shard.clone(),
            admission: self.admission,
            time: self.time,
            deferred: false,
            done: false,
        };
        later.defer();
        later
    }
}

impl Finish for CallGuard {
    #[inline]
    fn defer(&mut self) {
        if self.time != UNTIMED && !self.deferred {
            self.time = self.shard.shared.elapsed(self.time);
        }
        self.deferred = true;
    }

    #[inline]
    fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }
}

impl Drop for CallGuard {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.shard.shared.cancel(self.shard.index, self.admission);
        }
    }
}

impl fmt::Debug for CallGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallGuard")
            .field("stripe", &self.shard.index)
            .field("deferred", &self.deferred)
            .finish_non_exhaustive()
    }
}
