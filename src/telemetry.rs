//! Logs and traces: the `tracing` subscriber of the `ignis` binary. Events go
//! to stderr (text or JSON); when `log.otlp_traces_endpoint` is set, Ignis's
//! spans (HTTP requests, distribution, queries, block loads and uploads) are
//! also exported over OTLP/HTTP to a collector (Tempo, Jaeger, an
//! OpenTelemetry Collector), batched on a background thread.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

use crate::config::LogConfig;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (e.g. a malformed endpoint).
    #[error("OTLP trace exporter for {endpoint:?}: {message}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadySet(String),
}

/// Keeps the trace exporter alive; dropping it flushes the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("ignis: flushing traces failed: {e}");
        }
    }
}

/// Installs the global subscriber for `config`; `node` names this process in
/// exported traces (`service.instance.id`).
pub fn init(config: &LogConfig, node: &str) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("IGNIS_LOG")
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if config.format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let provider = if config.otlp_traces_endpoint.is_empty() {
        None
    } else {
        Some(provider(&config.otlp_traces_endpoint, node)?)
    };
    // Spans only (events stay in the logs), from Ignis's own crates, at
    // debug and above whatever the log level.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("ignis"))
            .with_filter(filter::filter_fn(|meta| {
                meta.is_span()
                    && meta.target().starts_with("ignis")
                    && *meta.level() <= tracing::Level::DEBUG
            }))
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadySet(e.to_string()))?;
    Ok(Telemetry { provider })
}

fn provider(endpoint: &str, node: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        })?;
    let resource = Resource::builder()
        .with_service_name("ignis")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            node.to_string(),
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
