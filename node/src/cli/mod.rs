//! The `mortar` command line: `node`, `kv`, `call`, `subscribe`, `admin`, `dev`, `bench`.
//!
//! Exit codes: 0 success; 1 a definite "no" (key not found, CAS not swapped) or a node that
//! stopped with an error; 2 a usage error, an unreachable node or an error returned by the
//! cluster.

pub mod actors;
pub mod admin;
pub mod dev;
pub mod kv;

use std::time::Duration;

use clap::{Parser, Subcommand};
use tonic::transport::{Channel, Endpoint};

use crate::config::{NodeArgs, NodeConfig};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A definite negative answer (not found, not swapped), or a node that stopped with an error.
pub const EXIT_NO: u8 = 1;
/// A usage error, an unreachable node, or an error status from the cluster.
pub const EXIT_ERROR: u8 = 2;

/// Default `--endpoint` of the client commands.
pub const ENDPOINT_DEFAULT: &str = "127.0.0.1:7100";
/// Longest wait for a TCP/HTTP2 connection to a node, whatever `--timeout-ms` says.
pub const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(3);

#[derive(Debug, Parser)]
#[command(
    name = "mortar",
    version,
    about = "Mortar: a replicated key-value and virtual-actor cluster",
    long_about = "Mortar: a replicated key-value and virtual-actor cluster.\n\n\
        Nodes replicate every write through EPaxos: a reply means the write is committed on a \
        quorum, stored durably and executed.",
    after_help = "Start a local three-node cluster and use it:\n  \
        mortar dev\n  \
        mortar kv put hello world\n  \
        mortar kv get hello\n  \
        mortar admin status\n\n\
        Logs go to stderr; set MORTAR_LOG (e.g. MORTAR_LOG=debug) to change the level."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node of a cluster.
    #[command(long_about = "Run one node of a cluster: a gRPC listener for clients and peers, an HTTP \
                      listener for /metrics, /healthz and /readyz, and durable state in --data-dir.")]
    Node(NodeArgs),
    /// Read and write keys (linearizable get, put, delete, compare-and-set).
    Kv(kv::KvArgs),
    /// Call an actor: `mortar call <actor> <key> <action> [json-args]` prints the JSON result.
    Call(actors::CallArgs),
    /// Print an actor's events as JSON lines.
    Subscribe(actors::SubscribeArgs),
    /// Inspect a running cluster.
    Admin(admin::AdminArgs),
    /// Run a local cluster of real node processes for development.
    Dev(dev::DevArgs),
    /// Measure a running cluster (load generators; see the README's Performance section).
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load on a running Mortar or etcd cluster (closed loop, or open loop with --rate): ops/s and
    /// latency percentiles (HDR histogram).
    Kv(crate::bench::KvBenchArgs),
}

/// Parses the command line. Help and version go to stdout (exit 0); any other parse error is
/// printed as one line on stderr and exits with [`EXIT_ERROR`].
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
                _ => {
                    eprintln!("{}", one_line(&e, &command_path(&args)));
                    std::process::exit(i32::from(EXIT_ERROR));
                }
            }
        }
    }
}

/// The subcommand named by `args`, e.g. `mortar kv cas`, for pointing at the right `--help`.
pub fn command_path(args: &[std::ffi::OsString]) -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["mortar".to_string()];
    for arg in args.iter().skip(1) {
        let Some(arg) = arg.to_str() else { break };
        let Some(sub) = command.find_subcommand(arg).cloned() else {
            break;
        };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

/// Condenses clap's multi-line error into one line: the error, its tips, and which `--help` to
/// read. `command` is the subcommand path, used when the error does not show a usage line.
pub fn one_line(e: &clap::Error, command: &str) -> String {
    let rendered = e.render().to_string();
    let mut blocks = rendered.split("\n\n");
    let message: Vec<&str> =
        blocks.next().unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut out = message.join(" ");
    if out.is_empty() {
        out = "error: invalid arguments".to_string();
    } else if !out.starts_with("error:") {
        out = format!("error: {out}");
    }
    let mut command = command.to_string();
    for line in blocks.flat_map(str::lines).map(str::trim) {
        if let Some(tip) = line.strip_prefix("tip:") {
            out.push_str(&format!(" ({})", tip.trim()));
        } else if let Some(usage) = line.strip_prefix("Usage:") {
            let words: Vec<&str> =
                usage.split_whitespace().take_while(|w| !w.starts_with(['[', '<', '-'])).collect();
            if !words.is_empty() {
                command = words.join(" ");
            }
        }
    }
    out.push_str(&format!("; see `{command} --help`"));
    out
}

/// A command that failed: print `error: <message>` and exit with `code`.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    /// An error worth exit code 2.
    pub fn error(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_ERROR, message)
    }

    /// An error status returned by a node: `<Code>: <message>`.
    pub fn status(status: &tonic::Status) -> Failure {
        let message = status.message().replace(['\n', '\r'], " ");
        if message.is_empty() {
            Failure::error(format!("{:?}", status.code()))
        } else {
            Failure::error(format!("{:?}: {message}", status.code()))
        }
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Node(args) => run_node(args).await,
        Command::Kv(args) => kv::run(args).await,
        Command::Call(args) => actors::call(args).await,
        Command::Subscribe(args) => actors::subscribe(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Bench(BenchArgs { command: BenchCommand::Kv(args) }) => {
            let json = args.json;
            match crate::bench::run_kv(args).await {
                Ok(result) => {
                    crate::bench::print(&result, json);
                    Ok(0)
                }
                Err(e) => Err(Failure::error(format!("{e:#}"))),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            failure.code
        }
    }
}

async fn run_node(args: NodeArgs) -> Result<u8, Failure> {
    let config = NodeConfig::from_args(args).map_err(|e| Failure::error(e.to_string()))?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Failure::new(EXIT_NO, format!("cannot install the metrics recorder: {e}")))?;
    tracing::info!(
        id = config.id,
        cluster_id = format_args!("{:016x}", config.cluster_id()),
        listen = %config.listen,
        http = %config.http,
        data_dir = %config.data_dir.display(),
        members = config.initial_cluster.len(),
        "starting node"
    );
    crate::server::run(config, metrics, crate::actor::examples::registry())
        .await
        .map_err(|e| Failure::new(EXIT_NO, format!("{e:#}").replace('\n', " ")))?;
    Ok(EXIT_OK)
}

