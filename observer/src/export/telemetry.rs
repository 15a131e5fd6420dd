//! The OpenTelemetry meter provider of `observer run`: one set of instruments read by two
//! readers, the Prometheus exporter behind the scrape endpoint and, when an endpoint is
//! configured, a periodic OTLP push (gRPC or HTTP/protobuf).
//!
//! Configuration follows the OpenTelemetry conventions: `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_METRIC_EXPORT_INTERVAL` and
//! `OTEL_RESOURCE_ATTRIBUTES` are read by the SDK and the exporter; the command-line flags win
//! over them. Export failures are retried by the exporter with backoff, logged and counted
//! (the periodic reader runs on a thread of its own, so a slow collector never slows the
//! pipeline); data is cumulative, so an export after a failure carries everything missed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry::{KeyValue, metrics::Meter};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    metrics::{
        Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality, data::ResourceMetrics,
        exporter::PushMetricExporter,
    },
};

/// The instrumentation scope of every instrument.
pub const SCOPE: &str = "observer";

/// `--otlp-protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (default port 4317).
    #[value(name = "grpc")]
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies (default port 4318, path /v1/metrics).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`'s spelling (`grpc`, `http/protobuf`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            _ => None,
        }
    }
}

/// What the provider is built with.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// Serve the Prometheus exposition (`--metrics-addr`).
    pub prometheus: bool,
    /// Push over OTLP: `Some(None)` means "enabled by the environment's endpoint".
    pub otlp_endpoint: Option<Option<String>>,
    pub otlp_protocol: OtlpProtocol,
    /// Push interval; `None`: `OTEL_METRIC_EXPORT_INTERVAL`, else 60 s.
    pub export_interval: Option<Duration>,
    /// Most attribute sets per instrument (`--metrics-cardinality-limit`).
    pub cardinality_limit: usize,
    /// `k8s.node.name`.
    pub node: String,
}

/// Why the telemetry pipeline could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    #[error("cannot build the Prometheus exporter")]
    Prometheus(#[source] opentelemetry_sdk::error::OTelSdkError),
    #[error("cannot build the OTLP exporter")]
    Otlp(#[source] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot start the OTLP exporter's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0:?} is not grpc or http/protobuf")]
    Protocol(String),
}

/// The meter provider and what reads it.
pub struct Telemetry {
    provider: SdkMeterProvider,
    registry: Option<prometheus::Registry>,
    /// The gRPC exporter's connection tasks run here (tonic needs a Tokio runtime; the periodic
    /// reader's own thread has none). Dropped after the provider is shut down.
    runtime: Option<tokio::runtime::Runtime>,
    export_failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("prometheus", &self.registry.is_some()).finish_non_exhaustive()
    }
}

/// The protocol: the flag, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else gRPC.
pub fn protocol_from(flag: Option<OtlpProtocol>) -> Result<OtlpProtocol, TelemetryError> {
    if let Some(protocol) = flag {
        return Ok(protocol);
    }
    match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL") {
        Ok(text) if !text.trim().is_empty() => OtlpProtocol::parse(&text).ok_or(TelemetryError::Protocol(text)),
        _ => Ok(OtlpProtocol::Grpc),
    }
}

/// The endpoint: the flag, else enabled when `OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT` is set.
pub fn endpoint_from(flag: Option<String>) -> Option<Option<String>> {
    if flag.is_some() {
        return Some(flag);
    }
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    (set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT")).then_some(None)
}

/// service.name=observer (unless `OTEL_SERVICE_NAME` says otherwise), service.version,
/// k8s.node.name, host.name, and `OTEL_RESOURCE_ATTRIBUTES`.
pub fn resource(node: &str) -> Resource {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default();
    let mut builder = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        builder = builder.with_service_name("observer");
    }
    builder
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("k8s.node.name", node.to_owned()),
            KeyValue::new("host.name", host),
        ])
        .build()
}

impl Telemetry {
    pub fn new(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let limit = config.cardinality_limit.max(1);
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource(&config.node))
            .with_view(move |_: &Instrument| Stream::builder().with_cardinality_limit(limit).build().ok());
        let registry = if config.prometheus {
            let registry = prometheus::Registry::new();
            let exporter = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .scope_info_enabled(false)
                .build()
                .map_err(TelemetryError::Prometheus)?;
            builder = builder.with_reader(exporter);
            Some(registry)
        } else {
            None
        };
        let export_failures = Arc::new(AtomicU64::new(0));
        let mut runtime = None;
        if let Some(endpoint) = &config.otlp_endpoint {
            let exporter = match config.otlp_protocol {
                OtlpProtocol::Grpc => {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .thread_name("observer-otlp")
                        .enable_all()
                        .build()
                        .map_err(TelemetryError::Runtime)?;
                    let _entered = rt.enter();
                    let mut b = opentelemetry_otlp::MetricExporter::builder().with_tonic();
                    if let Some(url) = endpoint {
                        b = b.with_endpoint(url.clone());
                    }
                    let built = b.build().map_err(TelemetryError::Otlp)?;
                    runtime = Some(rt);
                    built
                }
                OtlpProtocol::HttpProtobuf => {
                    let mut b = opentelemetry_otlp::MetricExporter::builder()
                        .with_http()
                        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                    if let Some(url) = endpoint {
                        b = b.with_endpoint(http_metrics_url(url));
                    }
                    b.build().map_err(TelemetryError::Otlp)?
                }
            };
            let counting = CountingExporter { inner: exporter, failures: export_failures.clone() };
            let mut reader = PeriodicReader::builder(counting);
            if let Some(interval) = config.export_interval {
                reader = reader.with_interval(interval);
            }
            builder = builder.with_reader(reader.build());
        }
        Ok(Self { provider: builder.build(), registry, runtime, export_failures })
    }

    /// The meter every instrument is created from.
    pub fn meter(&self) -> Meter {
        opentelemetry::metrics::MeterProvider::meter(&self.provider, SCOPE)
    }

    /// OTLP exports that failed (after the exporter's own retries).
    pub fn export_failures(&self) -> Arc<AtomicU64> {
        self.export_failures.clone()
    }

    /// The Prometheus text exposition of the current state (empty without the scrape reader).
    pub fn scrape(&self) -> String {
        let Some(registry) = &self.registry else { return String::new() };
        scrape_registry(registry)
    }

    /// A handle to render the exposition from the serving task.
    pub fn scraper(&self) -> Option<prometheus::Registry> {
        self.registry.clone()
    }

    /// Pushes what is left and stops the readers. Call outside any async context.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "metrics shutdown");
        }
        if let Some(runtime) = self.runtime {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The Prometheus text format of a registry's metrics.
pub fn scrape_registry(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    if let Err(error) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::warn!(%error, "encoding the metrics exposition");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A flag's base URL gets OTLP/HTTP's signal path, as the environment variable's would.
fn http_metrics_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let has_path = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest).contains('/');
    if has_path { url.to_owned() } else { format!("{trimmed}/v1/metrics") }
}

/// Counts the exports that fail (the exporter has retried with backoff already).
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    failures: Arc<AtomicU64>,
}

impl<E: PushMetricExporter> PushMetricExporter for CountingExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(error) = &result {
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(%error, failures, "OTLP metrics export failed; the next export carries the data");
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_metrics_path() {
        assert_eq!(http_metrics_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(http_metrics_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(http_metrics_url("http://c:4318/custom/path"), "http://c:4318/custom/path");
    }

    #[test]
    fn protocols_parse_in_the_environment_spelling() {
        assert_eq!(OtlpProtocol::parse("grpc"), Some(OtlpProtocol::Grpc));
        assert_eq!(OtlpProtocol::parse("http/protobuf"), Some(OtlpProtocol::HttpProtobuf));
        assert_eq!(OtlpProtocol::parse("http/json"), None);
        assert_eq!(protocol_from(Some(OtlpProtocol::HttpProtobuf)).ok(), Some(OtlpProtocol::HttpProtobuf));
    }

    #[test]
    fn the_scrape_reader_renders_the_same_instruments() {
        let config = TelemetryConfig {
            prometheus: true,
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            export_interval: None,
            cardinality_limit: 10,
            node: "node-1".to_owned(),
        };
        let telemetry = Telemetry::new(&config).expect("telemetry");
        let counter = telemetry.meter().u64_counter("observer.test").with_unit("{leg}").build();
        counter.add(3, &[KeyValue::new("k8s.dst.owner.name", "web")]);
        let text = telemetry.scrape();
        assert!(text.contains("observer_test_total{k8s_dst_owner_name=\"web\"} 3"), "{text}");
        assert!(text.contains("k8s_node_name=\"node-1\""), "target_info carries the resource: {text}");
        assert!(text.contains("service_name=\"observer\""), "{text}");
        telemetry.shutdown();
    }
}
