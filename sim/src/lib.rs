//! A fleet-scale simulation of battlement's layers, in one process, on tokio's paused clock.
//!
//! Thousands of clients, each with a real battlement stack of its own (retry with backoff,
//! jitter and budget; circuit breaker; adaptive concurrency limit; per-try timeout), send
//! open-loop Poisson traffic to a pool of simulated servers ([`tower::Service`]s with workers, a
//! bounded queue and a service-time distribution). A failure schedule takes capacity away for a
//! while; the run records, per simulated second, the requests sent, the attempts that reached
//! the servers, the goodput and the latency, and [`Summary`] reduces them to the numbers the
//! README's "At fleet scale" table shows.
//!
//! Everything runs on one thread (a current-thread runtime with its clock paused, which jumps to
//! the next timer whenever every task waits), with random numbers from seeded generators: the
//! same [`Config`] gives the same [`Report`].
//!
//! ```
//! use battlement_sim::{Config, Scenario};
//! use std::time::Duration;
//!
//! // 50 clients and one server for 20 simulated seconds, capacity down from 5 s to 15 s.
//! let mut config = Config::small(Scenario::RetriesJitter, 7);
//! (config.clients, config.servers, config.duration) = (50, 1, Duration::from_secs(20));
//! config.failure.start = Duration::from_secs(5);
//! config.failure.length = Duration::from_secs(10);
//! let report = battlement_sim::run(&config);
//! assert!(report.summary.amplification_drop > 1.0); // the retries add load
//! assert_eq!(report, battlement_sim::run(&config)); // and the same seed repeats it
//! ```

mod client;
mod fleet;
pub mod plot;
mod record;
mod summary;

pub use record::{Series, FINE_PER_SECOND};
pub use summary::{Summary, AFTER, HEALTHY_SECONDS, SPIKE_WINDOW};

use std::rc::Rc;
use std::time::Duration;

/// The six configurations of the client stack the simulation compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// 1: each request is one attempt.
    NoRetries,
    /// 2: up to three retries, exponential backoff, no jitter.
    Retries,
    /// 3: as 2, with full jitter.
    RetriesJitter,
    /// 4: as 3, with a retry budget (retries at most a ratio of requests).
    Budget,
    /// 5: as 4, with a circuit breaker under the retry.
    Breaker,
    /// 6: as 5, with an adaptive concurrency limit (AIMD) under the breaker.
    Adaptive,
}

impl Scenario {
    /// Every scenario, in order.
    pub const ALL: [Scenario; 6] = [
        Scenario::NoRetries,
        Scenario::Retries,
        Scenario::RetriesJitter,
        Scenario::Budget,
        Scenario::Breaker,
        Scenario::Adaptive,
    ];

    /// A short name (used for file names).
    pub fn slug(self) -> &'static str {
        match self {
            Scenario::NoRetries => "1-no-retries",
            Scenario::Retries => "2-retries",
            Scenario::RetriesJitter => "3-retries-jitter",
            Scenario::Budget => "4-budget",
            Scenario::Breaker => "5-breaker",
            Scenario::Adaptive => "6-adaptive",
        }
    }

    /// A title for tables and plots.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::NoRetries => "1. no retries",
            Scenario::Retries => "2. 3 retries, no jitter",
            Scenario::RetriesJitter => "3. 3 retries, full jitter",
            Scenario::Budget => "4. + 10 % retry budget",
            Scenario::Breaker => "5. + circuit breaker",
            Scenario::Adaptive => "6. + adaptive limit",
        }
    }

    fn retries(self) -> bool {
        self != Scenario::NoRetries
    }

    fn jitter(self) -> bool {
        !matches!(self, Scenario::NoRetries | Scenario::Retries)
    }

    fn budget(self) -> bool {
        matches!(
            self,
            Scenario::Budget | Scenario::Breaker | Scenario::Adaptive
        )
    }

    fn breaker(self) -> bool {
        matches!(self, Scenario::Breaker | Scenario::Adaptive)
    }

    fn adaptive(self) -> bool {
        self == Scenario::Adaptive
    }
}

/// How long a server takes to serve one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Exponentially distributed with this mean.
    Exponential(Duration),
    /// Log-normally distributed with this mean and this `sigma` (of the underlying normal).
    LogNormal {
        /// The mean service time.
        mean: Duration,
        /// The spread: the standard deviation of the logarithm.
        sigma: f64,
    },
}

impl ServiceTime {
    fn draw(&self, rng: &mut fastrand::Rng) -> Duration {
        let seconds = match *self {
            ServiceTime::Exponential(mean) => -(1.0 - rng.f64()).ln() * mean.as_secs_f64(),
            ServiceTime::LogNormal { mean, sigma } => {
                // Box-Muller; mu chosen so that the mean is `mean`.
                let (u1, u2) = (1.0 - rng.f64(), rng.f64());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let mu = mean.as_secs_f64().ln() - sigma * sigma / 2.0;
                sigma.mul_add(z, mu).exp()
            }
        };
        Duration::from_secs_f64(seconds.min(3600.0))
    }
}

