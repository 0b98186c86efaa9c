//! The latency the global rate limiter adds per request on loopback, exact against leased,
//! at p50 and p99, and the Redis commands it sends per request; the local limiter beside it.
//!
//! Not criterion: each row drives one service, built once, in front of a trivial inner service,
//! with `ready().await` + `call().await` on a current-thread runtime, timing every call, and
//! prints the percentiles of the time per call and the Redis commands per call (script runs,
//! from the limiter's own count). Limits are set so no call is limited: this is the cost an
//! admitted call pays. The bench starts its own `redis-server` (persistence off, a free port).
//!
//! Run: `cargo bench -p battlement --features fleet --bench fleet` (`-- --quick`: fewer calls).
//! CI compiles it (`cargo bench --workspace --all-features --no-run`) and does not run it.

use battlement::fleet::testing::RedisServer;
use battlement::fleet::{Fleet, GlobalRateLimit, Mode};
use battlement::rate_limit::RateLimit;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceExt};

fn inner() -> impl Service<
    (),
    Response = (),
    Error = Infallible,
    Future = std::future::Ready<Result<(), Infallible>>,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|_: ()| std::future::ready(Ok(())))
}

/// Times `calls` calls through `svc` (after a warm-up); returns (p50, p99) in nanoseconds.
async fn drive<S>(svc: &mut S, calls: usize) -> (u128, u128)
where
    S: Service<(), Response = ()>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..calls / 10 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        svc.ready().await.unwrap().call(()).await.unwrap();
        times.push(start.elapsed().as_nanos());
    }
    times.sort_unstable();
    (times[calls / 2], times[calls * 99 / 100])
}

fn row(name: &str, (p50, p99): (u128, u128), commands: Option<f64>) {
    let commands = commands.map_or_else(|| "-".to_owned(), |c| format!("{c:.3}"));
    println!(
        "{name:<28} {:>10.1} {:>10.1} {commands:>14}",
        p50 as f64 / 1e3,
        p99 as f64 / 1e3
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let calls = if quick { 2_000 } else { 20_000 };
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fleet = Fleet::builder(server.url())
            .command_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
        println!("{calls} calls per row; µs per call; Redis commands per call");
        println!(
            "{:<28} {:>10} {:>10} {:>14}",
            "row", "p50 µs", "p99 µs", "commands/call"
        );

        row("bare", drive(&mut inner(), calls).await, None);

        let local = RateLimit::builder("local")
            .rate(1_000_000_000, Duration::from_secs(1))
            .burst(1_000_000_000)
            .build()
            .unwrap();
        row(
            "local limiter",
            drive(&mut local.layer().layer(inner()), calls).await,
            None,
        );

        for (name, mode) in [
            ("global, exact", Mode::Exact),
            ("global, leased (batch 10)", Mode::Leased { batch: 10 }),
            ("global, leased (batch 100)", Mode::Leased { batch: 100 }),
        ] {
            let limit = GlobalRateLimit::builder(name.replace([' ', ',', '(', ')'], "-"), &fleet)
                .rate(1_000_000, Duration::from_secs(1))
                .burst(1_000_000)
                .mode(mode)
                .build()
                .unwrap();
            let mut svc = limit.layer().layer(inner());
            let before = limit.metrics().round_trips;
            let times = drive(&mut svc, calls).await;
            let sent = limit.metrics().round_trips - before;
            // The warm-up's calls are counted too.
            let per_call = sent as f64 / (calls + calls / 10) as f64;
            row(name, times, Some(per_call));
        }
    });
}
