//! Your actors, your node: the whole `mortar` binary in one call, hosting the actor types of your
//! [`Registry`].
//!
//! A crate with its own actors gets a node binary with the stock command line (`node` and its
//! flags, the client commands, `dev`, `admin`, ...), logging to stderr (`MORTAR_LOG`), OTLP spans
//! (`--otlp-endpoint`), the Prometheus recorder behind `/metrics` and the mimalloc allocator, from
//! one line in its `src/main.rs`:
//!
//! ```ignore
//! mortar_node::node_main!(my_actors::registry());
//! ```
//!
//! [`node_main!`](crate::node_main) declares `main` and the global allocator: an allocator must be
//! declared in the binary crate, so no function of this library can do it. A binary that picks
//! its own allocator calls [`main`] from its `main` instead:
//!
//! ```no_run
//! use mortar_node::prelude::*;
//!
//! fn registry() -> Registry {
//!     let mut registry = Registry::new();
//!     registry.register(mortar_node::actor::examples::Counter);
//!     registry
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     mortar_node::main(registry())
//! }
//! ```
//!
//! Then `my-node node --id 1 --initial-cluster 1=127.0.0.1:7100 --data-dir data` runs a node,
//! `my-node dev` (or `mortar dev --bin target/release/my-node`) a local cluster of three, and
//! `my-node call <actor> <key> <action> [json]` calls any of its actors. `node/examples/bank_node.rs`
//! is such a binary; the stock `mortar` is one too, hosting the example actors.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::actor::Registry;
use crate::cli;

/// The allocator [`node_main!`](crate::node_main) installs: it keeps small objects of one size
/// together, so a node whose calls come and go (each with its transient buffers and task) does
/// not fragment the heap that long-lived state (idle actors, epoxy instances) lives in.
pub use mimalloc::MiMalloc;

/// Environment variable holding the log filter (`info`, `debug`, `mortar_node=debug,info`, ...).
pub const LOG_ENV: &str = "MORTAR_LOG";
/// The log filter without [`LOG_ENV`].
pub const LOG_DEFAULT: &str = "info";

/// Declares `main` (running [`main`](crate::main) with the registry `$registry` evaluates to)
/// and mimalloc as the global allocator: a complete node binary (see [`crate::binary`]).
///
/// ```ignore
/// mortar_node::node_main!(my_actors::registry());
/// ```
#[macro_export]
macro_rules! node_main {
    ($registry:expr $(,)?) => {
        #[global_allocator]
        static GLOBAL: $crate::binary::MiMalloc = $crate::binary::MiMalloc;

        fn main() -> ::std::process::ExitCode {
            $crate::main($registry)
        }
    };
}

/// Runs the command line of this process (the `mortar` command line) with a `node` hosting the
/// actor types of `registry`, in a Tokio runtime of its own; returns the exit status. Call it
/// once, from `main`.
pub fn main(registry: Registry) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            cli::note(&format!("error: cannot start the Tokio runtime: {e}"));
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    runtime.block_on(run(registry))
}

/// [`main`] in a Tokio runtime of the caller's: parses the command line, starts logging (and
/// spans, with `--otlp-endpoint`), runs the command.
pub async fn run(registry: Registry) -> ExitCode {
    let cli = cli::parse();
    let otlp = match &cli.command {
        cli::Command::Node(args) => args.otlp_endpoint.clone(),
        _ => None,
    };
    let provider = match init_tracing(otlp.as_deref()) {
        Ok(provider) => provider,
        Err(e) => {
            cli::note(&format!("error: {e}"));
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    let code = cli::run(cli, registry).await;
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
    let provider = otlp.map(crate::telemetry::otlp_provider).transpose()?;
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
