//! The demo's flaky upstream: an axum server whose behaviour follows a schedule of phases.

use axum::http::StatusCode;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the upstream does in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Answers 200 at once.
    Healthy,
    /// Answers 503.
    Failing,
    /// Answers 200 slowly: most answers just inside the gateway's per-try timeout (so calls pile
    /// up against the bulkhead), one in five well past it (a timeout).
    Slow,
    /// Healthy again.
    Recovered,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Failing => "failing",
            Phase::Slow => "slow",
            Phase::Recovered => "recovered",
        }
    }
}

/// The phases over the run: healthy 20 %, failing 20 %, slow 25 %, recovered 35 %.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    start: Instant,
    duration: Duration,
}

impl Schedule {
    pub(crate) fn new(duration: Duration) -> Self {
        Schedule {
            start: Instant::now(),
            duration,
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn phase(&self) -> Phase {
        let f = self.elapsed().as_secs_f64() / self.duration.as_secs_f64();
        if f < 0.20 {
            Phase::Healthy
        } else if f < 0.40 {
            Phase::Failing
        } else if f < 0.65 {
            Phase::Slow
        } else {
            Phase::Recovered
        }
    }
}

/// Starts the upstream on 127.0.0.1 with an ephemeral port. In the slow phase answers take
/// `slow`, and one in five takes `very_slow`. Returns its address and its hit counter.
pub(crate) async fn start(
    schedule: Schedule,
    slow: Duration,
    very_slow: Duration,
) -> (SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/",
        axum::routing::get({
            let hits = hits.clone();
            move || {
                let hits = hits.clone();
                let schedule = schedule.clone();
                async move {
                    let n = hits.fetch_add(1, Ordering::Relaxed);
                    match schedule.phase() {
                        Phase::Healthy | Phase::Recovered => (StatusCode::OK, "ok"),
                        Phase::Failing => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
                        Phase::Slow => {
                            tokio::time::sleep(if n % 5 == 0 { very_slow } else { slow }).await;
                            (StatusCode::OK, "ok, eventually")
                        }
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, hits)
}
