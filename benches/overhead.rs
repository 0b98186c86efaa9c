//! Per-call overhead of each Battlement layer, side by side with tower and the peer crates.
//!
//! Every row drives one service, built once before timing, in front of the same trivial inner
//! service (`tower::service_fn` returning `std::future::ready(Ok(()))`) with
//! `ready().await` + `call().await` on a current-thread tokio runtime. Every call succeeds, so
//! breakers stay closed, bulkheads have a free permit and timeouts never fire: this is the cost a
//! healthy call pays. The figure per row is criterion's median time per call; "over bare" is
//! that minus the `baseline` row measured in the same run.
//!
//! Configurations (see `benches/common/mod.rs`): count window of 100 calls, 50 % failure rate,
//! 10 calls minimum, 5 s open wait; time window of 10 s; slow calls: over 1 s, 50 %.
//!
//! Peers and what they cannot match:
//! - `tower-resilience-*` 0.14: configured equivalently in every row. Its breaker always times
//!   each call, slow-call detection or not.
//! - `failsafe` 1.3 is not a Tower layer: its futures breaker's `call(future)` is wrapped in a
//!   `service_fn` around the inner service. It has no count window and no slow-call detection:
//!   its closest policy (a success-rate moving average over a 10 s window, 10 calls minimum)
//!   stands in for the count and time rows.
//! - `recloser` 1.4 is not a Tower layer either: its `AsyncRecloser::call(future)` is wrapped in
//!   a `service_fn`. It has only a count window (a lock-free ring of 100 outcomes; no minimum-calls
//!   setting, it judges once the ring is full) and no slow-call detection: count row only.
//! - tower's `ConcurrencyLimit` and `Timeout` are the reference for the bulkhead and timeout
//!   (target: ours ≤ 1.1× theirs). Battlement's timeout arms its timer only when the inner call
//!   is still pending after its first poll (tower's creates one in every `call`), so the
//!   `timeout` row, whose inner call is ready at once, measures a call that needs no timer; the
//!   `timeout_armed` row uses an inner call that is pending once (it wakes itself), so every
//!   timeout there arms and drops a timer, and its "over bare" is taken from the `pending-once`
//!   baseline; tower's `Retry` runs a trivial policy (retry an error up to
//!   twice, no backoff, no budget).
//!
//! The `clock` group times two reads of the clock the breaker times calls with (the TSC through
//! `quanta`): no call is timed for less, so the slow-call row cannot cost less than the count
//! row plus that. The summary prints it under the slow-call target.
//!
//! Export rows (`battlement+export`, `battlement+histogram` in the breaker, bulkhead and timeout
//! groups) run the same layers registered with a `HealthRegistry` that a `MetricsService`
//! scrapes, the second with the breaker's latency histogram or the bulkhead's queue-wait
//! histogram on; the table after the main one sets them beside the rows without.
//!
//! Run: `cargo bench -p battlement --bench overhead` (criterion's flags apply: `-- --quick`,
//! `-- breaker`, `-- --measurement-time 2`). After criterion's own output it prints the summary
//! table, read back from criterion's `estimates.json` of the rows run in this process.
//!
//! `-- --instructions` times nothing: it counts each row's instructions per call with callgrind
//! (valgrind must be installed), running this binary once per row and call count with the same
//! services and the same drive loop (see `common/callgrind.rs`), and prints one table.

mod common;

use common::{callgrind, Window, PERMITS, TIMEOUT};
use criterion::Criterion;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// Rows run in this process: (group, id).
static RAN: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// `iters` calls through `svc`, each `ready().await` + `call().await`, all of which must succeed.
async fn drive<S>(svc: &mut S, iters: u64)
where
    S: Service<()>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..iters {
        let s = svc.ready().await.expect("ready");
        let r = s.call(()).await;
        black_box(r).expect("call succeeds");
    }
}

/// [`drive`] through `svc`, in the one function callgrind counts (see [`print_instructions`]).
#[inline(never)]
fn counted<S>(rt: &Runtime, svc: &mut S, calls: u64)
where
    S: Service<()>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(drive(svc, calls));
}