/// The failure schedule: at `start`, every server keeps only `fraction` of its workers (and
/// fails calls at `error_rate`) for `length`; then capacity returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Failure {
    /// When capacity drops, from the start of the run.
    pub start: Duration,
    /// How long it stays down.
    pub length: Duration,
    /// The share of each server's workers that remain (rounded, at least one).
    pub fraction: f64,
    /// Whether the calls on the workers lost fail at once (a crash: connection reset), rather
    /// than finish.
    pub crash: bool,
    /// The share of calls that fail (connection reset, after their service time) while down.
    pub error_rate: f64,
}

/// A simulation run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The client stack.
    pub scenario: Scenario,
    /// The seed every random number derives from.
    pub seed: u64,
    /// How many clients (each with its own stack).
    pub clients: usize,
    /// How many servers.
    pub servers: usize,
    /// Simulated time the clients send for.
    pub duration: Duration,
    /// Each client's mean request rate (requests per second, Poisson).
    pub rate_per_client: f64,
    /// Workers per server (calls served at once).
    pub concurrency: usize,
    /// Calls a server queues beyond its busy workers; more are refused.
    pub queue_limit: usize,
    /// The service-time distribution.
    pub service_time: ServiceTime,
    /// The failure schedule.
    pub failure: Failure,
    /// The client's per-try timeout.
    pub timeout: Duration,
    /// Attempts in all when retrying (4: three retries).
    pub max_attempts: u32,
    /// The first retry's backoff (doubling on each retry).
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_cap: Duration,
    /// The retry budget's ratio of retries to requests.
    pub budget_ratio: f32,
}

impl Config {
    /// The full run: 10,000 clients at 0.6 requests/s against 100 servers of 10 workers with a
    /// mean service time of 100 ms (10,000 calls/s of capacity, 60 % used), for 10 simulated
    /// minutes; capacity drops to 30 % from minute 1 to minute 2.
    pub fn full(scenario: Scenario, seed: u64) -> Self {
        Config {
            scenario,
            seed,
            clients: 10_000,
            servers: 100,
            duration: Duration::from_secs(600),
            rate_per_client: 0.6,
            concurrency: 10,
            queue_limit: 200,
            service_time: ServiceTime::LogNormal {
                mean: Duration::from_millis(100),
                sigma: 0.5,
            },
            failure: Failure {
                start: Duration::from_secs(60),
                length: Duration::from_secs(60),
                fraction: 0.3,
                crash: true,
                error_rate: 0.0,
            },
            timeout: Duration::from_secs(1),
            max_attempts: 4,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(1),
            budget_ratio: 0.1,
        }
    }

    /// The same load per server at a twentieth of the scale, for 160 simulated seconds (drop at
    /// 30 s for 60 s): what the tests run.
    pub fn small(scenario: Scenario, seed: u64) -> Self {
        Config {
            clients: 500,
            servers: 5,
            duration: Duration::from_secs(160),
            failure: Failure {
                start: Duration::from_secs(30),
                ..Config::full(scenario, seed).failure
            },
            ..Config::full(scenario, seed)
        }
    }

    /// The servers' capacity in calls per second (workers ÷ mean service time).
    pub fn capacity(&self) -> f64 {
        let mean = match self.service_time {
            ServiceTime::Exponential(mean) | ServiceTime::LogNormal { mean, .. } => mean,
        };
        (self.servers * self.concurrency) as f64 / mean.as_secs_f64()
    }

    /// The offered load in requests per second.
    pub fn offered(&self) -> f64 {
        self.clients as f64 * self.rate_per_client
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The settings it ran with.
    pub config: Config,
    /// Its time series.
    pub series: Series,
    /// The numbers that sum it up.
    pub summary: Summary,
}

/// Runs one simulation to its end, on a current-thread runtime with a paused clock.
pub fn run(config: &Config) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let local = tokio::task::LocalSet::new();
    let seconds = config.duration.as_secs().max(1) as usize;
    let recorder = local.block_on(&runtime, async {
        let recorder = Rc::new(record::Recorder::new(seconds));
        let fleet = fleet::Fleet::new(
            config.servers,
            config.concurrency,
            config.queue_limit,
            config.service_time,
            config.seed,
            recorder.clone(),
        );
        let stacks: Vec<_> = (0..config.clients as u64)
            .map(|c| client::stack(config, c, fleet.clone()))
            .collect();
        tokio::task::spawn_local(fleet.clone().schedule(config.failure));
        client::drive(config, stacks, recorder.clone()).await;
        recorder
    });
    // Dropping the set drops the tasks still running, and with them their clones of the
    // recorder.
    drop(local);
    let series = Rc::into_inner(recorder)
        .expect("every task is gone")
        .into_series();
    let summary = Summary::new(config, &series);
    Report {
        config: config.clone(),
        series,
        summary,
    }
}

/// Mixes a seed and a stream number into a new seed (SplitMix64's finaliser).
pub(crate) fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
