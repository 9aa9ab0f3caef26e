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
    init_tracing();
    ExitCode::from(mortar_node::cli::run(cli).await)
}

fn init_tracing() {
    let (filter, bad_filter) = match std::env::var(LOG_ENV) {
        Err(_) => (EnvFilter::new(LOG_DEFAULT), None),
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(LOG_DEFAULT), Some((text, e))),
        },
    };
    // Colours only on a terminal: logs redirected to a file stay plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    if let Some((text, e)) = bad_filter {
        tracing::warn!(filter = %text, error = %e, "ignoring invalid {LOG_ENV}; logging at {LOG_DEFAULT}");
    }
}
