//! A tonic gRPC server guarded by a circuit breaker, with gRPC error mapping and the standard
//! gRPC health service reporting the breaker.
//!
//! A client call succeeds and the health service answers SERVING; an operator forces the breaker
//! open; calls now fail fast with `UNAVAILABLE` and the health service answers NOT_SERVING.
//!
//! Run with `cargo run --example tonic_service`.

use battlement::breaker::{CircuitBreaker, CircuitBreakerLayer};
use battlement::core::GrpcClassifier;
use battlement::grpc_error::GrpcErrorLayer;
use battlement::health::grpc::GrpcHealthBridge;
use battlement::health::HealthRegistry;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::{Service, ServiceBuilder};

/// `demo.Greeter/SayHello` request (a hand-written prost message; codegen works the same way).
#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

/// `demo.Greeter/SayHello` reply.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

const SAY_HELLO: &str = "/demo.Greeter/SayHello";

/// The greeter, written as tonic's code generator would write it.
#[derive(Clone, Default)]
struct Greeter;

struct SayHello;

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = std::future::Ready<Result<tonic::Response<HelloReply>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<HelloRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(HelloReply {
            message: format!("hello, {}", req.get_ref().name),
        })))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<http::Request<Body>> for Greeter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() == SAY_HELLO {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(SayHello, req).await)
            } else {
                Ok(tonic::Status::unimplemented("no such method").into_http())
            }
        })
    }
}

/// A layered service keeps the wrapped service's gRPC name, so tonic can route to it.
#[derive(Clone)]
struct Named<S>(S);

impl<S> NamedService for Named<S> {
    const NAME: &'static str = "demo.Greeter";
}

impl<S, Req> Service<Req> for Named<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> S::Future {
        self.0.call(req)
    }
}

async fn say_hello(
    channel: tonic::transport::Channel,
    name: &str,
) -> Result<HelloReply, tonic::Status> {
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(SAY_HELLO);
    let res = client
        .unary(
            tonic::Request::new(HelloRequest { name: name.into() }),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await?;
    Ok(res.into_inner())
}

async fn health_of(channel: tonic::transport::Channel, service: &str) -> ServingStatus {
    let res = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check");
    res.into_inner().status()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let breaker = CircuitBreaker::builder("greeter").build()?;

    // The health registry reads the breaker (critical); the bridge drives the standard gRPC
    // health service from the registry's aggregate: SERVING while it passes or warns.
    let registry = HealthRegistry::builder()
        .refresh_interval(Duration::from_millis(20))
        .build()?;
    registry.register(&breaker, true)?;
    let _monitor = registry.spawn_monitor();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let bridge = GrpcHealthBridge::new(&registry, reporter).service_name("demo.Greeter");
    bridge.sync().await;
    let _bridge = bridge.spawn();

    // The greeter behind the breaker; rejections become gRPC statuses (UNAVAILABLE).
    let greeter = Named(
        ServiceBuilder::new()
            .layer(GrpcErrorLayer::new())
            .layer(CircuitBreakerLayer::new(&breaker).classifier(GrpcClassifier))
            .service(Greeter),
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .add_service(health_service)
            .add_service(greeter)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;

    let reply = say_hello(channel.clone(), "battlement").await?;
    println!("SayHello -> {:?}", reply.message);
    assert_eq!(reply.message, "hello, battlement");
    let status = health_of(channel.clone(), "demo.Greeter").await;
    println!("health(demo.Greeter) -> {status:?}");
    assert_eq!(status, ServingStatus::Serving);

    breaker.force_open("maintenance window");
    // The monitor re-reads the breaker every 20 ms; the bridge applies the new aggregate.
    for _ in 0..100 {
        if health_of(channel.clone(), "demo.Greeter").await == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = health_of(channel.clone(), "demo.Greeter").await;
    println!("breaker forced open; health(demo.Greeter) -> {status:?}");
    assert_eq!(status, ServingStatus::NotServing);
    let err = say_hello(channel.clone(), "again").await.unwrap_err();
    println!("SayHello -> {:?}: {}", err.code(), err.message());
    assert_eq!(err.code(), tonic::Code::Unavailable);
    Ok(())
}