/// Times [`drive`] through `svc`. In a child run under callgrind it times nothing: it drives
/// `svc` in [`counted`] if it is the row asked for, and lists it if asked for the rows.
fn bench<S>(c: &mut Criterion, rt: &Runtime, group: &str, id: &str, mut svc: S)
where
    S: Service<()>,
    S::Error: std::fmt::Debug,
{
    if let Some((row, calls)) = callgrind::child() {
        if row == LIST_ROWS {
            println!("{group}/{id}");
        } else if row == format!("{group}/{id}") {
            rt.block_on(drive(&mut svc, 1000));
            counted(rt, &mut svc, calls);
            COUNTED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        return;
    }
    // Sanity: the call path under test is the success path (`drive` panics otherwise).
    rt.block_on(drive(&mut svc, 1000));
    let mut g = c.benchmark_group(group);
    let mut ran = false;
    g.bench_function(id, |b| {
        ran = true;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                drive(&mut svc, iters).await;
                start.elapsed()
            })
        })
    });
    g.finish();
    if ran {
        RAN.lock().unwrap().push((group.to_owned(), id.to_owned()));
    }
}

fn breakers(c: &mut Criterion, rt: &Runtime) {
    let rows = [
        ("breaker_count", Window::Count),
        ("breaker_time", Window::Time),
        ("breaker_slow", Window::Slow),
    ];
    for (group, window) in rows {
        let ours = common::ours_breaker(window);
        let svc = ServiceBuilder::new()
            .layer(battlement_breaker::CircuitBreakerLayer::new(&ours))
            .service(common::bare());
        bench(c, rt, group, "battlement", svc);

        let svc = common::tr_breaker(window).layer(common::bare());
        bench(c, rt, group, "tower-resilience", svc);

        if window != Window::Slow {
            let svc = common::failsafe_service(common::failsafe_breaker());
            bench(c, rt, group, "failsafe", svc);
        }
        if window == Window::Count {
            let svc = common::recloser_service(common::recloser_breaker());
            bench(c, rt, group, "recloser", svc);

            // Leaked (`CircuitBreaker::leak`): a call's guard copies a pointer to its thread's
            // shard instead of counting a reference on it.
            let leaked = common::ours_breaker(window).leak();
            let svc = ServiceBuilder::new()
                .layer(battlement_breaker::CircuitBreakerLayer::new(&leaked))
                .service(common::bare());
            bench(c, rt, group, "battlement-leaked", svc);
        }
    }
}

/// Two reads of the clock the breaker times calls with (the TSC, through `quanta`, as its
/// `HotClock` reads it): what timing a call costs at the least, whatever is done with the
/// latency. Context for the slow-call row, whose target it shares with the rest of the breaker.
fn clocks(c: &mut Criterion) {
    let clock = quanta::Clock::new();
    let mut g = c.benchmark_group("clock");
    let mut ran = false;
    g.bench_function("two-reads", |b| {
        ran = true;
        b.iter(|| {
            let start = clock.raw();
            black_box(clock.raw().wrapping_sub(black_box(start)))
        })
    });
    g.finish();
    if ran {
        RAN.lock()
            .unwrap()
            .push(("clock".to_owned(), "two-reads".to_owned()));
    }
}

fn bulkheads(c: &mut Criterion, rt: &Runtime) {
    let ours = common::ours_bulkhead();
    let svc = battlement_bulkhead::BulkheadLayer::new(&ours).layer(common::bare());
    bench(c, rt, "bulkhead", "battlement", svc);

    // Leaked (`Bulkhead::leak`): a permit copies a pointer to its thread's shard instead of
    // counting a reference on it.
    let leaked = common::ours_bulkhead().leak();
    let svc = battlement_bulkhead::BulkheadLayer::new(&leaked).layer(common::bare());
    bench(c, rt, "bulkhead", "battlement-leaked", svc);

    // The adaptive limit (Vegas) on the same permits: it also times each call and records the
    // sample (every call is sampled: `min_rtt` zero). Target: at most 1.5x the fixed row.
    let adaptive = battlement_bulkhead::Bulkhead::builder("bench-adaptive")
        .adaptive(
            battlement_bulkhead::Limit::vegas()
                .initial_limit(PERMITS)
                .max_limit(PERMITS),
        )
        .min_rtt(std::time::Duration::ZERO)
        .build()
        .unwrap();
    let svc = adaptive.layer().layer(common::bare());
    bench(c, rt, "bulkhead", "battlement-adaptive", svc);

    let svc = tower::limit::ConcurrencyLimitLayer::new(PERMITS).layer(common::bare());
    bench(c, rt, "bulkhead", "tower", svc);

    let svc = common::tr_bulkhead().layer(common::bare());
    bench(c, rt, "bulkhead", "tower-resilience", svc);
}

