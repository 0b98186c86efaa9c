//! Runs the fleet simulation and writes its table and plots.
//!
//! ```text
//! cargo run -p battlement-sim --release -- all            # the six full runs → docs/sim/
//! cargo run -p battlement-sim --release -- all --small    # the tests' smaller runs
//! cargo run -p battlement-sim --release -- 2-retries      # one scenario
//! ```

use battlement_sim::{Config, Report, Scenario};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEED: u64 = 2026;

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) if d >= Duration::from_secs(1) => format!("{:.1} s", d.as_secs_f64()),
        Some(d) => format!("{} ms", d.as_millis()),
        None => "–".to_owned(),
    }
}

/// CPU time of this thread (Linux: `/proc/thread-self/schedstat`), to report beside wall time,
/// which another load on the machine inflates.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn table(reports: &[(Report, Duration, Option<Duration>)]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | load amplification during / after | goodput during / after (req/s) | \
         p50 / p99 during | p50 / p99 after | time to recover | retry spike | CPU / wall time |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (r, wall, cpu) in reports {
        let s = &r.summary;
        let recover = match s.recovery {
            Some(d) => format!("{} s", d.as_secs()),
            None => format!(
                "not within {} s",
                (r.config.duration - r.config.failure.start - r.config.failure.length).as_secs()
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {:.2}× / {:.2}× | {:.0} ({:.0} %) / {:.0} ({:.0} %) | {} / {} | {} / {} | {} | {:.1} | {} / {:.0} s |",
            r.config.scenario.title(),
            s.amplification_drop,
            s.amplification_after,
            s.goodput_drop,
            100.0 * s.success_drop,
            s.goodput_after,
            100.0 * s.success_after,
            ms(s.latency_drop.0),
            ms(s.latency_drop.1),
            ms(s.latency_after.0),
            ms(s.latency_after.1),
            recover,
            s.spike,
            cpu.map_or("?".to_owned(), |c| format!("{:.1} s", c.as_secs_f64())),
            wall.as_secs_f64(),
        );
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let small = args.iter().any(|a| a == "--small");
    let which: Vec<Scenario> = match args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
    {
        None | Some("all") => Scenario::ALL.to_vec(),
        Some(name) => match Scenario::ALL.iter().find(|s| s.slug() == name) {
            Some(s) => vec![*s],
            None => {
                eprintln!(
                    "usage: battlement-sim [all | {}] [--small] [--out DIR]",
                    Scenario::ALL.map(Scenario::slug).join(" | ")
                );
                std::process::exit(2);
            }
        },
    };
    let out: PathBuf = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sim"));
    std::fs::create_dir_all(&out).expect("create the output directory");

    let mut reports = Vec::new();
    for scenario in which {
        let config = if small {
            Config::small(scenario, SEED)
        } else {
            Config::full(scenario, SEED)
        };
        let started = Instant::now();
        let cpu_started = cpu_time();
        let report = battlement_sim::run(&config);
        let wall = started.elapsed();
        let cpu = cpu_time().zip(cpu_started).map(|(b, a)| b - a);
        let attempts: u64 = report.series.attempts.iter().sum();
        let requests: u64 = report.series.requests.iter().sum();
        eprintln!(
            "{}: {requests} requests, {attempts} attempts, {:.1} s of CPU time, {:.1} s of wall time",
            scenario.title(),
            cpu.unwrap_or_default().as_secs_f64(),
            wall.as_secs_f64()
        );
        let png = out.join(format!("{}.png", scenario.slug()));
        battlement_sim::plot::draw(&report, &png).expect("draw the plot");
        reports.push((report, wall, cpu));
    }
    let c = &reports[0].0.config;
    let mut md = format!(
        "<!-- written by `cargo run -p battlement-sim --release -- all{}`; seed {SEED} -->\n\n\
         {} clients × {} requests/s (Poisson) = {:.0} requests/s offered; {} servers × {} workers, \
         mean service time {:?}, queue {} = {:.0} calls/s of capacity; capacity drops to {:.0} % \
         at {} s for {} s; per-try timeout {:?}.\n\n",
        if small { " --small" } else { "" },
        c.clients,
        c.rate_per_client,
        c.offered(),
        c.servers,
        c.concurrency,
        match c.service_time {
            battlement_sim::ServiceTime::Exponential(m)
            | battlement_sim::ServiceTime::LogNormal { mean: m, .. } => m,
        },
        c.queue_limit,
        c.capacity(),
        100.0 * c.failure.fraction,
        c.failure.start.as_secs(),
        c.failure.length.as_secs(),
        c.timeout,
    );
    md.push_str(&table(&reports));
    let path = out.join(if small {
        "results-small.md"
    } else {
        "results.md"
    });
    std::fs::write(&path, &md).expect("write the table");
    println!("{md}");
}
