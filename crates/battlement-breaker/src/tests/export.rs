//! What a breaker exports ([`HealthSource::export`]) agrees with its own metrics.

use super::*;
use battlement_core::testing::RecordingVisitor;
use battlement_core::HealthSource;
use futures::FutureExt;

fn exported(b: &CircuitBreaker) -> RecordingVisitor {
    let mut out = RecordingVisitor::new();
    b.export(&mut out);
    out.assert_families_in(FAMILIES);
    out
}

/// A breaker that saw every kind of call, opened and rejects: each exported value is the figure
/// `metrics()` gives, every outcome, kind, state and transition pair is reported once, and the
/// histogram holds the finished calls' durations.
#[tokio::test(start_paused = true)]
async fn export_matches_metrics_for_a_breaker_that_opened_and_rejects() {
    let b = count_breaker(10, 4)
        .slow_call(Duration::from_millis(100), 1.0)
        .histogram(true)
        .build()
        .unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    call(&svc, Call::Sleep(Duration::from_millis(150), true))
        .await
        .unwrap();
    call(&svc, Call::Ok).await.unwrap();
    call(&svc, Call::NotFound).await.unwrap();
    // Cancelled: polled once, then dropped.
    let (_tx, rx) = oneshot::channel();
    assert!(svc.clone().oneshot(Call::Wait(rx)).now_or_never().is_none());
    call(&svc, Call::Fail).await.unwrap_err();
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
    assert!(is_open(&call(&svc, Call::Ok).await));
    assert!(is_open(&call(&svc, Call::Ok).await));

    let m = b.metrics();
    let out = exported(&b);
    let calls =
        |outcome| out.counter_value("battlement_circuit_breaker_calls", &[("outcome", outcome)]);
    assert_eq!(
        [
            calls("success"),
            calls("failure"),
            calls("ignored"),
            calls("rejected"),
            calls("cancelled"),
            calls("stale")
        ],
        [
            m.successes,
            m.failures,
            m.ignored,
            m.calls_rejected,
            m.cancelled,
            m.stale
        ]
    );
    assert_eq!(
        [
            m.successes,
            m.failures,
            m.ignored,
            m.calls_rejected,
            m.cancelled
        ],
        [2, 2, 1, 2, 1]
    );
    assert_eq!(out.count_of("battlement_circuit_breaker_calls"), 6);
    assert_eq!(
        out.counter_value("battlement_circuit_breaker_slow_calls", &[]),
        m.slow_calls
    );
    assert_eq!(m.slow_calls, 1);
    for (kind, n) in m.failures_by_kind {
        let got = out.counter_value(
            "battlement_circuit_breaker_failures",
            &[("kind", kind.as_str())],
        );
        assert_eq!(got, n, "{kind:?}");
    }
    assert_eq!(
        out.counter_value(
            "battlement_circuit_breaker_failures",
            &[("kind", "connection")]
        ),
        2
    );
    for state in State::ALL {
        let want = if state == State::Open { 1.0 } else { 0.0 };
        let got = out.gauge_value(
            "battlement_circuit_breaker_state",
            &[("state", state.as_str())],
        );
        assert_eq!(got, want, "{state}");
    }
    assert_eq!(out.count_of("battlement_circuit_breaker_transitions"), 25);
    for from in State::ALL {
        for to in State::ALL {
            let want = u64::from((from, to) == (State::Closed, State::Open));
            let got = out.counter_value(
                "battlement_circuit_breaker_transitions",
                &[("from", from.as_str()), ("to", to.as_str())],
            );
            assert_eq!(got, want, "{from} -> {to}");
        }
    }
    assert_eq!(
        out.gauge_value("battlement_circuit_breaker_failure_rate", &[]),
        m.failure_rate
    );
    assert_eq!(m.failure_rate, 0.5);
    assert_eq!(
        out.gauge_value("battlement_circuit_breaker_slow_call_rate", &[]),
        m.slow_call_rate
    );
    assert_eq!(
        out.gauge_value("battlement_circuit_breaker_window_calls", &[]),
        m.window_calls as f64
    );

    // The four calls counted as success or failure (not the ignored or cancelled one): one of
    // 150 ms, three of 0.
    let h = out.histogram_value("battlement_circuit_breaker_call_duration_seconds", &[]);
    assert_eq!(h.count, m.successes + m.failures);
    assert!((h.sum - 0.150).abs() < 1e-9, "{}", h.sum);
    let holds_150ms = h.bounds().iter().position(|&b| b >= 0.150).unwrap();
    assert_eq!(h.cumulative()[holds_150ms], 4);
    assert_eq!(h.cumulative()[holds_150ms - 1], 3);
}

/// By default there is no histogram, and calls are not timed: the call path is what it was
/// without export.
#[tokio::test(start_paused = true)]
async fn without_histogram_no_duration_is_exported_and_calls_are_not_timed() {
    let b = count_breaker(10, 4).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    call(&svc, Call::Sleep(Duration::from_millis(10), true))
        .await
        .unwrap();
    let out = exported(&b);
    assert!(out
        .get("battlement_circuit_breaker_call_duration_seconds", &[])
        .is_none());
    assert_eq!(b.metrics().mean_latency, None);
    assert_eq!(
        out.counter_value(
            "battlement_circuit_breaker_calls",
            &[("outcome", "success")]
        ),
        1
    );
}

/// Transitions are counted by (from, to) through a whole cycle and the operator's actions.
#[tokio::test(start_paused = true)]
async fn transitions_are_counted_by_from_and_to() {
    let b = count_breaker(10, 2).half_open_calls(1, 1).build().unwrap();
    let up = Upstream::new();
    let svc = guarded(&b, &up);
    call(&svc, Call::Fail).await.unwrap_err();
    call(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    call(&svc, Call::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    b.force_open("ops");
    b.disable();
    b.reset();
    b.reset();

    let out = exported(&b);
    let t = |from: State, to: State| {
        out.counter_value(
            "battlement_circuit_breaker_transitions",
            &[("from", from.as_str()), ("to", to.as_str())],
        )
    };
    use State::*;
    let expected = [
        (Closed, Open),
        (Open, HalfOpen),
        (HalfOpen, Closed),
        (Closed, ForcedOpen),
        (ForcedOpen, Disabled),
        (Disabled, Closed),
        (Closed, Closed),
    ];
    for from in State::ALL {
        for to in State::ALL {
            let want = u64::from(expected.contains(&(from, to)));
            assert_eq!(t(from, to), want, "{from} -> {to}");
            assert_eq!(b.transitions(from, to), want, "{from} -> {to}");
        }
    }
}
