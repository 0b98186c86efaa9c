//! End to end: an axum hello-world served bare and behind the full recommended stack, loaded
//! over loopback from a second process for a fixed time; prints requests per second for both and
//! the ratio (target: the stack keeps ≥ 95 % of bare).
//!
//! - Servers: one process, a 2-worker tokio runtime, `axum::serve` on `127.0.0.1:0`, a single
//!   `GET /` route answering `Hello, World!`. The stacked server wraps the router with
//!   [`battlement::http_error::HttpErrorLayer`] (errors become HTTP answers, as axum needs) and
//!   the recommended order: retry → breaker → bulkhead → timeout (see `stacked`).
//! - Load: the bench re-executes its own binary with `BATTLEMENT_E2E_TARGET` set; that child runs
//!   a small pipelined HTTP/1.1 client on a current-thread runtime: 4 keep-alive connections with 32 requests
//!   in flight each, counting complete `200` responses for the measured time after a warm-up.
//!   Pipelining keeps the client cheap per request, so the server, not the client, is the
//!   bottleneck and its per-request overhead shows in the figure.
//! - Each measurement starts a fresh server runtime. A round measures both servers back to back,
//!   alternating which goes first; the headline is the median over rounds of stack/bare within a
//!   round, which cancels slow drifts in the machine's load. On a shared 2-core machine the
//!   per-round figures still swing by several percent: `BATTLEMENT_E2E_AA=1` serves bare on both
//!   sides (an A/A run) to show how much; `BATTLEMENT_E2E_WORKERS=n` changes the server's worker
//!   count (default 2).
//!
//! Run: `cargo bench -p battlement --bench e2e` (6 rounds of 3 s each way, about 45 s), or
//! `-- --quick` (2 rounds of 1.5 s).

use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET_ENV: &str = "BATTLEMENT_E2E_TARGET";
const SECS_ENV: &str = "BATTLEMENT_E2E_MILLIS";
const CONNECTIONS: usize = 4;
const DEPTH: usize = 32;
const WARM_UP: Duration = Duration::from_millis(500);

fn hello() -> Router {
    Router::new().route("/", get(|| async { "Hello, World!" }))
}

/// The router behind the full recommended stack, outermost first.
fn stacked() -> Router {
    use battlement::http_error::HttpErrorLayer;
    use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer};
    use battlement_core::HttpClassifier;
    use tower::ServiceBuilder;

    let breaker = CircuitBreaker::builder("e2e").build().expect("breaker");
    hello().layer(
        ServiceBuilder::new()
            .layer(HttpErrorLayer::<axum::body::Body>::new())
            .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new())),
    )
}

fn main() {
    if let Ok(target) = std::env::var(TARGET_ENV) {
        let millis: u64 = std::env::var(SECS_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000);
        load(
            target.parse().expect("target address"),
            Duration::from_millis(millis),
        );
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, millis) = if quick { (2, 1500) } else { (6, 3000) };
    let duration = Duration::from_millis(millis);
    // An A/A run (both sides bare) shows how noisy the machine is.
    let aa = std::env::var_os("BATTLEMENT_E2E_AA").is_some();

    let mut bare = Vec::new();
    let mut stack = Vec::new();
    for round in 0..rounds {
        eprintln!("e2e: round {}/{}", round + 1, rounds);
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_bare in order {
            let router = if is_bare || aa { hello() } else { stacked() };
            let rps = measure(router, duration);
            if is_bare {
                bare.push(rps)
            } else {
                stack.push(rps)
            }
        }
    }
    // Each round measures both servers back to back: the ratio within a round cancels slow
    // drifts of the machine's load, so the headline is the median of those ratios.
    let ratios: Vec<f64> = stack.iter().zip(&bare).map(|(s, b)| s / b).collect();
    let ratio = median(&ratios);
    println!();
    println!(
        "## End to end: axum hello-world over loopback ({rounds} rounds of {:.1} s each way{})",
        duration.as_secs_f64(),
        if aa { ", A/A: both sides bare" } else { "" }
    );
    println!();
    println!("| server | requests/s (median) | per round |");
    println!("|---|---:|---|");
    println!("| bare | {:.0} | {} |", median(&bare), list(&bare, 0.0));
    println!(
        "| full stack | {:.0} | {} |",
        median(&stack),
        list(&stack, 0.0)
    );
    println!(
        "| stack / bare | {:.1} % | {} |",
        ratio * 100.0,
        list(&ratios, 100.0)
    );
    println!();
    println!(
        "Target: full stack >= 95 % of bare (median of per-round ratios): {:.1} % -> {}",
        ratio * 100.0,
        if ratio >= 0.95 { "met" } else { "MISSED" }
    );
}

