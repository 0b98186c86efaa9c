//! A keyed rate limiter in front of an axum router, served on 127.0.0.1 and called over real
//! HTTP from two client addresses (127.0.0.1 and 127.0.0.2): the limit is per client address,
//! read from axum's `ConnectInfo`, and a call over it is answered 429 with `Retry-After`,
//! `RateLimit-Policy` and `RateLimit` by the facade's `HttpErrorLayer`.

use axum::routing::get;
use axum::Router;
use battlement::http_error::HttpErrorLayer;
use battlement::prelude::*;
use battlement::rate_limit::{ClientIp, RateLimit};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tower::ServiceBuilder;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client_from(ip: &str) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(ip.parse::<IpAddr>().unwrap()));
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn get_from(client: &HttpClient, addr: SocketAddr) -> http::Response<String> {
    let res = client
        .get(format!("http://{addr}/").parse().unwrap())
        .await
        .expect("request sent");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    http::Response::from_parts(parts, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn over_the_rate_a_client_gets_429_with_the_ratelimit_fields_and_others_are_served() {
    tokio::time::timeout(Duration::from_secs(30), run())
        .await
        .expect("the test finished");
}

async fn run() {
    // 2 calls an hour per client address: nothing refills during the test.
    let limit = RateLimit::builder("api")
        .rate(2, Duration::from_secs(3600))
        .keyed(ClientIp)
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(HttpErrorLayer::new())
            .rate_limiter(&limit),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    let first = client_from("127.0.0.1");
    for _ in 0..2 {
        let res = get_from(&first, addr).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "hello");
    }
    let res = get_from(&first, addr).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = res.headers();
    // One call per 30 minutes: the next is due in (about) 1800 s, rounded up.
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1_799..=1_800).contains(&retry_after), "{retry_after}");
    assert_eq!(headers["ratelimit-policy"], r#""api";q=2;w=3600"#);
    assert_eq!(
        headers["ratelimit"].to_str().unwrap(),
        format!(r#""api";r=0;t={retry_after}"#)
    );
    assert!(res.body().contains("rate limit `api`"), "{}", res.body());

    // Another client address has its own limit.
    let second = client_from("127.0.0.2");
    let res = get_from(&second, addr).await;
    assert_eq!(res.status(), StatusCode::OK);

    let m = limit.metrics();
    assert_eq!((m.admitted, m.rejected, m.keys_tracked), (3, 1, 2));
    server.abort();
}
