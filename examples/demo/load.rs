//! The demo's load driver: workers sending requests to the gateway at a fixed total rate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How each gateway answer is counted.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) breaker: AtomicU64,
    pub(crate) bulkhead: AtomicU64,
    pub(crate) timed_out: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) breaker: u64,
    pub(crate) bulkhead: u64,
    pub(crate) timed_out: u64,
}

impl Counters {
    pub(crate) fn read(&self) -> Counts {
        Counts {
            sent: self.sent.load(Relaxed),
            ok: self.ok.load(Relaxed),
            failed: self.failed.load(Relaxed),
            breaker: self.breaker.load(Relaxed),
            bulkhead: self.bulkhead.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
        }
    }
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            sent: self.sent - o.sent,
            ok: self.ok - o.ok,
            failed: self.failed - o.failed,
            breaker: self.breaker - o.breaker,
            bulkhead: self.bulkhead - o.bulkhead,
            timed_out: self.timed_out - o.timed_out,
        }
    }
}

/// The header the gateway sets to say which layer answered for the upstream.
pub(crate) const OUTCOME_HEADER: &str = "x-battlement-outcome";

/// Sends `rate` requests per second in total from `concurrency` workers for `duration`.
pub(crate) async fn drive(
    gateway: SocketAddr,
    duration: Duration,
    rate: u32,
    concurrency: usize,
    counters: Arc<Counters>,
) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{gateway}/").parse().expect("gateway uri");
    let per_worker = Duration::from_secs_f64(concurrency as f64 / f64::from(rate.max(1)));
    let deadline = tokio::time::Instant::now() + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            let client = client.clone();
            let uri = uri.clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                // Spread the workers' ticks over one period.
                let offset = per_worker.mul_f64(i as f64 / concurrency as f64);
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, per_worker);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    counters.sent.fetch_add(1, Relaxed);
                    let req = http::Request::get(uri.clone())
                        .body(http_body_util::Empty::new())
                        .expect("request");
                    let counter = match client.request(req).await {
                        Ok(res) => {
                            let outcome = res
                                .headers()
                                .get(OUTCOME_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            match (res.status().as_u16(), outcome) {
                                (200, _) => &counters.ok,
                                (_, "breaker") => &counters.breaker,
                                (_, "bulkhead") => &counters.bulkhead,
                                (_, "timeout") => &counters.timed_out,
                                _ => &counters.failed,
                            }
                        }
                        Err(_) => &counters.failed,
                    };
                    counter.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}