fn timeouts(c: &mut Criterion, rt: &Runtime) {
    // Timer futures need the runtime's time driver in scope when they are created.
    let _guard = rt.enter();
    let svc = battlement_timeout::TimeoutLayer::new(TIMEOUT).layer(common::bare());
    bench(c, rt, "timeout", "battlement", svc);

    let svc = tower::timeout::TimeoutLayer::new(TIMEOUT).layer(common::bare());
    bench(c, rt, "timeout", "tower", svc);

    let svc = common::tr_timeout().layer(common::bare());
    bench(c, rt, "timeout", "tower-resilience", svc);

    // The same with an inner call that is pending once, so every timeout arms its timer.
    let svc = battlement_timeout::TimeoutLayer::new(TIMEOUT).layer(common::pending_once());
    bench(c, rt, "timeout_armed", "battlement", svc);

    let svc = tower::timeout::TimeoutLayer::new(TIMEOUT).layer(common::pending_once());
    bench(c, rt, "timeout_armed", "tower", svc);

    let svc = common::tr_timeout().layer(common::pending_once());
    bench(c, rt, "timeout_armed", "tower-resilience", svc);
}

fn retries(c: &mut Criterion, rt: &Runtime) {
    let svc = common::ours_retry(false).into_layer().layer(common::bare());
    bench(c, rt, "retry", "battlement", svc);

    let svc =
        tower::retry::RetryLayer::new(common::TrivialPolicy { left: 2 }).layer(common::bare());
    bench(c, rt, "retry", "tower", svc);

    let svc = common::tr_retry(false).layer(common::bare());
    bench(c, rt, "retry", "tower-resilience", svc);

    let svc = common::ours_retry(true).into_layer().layer(common::bare());
    bench(c, rt, "retry_budget", "battlement", svc);

    // Leaked (`RetryLayer::leak`): a request copies a pointer to its stripe instead of counting
    // a reference on it.
    let svc = common::ours_retry(false)
        .into_layer()
        .leak()
        .layer(common::bare());
    bench(c, rt, "retry", "battlement-leaked", svc);
    let svc = common::ours_retry(true)
        .into_layer()
        .leak()
        .layer(common::bare());
    bench(c, rt, "retry_budget", "battlement-leaked", svc);

    let svc = common::tr_retry(true).layer(common::bare());
    bench(c, rt, "retry_budget", "tower-resilience", svc);
}

/// Rows with export enabled, beside the rows above: the component registered with a
/// `HealthRegistry` (its own per row: a registry holds one component of a kind and name) that a
/// `MetricsService` scrapes; `+histogram` rows also keep the latency histogram (breaker) or
/// the queue-wait histogram (bulkhead). Each exporter is scraped before and after the row, and
/// must show the calls it counted.
fn exported(c: &mut Criterion, rt: &Runtime) {
    use battlement::health::HealthRegistry;
    use battlement::metrics::{Format, MetricsService};

    let _guard = rt.enter();
    let scraped = |registry: &HealthRegistry, family: &str| {
        let text = MetricsService::new(registry)
            .render(Format::Text)
            .expect("scrape");
        assert!(text.contains(family), "{family} exported:\n{text}");
    };

    for (id, histogram) in [("battlement+export", false), ("battlement+histogram", true)] {
        let registry = HealthRegistry::new();
        let ours = common::ours_breaker_with(Window::Count, |b| {
            b.registry(&registry).histogram(histogram)
        });
        scraped(&registry, "battlement_circuit_breaker_calls");
        let svc = battlement_breaker::CircuitBreakerLayer::new(&ours).layer(common::bare());
        bench(c, rt, "breaker_count", id, svc);
        scraped(&registry, "battlement_circuit_breaker_calls");

        let registry = HealthRegistry::new();
        let ours = common::ours_bulkhead_with(|b| b.registry(&registry).histogram(histogram));
        scraped(&registry, "battlement_bulkhead_in_flight_calls");
        let svc = battlement_bulkhead::BulkheadLayer::new(&ours).layer(common::bare());
        bench(c, rt, "bulkhead", id, svc);
    }

    let registry = HealthRegistry::new();
    let layer = battlement_timeout::TimeoutLayer::builder("bench")
        .limit(TIMEOUT)
        .registry(&registry)
        .build()
        .expect("valid timeout");
    let svc = layer.layer(common::bare());
    bench(c, rt, "timeout", "battlement+export", svc);
    scraped(&registry, "battlement_timeout_calls");
}

