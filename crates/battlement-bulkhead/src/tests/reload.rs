//! Live reload: the bulkhead resizes without failing a call; queue settings apply to new
//! arrivals; an invalid reload changes nothing.

use super::*;

fn settings(
    max_concurrent: usize,
    max_queued: usize,
    max_wait: Option<Duration>,
) -> BulkheadBuilder {
    let mut b = Bulkhead::builder("test")
        .max_concurrent(max_concurrent)
        .max_queued(max_queued);
    if let Some(w) = max_wait {
        b = b.max_wait(w);
    }
    b
}

#[tokio::test(start_paused = true)]
async fn a_grown_bulkhead_admits_queued_callers_in_order() {
    let b = bulkhead(1, 4, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut events = b.subscribe();
    let mut handles = Vec::new();
    for id in 0..5 {
        handles.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    assert_eq!((b.in_flight(), b.queued()), (1, 4));
    b.reload(&settings(3, 4, None)).unwrap();
    settle().await;
    assert_eq!(
        gate.started(),
        [0, 1, 2],
        "queued callers first, in arrival order"
    );
    assert_eq!((b.in_flight(), b.queued()), (3, 2));
    // (The only variant so far: within the crate the pattern is irrefutable.)
    let BulkheadEvent::Reloaded {
        name,
        max_concurrent,
        max_queued,
        max_wait,
    } = events.try_recv().unwrap();
    assert_eq!(&*name, "test");
    assert_eq!((max_concurrent, max_queued, max_wait), ((1, 3), 4, None));
    gate.finish(5);
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(b.metrics().reloads, 1);
    assert_permits(&b, &gate, &mut svc, 3).await;
}

#[tokio::test(start_paused = true)]
async fn a_shrunk_bulkhead_lets_running_calls_finish_and_rejects_beyond_the_new_limit() {
    let b = bulkhead(3, 0, None);
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let mut running = Vec::new();
    for id in 0..3 {
        running.push(spawn_call(&mut svc, id).await);
    }
    settle().await;
    b.reload(&settings(1, 0, None)).unwrap();
    assert_eq!(b.in_flight(), 3, "running calls are not interrupted");
    let full = |r: Result<u32, BoxError>| r.unwrap_err().downcast_ref::<BulkheadFull>().is_some();
    assert!(full(spawn_call(&mut svc, 10).await.await.unwrap()));
    // Two finish: their permits are retired, and one call still runs at the new limit of one.
    gate.finish(2);
    settle().await;
    assert_eq!(b.in_flight(), 1);
    assert!(full(spawn_call(&mut svc, 11).await.await.unwrap()));
    gate.finish(1);
    for r in running {
        r.await.unwrap().unwrap();
    }
    // Drained: one at a time.
    let one = spawn_call(&mut svc, 12).await;
    settle().await;
    assert!(full(spawn_call(&mut svc, 13).await.await.unwrap()));
    gate.finish(1);
    assert_eq!(one.await.unwrap().unwrap(), 12);
    assert_eq!(b.metrics().rejected_full, 3);
}

#[tokio::test(start_paused = true)]
async fn queue_bound_and_wait_limit_apply_to_new_arrivals() {
    let b = bulkhead(1, 1, Some(Duration::from_millis(100)));
    let gate = Gate::default();
    let mut svc = guarded(&b, &gate);
    let running = spawn_call(&mut svc, 0).await;
    let early = spawn_call(&mut svc, 1).await; // queued, 100 ms
    settle().await;
    b.reload(&settings(1, 3, Some(Duration::from_secs(1))))
        .unwrap();
    // The larger queue takes two more; their wait is 1 s.
    let late = [spawn_call(&mut svc, 2).await, spawn_call(&mut svc, 3).await];
    settle().await;
    assert_eq!(b.queued(), 3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = early.await.unwrap().unwrap_err();
    assert!(
        err.downcast_ref::<BulkheadTimeout>().is_some(),
        "kept its deadline"
    );
    settle().await;
    assert_eq!(b.queued(), 2, "the later ones wait longer");

    // A smaller queue evicts nobody; new arrivals are rejected.
    b.reload(&settings(1, 0, None)).unwrap();
    let err = spawn_call(&mut svc, 4).await.await.unwrap().unwrap_err();
    assert!(err.downcast_ref::<BulkheadFull>().is_some());
    gate.finish(3);
    running.await.unwrap().unwrap();
    for h in late {
        h.await.unwrap().unwrap();
    }
    let m = b.metrics();
    assert_eq!(
        (m.accepted, m.rejected_timeout, m.rejected_full, m.reloads),
        (3, 1, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn an_invalid_reload_changes_nothing() {
    let b = bulkhead(2, 1, Some(Duration::from_millis(10)));
    let mut events = b.subscribe();
    let bad = [
        (settings(0, 1, None), "max_concurrent"),
        (settings(u32::MAX as usize + 1, 1, None), "max_concurrent"),
        (settings(4, 0, Some(Duration::from_secs(1))), "max_wait"),
        (settings(4, 1, Some(Duration::ZERO)), "max_wait"),
        (settings(4, 1, None).event_capacity(0), "event_capacity"),
        (Bulkhead::builder("").max_concurrent(4), "name"),
    ];
    for (builder, setting) in bad {
        assert_eq!(b.reload(&builder).unwrap_err().setting(), setting);
    }
    assert_eq!(
        (b.max_concurrent(), b.max_queued(), b.max_wait()),
        (2, 1, Some(Duration::from_millis(10)))
    );
    assert_eq!(b.permit_places(), (2, 0));
    assert_eq!(b.metrics().reloads, 0);
    assert!(events.try_recv().is_err(), "no event");
}

/// Many tasks call through one bulkhead while it is reloaded up and down: a call never starts
/// while more than the largest limit since the bulkhead last drained below its limit are
/// running, once drained never more than the current limit, and nothing is lost. Seeded.
#[tokio::test(start_paused = true)]
async fn stress_reload_up_and_down() {
    for seed in 0..6 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let b = bulkhead(4, 1024, None);
        let running = Arc::new(AtomicUsize::new(0));
        let ceiling = Arc::new(AtomicUsize::new(4));
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = b.layer().layer(service_fn({
            let (running, ceiling, calls) = (running.clone(), ceiling.clone(), calls.clone());
            move |hold: Duration| {
                calls.fetch_add(1, SeqCst);
                let now = running.fetch_add(1, SeqCst) + 1;
                assert!(now <= ceiling.load(SeqCst), "seed {seed}: {now} running");
                let running = Running(running.clone());
                async move {
                    tokio::time::sleep(hold).await;
                    drop(running);
                    Ok::<_, std::io::Error>(())
                }
            }
        }));
        let mut tasks = Vec::new();
        let mut limit = 4;
        for i in 0..600 {
            let hold = Duration::from_millis(rng.u64(1..10));
            tasks.push(tokio::spawn(svc.clone().oneshot(hold)));
            if i % 25 == 0 {
                limit = rng.usize(1..=8);
                ceiling.fetch_max(limit, SeqCst);
                b.reload(&settings(limit, 1024, None)).unwrap();
            }
            if b.in_flight() <= limit {
                // Drained below the limit: from now on it holds exactly.
                ceiling.store(limit, SeqCst);
            }
            if rng.bool() {
                tokio::time::sleep(Duration::from_millis(rng.u64(0..2))).await;
            }
        }
        for t in tasks {
            t.await
                .unwrap()
                .expect("no call fails: the queue holds them all");
        }
        let m = b.metrics();
        assert_eq!(
            (m.in_flight, m.queued, m.rejected()),
            (0, 0, 0),
            "seed {seed}"
        );
        assert_eq!(m.accepted, 600);
        assert_eq!(calls.load(SeqCst), 600);
        assert_eq!(
            b.permit_places(),
            (limit, 0),
            "seed {seed}: no permit lost or made"
        );
    }
}
