//! gRPC health checking: drives a `tonic-health` `HealthReporter` from the aggregate.

use crate::registry::Aggregate;
use crate::HealthRegistry;
use battlement_core::HealthStatus;
use std::collections::HashSet;
use std::fmt;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// Follows a [`HealthRegistry`] and reports it through `tonic-health`'s [`HealthReporter`], so
/// the standard `grpc.health.v1.Health` service answers for it:
///
/// - the overall service `""` (and any [`service_name`](Self::service_name) added) is
///   `SERVING` unless the aggregate is `fail`;
/// - each component, under its own name, is `SERVING` unless its own status is `fail`;
///   a component that is unregistered is cleared.
///
/// [`sync`](Self::sync) applies the current aggregate once; [`spawn`](Self::spawn) follows the
/// registry's [`subscribe`](HealthRegistry::subscribe) channel until its handle is dropped (run
/// a [monitor](HealthRegistry::spawn_monitor) so breaker and bulkhead changes are published).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_health::grpc::GrpcHealthBridge;
/// use battlement_health::HealthRegistry;
///
/// let registry = HealthRegistry::new();
/// let (reporter, health_server) = tonic_health::server::health_reporter();
/// let bridge = GrpcHealthBridge::new(&registry, reporter)
///     .service_name("demo.Greeter")
///     .spawn();
/// // Serve `health_server` with `tonic::transport::Server::builder().add_service(health_server)`.
/// # drop((bridge, health_server));
/// # }
/// ```
#[derive(Clone)]
pub struct GrpcHealthBridge {
    registry: HealthRegistry,
    reporter: HealthReporter,
    overall: Vec<String>,
}

impl fmt::Debug for GrpcHealthBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcHealthBridge")
            .field("registry", &self.registry)
            .field("overall", &self.overall)
            .finish_non_exhaustive()
    }
}

/// The handle of a spawned [`GrpcHealthBridge`]; dropping it stops the bridge.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_health::grpc::GrpcHealthBridge;
/// use battlement_health::HealthRegistry;
///
/// let (reporter, _server) = tonic_health::server::health_reporter();
/// let handle = GrpcHealthBridge::new(&HealthRegistry::new(), reporter).spawn();
/// handle.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct GrpcBridgeHandle {
    task: Option<JoinHandle<()>>,
}

impl GrpcBridgeHandle {
    /// Stops the bridge and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for GrpcBridgeHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn serving(status: HealthStatus) -> ServingStatus {
    match status {
        HealthStatus::Fail => ServingStatus::NotServing,
        HealthStatus::Pass | HealthStatus::Warn => ServingStatus::Serving,
    }
}

impl GrpcHealthBridge {
    /// A bridge from `registry` to `reporter`.
    pub fn new(registry: &HealthRegistry, reporter: HealthReporter) -> Self {
        GrpcHealthBridge {
            registry: registry.clone(),
            reporter,
            overall: vec![String::new()],
        }
    }

