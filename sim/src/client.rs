//! The simulated clients: each one a battlement stack of its own over the pool, fed by an
//! open-loop Poisson arrival process.

use crate::fleet::{Fleet, Pool};
use crate::record::Recorder;
use crate::Config;
use battlement::breaker::{CircuitBreaker, CircuitBreakerLayer, SlidingWindow};
use battlement::bulkhead::{AdaptiveLayer, Bulkhead, Limit};
use battlement::core::error::BoxError;
use battlement::retry::{Backoff, Jitter, RetryLayer, RetryPolicy};
use battlement::timeout::TimeoutLayer;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

/// One client's stack, outermost first as the project recommends: retry (with its budget) →
/// circuit breaker → adaptive limit → per-try timeout → the pool. Layers a scenario does not
/// use are left out.
pub(crate) fn stack(
    config: &Config,
    client: u64,
    fleet: Rc<Fleet>,
) -> impl Service<
    (),
    Response = (),
    Error = BoxError,
    Future = impl Future<Output = Result<(), BoxError>>,
> + Clone
       + 'static {
    let seed = crate::mix(config.seed, client);
    let scenario = config.scenario;
    let retry = scenario.retries().then(|| {
        let mut policy = RetryPolicy::builder()
            .name("sim")
            .max_attempts(config.max_attempts)
            .backoff(Backoff::exponential(config.backoff_base, 2.0).with_cap(config.backoff_cap))
            .jitter(if scenario.jitter() {
                Jitter::Full
            } else {
                Jitter::None
            })
            .seed(crate::mix(seed, 1));
        if scenario.budget() {
            policy = policy.budget(config.budget_ratio, 0);
        }
        RetryLayer::new(policy.build().expect("valid retry settings"))
    });
    let breaker = scenario.breaker().then(|| {
        let breaker = CircuitBreaker::builder("sim")
            .sliding_window(SlidingWindow::Time {
                length: Duration::from_secs(10),
                buckets: 10,
            })
            .minimum_calls(5)
            .failure_rate_threshold(0.5)
            .open_wait(Duration::from_secs(2), 2.0, Duration::from_secs(30))
            .build()
            .expect("valid breaker settings");
        CircuitBreakerLayer::new(&breaker)
    });
    let adaptive = scenario.adaptive().then(|| {
        let limit = Bulkhead::builder("sim")
            .max_queued(0)
            .adaptive(
                Limit::aimd()
                    .initial_limit(4)
                    .min_limit(1)
                    .max_limit(20)
                    .backoff_ratio(0.5)
                    .timeout(config.timeout / 2),
            )
            .window_samples(3)
            .build()
            .expect("valid adaptive limit settings");
        AdaptiveLayer::new(&limit)
    });
    ServiceBuilder::new()
        .option_layer(retry)
        .option_layer(breaker)
        .option_layer(adaptive)
        .layer(TimeoutLayer::new(config.timeout))
        .service(Pool::new(fleet, crate::mix(seed, 2)))
        .map_err(Into::<BoxError>::into)
}

/// Sends every client's requests, at the instants of its Poisson process, until `end`: one task
/// drives all clients' arrival processes (a heap of their next arrivals), and each request runs
/// in a task of its own, through its client's stack.
pub(crate) async fn drive<S>(config: &Config, stacks: Vec<S>, recorder: Rc<Recorder>)
where
    S: Service<(), Response = (), Error = BoxError> + Clone + 'static,
{
    let origin = recorder.origin();
    let end = config.duration.as_nanos() as u64;
    let mean_gap = 1e9 / config.rate_per_client;
    let mut rngs: Vec<fastrand::Rng> = (0..stacks.len() as u64)
        .map(|c| fastrand::Rng::with_seed(crate::mix(crate::mix(config.seed, c), 3)))
        .collect();
    let gap = |rng: &mut fastrand::Rng| (-(1.0 - rng.f64()).ln() * mean_gap) as u64;
    let mut next: BinaryHeap<Reverse<(u64, usize)>> = rngs
        .iter_mut()
        .enumerate()
        .map(|(c, rng)| Reverse((gap(rng), c)))
        .collect();
    while let Some(Reverse((at, client))) = next.pop() {
        if at >= end {
            break;
        }
        let when = origin + Duration::from_nanos(at);
        if when > Instant::now() {
            tokio::time::sleep_until(when).await;
        }
        let stack = stacks[client].clone();
        let recorder = recorder.clone();
        tokio::task::spawn_local(async move {
            let start = Instant::now();
            recorder.request(start);
            let ok = stack.oneshot(()).await.is_ok();
            recorder.done(start, ok);
        });
        next.push(Reverse((at + gap(&mut rngs[client]), client)));
    }
}
