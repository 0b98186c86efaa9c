//! The health report and its `application/health+json` rendering.

use crate::config::RegistryConfig;
use crate::registry::{effective, Aggregate, Evaluated, StatusCounts};
use crate::time::rfc3339;
use battlement_core::{HealthSnapshot, HealthStatus};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::SystemTime;

/// The full health of a registry at one moment: the aggregate status, the status counts and
/// every component's snapshot. Made by [`HealthRegistry::report`](crate::HealthRegistry::report).
///
/// [`to_json`](Self::to_json) renders it in the documented `application/health+json` shape
/// (see the [crate docs](crate#the-json-report)).
///
/// ```
/// use battlement_core::HealthStatus;
/// use battlement_health::{Detail, HealthRegistry};
///
/// let report = HealthRegistry::new().report();
/// assert_eq!(report.status, HealthStatus::Pass);
/// let json: serde_json::Value = serde_json::from_slice(&report.to_json(Detail::Status)).unwrap();
/// assert_eq!(json, serde_json::json!({ "status": "pass" }));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HealthReport {
    /// The aggregate status.
    pub status: HealthStatus,
    /// How many components are in each status (served as `summary`).
    pub counts: StatusCounts,
    /// When the report was made (wall-clock time).
    pub time: SystemTime,
    /// Every component, in registration order.
    pub components: Vec<ComponentReport>,
    /// The registry's service id, if set.
    pub service_id: Option<String>,
    /// The registry's description, if set.
    pub description: Option<String>,
}

/// One component in a [`HealthReport`]: its snapshot, with its verdict (its entry in an
/// [`Aggregate`], without the snapshot, is a [`ComponentStatus`](crate::ComponentStatus)).
///
/// ```
/// use battlement_core::{ComponentKind, HealthStatus, HealthSource, HealthSnapshot};
/// use battlement_health::HealthRegistry;
///
/// #[derive(Clone)]
/// struct Queue;
/// impl HealthSource for Queue {
///     fn name(&self) -> &str { "queue" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("queue", ComponentKind::Bulkhead, "saturated", HealthStatus::Warn)
///     }
/// }
/// let registry = HealthRegistry::new();
/// registry.register(&Queue, true).unwrap();
/// let report = registry.report();
/// let queue = report.component("queue").unwrap();
/// assert_eq!(queue.name(), "queue");
/// assert!(queue.critical);
/// assert_eq!(queue.output(), "bulkhead `queue` is saturated");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ComponentReport {
    /// What the component reported (its own status, state, message and metrics).
    pub snapshot: HealthSnapshot,
    /// Whether it is critical.
    pub critical: bool,
    /// What it contributes to the aggregate (a non-critical `fail` counts as `warn`).
    pub effective: HealthStatus,
    /// The time the snapshot describes: now for observed components, the last run for checks.
    pub time: SystemTime,
}

impl ComponentReport {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.snapshot.name
    }

    /// The human-readable note served as `output`: the component's message; else, when it does
    /// not pass, ``<kind> `<name>` is <state>``; else empty.
    pub fn output(&self) -> Cow<'_, str> {
        match &self.snapshot.message {
            Some(m) => Cow::Borrowed(m),
            None if self.snapshot.status != HealthStatus::Pass => Cow::Owned(format!(
                "{} `{}` is {}",
                self.snapshot.kind.as_str().replace('_', " "),
                self.snapshot.name,
                self.snapshot.state
            )),
            None => Cow::Borrowed(""),
        }
    }
}

/// How much of a report to render.
///
/// ```
/// use battlement_health::{Detail, HealthRegistry};
///
/// let json: serde_json::Value =
///     serde_json::from_slice(&HealthRegistry::new().report().to_json(Detail::Components)).unwrap();
/// assert!(json["summary"].is_object() && json["checks"].is_object());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Detail {
    /// Every measurement of every component (`/healthz`, `/health`).
    Full,
    /// One `<component>:state` entry per component (`/readyz`, `/health/ready`).
    Components,
    /// The top-level `status` only (for endpoints exposed publicly).
    Status,
}

impl HealthReport {
    pub(crate) fn new(
        config: &RegistryConfig,
        evaluated: Vec<crate::registry::Evaluated>,
        aggregate: Aggregate,
    ) -> Self {
        let now = SystemTime::now();
        HealthReport {
            status: aggregate.status,
            counts: aggregate.counts,
            time: now,
            components: evaluated
                .into_iter()
                .map(|e: Evaluated| ComponentReport {
                    critical: e.component.critical,
                    effective: effective(e.snapshot.status, e.component.critical),
                    time: e.time.unwrap_or(now),
                    snapshot: e.snapshot,
                })
                .collect(),
            service_id: config.service_id.clone(),
            description: config.description.clone(),
        }
    }

