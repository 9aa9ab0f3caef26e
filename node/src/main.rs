//! The `mortar` binary: parses the command line, starts logging, runs the command.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Environment variable holding the log filter (`info`, `debug`, `mortar_node=debug,info`, ...).
const LOG_ENV: &str = "MORTAR_LOG";
const LOG_DEFAULT: &str = "info";

/// mimalloc rather than the system allocator: it keeps small objects of one size together, so a
/// node whose calls come and go (each with its transient buffers and task) does not fragment the
/// heap that long-lived state (idle actors, epoxy instances) lives in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = mortar_node::cli::parse();
    let otlp = match &cli.command {
        mortar_node::cli::Command::Node(args) => args.otlp_endpoint.clone(),
        _ => None,
    };
    let provider = match init_tracing(otlp.as_deref()) {
        Ok(provider) => provider,
        Err(e) => {
            mortar_node::cli::note(&format!("error: {e}"));
            return ExitCode::from(mortar_node::cli::EXIT_ERROR);
        }
    };
    let code = mortar_node::cli::run(cli).await;
    if let Some(provider) = provider {
        // Sends the spans still batched; blocks, so off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    ExitCode::from(code)
}

/// Logs to stderr, filtered by MORTAR_LOG; with an OTLP endpoint, spans to the collector too.
fn init_tracing(otlp: Option<&str>) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (filter, bad_filter) = match std::env::var(LOG_ENV) {
        Err(_) => (EnvFilter::new(LOG_DEFAULT), None),
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(LOG_DEFAULT), Some((text, e))),
        },
    };
    let provider = otlp.map(mortar_node::telemetry::otlp_provider).transpose()?;
    let spans = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("mortar")));
    // Colours only on a terminal: logs redirected to a file stay plain text.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry().with(filter).with(logs).with(spans).init();
    if let Some((text, e)) = bad_filter {
        tracing::warn!(filter = %text, error = %e, "ignoring invalid {LOG_ENV}; logging at {LOG_DEFAULT}");
    }
    Ok(provider)
}
