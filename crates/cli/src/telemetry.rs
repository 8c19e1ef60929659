//! Log and trace set-up: `RUST_LOG`-style filtering, text or JSON lines, and
//! OpenTelemetry spans exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Without an endpoint spans still carry
//! trace context from hop to hop; nothing is exported.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

use crate::config::LogFormat;

/// Flushes spans on shutdown.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn shutdown(self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

fn exporting() -> bool {
    let set = |name| std::env::var(name).is_ok_and(|v| !v.is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Call before starting the async runtime (the OTLP exporter runs its own thread).
pub fn init(format: LogFormat) -> anyhow::Result<Telemetry> {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("hookrelay");
    }
    let mut provider = SdkTracerProvider::builder().with_resource(resource.build());
    if exporting() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    // A second init (tests) keeps the first subscriber.
    let _ = subscriber(format, &provider, std::io::stderr).try_init();
    Ok(Telemetry { provider })
}

/// The subscriber every process uses: filtered log lines to `writer`, and spans of
/// hookrelay's crates to `provider`. Tests install it with their own writer/exporter.
pub fn subscriber<W>(
    format: LogFormat,
    provider: &SdkTracerProvider,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("hookrelay"))
        .with_filter(filter::filter_fn(|m| {
            m.is_span() && m.target().starts_with("hookrelay")
        }));
    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(env_filter.and(filter::filter_fn(|m| {
            dependency_quiet_enough(m.target(), m.level())
        }))))
        .with(otel)
}

/// Only hookrelay's own crates log below `info`, whatever `RUST_LOG` asks for: their
/// dependencies write what passes through them at `debug` and `trace` (tokio-postgres
/// logs every query's parameters: secrets, envelopes with their private fields), and
/// hookrelay cannot vouch for that.
fn dependency_quiet_enough(target: &str, level: &tracing::Level) -> bool {
    target.starts_with("hookrelay") || *level <= tracing::Level::INFO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_log_at_info_at_most() {
        use tracing::Level;
        assert!(!dependency_quiet_enough(
            "tokio_postgres::query",
            &Level::DEBUG
        ));
        assert!(!dependency_quiet_enough("lapin::channel", &Level::TRACE));
        assert!(dependency_quiet_enough(
            "tokio_postgres::query",
            &Level::INFO
        ));
        assert!(dependency_quiet_enough("lapin", &Level::WARN));
        assert!(dependency_quiet_enough(
            "hookrelay_sender::consume",
            &Level::TRACE
        ));
    }
}
