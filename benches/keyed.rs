//! A keyed circuit breaker's call for a key already in its table, beside the unkeyed breaker
//! and a baseline: the unkeyed breaker behind one plain `DashMap` lookup (what "one concurrent
//! map lookup more than the plain breaker" costs at best).
//!
//! Per call (criterion, as `overhead`): each row drives one service, built once, in front of the
//! same trivial inner service, with `ready().await` + `call().await` on a current-thread
//! runtime. Requests are `u64` keys: one key, or 1000 keys cycled, all in the table (the keyed
//! rows measure known keys); the key extractor is a closure returning the key (no allocation).
//! With 1000 keys each call touches another breaker's state; the hand-made `DashMap` of 1000
//! breakers is the baseline for that row.
//! Breakers are closed throughout, with the default settings.
//!
//! Run: `cargo bench -p battlement --bench keyed` (criterion's flags apply: `-- --quick`).

use battlement::breaker::{CircuitBreaker, CircuitBreakerLayer};
use battlement::core::ResultClassifier;
use battlement::keyed::{key_fn, KeyedBuilder};
use criterion::Criterion;
use dashmap::DashMap;
use std::convert::Infallible;
use std::fmt::Debug;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

const KEYS: u64 = 1000;

fn inner() -> impl Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = std::future::Ready<Result<u64, Infallible>>,
> + Clone {
    tower::service_fn(|k: u64| std::future::ready(Ok(k)))
}

/// The baseline of a table done by hand: a `DashMap` of breakers, the call's breaker looked up
/// and called through its public per-call path (what the keyed table does, minus the key
/// extractor and the use flag).
#[derive(Clone)]
struct MapOfBreakers<S> {
    map: Arc<DashMap<u64, CircuitBreaker>>,
    inner: S,
}

impl<S: Service<u64, Response = u64>> Service<u64> for MapOfBreakers<S>
where
    S::Error: Into<battlement::core::BoxError>,
{
    type Response = u64;
    type Error = battlement::core::BoxError;
    type Future = battlement::breaker::ResponseFuture<S::Future, ResultClassifier>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, key: u64) -> Self::Future {
        let ticket = self.map.get(&key).expect("known key").try_call();
        let inner = &mut self.inner;
        battlement::breaker::ResponseFuture::new(
            ticket.map(|guard| (inner.call(key), guard)),
            ResultClassifier,
        )
    }
}

/// The baseline: one `DashMap` lookup of the call's key, then the unkeyed breaker.
#[derive(Clone)]
struct MapThen<S> {
    map: Arc<DashMap<u64, u64>>,
    inner: S,
}

impl<S: Service<u64>> Service<u64> for MapThen<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, key: u64) -> S::Future {
        black_box(self.map.get(&key).map(|v| *v));
        self.inner.call(key)
    }
}

async fn drive<S>(svc: &mut S, keys: u64, iters: u64)
where
    S: Service<u64>,
    S::Error: Debug,
{
    for i in 0..iters {
        let s = svc.ready().await.expect("ready");
        let res = s.call(i % keys).await.expect("call succeeds");
        black_box(res);
    }
}

fn bench<S>(c: &mut Criterion, rt: &Runtime, id: &str, keys: u64, mut svc: S)
where
    S: Service<u64>,
    S::Error: Debug,
{
    rt.block_on(drive(&mut svc, keys, 2 * keys));
    c.benchmark_group("keyed").bench_function(id, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                drive(&mut svc, keys, iters).await;
                start.elapsed()
            })
        })
    });
}

fn per_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    bench(c, &rt, "bare", 1, inner());

    let breaker = CircuitBreaker::builder("bench").build().unwrap();
    let unkeyed = || {
        CircuitBreakerLayer::new(&breaker)
            .classifier(ResultClassifier)
            .layer(inner())
    };
    bench(c, &rt, "breaker", 1, unkeyed());
    let map: Arc<DashMap<u64, u64>> = Arc::new((0..KEYS).map(|k| (k, k)).collect());
    bench(
        c,
        &rt,
        "dashmap_then_breaker",
        1,
        MapThen {
            map,
            inner: unkeyed(),
        },
    );

    let keyed = KeyedBuilder::<CircuitBreaker, u64>::new("bench")
        .max_keys(2 * KEYS as usize)
        .build()
        .unwrap();
    let keyed_svc = || {
        keyed
            .layer(key_fn(|k: &u64| Some(*k)))
            .classifier(ResultClassifier)
            .layer(inner())
    };
    bench(c, &rt, "keyed_breaker_one_key", 1, keyed_svc());

    // 1000 keys, cycled: every call touches another breaker's state (cache misses included).
    let breakers: Arc<DashMap<u64, CircuitBreaker>> = Arc::new(
        (0..KEYS)
            .map(|k| {
                (
                    k,
                    CircuitBreaker::builder(format!("bench/{k}"))
                        .build()
                        .unwrap(),
                )
            })
            .collect(),
    );
    bench(
        c,
        &rt,
        "dashmap_of_breakers_1000_keys",
        KEYS,
        MapOfBreakers {
            map: breakers,
            inner: inner(),
        },
    );
    bench(c, &rt, "keyed_breaker_1000_keys", KEYS, keyed_svc());
    assert_eq!(keyed.len() as u64, KEYS);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    per_call(&mut c);
    c.final_summary();
}