    /// Also reports the overall status under `name` (e.g. your gRPC service's full name,
    /// `package.Service`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.overall.push(name.into());
        self
    }

    /// Reads the registry now and applies its aggregate to the reporter.
    pub async fn sync(&self) {
        let aggregate = self.registry.aggregate();
        self.apply(&aggregate, &mut HashSet::new()).await;
    }

    async fn apply(&self, aggregate: &Aggregate, known: &mut HashSet<String>) {
        let overall = serving(aggregate.status);
        for name in &self.overall {
            self.reporter.set_service_status(name, overall).await;
        }
        // Components of different kinds may share a name; the name serves only if all do.
        let mut by_name: Vec<(&str, HealthStatus)> = Vec::with_capacity(aggregate.components.len());
        for c in &aggregate.components {
            match by_name.iter_mut().find(|(n, _)| *n == &*c.name) {
                Some((_, status)) => *status = (*status).max(c.status),
                None => by_name.push((&c.name, c.status)),
            }
        }
        let mut current = HashSet::with_capacity(by_name.len());
        for (name, status) in by_name {
            self.reporter
                .set_service_status(name, serving(status))
                .await;
            current.insert(name.to_owned());
        }
        let mut reporter = self.reporter.clone();
        for gone in known.difference(&current) {
            if !self.overall.contains(gone) {
                reporter.clear_service_status(gone).await;
            }
        }
        *known = current;
    }

    /// Spawns a task that applies every new aggregate; it stops when the handle is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self) -> GrpcBridgeHandle {
        let task = tokio::spawn(async move {
            let mut rx = self.registry.subscribe();
            let mut known = HashSet::new();
            // Start from a fresh reading, then follow the published changes.
            let first = self.registry.aggregate();
            rx.borrow_and_update();
            self.apply(&first, &mut known).await;
            while rx.changed().await.is_ok() {
                let aggregate = rx.borrow_and_update().clone();
                tracing::debug!(status = %aggregate.status, "gRPC health follows the aggregate");
                self.apply(&aggregate, &mut known).await;
            }
        });
        GrpcBridgeHandle { task: Some(task) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Fake;
    use battlement_core::ComponentKind;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::server::HealthService;

    async fn check(svc: &HealthService, name: &str) -> Option<Wire> {
        let req = tonic::Request::new(HealthCheckRequest {
            service: name.to_owned(),
        });
        match svc.check(req).await {
            Ok(res) => Some(Wire::try_from(res.into_inner().status).unwrap()),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::NotFound);
                None
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn follows_the_aggregate_overall_and_per_component() {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        let cache = Fake::new("cache", ComponentKind::Bulkhead);
        registry.register(&breaker, true).unwrap();
        registry.register(&cache, false).unwrap();
        let (reporter, _server) = tonic_health::server::health_reporter();
        let svc = HealthService::from_health_reporter(reporter.clone());
        let _monitor = registry.spawn_monitor();
        let bridge = GrpcHealthBridge::new(&registry, reporter)
            .service_name("demo.Greeter")
            .spawn();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        for name in ["", "demo.Greeter", "payments", "cache"] {
            assert_eq!(check(&svc, name).await, Some(Wire::Serving), "{name}");
        }

        // A non-critical failure: that component is not serving, the service still is.
        cache.set("rejecting", HealthStatus::Fail);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(check(&svc, "cache").await, Some(Wire::NotServing));
        assert_eq!(check(&svc, "").await, Some(Wire::Serving));

        // A critical failure: the whole service is not serving.
        breaker.set("open", HealthStatus::Fail);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(check(&svc, "").await, Some(Wire::NotServing));
        assert_eq!(check(&svc, "demo.Greeter").await, Some(Wire::NotServing));
        assert_eq!(check(&svc, "payments").await, Some(Wire::NotServing));

        breaker.set("closed", HealthStatus::Pass);
        registry.unregister("cache");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(check(&svc, "").await, Some(Wire::Serving));
        assert_eq!(check(&svc, "payments").await, Some(Wire::Serving));
        assert_eq!(check(&svc, "cache").await, None, "unregistered: cleared");

        // Stopped: changes are no longer reported.
        bridge.shutdown().await;
        breaker.set("open", HealthStatus::Fail);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        assert_eq!(check(&svc, "").await, Some(Wire::Serving));
    }

    #[tokio::test]
    async fn a_name_shared_by_two_kinds_serves_only_if_both_do() {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("upstream", ComponentKind::CircuitBreaker);
        breaker.set("open", HealthStatus::Fail);
        let bulkhead = Fake::new("upstream", ComponentKind::Bulkhead);
        registry.register(&breaker, true).unwrap();
        registry.register(&bulkhead, false).unwrap();
        let (reporter, _server) = tonic_health::server::health_reporter();
        let svc = HealthService::from_health_reporter(reporter.clone());
        GrpcHealthBridge::new(&registry, reporter).sync().await;
        // The passing bulkhead, reported after the open breaker, must not mask it.
        assert_eq!(check(&svc, "upstream").await, Some(Wire::NotServing));
    }

    #[tokio::test]
    async fn sync_applies_once() {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        breaker.set("forced_open", HealthStatus::Fail);
        registry.register(&breaker, true).unwrap();
        let (reporter, _server) = tonic_health::server::health_reporter();
        let svc = HealthService::from_health_reporter(reporter.clone());
        GrpcHealthBridge::new(&registry, reporter).sync().await;
        assert_eq!(check(&svc, "").await, Some(Wire::NotServing));
        assert_eq!(check(&svc, "payments").await, Some(Wire::NotServing));
    }
}