/// `v` as a list; `scale` > 0 prints `v * scale` with one decimal (percentages).
fn list(v: &[f64], scale: f64) -> String {
    v.iter()
        .map(|x| {
            if scale > 0.0 {
                format!("{:.1}", x * scale)
            } else {
                format!("{x:.0}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Serves `router` from a fresh 2-worker runtime and loads it from a child process for
/// `duration`; returns the requests per second. A fresh runtime per measurement gives each
/// server the same start (no leftover tasks, the same worker placement).
fn measure(router: Router, duration: Duration) -> f64 {
    let workers: usize = std::env::var("BATTLEMENT_E2E_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
        addr
    });
    let rps = run_child(addr, duration);
    rt.shutdown_background();
    rps
}

/// Runs the load generator in a child process against `addr`; returns its requests per second.
fn run_child(addr: SocketAddr, duration: Duration) -> f64 {
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .env(TARGET_ENV, addr.to_string())
        .env(SECS_ENV, duration.as_millis().to_string())
        .output()
        .expect("spawn load generator");
    assert!(
        out.status.success(),
        "load generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut fields = text.split_whitespace();
    let responses: f64 = fields.next().and_then(|s| s.parse().ok()).expect("count");
    let nanos: f64 = fields.next().and_then(|s| s.parse().ok()).expect("nanos");
    responses / (nanos / 1e9)
}

// ---------------------------------------------------------------------------------------------
// The load generator (child process).

/// Pipelined keep-alive HTTP/1.1 client on one thread: prints `<responses> <nanos>`.
fn load(target: SocketAddr, duration: Duration) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Arc;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let counting = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| tokio::spawn(connection(target, counting.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(WARM_UP).await;
        counting.store(true, Relaxed);
        let start = Instant::now();
        tokio::time::sleep(duration).await;
        stop.store(true, Relaxed);
        let elapsed = start.elapsed();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("connection task");
        }
        println!("{} {}", total, elapsed.as_nanos());
    });
}

/// One connection: keeps `DEPTH` requests in flight; counts responses while `counting`.
async fn connection(
    target: SocketAddr,
    counting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let request = format!("GET / HTTP/1.1\r\nhost: {target}\r\n\r\n").into_bytes();
    let mut stream = tokio::net::TcpStream::connect(target)
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(&request.repeat(DEPTH))
        .await
        .expect("write");
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut counted = 0u64;
    loop {
        let k = stream.read(&mut buf[filled..]).await.expect("read");
        assert!(k > 0, "server closed the connection");
        filled += k;
        let mut done = 0;
        let mut at = 0;
        while let Some(len) = response_len(&buf[at..filled]) {
            assert!(
                buf[at..].starts_with(b"HTTP/1.1 200"),
                "unexpected response: {}",
                String::from_utf8_lossy(&buf[at..at + len.min(200)])
            );
            at += len;
            done += 1;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
        if counting.load(Relaxed) && !stop.load(Relaxed) {
            counted += done as u64;
        }
        if stop.load(Relaxed) {
            return counted;
        }
        if done > 0 {
            stream
                .write_all(&request.repeat(done))
                .await
                .expect("write");
        }
    }
}

/// The length of the complete response at the start of `buf`, if it is all there.
fn response_len(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).expect("ascii head");
    let body: usize = head
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .expect("content-length");
    (buf.len() >= head_end + body).then_some(head_end + body)
}
