//! The adaptive limit against a simulated dependency (paused time): its latency is
//! `base × max(1, in_flight / C)`, so it serves at most `C / base` calls a second and queues
//! beyond `C` calls in flight. Many clients call it in a loop through the limit (queued calls
//! wait without bound); the limit must settle within ±25 % of `C`, from far above and from 1,
//! and follow `C` when it halves.

use super::*;

const BASE: Duration = Duration::from_millis(10);
const C: usize = 60;
const CLIENTS: usize = 700;
/// How often the trace reads the limit.
const TICK: Duration = Duration::from_millis(10);

/// One phase of a run: how long, how many clients call, the dependency's capacity.
struct Phase {
    lasts: Duration,
    clients: usize,
    capacity: usize,
}

/// The limit's trace: (samples so far, limit), every tick, per phase.
type Trace = Vec<Vec<(u64, usize)>>;

fn adaptive(limit: impl Into<Limit>) -> AdaptiveLimit {
    Bulkhead::builder("sim")
        .max_queued(usize::MAX)
        .adaptive(limit)
        .min_window(Duration::from_millis(50))
        .max_window(Duration::from_millis(50))
        .min_rtt(Duration::ZERO)
        .build()
        .unwrap()
}

async fn run(limit: &AdaptiveLimit, phases: &[Phase]) -> Trace {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let capacity = Arc::new(AtomicUsize::new(phases[0].capacity));
    let active = Arc::new(AtomicUsize::new(phases[0].clients));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dependency = service_fn({
        let (in_flight, capacity) = (in_flight.clone(), capacity.clone());
        move |()| {
            let (in_flight, capacity) = (in_flight.clone(), capacity.clone());
            async move {
                let n = in_flight.fetch_add(1, SeqCst) + 1;
                let load = n as f64 / capacity.load(SeqCst) as f64;
                tokio::time::sleep(BASE.mul_f64(load.max(1.0))).await;
                in_flight.fetch_sub(1, SeqCst);
                Ok::<_, std::io::Error>(())
            }
        }
    });
    let svc = limit.layer().layer(dependency);
    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|i| {
            let (svc, active, stop) = (svc.clone(), active.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    if i < active.load(SeqCst) {
                        svc.clone().oneshot(()).await.unwrap();
                    } else {
                        tokio::time::sleep(BASE).await;
                    }
                }
            })
        })
        .collect();
    let mut trace = Vec::new();
    for phase in phases {
        capacity.store(phase.capacity, SeqCst);
        active.store(phase.clients, SeqCst);
        let mut points = Vec::new();
        let end = Instant::now() + phase.lasts;
        while Instant::now() < end {
            tokio::time::sleep(TICK).await;
            let m = limit.metrics();
            points.push((m.samples, m.limit));
        }
        trace.push(points);
    }
    stop.store(true, SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    trace
}

/// Samples (counted from the phase's start) after which the limit stayed within ±25 % of
/// `c` to the end of the phase; `None` if it never settled, or left the band again.
fn settled(points: &[(u64, usize)], first: u64, c: usize) -> Option<u64> {
    let within = |l: usize| 4 * l >= 3 * c && 4 * l <= 5 * c;
    let last_out = points.iter().rposition(|&(_, l)| !within(l));
    match last_out {
        None => Some(0),
        Some(i) if i + 1 < points.len() => Some(points[i].0 - first),
        Some(_) => None,
    }
}

/// Runs: settle from `start` at capacity C, then C halves. Returns the samples each phase
/// took to settle.
async fn settles(limit: AdaptiveLimit, warm_up: bool) -> (u64, u64, Trace) {
    let mut phases = Vec::new();
    if warm_up {
        phases.push(Phase {
            lasts: Duration::from_secs(1),
            clients: C / 3,
            capacity: C,
        });
    }
    phases.push(Phase {
        lasts: Duration::from_secs(30),
        clients: CLIENTS,
        capacity: C,
    });
    phases.push(Phase {
        lasts: Duration::from_secs(15),
        clients: CLIENTS,
        capacity: C / 2,
    });
    let trace = run(&limit, &phases).await;
    let n = trace.len();
    let start_of = |p: usize| {
        if p == 0 {
            0
        } else {
            trace[p - 1].last().unwrap().0
        }
    };
    let full = settled(&trace[n - 2], start_of(n - 2), C);
    let half = settled(&trace[n - 1], start_of(n - 1), C / 2);
    let show = |p: &Vec<(u64, usize)>| p.iter().step_by(20).map(|x| x.1).collect::<Vec<_>>();
    let m = limit.metrics();
    eprintln!(
        "{} full {:?} half {:?} {:?}",
        m.algorithm,
        full,
        half,
        (m.rtt_noload, m.rtt, m.updates, m.estimate)
    );
    for p in &trace {
        eprintln!("  {:?}", show(p));
    }
    (
        full.expect("settles at C"),
        half.expect("follows C/2"),
        trace,
    )
}