fn stacks(c: &mut Criterion, rt: &Runtime) {
    let _guard = rt.enter();
    // The recommended order, outermost first: retry (with budget) → breaker → bulkhead →
    // timeout; ours composed by the facade's `ResilienceStack`.
    let svc = common::ours_stack().layer(common::bare());
    bench(c, rt, "stack", "battlement", svc);

    let svc = ServiceBuilder::new()
        .layer(common::tr_retry(true))
        .layer(common::tr_breaker(Window::Count))
        .layer(common::tr_bulkhead())
        .layer(common::tr_timeout())
        .service(common::bare());
    bench(c, rt, "stack", "tower-resilience", svc);
}

// ---------------------------------------------------------------------------------------------
// The summary table.

/// A row of the table: the group, its label, and its peers' ids.
struct Row {
    group: &'static str,
    label: &'static str,
    peers: &'static [&'static str],
    /// The `baseline` row its "over bare" is taken from: `bare`, or `pending-once` for rows
    /// whose inner call is pending once.
    base: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        group: "breaker_count",
        label: "breaker, closed, count window",
        peers: &["tower-resilience", "failsafe", "recloser"],
        base: "bare",
    },
    Row {
        group: "breaker_time",
        label: "breaker, closed, time window",
        peers: &["tower-resilience", "failsafe"],
        base: "bare",
    },
    Row {
        group: "breaker_slow",
        label: "breaker, closed, slow-call on",
        peers: &["tower-resilience"],
        base: "bare",
    },
    Row {
        group: "bulkhead",
        label: "bulkhead, permit free",
        peers: &["tower", "tower-resilience"],
        base: "bare",
    },
    Row {
        group: "timeout",
        label: "timeout",
        peers: &["tower", "tower-resilience"],
        base: "bare",
    },
    Row {
        group: "timeout_armed",
        label: "timeout, inner pending once (timer armed)",
        peers: &["tower", "tower-resilience"],
        base: "pending-once",
    },
    Row {
        group: "retry",
        label: "retry, first attempt ok",
        peers: &["tower", "tower-resilience"],
        base: "bare",
    },
    Row {
        group: "retry_budget",
        label: "retry with budget, first attempt ok",
        peers: &["tower-resilience"],
        base: "bare",
    },
    Row {
        group: "stack",
        label: "full stack (retry+budget→breaker→bulkhead→timeout)",
        peers: &["tower-resilience"],
        base: "bare",
    },
];

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    // `CARGO_TARGET_TMPDIR` is `<target>/tmp`.
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("criterion"))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Criterion's median ns per call for a row run in this process.
fn read_ns(results: &BTreeMap<(String, String), f64>, group: &str, id: &str) -> Option<f64> {
    results.get(&(group.to_owned(), id.to_owned())).copied()
}

fn load_results() -> BTreeMap<(String, String), f64> {
    let dir = criterion_dir();
    let mut out = BTreeMap::new();
    for (group, id) in RAN.lock().unwrap().iter() {
        let path = dir.join(group).join(id).join("new").join("estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("no estimates at {}", path.display());
            continue;
        };
        let json: serde_json::Value = serde_json::from_str(&text).expect("estimates.json");
        if let Some(ns) = json["median"]["point_estimate"].as_f64() {
            out.insert((group.clone(), id.clone()), ns);
        }
    }
    out
}

fn fmt_ns(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    }
}

