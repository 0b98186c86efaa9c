//! Unit tests: hedging driven through `tower::ServiceExt` under tokio's paused clock.

use crate::*;
use battlement_core::testing::RecordingSink;
use battlement_core::{ComponentKind, HealthSource, HealthStatus};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tower::{Layer, Service, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What an attempt does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Answers after this long.
    Ok(u64, &'static str),
    /// Fails after this long.
    Err(u64, &'static str),
    /// Never answers.
    Hang,
}

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

type Script = dyn Fn(u32, usize) -> Step + Send + Sync;

/// A scripted replica: `script(request, attempt)` says what the attempt-th attempt (0-based) of
/// a request does. It records when each attempt started and counts finished and dropped attempt
/// futures (a dropped, unfinished one is a cancellation the replica saw).
#[derive(Clone)]
struct Replica {
    script: Arc<Script>,
    attempts: Arc<Mutex<std::collections::HashMap<u32, usize>>>,
    calls: Arc<AtomicUsize>,
    starts: Arc<Mutex<Vec<Duration>>>,
    finished: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    t0: Instant,
}

impl Replica {
    /// Attempt `i` of every request follows `plan[i]` (the last step for later attempts).
    fn new(plan: Vec<Step>) -> Self {
        Self::with(move |_, attempt| plan[attempt.min(plan.len() - 1)])
    }

    fn with(script: impl Fn(u32, usize) -> Step + Send + Sync + 'static) -> Self {
        Replica {
            script: Arc::new(script),
            attempts: Arc::default(),
            calls: Arc::default(),
            starts: Arc::default(),
            finished: Arc::default(),
            dropped: Arc::default(),
            t0: Instant::now(),
        }
    }
    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }
    fn starts(&self) -> Vec<Duration> {
        self.starts.lock().unwrap().clone()
    }
    fn cancelled(&self) -> usize {
        self.dropped.load(SeqCst) - self.finished.load(SeqCst)
    }
}

impl Service<u32> for Replica {
    type Response = &'static str;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.calls.fetch_add(1, SeqCst);
        self.starts.lock().unwrap().push(self.t0.elapsed());
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(req).or_insert(0);
            *n += 1;
            *n - 1
        };
        let step = (self.script)(req, attempt);
        let finished = self.finished.clone();
        let guard = DropCount(self.dropped.clone());
        Box::pin(async move {
            let _guard = guard;
            let out = match step {
                Step::Ok(d, v) => {
                    sleep(ms(d)).await;
                    Ok(v)
                }
                Step::Err(d, msg) => {
                    sleep(ms(d)).await;
                    Err(Box::new(io::Error::other(msg)) as BoxError)
                }
                Step::Hang => std::future::pending().await,
            };
            finished.fetch_add(1, SeqCst);
            out
        })
    }
}

