//! The Prometheus/OpenMetrics endpoint: a collector that walks the registry at scrape time and
//! a `tower::Service` serving the text exposition formats.

use crate::walk::{walk, Sink};
use battlement_core::export::{Family, HistogramSnapshot, Labels, MetricType};
use battlement_health::HealthRegistry;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE, VARY};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType as PromType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The `Content-Type` of OpenMetrics text 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The name and unit a family takes in the Prometheus formats.
///
/// Base units (`seconds`, `bytes`, `ratios`) are the name's last word, as the formats want, and
/// OpenMetrics' `# UNIT` line: a family whose name already ends with the unit keeps its name, one
/// that does not gets the unit appended. Other units (`calls`, `permits`: counts, not units in
/// OpenMetrics' sense) stay out of the name and metadata. Counters get `_total` from the
/// encoder, histograms `_bucket`, `_sum` and `_count`.
pub(crate) fn prometheus_name(family: &Family) -> (&'static str, Option<Unit>) {
    let unit = match family.unit {
        "seconds" => Unit::Seconds,
        "bytes" => Unit::Bytes,
        "ratio" | "ratios" => Unit::Ratios,
        _ => return (family.name, None),
    };
    let base = family
        .name
        .strip_suffix(unit.as_str())
        .and_then(|n| n.strip_suffix('_'))
        .unwrap_or(family.name);
    (base, Some(unit))
}

/// The names of the samples a family's values appear under in the Prometheus formats (a
/// counter's `<name>_total`; a histogram's `_bucket`, `_sum` and `_count`).
///
/// ```
/// use battlement_core::export::Family;
///
/// static CALLS: Family = Family::counter("battlement_circuit_breaker_calls", "Calls.", "calls");
/// static WAIT: Family = Family::histogram("battlement_bulkhead_queue_wait", "Queue wait.", "seconds");
/// assert_eq!(battlement_metrics::sample_names(&CALLS), ["battlement_circuit_breaker_calls_total"]);
/// assert_eq!(
///     battlement_metrics::sample_names(&WAIT),
///     [
///         "battlement_bulkhead_queue_wait_seconds_bucket",
///         "battlement_bulkhead_queue_wait_seconds_sum",
///         "battlement_bulkhead_queue_wait_seconds_count",
///     ]
/// );
/// ```
pub fn sample_names(family: &Family) -> Vec<String> {
    let (base, unit) = prometheus_name(family);
    let full = match &unit {
        Some(u) => format!("{base}_{}", u.as_str()),
        None => base.to_owned(),
    };
    match family.kind {
        MetricType::Counter => vec![format!("{full}_total")],
        MetricType::Histogram => ["bucket", "sum", "count"]
            .iter()
            .map(|s| format!("{full}_{s}"))
            .collect(),
        _ => vec![full],
    }
}

enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramSnapshot),
}