    /// Keeps the components for which `keep` is true, and recomputes the status and counts
    /// from them (a view with some components excluded).
    pub(crate) fn retain(&mut self, keep: impl FnMut(&ComponentReport) -> bool) {
        self.components.retain(keep);
        let mut counts = StatusCounts::default();
        let mut status = HealthStatus::Pass;
        for c in &self.components {
            status = status.max(c.effective);
            counts.count(c.snapshot.status);
        }
        self.status = status;
        self.counts = counts;
    }

    /// The component named `name` (of several of that name, of different kinds, the first
    /// registered).
    pub fn component(&self, name: &str) -> Option<&ComponentReport> {
        self.components.iter().find(|c| c.name() == name)
    }

    /// The top-level `output`: which components fail and which warn; `None` when the report
    /// passes.
    pub fn output(&self) -> Option<String> {
        if self.status == HealthStatus::Pass {
            return None;
        }
        let names = |status| {
            self.components
                .iter()
                .filter(|c| c.snapshot.status == status)
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let parts: Vec<String> = [
            ("failing", HealthStatus::Fail),
            ("warning", HealthStatus::Warn),
        ]
        .into_iter()
        .map(|(label, status)| (label, names(status)))
        .filter(|(_, list)| !list.is_empty())
        .map(|(label, list)| format!("{label}: {list}"))
        .collect();
        Some(parts.join("; "))
    }

    /// Renders the report as `application/health+json`.
    pub fn to_json(&self, detail: Detail) -> Vec<u8> {
        serde_json::to_vec(&self.view(detail)).expect("a health report always serialises")
    }

    /// Renders the report as indented `application/health+json`.
    pub fn to_json_pretty(&self, detail: Detail) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.view(detail)).expect("a health report always serialises")
    }

    /// Writes the full report as JSON to `path` atomically: to a temporary file in the same
    /// directory, fsynced, then renamed over `path`, so a concurrent reader sees the previous
    /// document or this one, never a torn one.
    ///
    /// ```
    /// use battlement_health::HealthRegistry;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("health.json");
    /// HealthRegistry::new().report().write_to(&path).unwrap();
    /// let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    /// assert_eq!(json["status"], "pass");
    /// ```
    pub fn write_to(&self, path: impl AsRef<Path>) -> io::Result<()> {
        crate::persist::write_atomic(path.as_ref(), &self.to_json_pretty(Detail::Full))
    }

    fn view(&self, detail: Detail) -> JsonReport<'_> {
        let details = detail != Detail::Status;
        JsonReport {
            status: self.status,
            service_id: self.service_id.as_deref().filter(|_| details),
            description: self.description.as_deref().filter(|_| details),
            output: self.output().filter(|_| details),
            time: details.then(|| rfc3339(self.time)),
            summary: details.then_some(self.counts),
            checks: details.then_some(Checks {
                report: self,
                full: detail == Detail::Full,
            }),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    status: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<StatusCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Checks<'a>>,
}

struct Checks<'a> {
    report: &'a HealthReport,
    full: bool,
}

enum Observed<'a> {
    Number(f64),
    Text(&'a str),
}

impl Serialize for Observed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// Integers up to 2^53 are exact in an f64: write them without a fraction.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        match *self {
            Observed::Number(v) if v.fract() == 0.0 && v.abs() <= EXACT => {
                serializer.serialize_i64(v as i64)
            }
            Observed::Number(v) => serializer.serialize_f64(v),
            Observed::Text(s) => serializer.serialize_str(s),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    component_id: &'a str,
    component_type: &'static str,
    critical: bool,
    status: HealthStatus,
    observed_value: Observed<'a>,
    observed_unit: Option<&'a str>,
    time: &'a str,
    /// Omitted when the component passes, as the format asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a str>,
}