fn fixed(delay: u64, attempts: usize) -> HedgeLayer {
    HedgeLayer::builder()
        .delay(ms(delay))
        .max_attempts(attempts)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn no_hedge_when_the_first_attempt_answers_within_the_delay() {
    let replica = Replica::new(vec![Step::Ok(10, "first")]);
    let layer = fixed(50, 2);
    let start = Instant::now();
    assert_eq!(
        layer.layer(replica.clone()).oneshot(1).await.unwrap(),
        "first"
    );
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(replica.calls(), 1);
    let m = layer.handle().metrics();
    assert_eq!((m.requests, m.hedges_sent, m.hedges_won), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_hedge_goes_out_after_the_delay_and_the_first_success_wins() {
    let replica = Replica::new(vec![Step::Ok(1000, "first"), Step::Ok(10, "hedge")]);
    let layer = fixed(50, 2);
    let start = Instant::now();
    assert_eq!(
        layer.layer(replica.clone()).oneshot(1).await.unwrap(),
        "hedge"
    );
    assert_eq!(start.elapsed(), ms(60));
    assert_eq!(replica.starts(), [ms(0), ms(50)]);
    let m = layer.handle().metrics();
    assert_eq!((m.requests, m.hedges_sent, m.hedges_won), (1, 1, 1));

    // When the first attempt overtakes the hedge, it wins and the hedge does not count.
    let replica = Replica::new(vec![Step::Ok(70, "first"), Step::Ok(100, "hedge")]);
    let layer = fixed(50, 2);
    assert_eq!(
        layer.layer(replica.clone()).oneshot(1).await.unwrap(),
        "first"
    );
    let m = layer.handle().metrics();
    assert_eq!((m.hedges_sent, m.hedges_won), (1, 0));
    assert_eq!(replica.cancelled(), 1, "the slower hedge was dropped");
}

#[tokio::test(start_paused = true)]
async fn up_to_n_attempts_spaced_by_the_delay_and_losers_are_cancelled() {
    let replica = Replica::new(vec![
        Step::Hang,
        Step::Hang,
        Step::Ok(5, "third"),
        Step::Hang,
    ]);
    let layer = fixed(20, 4);
    let mut svc = layer.layer(replica.clone());
    let mut fut = std::pin::pin!(svc.ready().await.unwrap().call(1));
    let start = Instant::now();
    let out = fut.as_mut().await;
    assert_eq!(out.unwrap(), "third");
    assert_eq!(start.elapsed(), ms(45));
    assert_eq!(
        replica.starts(),
        [ms(0), ms(20), ms(40)],
        "no fourth attempt"
    );
    // The two hanging attempts were dropped as soon as the third answered, while the caller
    // still holds the finished future.
    assert_eq!(replica.cancelled(), 2);
    assert_eq!(fut.in_flight(), 0);
    assert_eq!(fut.attempts(), 3);
    let m = layer.handle().metrics();
    assert_eq!((m.hedges_sent, m.hedges_won), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn at_most_max_attempts() {
    let replica = Replica::new(vec![Step::Ok(500, "first"), Step::Ok(500, "hedge")]);
    let layer = fixed(20, 2);
    let start = Instant::now();
    assert_eq!(
        layer.layer(replica.clone()).oneshot(1).await.unwrap(),
        "first"
    );
    assert_eq!(start.elapsed(), ms(500));
    assert_eq!(replica.starts(), [ms(0), ms(20)]);
}

#[tokio::test(start_paused = true)]
async fn a_failure_waits_for_the_attempts_still_in_flight() {
    let replica = Replica::new(vec![Step::Err(30, "first failed"), Step::Ok(40, "hedge")]);
    let layer = fixed(20, 2);
    let start = Instant::now();
    assert_eq!(
        layer.layer(replica.clone()).oneshot(1).await.unwrap(),
        "hedge"
    );
    assert_eq!(start.elapsed(), ms(60));
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_last_error_is_returned() {
    let replica = Replica::new(vec![
        Step::Err(30, "first failed"),
        Step::Err(20, "hedge failed"),
    ]);
    let layer = fixed(20, 2);
    let start = Instant::now();
    let err = layer.layer(replica.clone()).oneshot(1).await.unwrap_err();
    assert_eq!(start.elapsed(), ms(40));
    let io = err
        .downcast_ref::<io::Error>()
        .expect("the inner error, boxed");
    assert_eq!(io.to_string(), "hedge failed");
}

#[tokio::test(start_paused = true)]
async fn no_hedge_after_the_only_attempt_in_flight_failed() {
    let replica = Replica::new(vec![Step::Err(5, "refused"), Step::Ok(1, "hedge")]);
    let layer = fixed(20, 3);
    let start = Instant::now();
    let err = layer.layer(replica.clone()).oneshot(1).await.unwrap_err();
    assert_eq!(err.to_string(), "refused");
    assert_eq!(start.elapsed(), ms(5));
    assert_eq!(replica.calls(), 1);
    assert_eq!(layer.handle().metrics().hedges_sent, 0);
}

#[tokio::test(start_paused = true)]
async fn zero_delay_sends_every_attempt_at_once() {
    let replica = Replica::new(vec![
        Step::Ok(30, "a"),
        Step::Ok(10, "b"),
        Step::Ok(20, "c"),
    ]);
    let layer = fixed(0, 3);
    assert_eq!(layer.layer(replica.clone()).oneshot(1).await.unwrap(), "b");
    assert_eq!(replica.starts(), [ms(0), ms(0), ms(0)]);
    assert_eq!(replica.cancelled(), 2);
}

#[tokio::test(start_paused = true)]
async fn one_attempt_means_no_hedging() {
    let replica = Replica::new(vec![Step::Ok(100, "only"), Step::Ok(1, "hedge")]);
    let layer = fixed(10, 1);
    assert_eq!(
        layer.layer(replica.clone()).oneshot(1).await.unwrap(),
        "only"
    );
    assert_eq!(replica.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_policy_decides_which_requests_are_hedged() {
    let replica = Replica::new(vec![Step::Ok(100, "first"), Step::Ok(1, "hedge")]);
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .hedge_if(|req: &u32| req % 2 == 0)
        .build()
        .unwrap();
    let svc = layer.layer(replica.clone());
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap(),
        "first",
        "odd: not hedged"
    );
    assert_eq!(replica.calls(), 1);
    assert_eq!(svc.oneshot(2).await.unwrap(), "hedge", "even: hedged");
    assert_eq!(replica.calls(), 3);
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn http_builder_hedges_idempotent_methods_only() {
    use http::{Method, Request};
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(move |req: Request<String>| {
        let n = c.fetch_add(1, SeqCst);
        async move {
            sleep(ms(if n % 2 == 0 { 100 } else { 5 })).await;
            Ok::<_, io::Error>(format!("{} #{n}", req.method()))
        }
    });
    let layer = HedgeLayer::http_builder().delay(ms(10)).build().unwrap();
    let svc = layer.layer(inner);
    let req = |m: Method| {
        Request::builder()
            .method(m)
            .uri("/x")
            .body(String::new())
            .unwrap()
    };
    for (method, hedged) in [
        (Method::GET, true),
        (Method::PUT, true),
        (Method::DELETE, true),
        (Method::HEAD, true),
        (Method::OPTIONS, true),
        (Method::TRACE, true),
        (Method::POST, false),
        (Method::PATCH, false),
    ] {
        calls.store(0, SeqCst);
        let out = svc.clone().oneshot(req(method.clone())).await.unwrap();
        let expected = if hedged { "#1" } else { "#0" };
        assert!(out.ends_with(expected), "{method}: {out}");
        assert_eq!(calls.load(SeqCst), if hedged { 2 } else { 1 }, "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_hedges_as_a_fraction_of_requests() {
    // Every request's first attempt is slow: without a budget each would be hedged.
    let replica = Replica::new(vec![Step::Ok(100, "first"), Step::Ok(5, "hedge")]);
    let layer = HedgeLayer::builder()
        .delay(ms(20))
        .budget(0.25)
        .build()
        .unwrap();
    let svc = layer.layer(replica.clone());
    let mut answers = Vec::new();
    for i in 0..20 {
        answers.push(svc.clone().oneshot(i).await.unwrap());
    }
    let m = layer.handle().metrics();
    assert_eq!(m.requests, 20);
    // Requests earn a quarter of a hedge each; the budget starts empty: the 4th, 8th, … get one.
    assert_eq!((m.hedges_sent, m.hedges_denied, m.hedges_won), (5, 15, 5));
    let hedged: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| **a == "hedge")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hedged, [3, 7, 11, 15, 19]);
    assert_eq!(m.budget_available, Some(0));
}

/// The exported families carry `metrics()`'s figures, each (family, labels) once, every family
/// in `FAMILIES`; the budget gauge only with a budget.
#[tokio::test(start_paused = true)]
async fn export_matches_metrics() {
    use battlement_core::testing::RecordingVisitor;

    let replica = Replica::new(vec![Step::Ok(100, "first"), Step::Ok(5, "hedge")]);
    let layer = HedgeLayer::builder()
        .delay(ms(20))
        .budget(0.25)
        .build()
        .unwrap();
    let svc = layer.layer(replica.clone());
    for i in 0..8 {
        svc.clone().oneshot(i).await.unwrap();
    }
    let handle = layer.handle();
    let m = handle.metrics();
    assert_eq!(
        (m.requests, m.hedges_sent, m.hedges_won, m.hedges_denied),
        (8, 2, 2, 6)
    );
    let mut out = RecordingVisitor::new();
    handle.export(&mut out);
    out.assert_families_in(FAMILIES);
    let hedges = |o| out.counter_value("battlement_hedge_hedges", &[("outcome", o)]);
    assert_eq!(out.counter_value("battlement_hedge_calls", &[]), m.requests);
    assert_eq!(
        (hedges("sent"), hedges("won"), hedges("denied")),
        (m.hedges_sent, m.hedges_won, m.hedges_denied)
    );
    assert_eq!(
        out.gauge_value("battlement_hedge_delay_seconds", &[]),
        0.020
    );
    assert_eq!(
        out.gauge_value("battlement_hedge_budget_available", &[]),
        m.budget_available.unwrap() as f64
    );

    let mut out = RecordingVisitor::new();
    fixed(20, 2).handle().export(&mut out);
    assert!(out.get("battlement_hedge_budget_available", &[]).is_none());
    assert_eq!(out.counter_value("battlement_hedge_calls", &[]), 0);
}

#[tokio::test(start_paused = true)]
async fn the_budget_saves_up_at_most_its_burst() {
    let fast = Replica::new(vec![Step::Ok(1, "fast")]);
    let layer = HedgeLayer::builder()
        .delay(ms(20))
        .budget(0.5)
        .budget_burst(2)
        .build()
        .unwrap();
    // 100 fast requests earn 50 hedges, but the bucket keeps 2.
    for i in 0..100 {
        layer.layer(fast.clone()).oneshot(i).await.unwrap();
    }
    assert_eq!(layer.handle().metrics().budget_available, Some(2));
    let slow = Replica::new(vec![Step::Ok(100, "first"), Step::Ok(5, "hedge")]);
    let svc = layer.layer(slow);
    let mut hedged = 0;
    for i in 0..4 {
        if svc.clone().oneshot(i).await.unwrap() == "hedge" {
            hedged += 1;
        }
    }
    // Tokens: 2 saved (capped), then +0.5 per request and -1 per hedge:
    // 2 → 1 → 0.5 → 0 → 0.5 (denied): three hedges.
    assert_eq!(hedged, 3);
    assert_eq!(layer.handle().metrics().hedges_denied, 1);
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_follows_recent_latency() {
    // 100 calls with seeded random latencies of 1..=100 ms, then the delay is their p95.
    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(7)));
    let latencies: Vec<u64> = {
        let mut r = fastrand::Rng::with_seed(7);
        (0..100).map(|_| r.u64(1..=100)).collect()
    };
    let slow_next = Arc::new(AtomicUsize::new(0));
    let (r, s) = (rng.clone(), slow_next.clone());
    let inner = tower::service_fn(move |_: u32| {
        // A call marked slow hangs for 10 s on its first attempt only.
        let slow = s.swap(0, SeqCst) == 1;
        let d = if slow {
            10_000
        } else {
            r.lock().unwrap().u64(1..=100)
        };
        async move {
            sleep(ms(d)).await;
            Ok::<_, io::Error>(d)
        }
    });
    let layer = HedgeLayer::builder()
        .latency_percentile(0.95)
        .latency_window(100)
        .min_samples(100)
        .initial_delay(Duration::from_secs(60))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(inner);
    for i in 0..100 {
        assert_eq!(handle.current_delay(), Duration::from_secs(60), "call {i}");
        let got = svc.clone().oneshot(i).await.unwrap();
        assert_eq!(got, latencies[i as usize]);
    }
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    let p95 = ms(sorted[94]);
    assert_eq!(handle.current_delay(), p95);
    assert_eq!(handle.metrics().latency_samples, 100);
    assert_eq!(handle.metrics().hedges_sent, 0);

    // A call stuck on its first attempt is hedged after exactly the p95.
    let next_latency = {
        let mut r = fastrand::Rng::with_seed(7);
        for _ in 0..100 {
            r.u64(1..=100);
        }
        r.u64(1..=100)
    };
    slow_next.store(1, SeqCst);
    let start = Instant::now();
    let got = svc.oneshot(100).await.unwrap();
    assert_eq!(got, next_latency, "the hedge answered");
    assert_eq!(start.elapsed(), p95 + ms(next_latency));
    assert_eq!(handle.metrics().hedges_won, 1);
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_is_clamped() {
    let inner = tower::service_fn(|_: u32| async {
        sleep(ms(500)).await;
        Ok::<_, io::Error>(())
    });
    let layer = HedgeLayer::builder()
        .latency_percentile(0.5)
        .latency_window(10)
        .min_samples(5)
        .initial_delay(Duration::from_secs(60))
        .max_delay(ms(200))
        .max_attempts(1)
        .build()
        .unwrap();
    let svc = layer.layer(inner);
    for i in 0..5 {
        svc.clone().oneshot(i).await.unwrap();
    }
    assert_eq!(layer.handle().current_delay(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn metrics_are_observable_through_a_registry() {
    let reg = RecordingSink::new();
    let layer = HedgeLayer::builder()
        .name("search")
        .delay(ms(20))
        .registry(&reg)
        .build()
        .unwrap();
    let replica = Replica::with(|req, attempt| match (req, attempt) {
        (1, 0) => Step::Ok(100, "first"),
        (1, _) => Step::Ok(5, "hedge"),
        _ => Step::Ok(1, "fast"),
    });
    let svc = layer.layer(replica);
    svc.clone().oneshot(1).await.unwrap();
    svc.oneshot(2).await.unwrap();
    let component = reg.registered()[0].0.clone();
    assert_eq!(component.name(), "search");
    let snap = component.snapshot();
    assert_eq!(snap.kind, ComponentKind::Hedge);
    assert_eq!(snap.status, HealthStatus::Pass);
    assert_eq!(snap.metric("requests"), Some(2.0));
    assert_eq!(snap.metric("hedges_sent"), Some(1.0));
    assert_eq!(snap.metric("hedges_won"), Some(1.0));
    assert_eq!(snap.metric("hedge_rate"), Some(0.5));
    assert_eq!(snap.metric("win_rate"), Some(1.0));
    assert_eq!(snap.metric("delay"), Some(20.0));
}

#[test]
fn the_builder_validates() {
    let setting = |b: HedgeBuilder| b.build().unwrap_err().setting();
    assert_eq!(setting(HedgeLayer::builder().name("")), "name");
    assert_eq!(
        setting(HedgeLayer::builder().max_attempts(17)),
        "max_attempts"
    );
    assert_eq!(
        setting(HedgeLayer::builder().latency_percentile(0.0)),
        "latency_percentile"
    );
    assert_eq!(
        setting(HedgeLayer::builder().latency_percentile(f64::NAN)),
        "latency_percentile"
    );
    assert_eq!(
        setting(HedgeLayer::builder().latency_window(0)),
        "latency_window"
    );
    assert_eq!(
        setting(HedgeLayer::builder().latency_window(10).min_samples(11)),
        "min_samples"
    );
    assert_eq!(
        setting(HedgeLayer::builder().min_delay(ms(10)).max_delay(ms(5))),
        "min_delay"
    );
    assert_eq!(setting(HedgeLayer::builder().budget(1.5)), "budget");
    assert_eq!(
        setting(HedgeLayer::builder().budget(0.1).budget_burst(0)),
        "budget_burst"
    );
    // A fixed delay does not use the percentile settings.
    assert!(HedgeLayer::builder()
        .delay(ms(5))
        .latency_window(0)
        .build()
        .is_ok());
    let err = HedgeLayer::builder()
        .name("x")
        .max_attempts(0)
        .build()
        .unwrap_err();
    assert_eq!(err.component(), "hedge `x`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_threads_count_every_request() {
    let layer = HedgeLayer::builder()
        .delay(Duration::from_secs(60))
        .build()
        .unwrap();
    let inner = tower::service_fn(|x: u32| async move { Ok::<_, io::Error>(x) });
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let svc = layer.layer(inner);
            tokio::spawn(async move { svc.oneshot(i).await.unwrap() })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), i as u32);
    }
    assert_eq!(layer.handle().metrics().requests, 400);
}

/// A reload applies `max_attempts` to calls that start after it (one in flight keeps its own),
/// and the delay to the next timer armed.
#[tokio::test(start_paused = true)]
async fn reload_applies_attempts_to_new_calls_and_the_delay_to_the_next_timer() {
    // Every attempt hangs but the fourth of a request, which answers at once.
    let replica = Replica::with(|_, attempt| {
        if attempt == 3 {
            Step::Ok(0, "fourth")
        } else {
            Step::Hang
        }
    });
    let layer = fixed(100, 4);
    let svc = layer.layer(replica.clone());
    // Call 1 starts under the old settings (100 ms apart, four attempts).
    let in_flight = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    sleep(ms(10)).await;
    layer
        .reload(&HedgeLayer::builder().delay(ms(30)).max_attempts(2))
        .unwrap();
    // Its armed timer fires at 100 ms; the next ones use the new 30 ms delay: attempts at 0,
    // 100, 130, 160, and it keeps its four attempts.
    assert_eq!(in_flight.await.unwrap().unwrap(), "fourth");
    assert_eq!(replica.starts(), [ms(0), ms(100), ms(130), ms(160)]);

    // A call after the reload makes at most two attempts, 30 ms apart.
    let t = Instant::now();
    let late = tokio::spawn(svc.clone().oneshot(2));
    sleep(ms(500)).await;
    assert!(!late.is_finished(), "its attempts hang");
    let starts: Vec<Duration> = replica.starts()[4..].to_vec();
    let offset = t - replica.t0;
    assert_eq!(starts, [offset, offset + ms(30)], "two attempts only");
    late.abort();
    let m = layer.handle().metrics();
    assert_eq!(m.reloads, 1);
    assert_eq!(layer.handle().max_attempts(), 2);
}

/// A budget reload changes the ratio from the next decision, keeps the tokens saved up and
/// can turn the budget on and off; an invalid reload changes nothing.
#[tokio::test(start_paused = true)]
async fn reload_changes_the_budget_and_refuses_invalid_settings() {
    let replica = Replica::new(vec![Step::Ok(100, "first"), Step::Ok(5, "hedge")]);
    let layer = HedgeLayer::builder()
        .delay(ms(20))
        .budget(0.25)
        .build()
        .unwrap();
    let svc = layer.layer(replica.clone());
    for i in 0..4 {
        svc.clone().oneshot(i).await.unwrap();
    }
    assert_eq!(layer.handle().metrics().hedges_sent, 1);
    // No budget: every call is hedged.
    layer.reload(&HedgeLayer::builder().delay(ms(20))).unwrap();
    assert_eq!(layer.handle().metrics().budget_available, None);
    for i in 4..8 {
        svc.clone().oneshot(i).await.unwrap();
    }
    assert_eq!(layer.handle().metrics().hedges_sent, 5);
    // A budget of one hedge per request, starting empty: the first call after it earns one.
    layer
        .reload(
            &HedgeLayer::builder()
                .delay(ms(20))
                .budget(1.0)
                .budget_burst(1),
        )
        .unwrap();
    assert_eq!(layer.handle().metrics().budget_available, Some(0));
    for i in 8..12 {
        svc.clone().oneshot(i).await.unwrap();
    }
    let m = layer.handle().metrics();
    assert_eq!((m.hedges_sent, m.hedges_denied), (9, 3));

    // Invalid: nothing changes, and every setting keeps serving.
    let before = layer.handle().metrics();
    let err = layer
        .reload(
            &HedgeLayer::builder()
                .delay(ms(1))
                .max_attempts(5)
                .budget(2.0),
        )
        .unwrap_err();
    assert_eq!(err.setting(), "budget");
    assert_eq!(layer.handle().current_delay(), ms(20));
    assert_eq!(layer.handle().max_attempts(), 2);
    assert_eq!(layer.handle().metrics(), before);
}

/// A layer built with a fixed delay can be reloaded to follow latency (its window is built
/// then), and a percentile reload recomputes over the latencies held.
#[tokio::test(start_paused = true)]
async fn reload_switches_between_fixed_and_percentile_delays() {
    let replica = Replica::with(|req, _| Step::Ok(u64::from(req), "ok"));
    let layer = fixed(500, 2);
    let svc = layer.layer(replica);
    svc.clone().oneshot(10).await.unwrap();
    assert_eq!(layer.handle().metrics().latency_samples, 0, "not timed");
    layer
        .reload(
            &HedgeLayer::builder()
                .latency_percentile(0.5)
                .latency_window(100)
                .min_samples(4)
                .initial_delay(ms(300)),
        )
        .unwrap();
    assert_eq!(layer.handle().current_delay(), ms(300), "initial delay");
    for latency in [10, 20, 30, 40] {
        svc.clone().oneshot(latency).await.unwrap();
    }
    assert_eq!(layer.handle().current_delay(), ms(20));
    layer
        .reload(
            &HedgeLayer::builder()
                .latency_percentile(1.0)
                .latency_window(100)
                .min_samples(4),
        )
        .unwrap();
    assert_eq!(layer.handle().current_delay(), ms(40), "recomputed at once");
    layer.reload(&HedgeLayer::builder().delay(ms(7))).unwrap();
    assert_eq!(layer.handle().current_delay(), ms(7));
    assert_eq!(layer.handle().metrics().latency_samples, 0);
}
