//! Two gateways (two axum servers, each with its own Redis connection, as two replicas would
//! be) share one global rate limit and one kill switch through Redis.
//!
//! The program starts its own `redis-server` on a free port (or uses the URL given as its first
//! argument), starts both gateways on 127.0.0.1, sends requests to both until the shared limit
//! answers 429, halts the fleet through gateway 1 and shows gateway 2 answering 503 within a
//! second, then resumes. Run with `cargo run --example fleet --features fleet`.

use axum::{routing::get, Router};
use battlement::fleet::testing::RedisServer;
use battlement::fleet::{Fleet, FleetKillSwitch, GlobalRateLimit, Outage};
use battlement::http_error::HttpErrorLayer;
use battlement::kill_switch::KillSwitch;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceBuilder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Gateway {
    addr: SocketAddr,
    switch: FleetKillSwitch,
}

/// One replica: its own fleet connection, the shared limit and kill switch, an axum server.
async fn gateway(url: &str, id: &str) -> Result<Gateway, BoxError> {
    let fleet = Fleet::builder(url)
        .replica_id(id)
        .command_timeout(Duration::from_millis(20))
        .build()?;
    if !fleet.wait_reachable(Duration::from_secs(5)).await {
        return Err(format!("redis at {url} does not answer").into());
    }
    // 10 requests a second for the whole fleet; while Redis is gone, each of the 2 gateways
    // allows its share, 5 a second.
    let limit = GlobalRateLimit::builder("api", &fleet)
        .rate(10, Duration::from_secs(1))
        .burst(10)
        .outage(Outage::LocalShare { replicas: 2 })
        .build()?;
    let switch = KillSwitch::builder("gateway").build()?;
    let fleet_switch = FleetKillSwitch::builder(&fleet, &switch).build()?;
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(
            ServiceBuilder::new()
                .layer(HttpErrorLayer::new())
                .layer(switch.layer())
                .layer(limit.layer()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("{id}: serving on http://{addr}, replica of the fleet at {url}");
    Ok(Gateway {
        addr,
        switch: fleet_switch,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (_server, url) = match std::env::args().nth(1) {
        Some(url) => (None, url),
        None => {
            let server = RedisServer::start();
            let url = server.url();
            println!("started redis-server at {url}");
            (Some(server), url)
        }
    };
    let gw1 = gateway(&url, "gw-1").await?;
    let gw2 = gateway(&url, "gw-2").await?;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |addr: SocketAddr| {
        let client = client.clone();
        async move {
            let res = client.get(format!("http://{addr}/hello").parse()?).await?;
            Ok::<_, BoxError>(res.status().as_u16())
        }
    };

    // One limit for both: 10 at once, then 429s, whichever gateway is asked.
    let mut answers = [(0, 0); 2];
    for i in 0..16 {
        let (n, addr) = if i % 2 == 0 {
            (0, gw1.addr)
        } else {
            (1, gw2.addr)
        };
        match get(addr).await? {
            200 => answers[n].0 += 1,
            429 => answers[n].1 += 1,
            other => return Err(format!("unexpected status {other}").into()),
        }
    }
    println!(
        "16 requests, alternating: gw-1 {} ok / {} limited (429), gw-2 {} ok / {} limited",
        answers[0].0, answers[0].1, answers[1].0, answers[1].1
    );
    let admitted = answers[0].0 + answers[1].0;
    assert!(
        (10..=12).contains(&admitted),
        "the fleet admitted {admitted}, its burst is 10"
    );

    // An operator halts the fleet through gateway 1; gateway 2 follows.
    gw1.switch.halt("bad deploy", "operator@gw-1").await?;
    let start = Instant::now();
    loop {
        let status = get(gw2.addr).await?;
        if status == 503 {
            println!(
                "halted through gw-1: gw-2 answers 503 after {:?}",
                start.elapsed()
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "gw-2 did not follow within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    gw2.switch.resume().await?;
    tokio::time::sleep(Duration::from_millis(250)).await; // the limit refills meanwhile
    let (a, b) = (get(gw1.addr).await?, get(gw2.addr).await?);
    println!("resumed through gw-2: gw-1 {a}, gw-2 {b}");
    assert_eq!((a, b), (200, 200));
    Ok(())
}
