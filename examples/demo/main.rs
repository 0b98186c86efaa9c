//! The battlement demo: a flaky upstream, a gateway protected by a resilience stack, and a load
//! driver that prints what every layer does, second by second.
//!
//! ```sh
//! cargo run --example demo                       # 15 s, 200 req/s, 16 workers
//! cargo run --example demo -- --duration 30 --rate 500 --concurrency 32
//! cargo run --example demo -- --hold             # then keep the gateway up (Ctrl-C ends it)
//! ```
//!
//! It prints the address of the live dashboard (`http://127.0.0.1:PORT/battlement/`): open it
//! to watch the breaker open and close, the bulkhead fill and the events as they happen.

mod app;

use std::io::IsTerminal;
use std::time::Duration;

#[allow(clippy::exit, reason = "a command-line usage error ends the program")]
fn usage() -> ! {
    eprintln!(
        "usage: demo [--duration SECS] [--rate REQ_PER_SEC] [--concurrency N] [--plain] [--hold]"
    );
    std::process::exit(2)
}

fn parse() -> (app::Options, bool) {
    let mut opts = app::Options {
        live: std::io::stdout().is_terminal(),
        ..app::Options::default()
    };
    let mut hold = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--duration" => {
                opts.duration = Duration::from_secs_f64(value().parse().unwrap_or_else(|_| usage()))
            }
            "--rate" => opts.rate = value().parse().unwrap_or_else(|_| usage()),
            "--concurrency" => opts.concurrency = value().parse().unwrap_or_else(|_| usage()),
            "--plain" => opts.live = false,
            "--hold" => hold = true,
            _ => usage(),
        }
    }
    if opts.concurrency == 0 || opts.rate == 0 || opts.duration.is_zero() {
        usage()
    }
    (opts, hold)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (opts, hold) = parse();
    let report = app::run(opts).await?;
    let saw = |to: &str| report.transitions.iter().any(|(_, t)| t.as_str() == to);
    println!(
        "story: opened {} / half-opened {} / closed again {}; {} of {} requests rejected without \
         reaching the upstream ({} hits); final health HTTP {} ({} bytes of JSON)",
        saw("open"),
        saw("half_open"),
        saw("closed"),
        report.counts.breaker + report.counts.bulkhead,
        report.counts.sent,
        report.upstream_hits,
        report.health_status,
        report.health_json.len(),
    );
    println!(
        "dashboard: {} ({} events listed, {} bytes of snapshot)",
        report.dashboard_url,
        report.dashboard_events.len(),
        report.dashboard_json.len()
    );
    if hold {
        println!("holding the gateway up; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
