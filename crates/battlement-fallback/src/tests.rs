//! Unit tests: the fallback layer and the fallback chain, driven through `tower::ServiceExt`
//! under tokio's paused clock.

use crate::*;
use battlement_core::error::{failure_kind, BreakerOpen};
use battlement_core::testing::RecordingSink;
use battlement_core::{ComponentKind, FailureKind, HealthSource, HealthStatus, Outcome};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::advance;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

// ----- helpers -------------------------------------------------------------------------------

/// What a test upstream answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `Reply { status: 200 }`.
    Ok,
    /// `Reply { status }`, e.g. 503 (a failure) or 404 (ignored).
    Status(u16),
    /// An `io::Error` of this kind.
    Fail(io::ErrorKind),
    /// A rejection by a breaker.
    Open,
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone, PartialEq)]
struct Reply {
    from: &'static str,
    req: u32,
    status: u16,
}

/// Counts a future's drops, finished or not.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A scripted upstream that counts its calls, finished calls and dropped futures.
#[derive(Clone)]
struct Upstream {
    name: &'static str,
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Upstream {
    fn new(name: &'static str, mode: Mode) -> Self {
        Upstream {
            name,
            mode: Arc::new(Mutex::new(mode)),
            calls: Arc::default(),
            finished: Arc::default(),
            dropped: Arc::default(),
        }
    }
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }
    /// Futures dropped before they finished: cancellations the upstream saw.
    fn cancelled(&self) -> usize {
        self.dropped.load(SeqCst) - self.finished.load(SeqCst)
    }
}

impl Service<u32> for Upstream {
    type Response = Reply;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.calls.fetch_add(1, SeqCst);
        let mode = *self.mode.lock().unwrap();
        let from = self.name;
        let finished = self.finished.clone();
        let guard = DropCount(self.dropped.clone());
        Box::pin(async move {
            let _guard = guard;
            let reply = |status| Reply { from, req, status };
            let out: Result<Reply, BoxError> = match mode {
                Mode::Ok => Ok(reply(200)),
                Mode::Status(s) => Ok(reply(s)),
                Mode::Fail(kind) => Err(Box::new(io::Error::from(kind))),
                Mode::Open => Err(Box::new(BreakerOpen::new(
                    from.into(),
                    Some(Duration::from_secs(1)),
                ))),
                Mode::Hang => std::future::pending().await,
            };
            finished.fetch_add(1, SeqCst);
            out
        })
    }
}

/// 5xx fail, 404 is ignored, the rest succeed; errors by the default rules.
#[derive(Debug, Clone, Copy)]
struct StatusClassifier;
impl battlement_core::Classify<Reply, BoxError> for StatusClassifier {
    fn classify(&self, result: Result<&Reply, &BoxError>) -> Outcome {
        match result {
            Ok(r) => match r.status {
                500..=599 => Outcome::Failure(FailureKind::ServerError),
                404 => Outcome::Ignored,
                _ => Outcome::Success,
            },
            Err(e) => Outcome::Failure(failure_kind(&**e)),
        }
    }
}

fn status_classifier() -> StatusClassifier {
    StatusClassifier
}

fn refused() -> Mode {
    Mode::Fail(io::ErrorKind::ConnectionRefused)
}

// ----- fallback layer ------------------------------------------------------------------------

#[tokio::test]
async fn value_answers_failed_calls_and_successes_pass_through() {
    let up = Upstream::new("up", refused());
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::value(Reply {
            from: "fallback",
            req: 0,
            status: 200,
        }))
        .service(up.clone());
    assert_eq!(svc.clone().oneshot(1).await.unwrap().from, "fallback");
    up.set(Mode::Ok);
    let r = svc.oneshot(2).await.unwrap();
    assert_eq!((r.from, r.req), ("up", 2));
    assert_eq!(up.calls(), 2);
}

#[tokio::test]
async fn function_sees_the_error_and_its_kind() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::from_fn(
            move |input: FallbackInput<Reply>| {
                let err = input.error().expect("an error");
                let io = err
                    .downcast_ref::<io::Error>()
                    .expect("the inner error, boxed");
                s.lock().unwrap().push((input.kind(), io.kind()));
                Ok(Reply {
                    from: "fn",
                    req: 0,
                    status: 200,
                })
            },
        ))
        .service(Upstream::new("up", Mode::Fail(io::ErrorKind::TimedOut)));
    assert_eq!(svc.oneshot(1).await.unwrap().from, "fn");
    assert_eq!(
        *seen.lock().unwrap(),
        [(FailureKind::Timeout, io::ErrorKind::TimedOut)]
    );
}