/// Vegas with Netflix's defaults, but for its probe: every `probe_multiplier × limit` windows
/// it takes the window's latency for the no-load one, and under the test's unbroken saturation
/// that latency is a loaded one, which Vegas then never corrects (it only lowers its no-load
/// latency when it sees a lower one). Real traffic ebbs; this test's does not, so it probes
/// rarely.
fn vegas() -> Vegas {
    Limit::vegas().max_limit(1000).probe_multiplier(1000)
}

/// Gradient2 with Netflix's defaults but the long window, given in windows: Netflix's 600 is 10
/// minutes of its 1 s windows; 12 000 of this test's 50 ms windows are as long. A short one
/// lets the long-term latency drift up to the loaded one, and the limit with it.
fn gradient2() -> Gradient2 {
    Limit::gradient2()
        .min_limit(1)
        .max_limit(1000)
        .long_window(12_000)
}

/// Settles within `full` samples at C and within `half` samples of C halving, and reports a
/// no-load latency within 10 % of the dependency's (`noload`: the algorithm estimates one that
/// a test can check; AIMD's is only the lowest window it saw).
async fn check(limit: AdaptiveLimit, warm_up: bool, full: u64, half: u64, noload: bool) {
    let (took_full, took_half, _) = settles(limit.clone(), warm_up).await;
    assert!(
        took_full <= full,
        "settled at C after {took_full} samples, bound {full}"
    );
    assert!(
        took_half <= half,
        "followed C/2 after {took_half} samples, bound {half}"
    );
    let m = limit.metrics();
    if noload {
        let ratio = m.rtt_noload.as_secs_f64() / BASE.as_secs_f64();
        assert!((0.9..=1.1).contains(&ratio), "{:?}", m.rtt_noload);
    }
    assert_eq!(m.bulkhead.max_concurrent, m.limit);
    assert!(m.updates > 0 && m.samples > 0);
}

fn aimd() -> Aimd {
    Limit::aimd()
        .min_limit(1)
        .max_limit(1000)
        .timeout(BASE.mul_f64(1.15))
}

// Stated bounds, samples to settle within ±25 % of C = 60 (then of 30 after it halves), with
// about 6 000 samples a second (C / BASE): measured 5 994 / 782 (AIMD from 600), 4 911 / 779
// (from 1), 82 214 / 4 232 (Vegas from 600: it steps down by log10(limit) a window),
// 852 / 4 232 (from 1), 6 914 / 1 682 (Gradient2 from 600), 6 071 / 1 531 (from 1).

