//! End to end: an axum hello-world served bare and behind the full recommended stack, loaded
//! over loopback from a second process for a fixed time; prints requests per second for each and
//! the ratio to bare (target: the stack keeps ≥ 95 % of bare), and the server's CPU time per
//! request.
//!
//! - Servers: a fresh tokio runtime per measurement with one worker thread (see below),
//!   `axum::serve` on `127.0.0.1:0`, a single `GET /` route answering `Hello, World!`. Four of
//!   them:
//!   - `bare`;
//!   - `no-op layer`: the router with `Router::layer(Identity)`, a layer that does nothing: it
//!     shows what axum's layering itself costs (each route's boxed service is boxed once more and
//!     cloned per request), which any Tower layer added this way pays;
//!   - `full stack (Router::layer)`: the recommended stack (see the `stack!` macro:
//!     [`battlement::http_error::HttpErrorLayer`] so that errors become HTTP answers as axum
//!     needs, then breaker → bulkhead → timeout) added with `Router::layer`. The retry is left
//!     out: it must copy each request for a possible second attempt, and axum's `Body` cannot
//!     be copied (battlement's `CloneBody` has no impl for it, and its rules cannot be replaced
//!     with a send-once rule), so battlement's retry, like tower's, cannot wrap an axum router;
//!   - `full stack around the Router`: the same stack wrapped around the whole router and served
//!     as a plain `tower::Service` (hyper-util clones it per request).
//! - Load: the bench re-executes its own binary with `BATTLEMENT_E2E_TARGET` set; that child runs
//!   a small pipelined HTTP/1.1 client on a current-thread runtime: 4 keep-alive connections with
//!   32 requests in flight each, counting complete `200` responses for the measured time after a
//!   warm-up. Pipelining keeps the client cheap per request (cheaper than the server's), so with
//!   one server worker and one client thread on the 2 cores the server is the bottleneck and its
//!   per-request cost shows in requests/s. With 2 server workers (`BATTLEMENT_E2E_WORKERS=2`) the
//!   three threads share two cores, the client becomes a co-bottleneck and requests/s both
//!   understates server-side costs and swings by ±10 % from round to round.
//! - Pinning: with one server worker, the server process is pinned to CPU 0 and the load
//!   generator to CPU 1 (with `taskset`, when present; `BATTLEMENT_E2E_PIN=0` turns it off, and
//!   it is off with more workers), so the scheduler does not move them around between rounds.
//! - The second figure is the server process's CPU time (all threads, from
//!   `/proc/self/task/*/schedstat`) per response: the most direct measure of what the stack adds,
//!   and less disturbed by other load on the machine.
//! - A round measures every server back to back, rotating the order; headlines are medians over
//!   rounds of the within-round ratio (or difference) to bare, which cancels slow drifts in the
//!   machine's load. On a shared 2-core machine single rounds still swing by several percent:
//!   `BATTLEMENT_E2E_AA=1` serves bare everywhere (an A/A run) to show how much.
//!
//! Run: `cargo bench -p battlement --bench e2e` (6 rounds of 3 s per server, about 90 s), or
//! `-- --quick` (2 rounds of 1.5 s, about 20 s).

use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
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

/// The full recommended stack, outermost first, as a `ServiceBuilder` (a macro, so that one
/// expression serves both as a layer of `Router` and around it).
macro_rules! stack {
    () => {{
        use battlement::http_error::HttpErrorLayer;
        use battlement_breaker::{CircuitBreaker, CircuitBreakerLayer};
        use battlement_bulkhead::{Bulkhead, BulkheadLayer};
        use battlement_core::HttpClassifier;
        use battlement_timeout::TimeoutLayer;

        let breaker = CircuitBreaker::builder("e2e").build().expect("breaker");
        let bulkhead = Bulkhead::builder("e2e")
            .max_concurrent(1024)
            .max_queued(1024)
            .max_wait(Duration::from_secs(10))
            .build()
            .expect("bulkhead");
        tower::ServiceBuilder::new()
            .layer(HttpErrorLayer::<axum::body::Body>::new())
            .layer(CircuitBreakerLayer::new(&breaker).classifier(HttpClassifier::new()))
            .layer(BulkheadLayer::new(&bulkhead))
            .layer(TimeoutLayer::new(Duration::from_secs(10)))
    }};
}