#[tokio::test]
async fn function_sees_a_response_classified_as_failure() {
    let svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(|input: FallbackInput<Reply>| {
                assert_eq!(input.kind(), FailureKind::ServerError);
                let original = input.response().expect("the 503 response").clone();
                Ok(Reply {
                    from: "fn",
                    req: original.req,
                    status: original.status - 300,
                })
            })
            .classifier(status_classifier()),
        )
        .service(Upstream::new("up", Mode::Status(503)));
    assert_eq!(
        svc.oneshot(9).await.unwrap(),
        Reply {
            from: "fn",
            req: 9,
            status: 203
        }
    );
}

#[tokio::test]
async fn ignored_outcomes_and_unclassified_responses_do_not_fall_back() {
    let fallbacks = Arc::new(AtomicUsize::new(0));
    let f = fallbacks.clone();
    let up = Upstream::new("up", Mode::Status(404));
    let svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(move |input: FallbackInput<Reply>| {
                f.fetch_add(1, SeqCst);
                input.into_result()
            })
            .classifier(status_classifier()),
        )
        .service(up.clone());
    assert_eq!(svc.clone().oneshot(1).await.unwrap().status, 404);
    // A 503 falls back (this function hands the response back unchanged).
    up.set(Mode::Status(503));
    assert_eq!(svc.oneshot(1).await.unwrap().status, 503);
    assert_eq!(fallbacks.load(SeqCst), 1);
}

#[tokio::test]
async fn breaker_rejection_falls_back_by_default_and_can_be_excluded() {
    let up = Upstream::new("payments", Mode::Open);
    let value = Reply {
        from: "cache",
        req: 0,
        status: 200,
    };
    let svc = FallbackLayer::value(value.clone()).layer(up.clone());
    assert_eq!(svc.oneshot(1).await.unwrap(), value);

    let svc = FallbackLayer::value(value)
        .on_rejected(false)
        .layer(up.clone());
    let err = svc.oneshot(1).await.unwrap_err();
    let open = err
        .downcast_ref::<BreakerOpen>()
        .expect("the rejection, unchanged");
    assert_eq!(open.name(), "payments");
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    // Other failures still fall back with `on_rejected(false)`.
    up.set(refused());
    let svc = FallbackLayer::value(Reply {
        from: "cache",
        req: 0,
        status: 200,
    })
    .on_rejected(false)
    .layer(up);
    assert_eq!(svc.oneshot(1).await.unwrap().from, "cache");
}

