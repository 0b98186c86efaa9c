//! Unit tests of the policy driven through the crate's `Retry` service (and tower's, in
//! `service`) with a paused clock.

use crate::*;
use battlement_core::error::{BoxError, BreakerOpen, BulkheadFull, Elapsed};
use battlement_core::{classify_fn, FailureKind, Outcome};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

mod attempts;
mod backoff;
mod budget;
mod classify;
mod config;
mod events;
#[cfg(feature = "http")]
mod http;
mod metrics;
mod reload;
#[cfg(feature = "http")]
mod replay;
mod service;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a scripted upstream saw: when each attempt started, relative to the first.
#[derive(Clone, Default)]
struct Log {
    starts: Arc<Mutex<Vec<Instant>>>,
}

impl Log {
    fn record(&self) -> usize {
        let mut starts = self.starts.lock().unwrap();
        starts.push(Instant::now());
        starts.len() - 1
    }

    fn calls(&self) -> usize {
        self.starts.lock().unwrap().len()
    }

    /// The waits between attempts.
    fn gaps(&self) -> Vec<Duration> {
        let starts = self.starts.lock().unwrap();
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// The error a scripted attempt fails with: its number, so tests can tell which attempt's error
/// came back.
#[derive(Debug)]
struct AttemptError {
    attempt: usize,
    source: io::Error,
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "attempt {} failed", self.attempt)
    }
}

impl std::error::Error for AttemptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn reset(attempt: usize) -> BoxError {
    Box::new(AttemptError {
        attempt,
        source: io::Error::from(io::ErrorKind::ConnectionReset),
    })
}

/// An upstream that fails its first `failures` attempts with a connection reset, then answers
/// with the attempt number.
fn flaky(
    log: &Log,
    failures: usize,
) -> impl Service<
    &'static str,
    Response = usize,
    Error = BoxError,
    Future = impl Future<Output = Result<usize, BoxError>>,
> + Clone {
    let log = log.clone();
    tower::service_fn(move |_req: &'static str| {
        let n = log.record();
        async move {
            if n < failures {
                Err(reset(n))
            } else {
                Ok(n)
            }
        }
    })
}

async fn run_gaps(
    policy: RetryPolicy,
    failures: usize,
) -> (Vec<Duration>, Result<usize, BoxError>) {
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy))
        .service(flaky(&log, failures));
    let result = svc.oneshot("req").await;
    (log.gaps(), result)
}

fn always_failing(n: u32) -> RetryPolicyBuilder {
    RetryPolicy::builder().max_attempts(n)
}
