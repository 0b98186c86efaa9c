//! HTTP rules: Retry-After and its ceiling, retried statuses, idempotent methods, cloned bodies.

use super::*;
use ::http::{Method, Request, Response, StatusCode};
use battlement_core::StatusSet;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::time::SystemTime;

/// An upstream answering with the scripted statuses (then 200), recording bodies.
fn upstream<B>(
    log: &Log,
    bodies: &Arc<Mutex<Vec<Bytes>>>,
    script: Vec<(u16, Option<&'static str>)>,
) -> impl Service<
    Request<B>,
    Response = Response<String>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<String>, BoxError>>,
> + Clone
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let log = log.clone();
    let bodies = bodies.clone();
    let script = Arc::new(script);
    tower::service_fn(move |req: Request<B>| {
        let n = log.record();
        let bodies = bodies.clone();
        let (status, after) = script.get(n).copied().unwrap_or((200, None));
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            bodies.lock().unwrap().push(body);
            let mut res = Response::builder().status(status);
            if let Some(after) = after {
                res = res.header("retry-after", after);
            }
            Ok(res.body(String::new()).unwrap())
        }
    })
}

fn http_policy() -> RetryPolicyBuilder<HttpRules> {
    RetryPolicy::http_builder()
        .max_attempts(4)
        .backoff(Backoff::fixed(ms(100)))
}