#[tokio::test]
async fn fallback_service_gets_a_clone_of_the_request() {
    let primary = Upstream::new("primary", refused());
    let backup = Upstream::new("backup", Mode::Ok);
    let svc = FallbackLayer::service(backup.clone()).layer(primary.clone());
    let r = svc.clone().oneshot(77).await.unwrap();
    assert_eq!((r.from, r.req), ("backup", 77));
    assert_eq!((primary.calls(), backup.calls()), (1, 1));

    // Not called when the primary answers.
    primary.set(Mode::Ok);
    assert_eq!(svc.clone().oneshot(78).await.unwrap().from, "primary");
    assert_eq!(backup.calls(), 1);

    // When the fallback fails too, its error is the call's.
    primary.set(Mode::Open);
    backup.set(Mode::Fail(io::ErrorKind::ConnectionReset));
    let err = svc.oneshot(79).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_cancels_the_inner_call_and_never_falls_back() {
    let up = Upstream::new("up", Mode::Hang);
    let backup = Upstream::new("backup", Mode::Ok);
    let mut svc = FallbackLayer::service(backup.clone()).layer(up.clone());
    let fut = svc.ready().await.unwrap().call(1);
    let res = tokio::time::timeout(Duration::from_secs(1), fut).await;
    assert!(res.is_err(), "the inner call hangs");
    assert_eq!(up.cancelled(), 1, "the inner future was dropped");
    assert_eq!(backup.calls(), 0);
}

// ----- fallback chain ------------------------------------------------------------------------

struct Fixture {
    primary: Upstream,
    backup: Upstream,
    chain: FallbackChain<Upstream, StatusClassifier>,
}

fn fixture(cool_down: Duration) -> Fixture {
    let primary = Upstream::new("primary", Mode::Ok);
    let backup = Upstream::new("backup", Mode::Ok);
    let classifier = status_classifier();
    let chain = FallbackChain::builder("upstreams")
        .member("primary", primary.clone())
        .member("backup", backup.clone())
        .classifier(classifier)
        .window(4)
        .min_calls(3)
        .min_success_rate(0.5)
        .cool_down(cool_down)
        .build()
        .unwrap();
    Fixture {
        primary,
        backup,
        chain,
    }
}

impl Fixture {
    async fn call(&self, req: u32) -> Result<Reply, BoxError> {
        self.chain.clone().oneshot(req).await
    }
    fn state(&self, member: usize) -> MemberState {
        self.chain.handle().members()[member].state
    }
}

#[tokio::test(start_paused = true)]
async fn chain_serves_from_the_primary_while_it_is_healthy() {
    let f = fixture(Duration::from_secs(5));
    for i in 0..5 {
        let r = f.call(i).await.unwrap();
        assert_eq!((r.from, r.req), ("primary", i));
    }
    assert_eq!((f.primary.calls(), f.backup.calls()), (5, 0));
    let snap = f.chain.handle().snapshot();
    assert_eq!(snap.kind, ComponentKind::Fallback);
    assert_eq!((&*snap.state, snap.status), ("primary", HealthStatus::Pass));
    assert_eq!(snap.metric("serving_index"), Some(0.0));
    assert_eq!(snap.metric("primary.success_rate"), Some(1.0));
    assert_eq!(snap.metric("primary.window_calls"), Some(4.0));
}

/// The exported families carry the members' figures (calls by outcome, state, success rate),
/// the serving member and the all-failed count, each (family, labels) once, every family in
/// `FAMILIES`.
#[tokio::test(start_paused = true)]
async fn export_matches_the_members_figures() {
    use battlement_core::testing::RecordingVisitor;

    let f = fixture(Duration::from_secs(5));
    f.call(0).await.unwrap();
    f.primary.set(refused());
    for i in 1..6 {
        assert_eq!(f.call(i).await.unwrap().from, "backup");
    }
    let handle = f.chain.handle();
    let members = handle.members();
    assert_eq!(members[0].state, MemberState::Unhealthy);
    let mut out = RecordingVisitor::new();
    // Through the chain itself, as a registry holds it.
    f.chain.export(&mut out);
    out.assert_families_in(FAMILIES);
    for m in &members {
        let member = &*m.name;
        let calls = |outcome| {
            out.counter_value(
                "battlement_fallback_member_calls",
                &[("member", member), ("outcome", outcome)],
            )
        };
        assert_eq!(
            (calls("success"), calls("failure"), calls("skipped")),
            (m.successes, m.failures, m.skipped),
            "{member}"
        );
        for state in [
            MemberState::Healthy,
            MemberState::Unhealthy,
            MemberState::Trial,
        ] {
            let want = if state == m.state { 1.0 } else { 0.0 };
            let got = out.gauge_value(
                "battlement_fallback_member_state",
                &[("member", member), ("state", state.as_str())],
            );
            assert_eq!(got, want, "{member} {state}");
        }
        assert_eq!(
            out.get(
                "battlement_fallback_member_success_rate",
                &[("member", member)]
            ),
            m.success_rate
                .map(battlement_core::testing::Recorded::Gauge)
                .as_ref()
        );
    }
    assert_eq!(
        (
            members[0].successes,
            members[0].failures,
            members[0].skipped
        ),
        (1, 2, 3)
    );
    let serving = |member| out.gauge_value("battlement_fallback_serving", &[("member", member)]);
    assert_eq!((serving("primary"), serving("backup")), (0.0, 1.0));
    assert_eq!(
        out.counter_value("battlement_fallback_all_failed_calls", &[]),
        handle.all_failed()
    );
    assert_eq!(out.count_of("battlement_fallback_member_calls"), 6);
}

#[tokio::test(start_paused = true)]
async fn chain_falls_over_per_call_then_skips_an_unhealthy_member() {
    let f = fixture(Duration::from_secs(5));
    let mut events = f.chain.handle().subscribe();
    f.primary.set(refused());
    // Each failed primary call is answered by the backup; the third makes the primary
    // unhealthy (3 outcomes, 0 % success).
    for i in 0..3 {
        let r = f.call(i).await.unwrap();
        assert_eq!((r.from, r.req), ("backup", i));
        let expected = if i < 2 {
            MemberState::Healthy
        } else {
            MemberState::Unhealthy
        };
        assert_eq!(f.state(0), expected, "after call {i}");
    }
    assert_eq!((f.primary.calls(), f.backup.calls()), (3, 3));
    // Now the primary is skipped: calls go straight to the backup.
    for i in 3..10 {
        assert_eq!(f.call(i).await.unwrap().from, "backup");
    }
    assert_eq!((f.primary.calls(), f.backup.calls()), (3, 10));
    let members = f.chain.handle().members();
    assert_eq!(members[0].skipped, 7);
    assert_eq!(members[0].failures, 3);
    assert!(members[0].trial_in.unwrap() <= Duration::from_secs(5));

    let snap = f.chain.handle().snapshot();
    assert_eq!(
        (&*snap.state, snap.status),
        ("degraded", HealthStatus::Warn)
    );
    assert_eq!(snap.metric("serving_index"), Some(1.0));
    assert_eq!(snap.metric("primary.healthy"), Some(0.0));
    assert_eq!(snap.metric("primary.skipped"), Some(7.0));
    assert_eq!(
        snap.message.as_deref(),
        Some("serving from `backup`; unhealthy: primary")
    );
    assert_eq!(f.chain.handle().serving().as_deref(), Some("backup"));
    assert_eq!(f.chain.handle().preferred().as_deref(), Some("backup"));

    assert!(matches!(
        events.try_recv().unwrap(),
        ChainEvent::ServingChanged { from: None, ref member, .. } if &**member == "backup"
    ));
    match events.try_recv().unwrap() {
        ChainEvent::MemberUnhealthy {
            member,
            success_rate,
            cool_down,
            ..
        } => {
            assert_eq!(&*member, "primary");
            assert_eq!(success_rate, 0.0);
            assert_eq!(cool_down, Duration::from_secs(5));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn window_rate_decides_not_single_failures() {
    let f = fixture(Duration::from_secs(5));
    // window 4, min 3 calls, min rate 0.5: S F S F stays healthy (rate 0.5)…
    for mode in [Mode::Ok, refused(), Mode::Ok, refused()] {
        f.primary.set(mode);
        f.call(0).await.unwrap();
    }
    assert_eq!(f.state(0), MemberState::Healthy);
    assert_eq!(f.chain.handle().members()[0].success_rate, Some(0.5));
    // …one more failure slides the window to [F S F F]: 0.25 < 0.5.
    f.call(0).await.unwrap();
    assert_eq!(f.state(0), MemberState::Unhealthy);
    // Ignored outcomes are not counted.
    let g = fixture(Duration::from_secs(5));
    g.primary.set(Mode::Status(404));
    for _ in 0..10 {
        assert_eq!(g.call(0).await.unwrap().status, 404);
    }
    assert_eq!(g.state(0), MemberState::Healthy);
    assert_eq!(g.chain.handle().members()[0].window_calls, 0);
    assert_eq!(g.backup.calls(), 0, "an ignored outcome is an answer");
}

#[tokio::test(start_paused = true)]
async fn unhealthy_member_recovers_after_cool_down_and_one_trial() {
    let f = fixture(Duration::from_secs(5));
    let mut events = f.chain.handle().subscribe();
    f.primary.set(refused());
    for i in 0..3 {
        f.call(i).await.unwrap();
    }
    assert_eq!(f.state(0), MemberState::Unhealthy);
    f.primary.set(Mode::Ok); // the primary is back, but the chain does not know yet

    advance(Duration::from_millis(4_900)).await;
    assert_eq!(f.call(10).await.unwrap().from, "backup");
    assert_eq!(f.primary.calls(), 3, "skipped during the cool-down");

    advance(Duration::from_millis(100)).await;
    let r = f.call(11).await.unwrap();
    assert_eq!((r.from, r.req), ("primary", 11), "the trial call");
    assert_eq!(f.state(0), MemberState::Healthy);
    assert_eq!(
        f.chain.handle().members()[0].window_calls,
        0,
        "fresh window"
    );
    for i in 12..15 {
        assert_eq!(f.call(i).await.unwrap().from, "primary");
    }
    assert_eq!(f.chain.handle().serving().as_deref(), Some("primary"));
    assert_eq!(f.chain.handle().snapshot().status, HealthStatus::Pass);

    let names: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| match e {
            ChainEvent::MemberUnhealthy { member, .. } => format!("unhealthy {member}"),
            ChainEvent::TrialStarted { member, .. } => format!("trial {member}"),
            ChainEvent::MemberRecovered { member, .. } => format!("recovered {member}"),
            ChainEvent::TrialFailed { member, .. } => format!("trial failed {member}"),
            ChainEvent::ServingChanged { member, .. } => format!("serving {member}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "serving backup",
            "unhealthy primary",
            "trial primary",
            "recovered primary",
            "serving primary"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn failed_trial_starts_another_cool_down() {
    let f = fixture(Duration::from_secs(5));
    f.primary.set(Mode::Status(503));
    for i in 0..3 {
        assert_eq!(f.call(i).await.unwrap().from, "backup");
    }
    advance(Duration::from_secs(5)).await;
    // The trial fails (still 503): the call is still answered by the backup.
    assert_eq!(f.call(3).await.unwrap().from, "backup");
    assert_eq!(f.primary.calls(), 4);
    assert_eq!(f.state(0), MemberState::Unhealthy);
    let trial_in = f.chain.handle().members()[0].trial_in.unwrap();
    assert_eq!(trial_in, Duration::from_secs(5));
    advance(Duration::from_secs(4)).await;
    f.call(4).await.unwrap();
    assert_eq!(f.primary.calls(), 4, "skipped during the second cool-down");
    advance(Duration::from_secs(1)).await;
    f.primary.set(Mode::Ok);
    assert_eq!(f.call(5).await.unwrap().from, "primary");
}

#[tokio::test(start_paused = true)]
async fn one_trial_at_a_time_and_a_dropped_trial_gives_the_permit_back() {
    let f = fixture(Duration::from_secs(5));
    f.primary.set(refused());
    for i in 0..3 {
        f.call(i).await.unwrap();
    }
    advance(Duration::from_secs(5)).await;
    f.primary.set(Mode::Hang);

    // The trial call hangs on the primary…
    let mut trial = Box::pin(f.call(100));
    assert!(futures::poll!(trial.as_mut()).is_pending());
    assert_eq!(f.primary.calls(), 4);
    assert_eq!(f.state(0), MemberState::Trial);
    // …so other calls skip the primary meanwhile.
    assert_eq!(f.call(101).await.unwrap().from, "backup");
    assert_eq!(f.primary.calls(), 4);

    // Dropping the trial's future cancels the primary's call and gives the permit back,
    // counting as neither success nor failure.
    drop(trial);
    assert_eq!(f.primary.cancelled(), 1);
    assert_eq!(f.state(0), MemberState::Unhealthy);
    assert_eq!(f.chain.handle().members()[0].failures, 3);
    f.primary.set(Mode::Ok);
    assert_eq!(
        f.call(102).await.unwrap().from,
        "primary",
        "the next call is the trial, at once"
    );
    assert_eq!(f.state(0), MemberState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn all_failed_carries_every_members_error_in_order() {
    let a = Upstream::new("a", refused());
    let b = Upstream::new("b", Mode::Status(502));
    let c = Upstream::new("c", Mode::Open);
    let chain = FallbackChain::builder("three")
        .member("a", a.clone())
        .member("b", b.clone())
        .member("c", c.clone())
        .classifier(status_classifier())
        .min_calls(2)
        .window(2)
        .build()
        .unwrap();
    let err = chain.clone().oneshot(1).await.unwrap_err();
    let all = err.downcast_ref::<AllFailed>().expect("AllFailed");
    assert_eq!(all.chain(), "three");
    let names: Vec<&str> = all.errors().iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        all.error("a")
            .unwrap()
            .downcast_ref::<io::Error>()
            .unwrap()
            .kind(),
        io::ErrorKind::ConnectionRefused
    );
    let b_err = all
        .error("b")
        .unwrap()
        .downcast_ref::<FailedResponse>()
        .unwrap();
    assert_eq!(
        (b_err.member(), b_err.kind()),
        ("b", FailureKind::ServerError)
    );
    assert_eq!(
        all.error("c")
            .unwrap()
            .downcast_ref::<BreakerOpen>()
            .unwrap()
            .name(),
        "c"
    );
    // The source is the last member's error, so the kind reads through.
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    assert!(err
        .to_string()
        .starts_with("fallback chain `three`: all 3 members failed: a: "));
    assert_eq!(chain.handle().all_failed(), 1);

    // A second failure makes every member unhealthy: the next call skips them all.
    chain.clone().oneshot(2).await.unwrap_err();
    let snap = chain.handle().snapshot();
    assert_eq!(
        (&*snap.state, snap.status),
        ("unavailable", HealthStatus::Fail)
    );
    let err = chain.clone().oneshot(3).await.unwrap_err();
    let all = err.downcast_ref::<AllFailed>().unwrap();
    for (name, e) in all.errors() {
        let skipped = e.downcast_ref::<MemberUnavailable>().expect("skipped");
        assert_eq!(skipped.member(), &**name);
        assert_eq!(skipped.trial_in(), Some(Duration::from_secs(30)));
    }
    assert!(std::error::Error::source(all).is_none());
    assert_eq!((a.calls(), b.calls(), c.calls()), (2, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn an_ignored_error_is_returned_without_trying_the_next_member() {
    let primary = Upstream::new("primary", Mode::Fail(io::ErrorKind::InvalidInput));
    let backup = Upstream::new("backup", Mode::Ok);
    let chain = FallbackChain::builder("c")
        .member("primary", primary.clone())
        .member("backup", backup.clone())
        .classifier(battlement_core::classify_fn(
            |r: Result<&Reply, &BoxError>| match r {
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::Ignored, // say: a validation error
            },
        ))
        .build()
        .unwrap();
    let err = chain.oneshot(1).await.unwrap_err();
    assert!(err.downcast_ref::<io::Error>().is_some());
    assert_eq!(backup.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_is_not_ready_fails_its_attempt() {
    let backup = Upstream::new("backup", Mode::Ok);
    // A service whose poll_ready fails.
    #[derive(Clone)]
    struct NotReady;
    impl Service<u32> for NotReady {
        type Response = Reply;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Reply, BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Err("closed".into()))
        }
        fn call(&mut self, _: u32) -> Self::Future {
            unreachable!("not ready")
        }
    }
    type Svc = tower::util::BoxCloneSyncService<u32, Reply, BoxError>;
    let chain = FallbackChain::builder("c")
        .member("closed", Svc::new(NotReady))
        .member("backup", Svc::new(backup.clone()))
        .build()
        .unwrap();
    let mut c = chain.clone();
    assert!(futures::poll!(std::future::poll_fn(|cx| c.poll_ready(cx))).is_ready());
    assert_eq!(chain.oneshot(5).await.unwrap().from, "backup");
}

#[tokio::test]
async fn builder_registers_with_registries_and_validates() {
    let reg = RecordingSink::new();
    let svc = service_fn(|x: u32| async move { Ok::<_, io::Error>(x) });
    let chain = FallbackChain::builder("api")
        .member("a", svc)
        .member("b", svc)
        .registry(&reg)
        .critical(false)
        .build()
        .unwrap();
    {
        let registered = reg.registered();
        assert_eq!(registered.len(), 1);
        assert_eq!(registered[0].0.name(), "api");
        assert!(!registered[0].1);
        assert_eq!(registered[0].0.snapshot().state, "primary");
    }
    assert_eq!(chain.snapshot().name, "api");

    let bad = |b: FallbackChainBuilder<_>| b.build().unwrap_err().setting();
    let base = || FallbackChain::builder("x").member("a", svc);
    assert_eq!(bad(FallbackChain::builder("x")), "member");
    assert_eq!(bad(FallbackChain::builder("").member("a", svc)), "name");
    assert_eq!(bad(FallbackChain::builder("x").member("", svc)), "member");
    assert_eq!(bad(base().window(0)), "window");
    assert_eq!(bad(base().window(5).min_calls(6)), "min_calls");
    assert_eq!(bad(base().min_calls(0)), "min_calls");
    assert_eq!(bad(base().min_success_rate(f64::NAN)), "min_success_rate");
    assert_eq!(bad(base().min_success_rate(-0.1)), "min_success_rate");
    assert_eq!(bad(base().cool_down(Duration::ZERO)), "cool_down");
    assert_eq!(bad(base().event_capacity(0)), "event_capacity");
    // tokio's broadcast channel panics (or fails to allocate) for these: refused at build time.
    for huge in [
        usize::MAX / 2,
        usize::MAX,
        battlement_core::event::MAX_EVENT_CAPACITY + 1,
    ] {
        assert_eq!(bad(base().event_capacity(huge)), "event_capacity");
    }
    let err = base().window(0).build().unwrap_err();
    assert_eq!(err.component(), "fallback chain `x`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_threads_keep_counts_consistent() {
    let f = fixture(Duration::from_secs(60));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let chain = f.chain.clone();
            tokio::spawn(async move { chain.oneshot(i).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().from, "primary");
    }
    let m = &f.chain.handle().members()[0];
    assert_eq!((m.successes, m.failures), (200, 0));
    assert_eq!(f.backup.calls(), 0);
}