#[tokio::test(start_paused = true)]
async fn aimd_settles_from_ten_times_capacity_and_follows_it_down() {
    check(
        adaptive(aimd().initial_limit(10 * C)),
        false,
        8_000,
        2_000,
        false,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn aimd_settles_from_one_and_follows_capacity_down() {
    check(
        adaptive(aimd().initial_limit(1)),
        false,
        8_000,
        2_000,
        false,
    )
    .await;
}

/// From far above, Vegas and Gradient2 first see light traffic (C / 3 clients for 1 s): a
/// delay-based algorithm learns the no-load latency from calls that did not queue.
#[tokio::test(start_paused = true)]
async fn vegas_settles_from_ten_times_capacity_and_follows_it_down() {
    check(
        adaptive(vegas().initial_limit(10 * C)),
        true,
        90_000,
        6_000,
        true,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn vegas_settles_from_one_and_follows_capacity_down() {
    check(
        adaptive(vegas().initial_limit(1)),
        false,
        2_000,
        6_000,
        true,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn gradient2_settles_from_ten_times_capacity_and_follows_it_down() {
    check(
        adaptive(gradient2().initial_limit(10 * C)),
        true,
        9_000,
        3_000,
        true,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn gradient2_settles_from_one_and_follows_capacity_down() {
    check(
        adaptive(gradient2().initial_limit(1)),
        false,
        8_000,
        3_000,
        true,
    )
    .await;
}

fn quick(limit: impl Into<Limit>) -> AdaptiveLimit {
    Bulkhead::builder("quick")
        .adaptive(limit)
        .min_window(Duration::from_millis(10))
        .max_window(Duration::from_millis(10))
        .window_samples(1)
        .min_rtt(Duration::ZERO)
        .build()
        .unwrap()
}

/// A call that takes `latency` and fails if `fail`.
async fn one(limit: &AdaptiveLimit, latency: Duration, fail: bool) -> Result<(), BoxError> {
    limit
        .layer()
        .layer(service_fn(move |()| async move {
            tokio::time::sleep(latency).await;
            if fail {
                Err(std::io::Error::other("boom"))
            } else {
                Ok(())
            }
        }))
        .oneshot(())
        .await
}

#[tokio::test(start_paused = true)]
async fn failed_calls_are_drops_and_back_the_limit_off() {
    let l = quick(
        Limit::aimd()
            .initial_limit(100)
            .min_limit(10)
            .backoff_ratio(0.5),
    );
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    // The first call past the window's end closes it: one drop in it halves the limit.
    let m = l.metrics();
    assert_eq!((m.samples, m.drops, m.updates, m.limit), (1, 1, 1, 50));
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    assert_eq!(l.limit(), 25);
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    assert_eq!(l.limit(), 12);
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    assert_eq!(l.limit(), 10, "never below min_limit");
    // Successes with less than half the limit in use leave it.
    one(&l, Duration::from_millis(20), false).await.unwrap();
    assert_eq!(l.limit(), 10);
}

#[tokio::test(start_paused = true)]
async fn cancelled_and_too_fast_calls_are_not_sampled() {
    let l = quick(Limit::vegas());
    let svc = l.layer().layer(service_fn(|()| {
        std::future::pending::<Result<(), std::io::Error>>()
    }));
    let call = svc.oneshot(());
    assert!(tokio::time::timeout(Duration::from_millis(30), call)
        .await
        .is_err());
    assert_eq!((l.metrics().samples, l.in_flight()), (0, 0));

    let fast = Bulkhead::builder("fast")
        .adaptive(Limit::vegas())
        .min_rtt(Duration::from_millis(2))
        .build()
        .unwrap();
    one(&fast, Duration::from_millis(1), false).await.unwrap();
    assert_eq!(fast.metrics().samples, 0);
    one(&fast, Duration::from_millis(3), false).await.unwrap();
    assert_eq!(fast.metrics().samples, 1);
}

#[tokio::test(start_paused = true)]
async fn a_window_waits_for_its_samples_and_its_time() {
    let l = Bulkhead::builder("w")
        .adaptive(Limit::aimd())
        .min_window(Duration::from_millis(100))
        .max_window(Duration::from_millis(100))
        .window_samples(3)
        .min_rtt(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..4 {
        one(&l, Duration::from_millis(10), false).await.unwrap();
    }
    assert_eq!(l.metrics().updates, 0, "the window has not lasted 100 ms");
    tokio::time::advance(Duration::from_millis(100)).await;
    one(&l, Duration::from_millis(10), false).await.unwrap();
    let m = l.metrics();
    assert_eq!((m.updates, m.rtt), (1, Duration::from_millis(10)));
}

#[tokio::test(start_paused = true)]
async fn metrics_health_and_export_show_the_limit_and_its_latency() {
    let l = quick(Limit::gradient2().initial_limit(30));
    one(&l, Duration::from_millis(7), false).await.unwrap();
    one(&l, Duration::from_millis(7), false).await.unwrap();
    let m = l.metrics();
    assert_eq!(
        (m.algorithm, m.limit, m.rtt_noload),
        ("gradient2", 30, Duration::from_millis(7))
    );

    let snap = HealthSource::snapshot(&l);
    let metric = |name: &str| {
        snap.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    assert_eq!(metric("max_concurrent"), Some(30.0));
    assert_eq!(metric("rtt_noload"), Some(7.0));
    assert_eq!(metric("samples"), Some(2.0));

    let mut out = battlement_core::testing::RecordingVisitor::new();
    l.export(&mut out);
    out.assert_families_in(FAMILIES);
    let algo = [("algorithm", "gradient2")];
    assert_eq!(
        out.gauge_value("battlement_bulkhead_limit_rtt_noload_seconds", &algo),
        0.007
    );
    assert_eq!(
        out.gauge_value("battlement_bulkhead_limit_estimate", &algo),
        30.0
    );
    assert_eq!(
        out.counter_value("battlement_bulkhead_limit_samples", &algo),
        2
    );
    // The first call ended before the window's end (10 ms): the second closed it.
    assert_eq!(
        out.counter_value("battlement_bulkhead_limit_updates", &algo),
        1
    );
    assert_eq!(
        out.gauge_value("battlement_bulkhead_max_concurrent", &[]),
        30.0
    );
    assert_eq!(
        out.gauge_value("battlement_bulkhead_queued_calls", &[]),
        0.0
    );
}

#[test]
fn invalid_settings_are_refused() {
    let err = |b: AdaptiveBuilder| b.build().unwrap_err().setting();
    let b = || Bulkhead::builder("bad");
    assert_eq!(err(b().adaptive(Limit::aimd().min_limit(0))), "min_limit");
    assert_eq!(
        err(b().adaptive(Limit::aimd().min_limit(10).max_limit(5))),
        "max_limit"
    );
    assert_eq!(
        err(b().adaptive(Limit::aimd().initial_limit(500))),
        "initial_limit"
    );
    assert_eq!(
        err(b().adaptive(Limit::aimd().backoff_ratio(1.0))),
        "backoff_ratio"
    );
    assert_eq!(
        err(b().adaptive(Limit::aimd().timeout(Duration::ZERO))),
        "timeout"
    );
    assert_eq!(
        err(b().adaptive(Limit::vegas().smoothing(0.0))),
        "smoothing"
    );
    assert_eq!(err(b().adaptive(Limit::vegas().alpha(5).beta(4))), "beta");
    assert_eq!(
        err(b().adaptive(Limit::gradient2().long_window(0))),
        "long_window"
    );
    assert_eq!(
        err(b().adaptive(Limit::vegas()).min_window(Duration::ZERO)),
        "min_window"
    );
    assert_eq!(
        err(b()
            .adaptive(Limit::vegas())
            .min_window(Duration::from_secs(2))),
        "max_window"
    );
    assert_eq!(
        err(b().adaptive(Limit::vegas()).window_samples(0)),
        "window_samples"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_retunes_the_algorithm_and_keeps_what_it_learned() {
    let settings = |ratio: f64, samples: u64| {
        Bulkhead::builder("quick")
            .max_queued(3)
            .adaptive(
                Limit::aimd()
                    .initial_limit(100)
                    .min_limit(10)
                    .backoff_ratio(ratio),
            )
            .min_window(Duration::from_millis(10))
            .max_window(Duration::from_millis(10))
            .window_samples(samples)
            .min_rtt(Duration::ZERO)
    };
    let l = settings(0.5, 1).build().unwrap();
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    assert_eq!(l.limit(), 50);
    // A new backoff ratio: the estimate (50) stays, the next drop backs off by 0.9.
    l.reload(&settings(0.9, 1)).unwrap();
    assert_eq!(
        (l.limit(), l.queued(), l.metrics().bulkhead.max_queued),
        (50, 0, 3)
    );
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    assert_eq!(l.limit(), 45);
    // The window now needs two samples: one drop alone no longer closes it.
    l.reload(&settings(0.9, 2)).unwrap();
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    assert_eq!(l.limit(), 45);
    one(&l, Duration::from_millis(20), true).await.unwrap_err();
    assert_eq!(l.limit(), 40);
    // Another algorithm, with a maximum under the limit: clamped at once, named in metrics.
    let vegas = Bulkhead::builder("quick").adaptive(Limit::vegas().initial_limit(20).max_limit(30));
    l.reload(&vegas).unwrap();
    let m = l.metrics();
    assert_eq!((m.algorithm, m.limit), ("vegas", 30));
    let queue = m.bulkhead.max_queued;
    assert_ne!(queue, 3, "the queue settings reload too");
    // Refused: nothing changes.
    let bad = Bulkhead::builder("quick").adaptive(Limit::vegas().min_limit(0));
    assert_eq!(l.reload(&bad).unwrap_err().setting(), "min_limit");
    let bad = Bulkhead::builder("quick")
        .max_queued(1)
        .adaptive(Limit::vegas())
        .window_samples(0);
    assert_eq!(l.reload(&bad).unwrap_err().setting(), "window_samples");
    assert_eq!((l.limit(), l.metrics().bulkhead.max_queued), (30, queue));
}
