//! The rate limiter per call, beside `tower_governor` 0.8 and tower's `RateLimit`, unkeyed and
//! keyed; then one shared unkeyed limiter hit by 1 and 2 tasks.
//!
//! Per call (criterion, as `overhead`): every row drives one service, built once, in front of
//! the same trivial inner service, with `ready().await` + `call().await` on a current-thread
//! runtime. `tower_governor` only takes `http::Request`s and needs a response type it can build
//! its own rejection from (`http::Response<axum::body::Body>`), so every row here, the `bare`
//! one too, sends an `http::Request<()>` carrying axum's `ConnectInfo<SocketAddr>` (one client
//! address: the keyed rows measure a key already tracked) and answers an empty response: the
//! request's construction is in every row, so compare rows with `bare`. Limits are set so no
//! call is ever limited (GCRA with a 1 ns emission interval and a burst of 10⁹; tower's
//! `RateLimit` with `u64::MAX` calls a second): this is the cost an admitted call pays.
//!
//! Contention (not criterion; as the `contention` bench): calls per second summed over 1 and 2
//! tasks on a 2-worker runtime, each task driving its own clone of the service, and the 2-vs-1
//! ratio. tower's `RateLimit` is not `Clone` (its state is per service), so it is not in it.
//!
//! Run: `cargo bench -p battlement --bench rate_limit` (criterion's flags apply: `-- --quick`).

use axum::extract::ConnectInfo;
use battlement::rate_limit::{ClientIp, RateLimit, RateLimitLayer};
use criterion::Criterion;
use http::{Request, Response};
use std::convert::Infallible;
use std::fmt::Debug;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::{GlobalKeyExtractor, PeerIpKeyExtractor};
use tower_governor::GovernorLayer;

type Body = axum::body::Body;

fn request() -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 5000))));
    req
}

fn inner() -> impl Service<
    Request<()>,
    Response = Response<Body>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Body>, Infallible>>,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|_: Request<()>| std::future::ready(Ok(Response::new(Body::empty()))))
}

/// Ours: 10⁹ calls a second, a burst of 10⁹ (never limited here).
fn ours() -> battlement::rate_limit::RateLimitBuilder {
    RateLimit::builder("bench").rate(1_000_000_000, Duration::from_secs(1))
}

async fn drive<S>(svc: &mut S, iters: u64)
where
    S: Service<Request<()>, Response = Response<Body>>,
    S::Error: Debug,
{
    for _ in 0..iters {
        let s = svc.ready().await.expect("ready");
        let res = s.call(request()).await.expect("call succeeds");
        assert!(black_box(res).status().is_success(), "limited");
    }
}

fn bench<S>(c: &mut Criterion, rt: &Runtime, id: &str, mut svc: S)
where
    S: Service<Request<()>, Response = Response<Body>>,
    S::Error: Debug,
{
    rt.block_on(drive(&mut svc, 1000));
    c.benchmark_group("rate_limit").bench_function(id, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                drive(&mut svc, iters).await;
                start.elapsed()
            })
        })
    });
}

fn per_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    bench(c, &rt, "bare", inner());

    let limit = ours().build().unwrap();
    bench(
        c,
        &rt,
        "battlement",
        RateLimitLayer::new(&limit).layer(inner()),
    );
    let global = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000_000)
        .key_extractor(GlobalKeyExtractor)
        .finish()
        .unwrap();
    bench(
        c,
        &rt,
        "tower_governor",
        GovernorLayer::new(global).layer(inner()),
    );
    bench(
        c,
        &rt,
        "tower",
        tower::limit::RateLimitLayer::new(u64::MAX, Duration::from_secs(1)).layer(inner()),
    );

    let keyed = ours().keyed(ClientIp).build().unwrap();
    bench(
        c,
        &rt,
        "battlement_keyed",
        RateLimitLayer::new(&keyed).layer(inner()),
    );
    let peer = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000_000)
        .key_extractor(PeerIpKeyExtractor)
        .finish()
        .unwrap();
    bench(
        c,
        &rt,
        "tower_governor_keyed",
        GovernorLayer::new(peer).layer(inner()),
    );
}

/// Calls per second through clones of `svc` driven by `tasks` tasks for `duration`.
fn throughput<S>(rt: &Runtime, svc: &S, tasks: usize, duration: Duration) -> f64
where
    S: Service<Request<()>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug + Send,
{
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let mut svc = svc.clone();
            let (go, stop) = (go.clone(), stop.clone());
            rt.spawn(async move {
                while !go.load(Relaxed) {
                    tokio::task::yield_now().await;
                }
                let mut calls = 0u64;
                while !stop.load(Relaxed) {
                    for _ in 0..256 {
                        svc.ready().await.expect("ready");
                        let res = svc.call(request()).await.expect("call");
                        assert!(res.status().is_success(), "limited");
                    }
                    calls += 256;
                    if calls % 4096 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                calls
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    go.store(true, Relaxed);
    let start = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Relaxed);
    let elapsed = start.elapsed();
    let total: u64 = rt.block_on(async {
        let mut total = 0;
        for h in handles {
            total += h.await.expect("task");
        }
        total
    });
    total as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn contention(quick: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let (duration, rounds) = if quick {
        (Duration::from_millis(300), 1)
    } else {
        (Duration::from_millis(600), 5)
    };
    let limit = ours().build().unwrap();
    let keyed = ours().keyed(ClientIp).build().unwrap();
    let global = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000_000)
        .key_extractor(GlobalKeyExtractor)
        .finish()
        .unwrap();
    type Run<'a> = Box<dyn Fn(usize) -> f64 + 'a>;
    let rt = &rt;
    let subjects: Vec<(&str, Run<'_>)> = vec![
        ("bare", {
            let s = inner();
            Box::new(move |n| throughput(rt, &s, n, duration))
        }),
        ("battlement", {
            let s = RateLimitLayer::new(&limit).layer(inner());
            Box::new(move |n| throughput(rt, &s, n, duration))
        }),
        ("battlement_keyed", {
            let s = RateLimitLayer::new(&keyed).layer(inner());
            Box::new(move |n| throughput(rt, &s, n, duration))
        }),
        ("tower_governor", {
            let s = GovernorLayer::new(global).layer(inner());
            Box::new(move |n| throughput(rt, &s, n, duration))
        }),
    ];
    let mut results = vec![(Vec::new(), Vec::new()); subjects.len()];
    for _ in 0..rounds {
        for (i, (_, run)) in subjects.iter().enumerate() {
            results[i].0.push(run(1));
            results[i].1.push(run(2));
        }
    }
    println!("\nrate limiter, calls per second (median of {rounds}), 1 → 2 tasks on 2 workers");
    println!("| implementation | 1 task | 2 tasks | 2 vs 1 |");
    println!("|---|---:|---:|---:|");
    for ((name, _), (one, two)) in subjects.iter().zip(results) {
        let (one, two) = (median(one), median(two));
        println!(
            "| {name} | {:.2} M | {:.2} M | {:.2}× |",
            one / 1e6,
            two / 1e6,
            two / one
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default().configure_from_args();
    per_call(&mut c);
    c.final_summary();
    contention(quick);
}
