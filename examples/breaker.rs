//! A circuit breaker in front of a flaky in-process service: watch it open, probe and close.
//!
//! Run with `cargo run --example breaker`.

use battlement::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{service_fn, ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let breaker = CircuitBreaker::builder("flaky")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(5)
        .failure_rate_threshold(0.5)
        .fixed_open_wait(Duration::from_millis(300))
        .build()?;
    let mut events = breaker.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            println!("  event: {event:?}");
        }
    });

    let failing = Arc::new(AtomicBool::new(false));
    let upstream = {
        let failing = failing.clone();
        service_fn(move |n: u32| {
            let fail = failing.load(Ordering::SeqCst);
            async move {
                if fail {
                    Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
                } else {
                    Ok(n)
                }
            }
        })
    };
    let svc = ServiceBuilder::new()
        .circuit_breaker(&breaker)
        .service(upstream);

    for phase in ["healthy", "failing", "recovered"] {
        failing.store(phase == "failing", Ordering::SeqCst);
        println!("phase: {phase}");
        for n in 0..8 {
            let result = svc.clone().oneshot(n).await;
            let what = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) if e.is::<BreakerOpen>() => format!("rejected ({e})"),
                Err(e) => format!("failed ({e})"),
            };
            println!("  call {n}: {what:<60} state={}", breaker.state());
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    let m = breaker.metrics();
    println!(
        "trips={} permitted={} rejected={} failures={} final state={}",
        m.trips,
        m.calls_permitted,
        m.calls_rejected,
        m.failures,
        breaker.state()
    );
    assert_eq!(breaker.state(), State::Closed);
    Ok(())
}