/// Starts serving on a listener.
type Serve = fn(tokio::net::TcpListener) -> Pin<Box<dyn Future<Output = ()> + Send>>;

fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move { axum::serve(listener, router).await.expect("serve") })
}

/// Bare.
fn bare(listener: tokio::net::TcpListener) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    serve_router(listener, hello())
}

/// The same router behind a layer that does nothing (tower's `Identity`): what axum's own
/// layering costs (`Router::layer` wraps each route's boxed service in another box, cloned per
/// request), which any Tower layer added this way pays.
fn noop_layered(listener: tokio::net::TcpListener) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    serve_router(listener, hello().layer(tower::layer::util::Identity::new()))
}

/// The stack added with `Router::layer`, the usual axum idiom.
fn stack_as_router_layer(
    listener: tokio::net::TcpListener,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    serve_router(listener, hello().layer(stack!()))
}

/// The stack wrapped around the whole router (a `tower::Service` served as is): no extra box.
fn stack_around_router(
    listener: tokio::net::TcpListener,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let svc = stack!().service(hello());
    Box::pin(async move {
        axum::serve(listener, tower::make::Shared::new(svc))
            .await
            .expect("serve")
    })
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
    let pinned = pin_to_cpu(0);
    PINNED.store(pinned, std::sync::atomic::Ordering::Relaxed);
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, millis) = if quick { (2, 1500) } else { (6, 3000) };
    let duration = Duration::from_millis(millis);
    // An A/A run (every server bare) shows how noisy the machine is.
    let aa = std::env::var_os("BATTLEMENT_E2E_AA").is_some();

    let servers: [(&str, Serve); 4] = [
        ("bare", bare),
        ("no-op layer (Router::layer)", noop_layered),
        ("full stack (Router::layer)", stack_as_router_layer),
        ("full stack around the Router", stack_around_router),
    ];
    let n = servers.len();
    let mut rps = vec![Vec::new(); n];
    let mut cpu = vec![Vec::new(); n];
    for round in 0..rounds {
        eprintln!("e2e: round {}/{}", round + 1, rounds);
        // Rotate the order so no server always runs first.
        for k in 0..n {
            let i = (round + k) % n;
            let serve = if aa { bare } else { servers[i].1 };
            let m = measure(serve, duration);
            rps[i].push(m.rps);
            cpu[i].push(m.cpu_per_request_ns);
        }
    }
    // Each round measures every server back to back: a ratio within a round cancels slow
    // drifts of the machine's load, so the headline is the median of those ratios.
    let ratios = |v: &[Vec<f64>], i: usize| -> Vec<f64> {
        v[i].iter().zip(&v[0]).map(|(x, b)| x / b).collect()
    };
    println!();
    println!(
        "## End to end: axum hello-world over loopback ({rounds} rounds of {:.1} s per server{})",
        duration.as_secs_f64(),
        if aa { ", A/A: every server bare" } else { "" }
    );
    println!();
    println!(
        "{}",
        if pinned {
            "Server pinned to CPU 0, load generator to CPU 1 (taskset)."
        } else {
            "Not pinned to CPUs (taskset missing, fewer than 2 CPUs, or BATTLEMENT_E2E_PIN=0)."
        }
    );
    println!();
    println!("| server | requests/s | vs bare | server CPU per request | vs bare |");
    println!("|---|---:|---:|---:|---:|");
    for (i, (name, _)) in servers.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.1} % | {:.0} ns | {:+.0} ns |",
            name,
            median(&rps[i]),
            median(&ratios(&rps, i)) * 100.0,
            median(&cpu[i]),
            median(
                &cpu[i]
                    .iter()
                    .zip(&cpu[0])
                    .map(|(x, b)| x - b)
                    .collect::<Vec<_>>()
            ),
        );
    }
    println!();
    println!("Per round (requests/s; server CPU ns per request):");
    for (i, (name, _)) in servers.iter().enumerate() {
        println!("- {}: {}; {}", name, list(&rps[i], 0.0), list(&cpu[i], 0.0));
    }
    println!();
    for i in [2, 3] {
        let ratio = median(&ratios(&rps, i));
        println!(
            "Target: {} >= 95 % of bare requests/s (median of per-round ratios): {:.1} % -> {}",
            servers[i].0,
            ratio * 100.0,
            if ratio >= 0.95 { "met" } else { "MISSED" }
        );
    }
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