impl Serialize for Checks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Components of different kinds may share a name: their entries under one key share
        // its array (as the format intends for several instances of a component), in
        // registration order, so no key is written twice.
        let components = &self.report.components;
        let times: Vec<String> = components.iter().map(|c| rfc3339(c.time)).collect();
        let outputs: Vec<Option<Cow<'_, str>>> = components
            .iter()
            .map(|c| (c.snapshot.status != HealthStatus::Pass).then(|| c.output()))
            .collect();
        let mut keys: Vec<(String, Vec<Entry<'_>>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut push = |key: String, entry| match index.get(&key) {
            Some(&i) => keys[i].1.push(entry),
            None => {
                index.insert(key.clone(), keys.len());
                keys.push((key, vec![entry]));
            }
        };
        for (i, c) in components.iter().enumerate() {
            let snap = &c.snapshot;
            let entry = |value, unit| Entry {
                component_id: &snap.name,
                component_type: snap.kind.as_str(),
                critical: c.critical,
                status: snap.status,
                observed_value: value,
                observed_unit: unit,
                time: &times[i],
                output: outputs[i].as_deref(),
            };
            push(
                format!("{}:state", snap.name),
                entry(Observed::Text(&snap.state), None),
            );
            if self.full {
                for m in snap.metrics.iter().filter(|m| m.name != "state") {
                    push(
                        format!("{}:{}", snap.name, m.name),
                        entry(Observed::Number(m.value), m.unit.as_deref()),
                    );
                }
            }
        }
        let mut map = serializer.serialize_map(Some(keys.len()))?;
        for (key, entries) in &keys {
            map.serialize_entry(key, entries)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::Fake;
    use crate::{Detail, HealthRegistry};
    use battlement_core::{ComponentKind, HealthStatus, Metric};
    use serde_json::{json, Value};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn renders_every_measurement_in_full_and_states_in_components() {
        let registry = HealthRegistry::builder().service_id("svc").build().unwrap();
        let breaker = Fake::new("payments", ComponentKind::CircuitBreaker);
        breaker.set_metrics(vec![
            Metric::new("failure_rate", 0.75, "ratio"),
            Metric::unitless("weird", f64::NAN),
        ]);
        breaker.set("open", HealthStatus::Fail);
        registry.register(&breaker, true).unwrap();
        let report = registry.report();

        let full = parse(&report.to_json(Detail::Full));
        assert_eq!(full["status"], "fail");
        assert_eq!(full["serviceId"], "svc");
        assert_eq!(full["output"], "failing: payments");
        assert_eq!(
            full["summary"],
            json!({"total": 1, "pass": 0, "warn": 0, "fail": 1})
        );
        let checks = full["checks"].as_object().unwrap();
        let keys: Vec<&str> = checks.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["payments:failure_rate", "payments:state", "payments:weird"]
        );
        let state = &checks["payments:state"][0];
        assert_eq!(state["observedValue"], "open");
        assert_eq!(state["observedUnit"], Value::Null);
        assert_eq!(state["componentType"], "circuit_breaker");
        assert_eq!(state["componentId"], "payments");
        assert_eq!(state["critical"], true);
        assert_eq!(state["output"], "circuit breaker `payments` is open");
        let rate = &checks["payments:failure_rate"][0];
        assert_eq!(rate["observedValue"], 0.75);
        assert_eq!(rate["observedUnit"], "ratio");
        assert_eq!(rate["status"], "fail");
        // Non-finite numbers become null rather than invalid JSON.
        assert_eq!(checks["payments:weird"][0]["observedValue"], Value::Null);

        let ready = parse(&report.to_json(Detail::Components));
        let keys: Vec<&String> = ready["checks"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["payments:state"]);

        assert_eq!(
            parse(&report.to_json(Detail::Status)),
            json!({"status": "fail"})
        );
    }

    #[test]
    fn passing_report_has_no_output() {
        let registry = HealthRegistry::new();
        registry
            .register(&Fake::new("a", ComponentKind::Other), true)
            .unwrap();
        let json = parse(&registry.report().to_json(Detail::Full));
        assert!(json.get("output").is_none());
        // Before: passing entries carried `"output": ""`.
        let entry = json["checks"]["a:state"][0].as_object().unwrap();
        assert!(!entry.contains_key("output"), "{entry:?}");
        // A passing component's message is not an output either (the format wants none).
        let noted = Fake::new("b", ComponentKind::Other);
        noted.set_message("warming up");
        registry.register(&noted, true).unwrap();
        let json = parse(&registry.report().to_json(Detail::Full));
        assert!(json["checks"]["b:state"][0].get("output").is_none());
        // A component that warns has one: its message.
        noted.set("warming", HealthStatus::Warn);
        let json = parse(&registry.report().to_json(Detail::Full));
        assert_eq!(json["checks"]["b:state"][0]["output"], "warming up");
    }

    #[test]
    fn components_sharing_a_name_share_the_keys_arrays() {
        let registry = HealthRegistry::new();
        let breaker = Fake::new("upstream", ComponentKind::CircuitBreaker);
        breaker.set("open", HealthStatus::Fail);
        breaker.set_metrics(vec![Metric::new("calls", 3.0, "calls")]);
        let bulkhead = Fake::new("upstream", ComponentKind::Bulkhead);
        bulkhead.set_metrics(vec![Metric::new("calls", 5.0, "calls")]);
        registry.register(&breaker, true).unwrap();
        registry.register(&bulkhead, false).unwrap();
        let bytes = registry.report().to_json(Detail::Full);
        // Each key is written once (a parser keeping the last duplicate would hide the breaker).
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.matches("\"upstream:state\"").count(), 1, "{text}");
        let json = parse(&bytes);
        let state = json["checks"]["upstream:state"].as_array().unwrap();
        let types: Vec<_> = state.iter().map(|e| e["componentType"].clone()).collect();
        assert_eq!(types, [json!("circuit_breaker"), json!("bulkhead")]);
        assert_eq!(state[0]["status"], "fail");
        let calls: Vec<_> = json["checks"]["upstream:calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["observedValue"].clone())
            .collect();
        assert_eq!(calls, [json!(3), json!(5)]);
    }
}