fn print_table() {
    let results = load_results();
    let bare = read_ns(&results, "baseline", "bare");
    let pending = read_ns(&results, "baseline", "pending-once");
    println!();
    println!("## Overhead per call (median ns; criterion, current-thread runtime)");
    println!();
    println!(
        "baseline (bare service_fn): {} ns; baseline for the armed-timer row (inner pending once): {} ns",
        fmt_ns(bare),
        fmt_ns(pending)
    );
    println!();
    println!(
        "| layer | ours ns | ours over bare | best peer | peer ns | peer over bare | ours/peer | ours/baseline |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    for row in ROWS {
        let base = read_ns(&results, "baseline", row.base);
        let ours = read_ns(&results, row.group, "battlement");
        let best = row
            .peers
            .iter()
            .filter_map(|p| read_ns(&results, row.group, p).map(|ns| (*p, ns)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let over = |v: Option<f64>| match (v, base) {
            (Some(v), Some(b)) => format!("{:+.1}", v - b),
            _ => "-".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            fmt_ns(ours),
            over(ours),
            best.map_or("-", |b| b.0),
            fmt_ns(best.map(|b| b.1)),
            over(best.map(|b| b.1)),
            fmt_ratio(ours, best.map(|b| b.1)),
            fmt_ratio(ours, base),
        );
    }
    println!();
    println!("Every peer measured:");
    println!();
    println!("| layer | implementation | ns | over bare |");
    println!("|---|---|---:|---:|");
    for row in ROWS {
        let base = read_ns(&results, "baseline", row.base);
        // "battlement-leaked": the same layer leaked, for the rows that measure it.
        for id in ["battlement", "battlement-leaked"]
            .iter()
            .chain(row.peers.iter())
        {
            if let Some(ns) = read_ns(&results, row.group, id) {
                let over = base.map_or_else(|| "-".to_owned(), |b| format!("{:+.1}", ns - b));
                println!("| {} | {} | {:.1} | {} |", row.label, id, ns, over);
            }
        }
    }
    print_export(&results);
    print_targets(&results, bare);
}

/// The export rows beside the plain ones: what export enabled costs a call.
fn print_export(results: &BTreeMap<(String, String), f64>) {
    let get = |g: &str, id: &str| read_ns(results, g, id);
    let diff = |on: Option<f64>, off: Option<f64>| match (on, off) {
        (Some(on), Some(off)) => format!("{:+.1}", on - off),
        _ => "-".to_owned(),
    };
    println!();
    println!(
        "Export enabled (registered with a HealthRegistry a MetricsService scrapes), same run:"
    );
    println!();
    println!("| layer | export off ns | export on ns | difference | + histogram ns | difference |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (group, label) in [
        ("breaker_count", "breaker, closed, count window"),
        ("bulkhead", "bulkhead, permit free"),
        ("timeout", "timeout"),
    ] {
        let off = get(group, "battlement");
        let on = get(group, "battlement+export");
        let hist = get(group, "battlement+histogram");
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            fmt_ns(off),
            fmt_ns(on),
            diff(on, off),
            fmt_ns(hist),
            diff(hist, off),
        );
    }
}

fn print_targets(results: &BTreeMap<(String, String), f64>, bare: Option<f64>) {
    let get = |g: &str, id: &str| read_ns(results, g, id);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!("Targets:");
    if let (Some(ours), Some(peer)) = (
        get("breaker_count", "battlement"),
        get("breaker_count", "recloser"),
    ) {
        println!(
            "- closed breaker, count window, no slower than recloser: {:.1} vs {:.1} ns -> {}",
            ours,
            peer,
            verdict(ours <= peer)
        );
    }
    if let (Some(ours), Some(b)) = (get("breaker_slow", "battlement"), bare) {
        println!(
            "- slow-call detection on, <= 40 ns over bare: {:+.1} ns -> {}",
            ours - b,
            verdict(ours - b <= 40.0)
        );
        // What the target is up against on this host: the untimed breaker, plus the two clock
        // reads that timing a call takes.
        if let (Some(untimed), Some(reads)) = (
            get("breaker_count", "battlement"),
            get("clock", "two-reads"),
        ) {
            println!(
                "  (the same breaker untimed: {:+.1} ns; two reads of its clock alone: {:.1} ns; their sum: {:+.1} ns)",
                untimed - b,
                reads,
                untimed - b + reads
            );
        }
    }
    for group in ["bulkhead", "timeout", "timeout_armed"] {
        if let (Some(ours), Some(tower)) = (get(group, "battlement"), get(group, "tower")) {
            println!(
                "- {group} <= 1.1x tower's: {:.2}x -> {}",
                ours / tower,
                verdict(ours / tower <= 1.1)
            );
        }
    }
    // Issue 17: a first attempt's cost over the bare service, without and with a budget.
    for (group, limit) in [("retry", 3.0), ("retry_budget", 15.0)] {
        for id in ["battlement", "battlement-leaked"] {
            if let (Some(ours), Some(b)) = (get(group, id), bare) {
                println!(
                    "- {group} ({id}), first attempt ok, <= {limit} ns over bare: {:+.1} ns -> {}",
                    ours - b,
                    verdict(ours - b <= limit)
                );
            }
        }
    }
    if let (Some(ours), Some(b)) = (get("stack", "battlement"), bare) {
        println!(
            "- full stack <= 200 ns over bare: {:+.1} ns -> {}",
            ours - b,
            verdict(ours - b <= 200.0)
        );
    }
}

/// The row name that makes a child list every row instead of driving one.
const LIST_ROWS: &str = "?";

/// Set in a child once it has driven the row it was asked for.
static COUNTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Instructions per call of every row (`-- --instructions`): each row run twice under
/// callgrind by [`callgrind::per_call`], counted inside [`counted`].
fn print_instructions() -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    let listed = std::process::Command::new(exe)
        .env(callgrind::ENV, format!("{LIST_ROWS}=0"))
        .output()
        .expect("list the rows");
    assert!(listed.status.success(), "listing the rows failed");
    let rows: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| l.contains('/'))
        .map(str::to_owned)
        .collect();
    let counts: BTreeMap<String, f64> =
        match callgrind::count_rows(rows.iter().map(String::as_str), "overhead::counted*") {
            Ok(counts) => counts.into_iter().map(|(r, n)| (r.to_owned(), n)).collect(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
    println!();
    println!(
        "## Instructions per call (callgrind; the difference between {} and {} calls of the rows above, driven as criterion drives them)",
        callgrind::CALLS,
        2 * callgrind::CALLS
    );
    println!();
    println!("| layer | implementation | instructions | over its baseline |");
    println!("|---|---|---:|---:|");
    let groups = std::iter::once(("baseline", "baseline", None))
        .chain(ROWS.iter().map(|r| (r.group, r.label, Some(r.base))));
    for (group, label, base) in groups {
        for row in rows
            .iter()
            .filter(|r| r.split_once('/').map(|(g, _)| g) == Some(group))
        {
            let Some(n) = counts.get(row) else { continue };
            let id = &row[group.len() + 1..];
            let over = base
                .and_then(|b| counts.get(&format!("baseline/{b}")))
                .map_or_else(|| "-".to_owned(), |b| format!("{:+.0}", n - b));
            println!("| {label} | {id} | {n:.0} | {over} |");
        }
    }
    // Issue 17's targets in instructions.
    let get = |row: &str| counts.get(row).copied();
    println!();
    println!("Targets (instructions):");
    for (what, ours, peer) in [
        (
            "closed breaker, count window, at most recloser's",
            "breaker_count/battlement",
            "breaker_count/recloser",
        ),
        (
            "timeout with the timer armed, at most tower's",
            "timeout_armed/battlement",
            "timeout_armed/tower",
        ),
    ] {
        if let (Some(a), Some(b)) = (get(ours), get(peer)) {
            let verdict = if a <= b { "met" } else { "MISSED" };
            println!("- {what}: {a:.0} vs {b:.0} -> {verdict}");
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    if callgrind::asked() {
        return print_instructions();
    }
    let child = callgrind::child().is_some();
    let mut c = Criterion::default()
        .output_directory(&criterion_dir())
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    bench(&mut c, &rt, "baseline", "bare", common::bare());
    bench(
        &mut c,
        &rt,
        "baseline",
        "pending-once",
        common::pending_once(),
    );
    if !child {
        clocks(&mut c);
    }
    breakers(&mut c, &rt);
    bulkheads(&mut c, &rt);
    timeouts(&mut c, &rt);
    retries(&mut c, &rt);
    exported(&mut c, &rt);
    stacks(&mut c, &rt);

    if let Some((row, _)) = callgrind::child() {
        // Listed every row, drove the one asked for, or did not find it.
        return if row == LIST_ROWS || COUNTED.load(std::sync::atomic::Ordering::Relaxed) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(callgrind::NO_SUCH_ROW)
        };
    }
    c.final_summary();
    print_table();
    ExitCode::SUCCESS
}