/// Serves with `serve` from a fresh runtime and loads it from a child process for
/// `duration`; returns requests/s and server CPU per request. A fresh runtime per measurement gives each
/// server the same start (no leftover tasks, the same worker placement).
fn measure(serve: Serve, duration: Duration) -> Measurement {
    let workers: usize = std::env::var("BATTLEMENT_E2E_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
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
        tokio::spawn(serve(listener));
        addr
    });
    let before = thread_cpu_nanos();
    let load = run_child(addr, duration);
    let cpu = cpu_since(&before);
    rt.shutdown_background();
    Measurement {
        rps: load.counted as f64 / (load.nanos as f64 / 1e9),
        cpu_per_request_ns: cpu as f64 / load.all as f64,
    }
}

/// What one measurement found.
struct Measurement {
    /// Complete responses per second in the measured window.
    rps: f64,
    /// The server process's CPU time (all threads, user and system) per response, over the
    /// load generator's whole run.
    cpu_per_request_ns: f64,
}

/// CPU time used so far by each of this process's live threads, by thread id: the first field
/// of `/proc/self/task/<tid>/schedstat` (ns on a CPU). Linux only; empty elsewhere.
fn thread_cpu_nanos() -> HashMap<String, u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return HashMap::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// CPU time the threads alive now used since `before`.
fn cpu_since(before: &HashMap<String, u64>) -> u64 {
    thread_cpu_nanos()
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// What the load generator reports.
struct Load {
    /// Responses in the measured window.
    counted: u64,
    /// The measured window's length.
    nanos: u64,
    /// Responses over the whole run, warm-up included.
    all: u64,
}

/// Pins this process (its main thread, and so every thread it starts later) to `cpu` with
/// `taskset`, when there are at least two CPUs and `BATTLEMENT_E2E_PIN` is not `0`; the load
/// generator then runs on the next CPU. With the server's worker and the load generator each on
/// a core of its own, the scheduler no longer moves them around, which is most of the noise
/// from round to round. Returns whether it pinned.
fn pin_to_cpu(cpu: usize) -> bool {
    if std::env::var("BATTLEMENT_E2E_PIN").is_ok_and(|v| v == "0")
        || std::env::var("BATTLEMENT_E2E_WORKERS").is_ok_and(|v| v != "1")
        || std::thread::available_parallelism().map_or(1, |n| n.get()) < 2
    {
        return false;
    }
    Command::new("taskset")
        .args(["-cp", &cpu.to_string(), &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether this process runs pinned (set once by `main`, see [`pin_to_cpu`]).
static PINNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn is_pinned() -> bool {
    PINNED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs the load generator in a child process against `addr` (on CPU 1 when the server is
/// pinned to CPU 0).
fn run_child(addr: SocketAddr, duration: Duration) -> Load {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = if is_pinned() {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("1").arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let out = cmd
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
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<u64>().expect("load generator output"));
    let mut next = || fields.next().expect("load generator output");
    Load {
        counted: next(),
        nanos: next(),
        all: next(),
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator (child process).

/// Pipelined keep-alive HTTP/1.1 client on one thread: prints `<counted> <nanos> <all>`.
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
        let (mut counted, mut all) = (0, 0);
        for t in tasks {
            let (c, a) = t.await.expect("connection task");
            counted += c;
            all += a;
        }
        println!("{} {} {}", counted, elapsed.as_nanos(), all);
    });
}

/// One connection: keeps `DEPTH` requests in flight; returns the responses counted while
/// `counting`, and all of them.
async fn connection(
    target: SocketAddr,
    counting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u64, u64) {
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
    let mut all = 0u64;
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
        all += done as u64;
        if stop.load(Relaxed) {
            return (counted, all);
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
