//! Load shedding with priority: critical calls served first, sheddable calls shed past their
//! share of the queue, the starvation bound, and no permit lost when queued calls of any
//! priority are cancelled.

use super::*;

/// The priority a test request carries: ids below 1000 are critical, below 2000 normal, the
/// rest sheddable.
fn class_of(id: &u32) -> Priority {
    match *id {
        0..=999 => Priority::Critical,
        1000..=1999 => Priority::Normal,
        _ => Priority::Sheddable,
    }
}

type PrioritySvc = BulkheadService<
    tower::util::BoxCloneService<u32, u32, std::io::Error>,
    PriorityFn<fn(&u32) -> Priority>,
>;

fn prioritised(b: &Bulkhead, gate: &Gate) -> PrioritySvc {
    b.layer()
        .priority_fn(class_of as fn(&u32) -> Priority)
        .layer(tower::util::BoxCloneService::new(gate.service()))
}

async fn call(svc: &mut PrioritySvc, id: u32) -> JoinHandle<Result<u32, BoxError>> {
    let fut = svc.ready().await.unwrap().call(id);
    tokio::spawn(fut)
}

/// Lets the calls finish one at a time and returns the order in which they started.
async fn run_one_by_one(gate: &Gate, handles: Vec<JoinHandle<Result<u32, BoxError>>>) -> Vec<u32> {
    for _ in 0..handles.len() {
        gate.finish(1);
        settle().await;
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    gate.started()
}

#[tokio::test(start_paused = true)]
async fn queued_critical_calls_are_served_before_earlier_normal_and_sheddable_ones() {
    let b = Bulkhead::builder("p")
        .max_concurrent(1)
        .max_queued(10)
        .sheddable_queue_share(1.0)
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = prioritised(&b, &gate);
    let mut handles = Vec::new();
    // A sheddable call with a free permit is admitted at once, whatever its priority.
    handles.push(call(&mut svc, 2000).await);
    for id in [2001, 1000, 1001, 1, 2] {
        handles.push(call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (1, 5));
    assert_eq!(
        run_one_by_one(&gate, handles).await,
        [2000, 1, 2, 1000, 1001, 2001],
        "critical first, then normal, then sheddable, each in arrival order"
    );
    assert_eq!(b.permit_places(), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_sheddable_call_is_shed_once_the_queue_is_past_its_share() {
    let b = Bulkhead::builder("p")
        .max_concurrent(1)
        .max_queued(4)
        .sheddable_queue_share(0.5)
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = prioritised(&b, &gate);
    let mut handles = vec![call(&mut svc, 1000).await]; // holds the permit
    handles.push(call(&mut svc, 2000).await);
    handles.push(call(&mut svc, 2001).await);
    // Two of four queued: a sheddable call may fill no more.
    let err = svc.ready().await.unwrap().call(2002).await.unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().expect("a BulkheadFull");
    assert!(full.is_shed());
    assert_eq!(failure_kind(&*err), FailureKind::Rejected);
    // Normal and critical calls still queue, up to max_queued.
    handles.push(call(&mut svc, 1001).await);
    handles.push(call(&mut svc, 1).await);
    let err = svc.ready().await.unwrap().call(1002).await.unwrap_err();
    assert!(!err.downcast_ref::<BulkheadFull>().unwrap().is_shed());
    let m = b.metrics();
    assert_eq!((m.rejected_shed, m.rejected_full, m.rejected()), (1, 1, 2));
    assert_eq!(m.queued, 4);
    assert_eq!(
        run_one_by_one(&gate, handles).await,
        [1000, 1, 1001, 2000, 2001]
    );
}

#[tokio::test(start_paused = true)]
async fn a_share_of_zero_never_queues_a_sheddable_call_but_a_free_permit_admits_it() {
    let b = Bulkhead::builder("p")
        .max_concurrent(1)
        .max_queued(4)
        .sheddable_queue_share(0.0)
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = prioritised(&b, &gate);
    let held = call(&mut svc, 2000).await;
    settle().await;
    assert_eq!(b.in_flight(), 1);
    let err = svc.ready().await.unwrap().call(2001).await.unwrap_err();
    assert!(err.downcast_ref::<BulkheadFull>().unwrap().is_shed());
    gate.finish(1);
    held.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_starvation_bound_serves_a_passed_over_class() {
    let b = Bulkhead::builder("p")
        .max_concurrent(1)
        .max_queued(20)
        .sheddable_queue_share(1.0)
        .starvation_bound(2)
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = prioritised(&b, &gate);
    let mut handles = vec![call(&mut svc, 1000).await];
    handles.push(call(&mut svc, 2000).await);
    handles.push(call(&mut svc, 1001).await);
    for id in 1..=7 {
        handles.push(call(&mut svc, id).await);
    }
    // The sheddable and the normal call are passed over twice, then served (the lowest first);
    // the normal call has been passed over three times by then, so it is next.
    assert_eq!(
        run_one_by_one(&gate, handles).await,
        [1000, 1, 2, 2000, 1001, 3, 4, 5, 6, 7]
    );
}

#[tokio::test(start_paused = true)]
async fn under_saturation_critical_calls_keep_their_latency_while_sheddable_calls_are_refused() {
    const SERVICE_TIME: Duration = Duration::from_millis(10);
    let b = Bulkhead::builder("p")
        .max_concurrent(4)
        .max_queued(16)
        .max_wait(Duration::from_secs(1))
        .sheddable_queue_share(0.25)
        .build()
        .unwrap();
    // Each call returns how long it waited for its permit.
    let svc = b
        .layer()
        .priority_fn(|(id, _): &(u32, Instant)| class_of(id))
        .layer(service_fn(|(_, sent): (u32, Instant)| async move {
            let waited = sent.elapsed();
            tokio::time::sleep(SERVICE_TIME).await;
            Ok::<_, std::io::Error>(waited)
        }));
    // Capacity: 4 calls per 10 ms, 400/s. Offered: 1000 sheddable/s and 100 critical/s for 2 s.
    let mut critical = Vec::new();
    let mut sheddable = Vec::new();
    for ms in 0..2000u32 {
        let id = if ms % 10 == 0 { ms / 10 } else { 2000 + ms };
        let fut = svc.clone().oneshot((id, Instant::now()));
        let handle = tokio::spawn(fut);
        if id < 1000 {
            critical.push(handle);
        } else {
            sheddable.push(handle);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut waits = Vec::new();
    for h in critical {
        waits.push(h.await.unwrap().expect("no critical call is refused"));
    }
    let (mut served, mut shed) = (0, 0);
    for h in sheddable {
        match h.await.unwrap() {
            Ok(_) => served += 1,
            Err(e) => {
                assert!(e.downcast_ref::<BulkheadFull>().unwrap().is_shed(), "{e}");
                shed += 1;
            }
        }
    }
    waits.sort();
    let p99 = waits[waits.len() * 99 / 100];
    // A critical call waits at most for the next call to finish: one service time.
    assert!(p99 <= SERVICE_TIME, "critical p99 wait {p99:?}");
    let m = b.metrics();
    assert_eq!(
        (m.rejected_shed, m.rejected_full, m.rejected_timeout),
        (shed, 0, 0)
    );
    assert!(
        shed > 900,
        "most sheddable calls are refused: {shed} shed, {served} served"
    );
    assert!(
        served > 400,
        "the rest of the capacity serves sheddable calls: {served}"
    );
    assert_eq!(b.permit_places(), (4, 0));
}

/// Queued calls of every priority, dropped in a seeded random order, some right after a
/// permit was handed to them: every permit comes back.
#[tokio::test(start_paused = true)]
async fn cancelling_queued_calls_of_any_priority_loses_no_permit() {
    for seed in 0..50 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let b = Bulkhead::builder("p")
            .max_concurrent(2)
            .max_queued(12)
            .sheddable_queue_share(1.0)
            .starvation_bound(2)
            .build()
            .unwrap();
        let gate = Gate::default();
        let mut svc = prioritised(&b, &gate);
        let held = [call(&mut svc, 1000).await, call(&mut svc, 1001).await];
        settle().await;
        let mut queued: Vec<_> = (0..12)
            .map(|i| [i, 1002 + i, 2000 + i][rng.usize(0..3)])
            .map(|id| (id, svc.call(id)))
            .collect();
        assert_eq!(b.queued(), 12, "seed {seed}");
        // Some permits are handed over to queued calls that never run: they are dropped.
        gate.finish(rng.usize(0..=2));
        settle().await;
        rng.shuffle(&mut queued);
        let keep = rng.usize(0..=queued.len());
        let kept: Vec<_> = queued.drain(..keep).map(|(_, f)| tokio::spawn(f)).collect();
        drop(queued);
        gate.finish(64);
        settle().await;
        for h in held.into_iter().chain(kept) {
            h.await.unwrap().unwrap();
        }
        assert_eq!((b.in_flight(), b.queued()), (0, 0), "seed {seed}");
        assert_eq!(b.permit_places(), (2, 0), "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_limit_sheds_by_priority_too() {
    let limit = Bulkhead::builder("p")
        .max_queued(2)
        .sheddable_queue_share(0.5)
        .adaptive(crate::Limit::aimd().initial_limit(1).min_limit(1))
        .build()
        .unwrap();
    let gate = Gate::default();
    let mut svc = limit.layer().priority_fn(class_of).layer(gate.service());
    let held = tokio::spawn(svc.ready().await.unwrap().call(1000));
    let queued = tokio::spawn(svc.ready().await.unwrap().call(2000));
    settle().await;
    let err = svc.ready().await.unwrap().call(2001).await.unwrap_err();
    assert!(err.downcast_ref::<BulkheadFull>().unwrap().is_shed());
    let critical = tokio::spawn(svc.ready().await.unwrap().call(1));
    settle().await;
    gate.finish(3);
    for h in [held, queued, critical] {
        h.await.unwrap().unwrap();
    }
    assert_eq!(gate.started(), [1000, 1, 2000]);
    assert_eq!(limit.metrics().bulkhead.rejected_shed, 1);
}
