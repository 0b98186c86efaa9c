//! The dashboard over real connections on 127.0.0.1, nested under a prefix with axum: the stream
//! over HTTP/1.1 and HTTP/2, and a client that goes away is no longer fed.
//!
//! Real sockets, so the real clock; every wait is a condition polled with a deadline.

mod common;

use bytes::Bytes;
use common::{eventually, Gateway, PREFIX};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_over_http2_starts_with_retry_and_a_snapshot() {
    let gw = Gateway::start("127.0.0.1:0", "h2", Duration::from_secs(1)).await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 with prior knowledge");
    tokio::spawn(conn);
    let req = http::Request::get(gw.url(&format!("{PREFIX}/events")))
        .version(http::Version::HTTP_2)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let mut got = String::new();
    while !got.contains("event: snapshot\n") {
        let frame = body.frame().await.expect("a frame").unwrap();
        got.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
    }
    assert!(got.starts_with("retry: 300\n\n"), "{got}");
    assert!(got.contains(r#""name":"h2""#), "{got}");
    assert_eq!(gw.dashboard.clients(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_is_no_longer_fed() {
    let gw = Gateway::start("127.0.0.1:0", "h1", Duration::from_secs(1)).await;
    // The page, at the prefix without a trailing slash, over HTTP/1.1.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let page = client
        .request(
            http::Request::get(gw.url(PREFIX))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.status(), 200);

    let mut socket = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    socket
        .write_all(
            format!("GET {PREFIX}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = String::new();
    while !got.contains("event: snapshot") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "stream ended early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("retry: 300\n\n"));
    assert_eq!(gw.dashboard.clients(), 1);

    // The client goes away: the server drops the stream at its next write at the latest (one
    // snapshot interval), and the dashboard stops feeding it.
    drop(socket);
    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.dashboard.clients() == 0
        })
        .await,
        "the stream of a client that left is still fed"
    );
    assert_eq!(gw.dashboard.slow_clients_dropped(), 0);
}