async fn send<B>(
    policy: RetryPolicy<HttpRules>,
    req: Request<B>,
    script: Vec<(u16, Option<&'static str>)>,
) -> (Log, Vec<Bytes>, StatusCode)
where
    B: CloneBody + http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let log = Log::default();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy))
        .service(upstream::<B>(&log, &bodies, script));
    let res = svc.oneshot(req).await.unwrap();
    let bodies = bodies.lock().unwrap().clone();
    (log, bodies, res.status())
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://up/x")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_sets_the_delay() {
    let (log, _, status) = send(
        http_policy().build().unwrap(),
        get(),
        vec![(503, Some("3")), (429, Some("1")), (503, None)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log.gaps(), [ms(3000), ms(1000), ms(100)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_sets_the_delay() {
    fn now() -> SystemTime {
        // Wed, 21 Oct 2015 07:28:00 GMT
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }
    let policy = http_policy().wall_clock(now).build().unwrap();
    let (log, _, status) = send(
        policy,
        get(),
        vec![(503, Some("Wed, 21 Oct 2015 07:28:02 GMT"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log.gaps(), [ms(2000)]);
}

/// Sends a GET through `policy` to an upstream answering `script`; what came back, how many
/// attempts the upstream saw, and how long it all took.
async fn outcome(
    policy: RetryPolicy<HttpRules>,
    script: Vec<(u16, Option<&'static str>)>,
) -> (StatusCode, Log, Duration) {
    let start = Instant::now();
    let (log, _, status) = send(policy, get(), script).await;
    (status, log, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_ceiling_gives_up_at_once() {
    // A fixed backoff and no max_delay: nothing but the ceiling stands between the header
    // and a three-year wait.
    let (status, log, took) = outcome(
        http_policy().build().unwrap(),
        vec![(503, Some("99999999"))],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the 503 comes back"
    );
    assert_eq!(log.calls(), 1, "no retry");
    assert_eq!(took, Duration::ZERO, "at once");
    // A delta that does not fit in u64 seconds, the same.
    let (status, log, took) = outcome(
        http_policy().build().unwrap(),
        vec![(429, Some("999999999999999999999999999"))],
    )
    .await;
    assert_eq!(
        (status, log.calls(), took),
        (StatusCode::TOO_MANY_REQUESTS, 1, Duration::ZERO)
    );
    // Just over the default 60 s.
    let (status, log, _) = outcome(http_policy().build().unwrap(), vec![(503, Some("61"))]).await;
    assert_eq!((status, log.calls()), (StatusCode::SERVICE_UNAVAILABLE, 1));
}

#[tokio::test(start_paused = true)]
async fn retry_after_within_the_ceiling_is_honoured_exactly() {
    // The default ceiling, at its edge; max_delay bounds the backoff, not the server's
    // delay, so the wait is neither cut to 1 s nor given up.
    let policy = http_policy().max_delay(ms(1000)).build().unwrap();
    let (status, log, _) = outcome(policy, vec![(503, Some("60")), (503, None)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log.gaps(), [Duration::from_secs(60), ms(100)]);
    // Nor by the backoff's cap.
    let policy = RetryPolicy::http_builder()
        .backoff(Backoff::exponential(ms(100), 2.0).with_cap(ms(800)))
        .build()
        .unwrap();
    let (_, log, _) = outcome(policy, vec![(429, Some("30"))]).await;
    assert_eq!(log.gaps(), [Duration::from_secs(30)]);
    // Raised to min_delay.
    let policy = http_policy().min_delay(ms(250)).build().unwrap();
    let (_, log, _) = outcome(policy, vec![(503, Some("0"))]).await;
    assert_eq!(log.gaps(), [ms(250)]);
}

#[tokio::test(start_paused = true)]
async fn the_ceiling_is_a_setting() {
    let policy = || {
        http_policy()
            .max_retry_after(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let (_, log, _) = outcome(policy(), vec![(503, Some("10"))]).await;
    assert_eq!(log.gaps(), [Duration::from_secs(10)]);
    let (status, log, took) = outcome(policy(), vec![(503, Some("11"))]).await;
    assert_eq!(
        (status, log.calls(), took),
        (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO)
    );
    // Raised above the default.
    let policy = http_policy()
        .max_retry_after(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (_, log, _) = outcome(policy, vec![(503, Some("3600"))]).await;
    assert_eq!(log.gaps(), [Duration::from_secs(3600)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_dates_and_garbage() {
    fn now() -> SystemTime {
        // Wed, 21 Oct 2015 07:28:00 GMT
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }
    let policy = || http_policy().wall_clock(now).build().unwrap();
    // A date far in the future: beyond the ceiling, so no retry.
    let (status, log, took) =
        outcome(policy(), vec![(503, Some("Fri, 31 Dec 9999 23:59:59 GMT"))]).await;
    assert_eq!(
        (status, log.calls(), took),
        (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO)
    );
    // A date a minute and a second ahead: also beyond.
    let (_, log, _) = outcome(policy(), vec![(503, Some("Wed, 21 Oct 2015 07:29:01 GMT"))]).await;
    assert_eq!(log.calls(), 1);
    // A date in the past: retry at once.
    let (status, log, _) =
        outcome(policy(), vec![(503, Some("Thu, 01 Jan 1970 00:00:00 GMT"))]).await;
    assert_eq!((status, log.gaps()), (StatusCode::OK, vec![Duration::ZERO]));
    // Negative numbers and garbage are ignored: the backoff decides.
    for garbage in [
        "-5",
        "soon",
        "1.5",
        "",
        "12 34",
        "Wed, 99 Oct 2015 07:28:00 GMT",
    ] {
        let (status, log, _) = outcome(policy(), vec![(503, Some(garbage))]).await;
        assert_eq!(
            (status, log.gaps()),
            (StatusCode::OK, vec![ms(100)]),
            "{garbage:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn time_limit_bounds_a_retry_after_wait() {
    // Within the ceiling, but the wait would end past the time limit: not taken, and not
    // shortened either.
    let policy = http_policy()
        .time_limit(Duration::from_secs(5))
        .build()
        .unwrap();
    let (status, log, took) = outcome(policy, vec![(503, Some("30"))]).await;
    assert_eq!(
        (status, log.calls(), took),
        (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO)
    );
    // One that ends before the limit is waited for.
    let policy = http_policy()
        .time_limit(Duration::from_secs(5))
        .build()
        .unwrap();
    let (status, log, _) = outcome(policy, vec![(503, Some("4"))]).await;
    assert_eq!(
        (status, log.gaps()),
        (StatusCode::OK, vec![Duration::from_secs(4)])
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_can_be_ignored() {
    let policy = http_policy().honour_retry_after(false).build().unwrap();
    let (log, _, _) = send(policy, get(), vec![(503, Some("3"))]).await;
    assert_eq!(log.gaps(), [ms(100)]);
}

#[tokio::test(start_paused = true)]
async fn statuses_retried() {
    let (log, _, status) = send(
        http_policy().build().unwrap(),
        get(),
        vec![(502, None), (504, None), (503, None)],
    )
    .await;
    assert_eq!((log.calls(), status), (4, StatusCode::OK));
    // 500 and 4xx are answers, not retried.
    for code in [500u16, 400, 404, 408] {
        let (log, _, status) =
            send(http_policy().build().unwrap(), get(), vec![(code, None)]).await;
        assert_eq!(log.calls(), 1, "{code}");
        assert_eq!(status.as_u16(), code);
    }
    // Unless configured.
    let policy = http_policy()
        .retry_statuses(StatusSet::of([500, 409]).unwrap())
        .build()
        .unwrap();
    let (log, _, _) = send(policy, get(), vec![(500, None), (409, None), (503, None)]).await;
    assert_eq!(log.calls(), 3);
    let err = http_policy()
        .retry_statuses(StatusSet::of([200]).unwrap())
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "retry_statuses");
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_return_the_last_response() {
    let (log, _, status) = send(
        http_policy().max_attempts(2).build().unwrap(),
        get(),
        vec![(503, None), (502, None), (200, None)],
    )
    .await;
    assert_eq!(log.calls(), 2);
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(start_paused = true)]
async fn idempotent_methods_only_unless_opted_in() {
    for method in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri("http://up/")
            .body(String::new())
            .unwrap();
        let (log, _, _) = send(http_policy().build().unwrap(), req, vec![(503, None)]).await;
        assert_eq!(log.calls(), 2, "{method}");
    }
    for method in [Method::POST, Method::PATCH] {
        let req = Request::builder()
            .method(method.clone())
            .uri("http://up/")
            .body(String::new())
            .unwrap();
        let (log, _, status) = send(http_policy().build().unwrap(), req, vec![(503, None)]).await;
        assert_eq!(log.calls(), 1, "{method}");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let req = Request::post("http://up/")
        .body(String::from("order"))
        .unwrap();
    let policy = http_policy().retry_non_idempotent(true).build().unwrap();
    let (log, bodies, _) = send(policy, req, vec![(503, None)]).await;
    assert_eq!(log.calls(), 2);
    assert_eq!(bodies, [Bytes::from("order"), Bytes::from("order")]);
}

#[tokio::test(start_paused = true)]
async fn bodies_are_cloned_for_every_attempt() {
    let script = || vec![(503, None), (503, None)];
    let payload = Bytes::from_static(b"{\"qty\":3}");
    let (_, bodies, _) = send(
        http_policy().build().unwrap(),
        Request::put("http://up/")
            .body(Full::new(payload.clone()))
            .unwrap(),
        script(),
    )
    .await;
    assert_eq!(bodies, [payload.clone(), payload.clone(), payload.clone()]);
    // A `Bytes` body (not an `http_body::Body`, but a common client request type).
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(http_policy().build().unwrap()))
        .service(tower::service_fn(move |req: Request<Bytes>| {
            let mut seen = sink.lock().unwrap();
            seen.push(req.into_body());
            let status = if seen.len() < 3 { 503 } else { 200 };
            async move { Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap()) }
        }));
    let res = svc
        .oneshot(Request::put("http://up/").body(payload.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        *seen.lock().unwrap(),
        [payload.clone(), payload.clone(), payload.clone()]
    );
    let (log, _, _) = send(
        http_policy().build().unwrap(),
        Request::put("http://up/")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap(),
        script(),
    )
    .await;
    assert_eq!(log.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn unclonable_body_is_sent_once() {
    let body = Full::new(Bytes::from_static(b"stream"))
        .map_err(|never: Infallible| match never {})
        .boxed();
    let req = Request::put("http://up/").body(body).unwrap();
    let (log, bodies, status) = send(http_policy().build().unwrap(), req, vec![(503, None)]).await;
    assert_eq!(log.calls(), 1);
    assert_eq!(bodies, [Bytes::from_static(b"stream")]);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn unit_body_requests_and_transport_errors() {
    let log = Log::default();
    let inner = log.clone();
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(http_policy().build().unwrap()))
        .service(tower::service_fn(move |_req: Request<()>| {
            let n = inner.record();
            async move {
                if n == 0 {
                    Err::<Response<()>, BoxError>(Box::new(io::Error::from(
                        io::ErrorKind::ConnectionRefused,
                    )))
                } else {
                    Ok(Response::new(()))
                }
            }
        }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(log.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn http_events_carry_status_and_source() {
    let policy = http_policy().build().unwrap();
    let mut events = policy.subscribe();
    let _ = send(policy, get(), vec![(429, Some("2")), (502, None)]).await;
    let a = events.try_recv().unwrap();
    let b = events.try_recv().unwrap();
    assert_eq!(
        (a.status, a.delay, a.source),
        (Some(429), ms(2000), DelaySource::RetryAfter)
    );
    assert_eq!(a.outcome, Outcome::Failure(FailureKind::RateLimited));
    assert_eq!(
        (b.status, b.delay, b.source),
        (Some(502), ms(100), DelaySource::Backoff)
    );
    assert_eq!(b.outcome, Outcome::Failure(FailureKind::ServerError));
}

#[tokio::test(start_paused = true)]
async fn http_predicate_over_request_and_response() {
    // Also retry 500 for GETs on /idempotent-report.
    let policy = http_policy()
        .retry_if(
            |cx: &RetryContext<'_, Request<Full<Bytes>>, Response<String>, BoxError>| {
                cx.default_decision()
                    || (cx.request().uri().path() == "/report"
                        && matches!(cx.result(), Ok(r) if r.status() == 500))
            },
        )
        .build()
        .unwrap();
    let log = Log::default();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(crate::RetryLayer::new(policy))
        .service(upstream::<Full<Bytes>>(&log, &bodies, vec![(500, None)]));
    let req = Request::get("http://up/report")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
    assert_eq!(log.calls(), 2);
}