struct Sample {
    /// `name` first, then the component's labels.
    labels: Vec<(&'static str, String)>,
    value: Value,
}

/// One scrape's values, grouped by family (a format lists each family once).
#[derive(Default)]
struct Gathered {
    families: Vec<(&'static Family, Vec<Sample>)>,
    index: HashMap<&'static str, usize>,
}

impl Gathered {
    fn push(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: Value) {
        let matches = matches!(
            (family.kind, &value),
            (MetricType::Counter, Value::Counter(_))
                | (MetricType::Gauge, Value::Gauge(_))
                | (MetricType::Histogram, Value::Histogram(_))
        );
        if !matches {
            tracing::debug!(
                family = family.name,
                "a value reported with another type than its family's is left out"
            );
            return;
        }
        let next = self.families.len();
        let i = *self.index.entry(family.name).or_insert(next);
        if i == next {
            self.families.push((family, Vec::new()));
        }
        let mut all = Vec::with_capacity(labels.len() + 1);
        all.push(("name", name.to_owned()));
        all.extend(labels.iter().map(|(k, v)| (*k, (*v).to_owned())));
        self.families[i].1.push(Sample { labels: all, value });
    }
}

impl Sink for Gathered {
    fn counter(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: u64) {
        self.push(family, name, labels, Value::Counter(value));
    }
    fn gauge(&mut self, family: &'static Family, name: &str, labels: Labels<'_>, value: f64) {
        self.push(family, name, labels, Value::Gauge(value));
    }
    fn histogram(
        &mut self,
        family: &'static Family,
        name: &str,
        labels: Labels<'_>,
        histogram: &HistogramSnapshot,
    ) {
        self.push(family, name, labels, Value::Histogram(histogram.clone()));
    }
}

struct SampleLabels<'a>(&'a [(&'static str, String)]);

impl EncodeLabelSet for SampleLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        for (key, value) in self.0 {
            (*key, value.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A `prometheus-client` [`Collector`] that walks a [`HealthRegistry`] at every scrape: each
/// component's `battlement_health_status` and whatever it [exports](battlement_core::HealthSource::export),
/// under its `name` label. Register it with a `prometheus_client` [`Registry`] of your own to
/// serve Battlement's metrics beside yours ([`MetricsService::from_registry`]).
///
/// ```
/// use battlement_health::HealthRegistry;
/// use battlement_metrics::{BattlementCollector, Format, MetricsService};
/// use prometheus_client::metrics::counter::Counter;
///
/// let health = HealthRegistry::new();
/// let mut registry = prometheus_client::registry::Registry::default();
/// let requests: Counter = Counter::default();
/// registry.register("app_requests", "Requests served.", requests.clone());
/// registry.register_collector(Box::new(BattlementCollector::new(&health)));
/// requests.inc();
/// let text = MetricsService::from_registry(registry).render(Format::Text).unwrap();
/// assert!(text.contains("app_requests_total 1\n"));
/// ```
#[derive(Debug, Clone)]
pub struct BattlementCollector {
    registry: HealthRegistry,
}

impl BattlementCollector {
    /// A collector of `registry`'s components.
    pub fn new(registry: &HealthRegistry) -> Self {
        BattlementCollector {
            registry: registry.clone(),
        }
    }
}

impl Collector for BattlementCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut gathered = Gathered::default();
        walk(&self.registry, &mut gathered);
        for (family, samples) in &gathered.families {
            let (name, unit) = prometheus_name(family);
            let kind = match family.kind {
                MetricType::Counter => PromType::Counter,
                MetricType::Gauge => PromType::Gauge,
                MetricType::Histogram => PromType::Histogram,
                _ => continue,
            };
            let mut metric = encoder.encode_descriptor(name, family.help, unit.as_ref(), kind)?;
            for sample in samples {
                let labels = SampleLabels(&sample.labels);
                let mut out = metric.encode_family(&labels)?;
                match &sample.value {
                    Value::Counter(v) => ConstCounter::new(*v).encode(out)?,
                    Value::Gauge(v) => ConstGauge::new(*v).encode(out)?,
                    Value::Histogram(h) => {
                        let counts = h.counts();
                        let mut buckets: Vec<(f64, u64)> = h
                            .bounds()
                            .iter()
                            .copied()
                            .zip(counts.iter().copied())
                            .collect();
                        buckets.push((f64::INFINITY, counts[counts.len() - 1]));
                        out.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// OpenMetrics text 1.0.0 (`application/openmetrics-text`), ending in `# EOF`.
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it accepts
    /// `application/openmetrics-text` at least as much as `text/plain` (what Prometheus sends),
    /// the text format 0.0.4 otherwise, and without the header.
    ///
    /// ```
    /// use battlement_metrics::Format;
    /// use http::HeaderValue;
    ///
    /// let prometheus = HeaderValue::from_static(
    ///     "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    /// );
    /// assert_eq!(Format::negotiate(Some(&prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(Some(&HeaderValue::from_static("text/plain"))), Format::Text);
    /// assert_eq!(Format::negotiate(None), Format::Text);
    /// ```
    pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Format::Text;
        };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=")?.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// The Prometheus/OpenMetrics endpoint: a `tower::Service<http::Request<B>>` (`Clone`,
/// `Error = Infallible`) that answers `GET` and `HEAD` at whatever path it is mounted on with
/// the metrics of every component of a [`HealthRegistry`], read at that moment (pull-based: a
/// scrape reads the components' striped counters; their call paths know nothing of it).
///
/// It serves OpenMetrics when the `Accept` header asks for it (Prometheus does) and the
/// Prometheus text format 0.0.4 otherwise ([`Format::negotiate`]); other methods get
/// `405 Method Not Allowed`. Built on `prometheus-client`, whose encoders write both formats
/// (counters as `<name>_total`, base units as the name's suffix with OpenMetrics' `# UNIT`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use battlement_core::{ComponentKind, HealthSnapshot, HealthSource, HealthStatus};
/// use battlement_health::HealthRegistry;
/// use battlement_metrics::MetricsService;
/// use http::Request;
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
///
/// #[derive(Clone)]
/// struct Db;
/// impl HealthSource for Db {
///     fn name(&self) -> &str { "db" }
///     fn snapshot(&self) -> HealthSnapshot {
///         HealthSnapshot::new("db", ComponentKind::Other, "up", HealthStatus::Pass)
///     }
/// }
/// let health = HealthRegistry::new();
/// health.register(&Db, true).unwrap();
///
/// // With axum: Router::new().route_service("/metrics", MetricsService::new(&health))
/// let response = MetricsService::new(&health)
///     .oneshot(Request::get("/metrics").body(()).unwrap())
///     .await
///     .unwrap();
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// let text = std::str::from_utf8(&body).unwrap();
/// assert!(text.contains(r#"battlement_health_status{name="db",kind="other",status="pass"} 1"#));
/// # }
/// ```
#[derive(Clone)]
pub struct MetricsService {
    registry: Arc<Registry>,
}

impl fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl MetricsService {
    /// The endpoint of `registry`'s components.
    pub fn new(registry: &HealthRegistry) -> Self {
        let mut prometheus = Registry::default();
        prometheus.register_collector(Box::new(BattlementCollector::new(registry)));
        MetricsService::from_registry(prometheus)
    }

    /// The endpoint of a `prometheus-client` registry of your own, with a
    /// [`BattlementCollector`] registered in it (or not).
    pub fn from_registry(registry: Registry) -> Self {
        MetricsService {
            registry: Arc::new(registry),
        }
    }

    /// The metrics now, in `format`.
    ///
    /// # Errors
    ///
    /// The encoder failed (`prometheus-client` reports a formatting error).
    pub fn render(&self, format: Format) -> Result<String, fmt::Error> {
        let mut out = String::new();
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }

    fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !head {
            let mut res = Response::new(Full::new(Bytes::from_static(b"method not allowed\n")));
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let format = Format::negotiate(req.headers().get(ACCEPT));
        match self.render(format) {
            Ok(text) => {
                let body = if head {
                    Bytes::new()
                } else {
                    Bytes::from(text)
                };
                let mut res = Response::new(Full::new(body));
                let headers = res.headers_mut();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                headers.insert(VARY, HeaderValue::from_static("accept"));
                res
            }
            Err(_) => {
                tracing::error!("encoding the metrics failed");
                let mut res = Response::new(Full::new(Bytes::from_static(
                    b"encoding the metrics failed\n",
                )));
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                res
            }
        }
    }
}

impl<B> tower_service::Service<Request<B>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&req)))
    }
}