/// `--endpoint` and `--timeout-ms`, shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// gRPC address of any node of the cluster.
    #[arg(long, env = "MORTAR_ENDPOINT", default_value = ENDPOINT_DEFAULT, value_name = "HOST:PORT")]
    pub endpoint: String,

    /// Give up waiting for an answer after this many milliseconds (a write that times out may or
    /// may not have happened).
    #[arg(long, default_value_t = 10_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub timeout_ms: u64,
}

impl ConnectArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Connects to `--endpoint`, failing with one line that says what to do.
    pub async fn connect(&self) -> Result<Channel, Failure> {
        let uri = if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else {
            format!("http://{}", self.endpoint)
        };
        let connect_timeout = self.timeout().min(CONNECT_TIMEOUT_MAX);
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|_| {
                Failure::error(format!(
                    "--endpoint `{}` is not a host:port address; give e.g. 127.0.0.1:7100",
                    self.endpoint
                ))
            })?
            .connect_timeout(connect_timeout);
        // The outer timeout also bounds name resolution and the HTTP/2 handshake.
        match tokio::time::timeout(connect_timeout + Duration::from_millis(500), endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(e)) => Err(self.unreachable(&connect_error_reason(&e))),
            Err(_) => Err(self.unreachable(&format!("no answer within {} ms", connect_timeout.as_millis()))),
        }
    }

    fn unreachable(&self, reason: &str) -> Failure {
        Failure::error(format!(
            "cannot reach a mortar node at {} ({reason}); is it running? set --endpoint or \
             MORTAR_ENDPOINT",
            self.endpoint
        ))
    }

    /// Runs one call with the `--timeout-ms` deadline (also sent to the node as `grpc-timeout`).
    pub async fn call<T, F>(&self, what: &str, call: F) -> Result<T, Failure>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.timeout(), call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Failure::status(&status)),
            Err(_) => Err(Failure::error(format!(
                "no answer from {} within {} ms; {what} (raise --timeout-ms to wait longer)",
                self.endpoint, self.timeout_ms
            ))),
        }
    }

    /// Wraps a message in a request carrying the deadline.
    pub fn request<M>(&self, message: M) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout());
        request
    }
}

/// The most specific reason in a connection error's chain: "connection refused" rather than
/// "transport error".
fn connect_error_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
                _ => strip_os_error(&io.to_string()),
            };
        }
        deepest = err.to_string();
        source = err.source();
    }
    strip_os_error(&deepest)
}

fn strip_os_error(text: &str) -> String {
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => text,
    };
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parse_errors_become_one_line() {
        let e = Cli::try_parse_from(["mortar", "node", "--bogus"]).unwrap_err();
        let line = one_line(&e, "mortar");
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("error: unexpected argument '--bogus'"), "{line}");
        assert!(line.ends_with("see `mortar node --help`"), "{line}");

        let e = Cli::try_parse_from(["mortar", "node", "--data-di", "x"]).unwrap_err();
        let line = one_line(&e, "mortar");
        assert!(line.contains("--data-dir"), "{line}");

        let e = Cli::try_parse_from(["mortar", "kv", "cas", "k", "--value", "v"]).unwrap_err();
        let line = one_line(&e, "mortar");
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("not provided: <--expect <OLD>|--absent>"), "{line}");
        assert!(line.contains("mortar kv cas --help"), "{line}");

        let args = ["mortar", "node", "--id", "one"];
        let e = Cli::try_parse_from(args).unwrap_err();
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        assert_eq!(command_path(&args), "mortar node");
        let line = one_line(&e, &command_path(&args));
        assert!(line.starts_with("error: invalid value 'one' for '--id <N>'"), "{line}");
        assert!(line.ends_with("see `mortar node --help`"), "{line}");
        let args: Vec<std::ffi::OsString> = ["mortar", "kv", "get", "x"].iter().map(Into::into).collect();
        assert_eq!(command_path(&args), "mortar kv get");
    }

    #[test]
    fn kv_arguments() {
        let cli = Cli::try_parse_from([
            "mortar",
            "kv",
            "cas",
            "k",
            "--absent",
            "--value",
            "v",
            "--endpoint",
            "h:1",
        ])
        .unwrap();
        let Command::Kv(kv::KvArgs { command: kv::KvCommand::Cas(cas) }) = cli.command else {
            panic!("parsed as another command");
        };
        assert!(cas.absent);
        assert_eq!(cas.expect, None);
        assert_eq!(cas.connect.endpoint, "h:1");
        assert!(
            Cli::try_parse_from(["mortar", "kv", "cas", "k", "--absent", "--expect", "o", "--value", "v"])
                .is_err()
        );
    }

    #[test]
    fn connect_reason_names_the_io_error() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(connect_error_reason(&io), "connection refused");
        assert_eq!(strip_os_error("No such host (os error 2)"), "no such host");
    }
}
