//! A halted kill switch fails the health endpoint (it registers as critical) and its guarded
//! service answers 503 through the facade's error mapping; resuming restores both.

use battlement::health::HealthRegistry;
use battlement::http_error::HttpErrorLayer;
use battlement::kill_switch::KillSwitch;
use battlement::ServiceBuilderExt;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{service_fn, ServiceBuilder, ServiceExt};

async fn get(registry: &HealthRegistry, path: &str) -> (StatusCode, serde_json::Value) {
    let res = registry
        .service()
        .oneshot(Request::get(path).body(()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn halted_switch_fails_readiness_and_rejects_calls() {
    let registry = HealthRegistry::builder().build().unwrap();
    let switch = KillSwitch::builder("trading")
        .registry(&registry)
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(HttpErrorLayer::<String>::new())
        .kill_switch(&switch)
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new("filled".to_owned()))
        }));

    assert_eq!(get(&registry, "/health/ready").await.0, StatusCode::OK);
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    switch.halt("daily loss limit");
    let (status, json) = get(&registry, "/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["status"], "fail");
    assert_eq!(
        json["checks"]["trading:state"][0]["observedValue"],
        "halted"
    );
    assert_eq!(json["checks"]["trading:state"][0]["critical"], true);
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.body().contains("daily loss limit"), "{}", res.body());

    switch.resume();
    assert_eq!(get(&registry, "/health/ready").await.0, StatusCode::OK);
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
