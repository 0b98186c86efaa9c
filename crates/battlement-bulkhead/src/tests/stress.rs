//! Seeded stress with random cancellation and resizes, on one thread and on two.

use super::*;

/// Many tasks call through one bulkhead, hold their permits for random times, give up at random
/// (their own timeout, or being aborted), while the limit is resized at random. Seeded.
#[tokio::test(start_paused = true)]
async fn stress_with_random_cancellation_leaks_nothing() {
    for seed in 0..8 {
        stress_round(seed).await;
    }
}

async fn stress_round(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let b = bulkhead(4, 8, Some(Duration::from_millis(15)));
    let calls = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let svc = b.layer().layer(service_fn({
        let (calls, running, max_running) = (calls.clone(), running.clone(), max_running.clone());
        move |hold: Duration| {
            calls.fetch_add(1, SeqCst);
            let (running, max_running) = (running.clone(), max_running.clone());
            async move {
                let now = running.fetch_add(1, SeqCst) + 1;
                max_running.fetch_max(now, SeqCst);
                let _running = Running(running);
                tokio::time::sleep(hold).await;
                Ok::<_, std::io::Error>(())
            }
        }
    }));
    let mut largest_limit = 4;
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let hold = Duration::from_millis(rng.u64(0..20));
        let patience = Duration::from_millis(rng.u64(1..40));
        let svc = svc.clone();
        let task = tokio::spawn(async move {
            let _ = tokio::time::timeout(patience, svc.oneshot(hold)).await;
        });
        match rng.u8(0..10) {
            0 => task.abort(),
            1 => {
                tokio::task::yield_now().await;
                task.abort();
            }
            _ => tasks.push(task),
        }
        if rng.u8(0..20) == 0 {
            let limit = rng.usize(1..=6);
            largest_limit = largest_limit.max(limit);
            b.set_max_concurrent(limit).unwrap();
        }
        if rng.bool() {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..3))).await;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    settle().await;
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued), (0, 0), "seed {seed}: {m:?}");
    assert_eq!(running.load(SeqCst), 0);
    assert!(max_running.load(SeqCst) <= largest_limit, "seed {seed}");
    assert_eq!(
        calls.load(SeqCst) as u64,
        m.accepted,
        "seed {seed}: every admitted call reached the inner service once, nothing else did"
    );
    assert!(
        m.rejected_full + m.rejected_timeout > 0,
        "seed {seed}: the test exercised rejection"
    );
    // Exactly the current limit's permits exist: no permit leaked, none was created, and every
    // one is back where the fast path takes it (none stranded in the queue).
    let limit = b.max_concurrent();
    assert_eq!(b.permit_places(), (limit, 0), "seed {seed}");
    let gate = Gate::default();
    let mut probe = guarded(&b, &gate);
    assert_permits(&b, &gate, &mut probe, limit).await;
}

/// The same on a multi-thread runtime, with real parallelism: no timers, cancellation by abort
/// and by dropping futures at random points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_on_two_threads_leaks_nothing() {
    let b = bulkhead(3, 6, None);
    let svc = b.layer().layer(service_fn(|spins: u32| async move {
        for _ in 0..spins {
            tokio::task::yield_now().await;
        }
        Ok::<_, std::io::Error>(())
    }));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut tasks = Vec::new();
    for i in 0..2000u32 {
        let spins = rng.u32(0..8);
        let give_up_after = rng.u32(0..12);
        let svc = svc.clone();
        let task = tokio::spawn(async move {
            let mut call = pin!(svc.oneshot(spins));
            for _ in 0..give_up_after {
                if futures::poll!(call.as_mut()).is_ready() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            // Gave up: the call is dropped here, wherever it was.
        });
        if rng.u8(0..8) == 0 {
            task.abort();
        }
        tasks.push(task);
        if i % 250 == 0 {
            b.set_max_concurrent(rng.usize(1..=5)).unwrap();
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let m = b.metrics();
    assert_eq!((m.in_flight, m.queued), (0, 0), "{m:?}");
    assert!(m.accepted > 0);
    // Every permit is back where the fast path takes it: none stranded in the queue.
    assert_eq!(b.permit_places(), (b.max_concurrent(), 0));
}
