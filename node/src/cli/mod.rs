//! The `mortar` command line: `node`, `kv`, `call`, `subscribe`, `admin`, `dev`, `bench`.
//!
//! Exit statuses tell bad input, not found, a refusal (an actor's user error), unavailable and
//! internal errors apart: see [`exit`] (and `mortar --help`). A command whose stdout is closed
//! under it (`| head -1`) stops quietly with 0, the client commands' output going through
//! [`say`] and [`write_stdout`] (`mortar bench` prints on its own and does not yet).

pub mod actors;
pub mod admin;
pub mod cert;
pub mod connect;
pub mod dev;
pub mod exit;
pub mod health;
pub mod kv;

use std::time::Duration;

use clap::{Parser, Subcommand};
use tonic::transport::Channel;

use crate::config::{NodeArgs, NodeConfig};

pub use exit::{
    EXIT_ERROR, EXIT_INTERNAL, EXIT_NO, EXIT_NOT_APPLIED, EXIT_NOT_FOUND, EXIT_OK, EXIT_REFUSED, EXIT_UNKNOWN,
};

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
    after_help = after_help()
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
    Node(Box<NodeArgs>),
    /// Read and write keys (linearizable get, put, delete, compare-and-set).
    Kv(kv::KvArgs),
    /// Call an actor: `mortar call <actor> <key> <action> [json-args]` prints the JSON result.
    Call(actors::CallArgs),
    /// Print an actor's events as JSON lines.
    Subscribe(actors::SubscribeArgs),
    /// Send messages to actors' durable queues.
    #[command(subcommand)]
    Queue(actors::QueueCommand),
    /// Look inside an actor: summary, state (or --patch it), kv, queue, alarms, connections.
    Inspect(actors::InspectArgs),
    /// Create an actor from an input; fails if it exists.
    Create(actors::CreateArgs),
    /// Connect to an actor: print its events and messages as JSON lines, read calls from stdin.
    Connect(connect::ConnectCmdArgs),
    /// Inspect a running cluster.
    Admin(admin::AdminArgs),
    /// Run a local cluster of real node processes for development.
    Dev(dev::DevArgs),
    /// Measure a running cluster (load generators; see the README's Performance section).
    Bench(BenchArgs),
    /// Create a cluster CA and node certificates for TLS (`--tls-cert`, `--tls-key`, `--tls-ca`).
    Cert(cert::CertArgs),
    /// Check a node's /healthz (or /readyz) over HTTP: exit 0 when it answers 200 (for a
    /// container's HEALTHCHECK).
    Health(health::HealthArgs),
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

/// The end of `mortar --help`: an example, logging, and the exit statuses ([`exit`]).
fn after_help() -> String {
    format!(
        "Start a local three-node cluster and use it:\n  \
        mortar dev\n  \
        mortar kv put hello world\n  \
        mortar kv get hello\n  \
        mortar admin status\n\n\
        Logs go to stderr; set MORTAR_LOG (e.g. MORTAR_LOG=debug) to change the level.\n\n{}",
        exit::EXIT_STATUSES_HELP
    )
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
                    note(&one_line(&e, &command_path(&args)));
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

/// A command that failed: print `error: <message>` (nothing when the message is empty) and exit
/// with `code`.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    /// The reader of stdout has gone (`| head -1`): stop without a word, exit 0, as `cat` would
    /// if it ignored SIGPIPE. Nobody reads what the command would print next.
    pub fn stdout_closed() -> Failure {
        Failure { code: EXIT_OK, message: String::new() }
    }

    /// Bad input, or a failure of the command itself: exit status 2.
    pub fn error(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_ERROR, message)
    }

    /// An error status returned by a node: `<Code>: <message>` (a user error: `<code>:
    /// <message>` and its metadata), with the exit status that says what kind it is
    /// ([`exit::of_status`]).
    pub fn status(status: &tonic::Status) -> Failure {
        exit::of_status(status)
    }
}

/// Runs a parsed command line, a `node` hosting the actor types of `registry`; returns the
/// process exit code.
pub async fn run(cli: Cli, registry: crate::actor::Registry) -> u8 {
    let result = match cli.command {
        Command::Node(args) => run_node(*args, registry).await,
        Command::Kv(args) => kv::run(args).await,
        Command::Call(args) => actors::call(args).await,
        Command::Subscribe(args) => actors::subscribe(args).await,
        Command::Queue(command) => actors::queue(command).await,
        Command::Inspect(args) => actors::inspect(args).await,
        Command::Create(args) => actors::create(args).await,
        Command::Connect(args) => connect::run(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Cert(args) => cert::run(args),
        Command::Health(args) => health::run(args).await,
        Command::Bench(BenchArgs { command: BenchCommand::Kv(args) }) => {
            let json = args.json;
            match crate::bench::run_kv(args).await {
                Ok(result) => say(&crate::bench::render(&result, json)).map(|()| 0),
                Err(e) => Err(Failure::error(format!("{e:#}"))),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            if !failure.message.is_empty() {
                note(&format!("error: {}", failure.message));
            }
            failure.code
        }
    }
}

/// Writes `bytes`, then a newline if `newline`, to stdout and flushes. A closed stdout ends the
/// command quietly ([`Failure::stdout_closed`]); any other write error is a failure.
pub fn write_stdout(bytes: &[u8], newline: bool) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let result = out
        .write_all(bytes)
        .and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| out.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::stdout_closed()),
        Err(e) => Err(Failure::error(format!("cannot write to stdout: {e}"))),
    }
}

/// Prints one line on stdout (see [`write_stdout`]): `say(&format!(..))?`.
pub fn say(line: &str) -> Result<(), Failure> {
    write_stdout(line.as_bytes(), true)
}

/// Prints one line on stderr; a closed stderr is ignored (there is nowhere left to say it).
pub fn note(line: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes()).and_then(|()| err.write_all(b"\n"));
}

async fn run_node(args: NodeArgs, registry: crate::actor::Registry) -> Result<u8, Failure> {
    let config = NodeConfig::from_args(args).map_err(|e| Failure::error(e.to_string()))?;
    let metrics = crate::telemetry::install_recorder()
        .map_err(|e| Failure::new(EXIT_NO, format!("cannot install the metrics recorder: {e}")))?;
    match &config.join {
        Some(join) => tracing::info!(
            through = %join.endpoint,
            replace = ?join.replace,
            listen = %config.listen,
            http = %config.http,
            data_dir = %config.data_dir.display(),
            "starting a node that joins a running cluster"
        ),
        None => tracing::info!(
            id = config.id,
            cluster_id = format_args!("{:016x}", config.cluster_id()),
            listen = %config.listen,
            http = %config.http,
            data_dir = %config.data_dir.display(),
            members = config.initial_cluster.len(),
            "starting node"
        ),
    }
    crate::server::run(config, metrics, registry)
        .await
        .map_err(|e| Failure::new(EXIT_NO, format!("{e:#}").replace('\n', " ")))?;
    Ok(EXIT_OK)
}

/// `--endpoint` and `--timeout-ms`, shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// gRPC address of any node of the cluster; or several, comma-separated: the first that
    /// answers is used.
    #[arg(long, env = "MORTAR_ENDPOINT", default_value = ENDPOINT_DEFAULT, value_name = "HOST:PORT")]
    pub endpoint: String,

    /// Give up waiting for an answer after this many milliseconds (a write that times out may or
    /// may not have happened).
    #[arg(long, default_value_t = 10_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub timeout_ms: u64,

    #[command(flatten)]
    pub credentials: Credentials,
}

/// What a client presents and how it dials: a token, and TLS. Every client command and
/// `mortar bench kv` take these.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Credentials {
    /// The token of a cluster started with --auth-token-file (or, for `admin` and the
    /// inspector, --admin-token-file). Prefer the environment: a flag shows in `ps`.
    #[arg(long, env = "MORTAR_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A file holding the token (as the node's --auth-token-file or --admin-token-file).
    #[arg(long, env = "MORTAR_TOKEN_FILE", value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<std::path::PathBuf>,

    /// The cluster's CA certificate (PEM): connect with TLS to a node started with --tls-ca,
    /// trusting the certificates this CA signed.
    #[arg(long, env = "MORTAR_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,

    /// A client certificate (PEM) to present, with --key and --ca [default: none; tokens
    /// authenticate clients].
    #[arg(long, env = "MORTAR_CERT", value_name = "FILE", requires = "key")]
    pub cert: Option<std::path::PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(long, env = "MORTAR_KEY", value_name = "FILE", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
}

impl Credentials {
    /// The token (`--token`, or read from `--token-file`), checked; the error names the flag.
    pub fn token(&self) -> Result<Option<crate::auth::Token>, String> {
        match (&self.token, &self.token_file) {
            (Some(text), _) => crate::auth::Token::new(text).map(Some).map_err(|e| format!("--token: {e}")),
            (None, Some(path)) => crate::auth::Token::from_file(path)
                .map(Some)
                .map_err(|e| format!("--token-file {}: {e}", path.display())),
            (None, None) => Ok(None),
        }
    }

    /// How to dial: TLS with `--ca` (and `--cert`/`--key`), plain without.
    pub fn dialer(&self) -> Result<crate::tls::Dialer, String> {
        let read = |flag: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
        };
        let Some(ca) = &self.ca else {
            if self.cert.is_some() {
                return Err("--cert needs --ca: the CA that signed the node's certificate".to_string());
            }
            return Ok(crate::tls::Dialer::plain());
        };
        let ca = read("--ca", ca)?;
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((read("--cert", cert)?, read("--key", key)?)),
            _ => None,
        };
        Ok(crate::tls::Dialer::client(&ca, identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()))))
    }
}

impl ConnectArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Connects to `--endpoint`, failing with one line that says what to do.
    pub async fn connect(&self) -> Result<crate::auth::AuthChannel, Failure> {
        let token = self.credentials.token().map_err(Failure::error)?;
        Ok(crate::auth::with_token(self.connect_channel().await?, token))
    }

    /// `--endpoint a,b,c`: each is checked, then the first that answers is the one.
    pub(crate) async fn connect_channel(&self) -> Result<Channel, Failure> {
        if !self.endpoint.contains(',') {
            return self.connect_one().await;
        }
        let endpoints: Vec<&str> = self.endpoint.split(',').map(str::trim).collect();
        for endpoint in &endpoints {
            endpoint_uri(endpoint)?;
        }
        let mut failures: Vec<Failure> = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let one = ConnectArgs { endpoint: endpoint.to_string(), ..self.clone() };
            match one.connect_one().await {
                Ok(channel) => return Ok(channel),
                Err(failure) => failures.push(failure),
            }
        }
        let code = failures.last().map_or(EXIT_ERROR, |f| f.code);
        let messages: Vec<String> = failures.into_iter().map(|f| f.message).collect();
        Err(Failure::new(code, format!("no endpoint of {} answered: {}", self.endpoint, messages.join("; "))))
    }

    /// Connects to `--endpoint`, one `HOST:PORT`.
    async fn connect_one(&self) -> Result<Channel, Failure> {
        let uri = endpoint_uri(&self.endpoint)?;
        let connect_timeout = self.timeout().min(CONNECT_TIMEOUT_MAX);
        let endpoint = self
            .credentials
            .dialer()
            .map_err(Failure::error)?
            .endpoint(&uri)
            .map_err(|e| {
                Failure::error(format!("invalid endpoint '{}': {}", self.endpoint, connect_error_reason(&e)))
            })?
            .connect_timeout(connect_timeout);
        // The outer timeout also bounds name resolution and the HTTP/2 handshake.
        let no_answer = || {
            Failure::new(
                EXIT_NOT_APPLIED,
                format!(
                    "no answer from {} within {} ms; no connection was made (is it a Mortar node's gRPC \
                 address? set --endpoint or MORTAR_ENDPOINT)",
                    self.endpoint,
                    connect_timeout.as_millis()
                ),
            )
        };
        match tokio::time::timeout(connect_timeout + Duration::from_millis(500), endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(e)) => match connect_error_reason(&e) {
                reason if reason.contains("timeout expired") => Err(no_answer()),
                reason => Err(self.unreachable(&reason)),
            },
            Err(_) => Err(no_answer()),
        }
    }

    fn unreachable(&self, reason: &str) -> Failure {
        if reason.contains("certificate") || reason.contains("tls") || reason.contains("handshake") {
            return Failure::error(format!(
                "TLS with {} failed ({reason}): --ca must be the CA that signed the cluster's node \
                 certificates, and the certificate must name the host in --endpoint",
                self.endpoint
            ));
        }
        Failure::new(
            EXIT_NOT_APPLIED,
            format!(
                "cannot reach a mortar node at {} ({reason}); is it running? set --endpoint or \
                 MORTAR_ENDPOINT",
                self.endpoint
            ),
        )
    }

    /// Runs one call with the `--timeout-ms` deadline (also sent to the node as `grpc-timeout`).
    pub async fn call<T, F>(&self, what: &str, call: F) -> Result<T, Failure>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.timeout(), call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.failure(&status, what)),
            Err(_) => Err(self.no_answer(what)),
        }
    }

    /// The failure for an error status of a call through `--endpoint`: the node's own errors as
    /// `<Code>: <message>`; what the transport says about the endpoint itself, in words.
    pub fn failure(&self, status: &tonic::Status, what: &str) -> Failure {
        if let Some(reason) = not_mortar_reason(status) {
            // A TLS server answers a plain HTTP/2 preface with a TLS alert: not HTTP/2 either.
            let tls_hint = if self.credentials.ca.is_none() && reason.contains("HTTP/2") {
                " Or the node serves TLS: pass --ca (MORTAR_CA), the cluster's CA certificate."
            } else {
                ""
            };
            return Failure::error(format!(
                "{} answered, but not as a Mortar gRPC endpoint ({reason}); is it the HTTP port? A \
                 node's gRPC address is its --listen (7100 + i - 1 under `mortar dev`, HTTP is 7200 + \
                 i - 1).{tls_hint}",
                self.endpoint
            ));
        }
        // What tonic reports when its own deadline on the request passes.
        if status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired" {
            return self.no_answer(what);
        }
        Failure::status(status)
    }

    /// No answer from `--endpoint` within `--timeout-ms`; `what` says what that means.
    pub fn no_answer(&self, what: &str) -> Failure {
        Failure::new(
            EXIT_UNKNOWN,
            format!(
                "no answer from {} within {} ms; {what} (is it a Mortar node? raise --timeout-ms to wait \
             longer)",
                self.endpoint, self.timeout_ms
            ),
        )
    }

    /// Wraps a message in a request carrying the deadline.
    pub fn request<M>(&self, message: M) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout());
        request
    }
}

/// Checks an `--endpoint` before anything connects: `HOST:PORT` or `http://HOST:PORT`, with a
/// port of 1 to 65535 (IPv6 hosts in brackets). Returns the URI to connect to.
pub fn endpoint_uri(endpoint: &str) -> Result<String, Failure> {
    const EXAMPLE: &str = "give HOST:PORT, e.g. 127.0.0.1:7100";
    let invalid = |why: &str| Failure::error(format!("invalid endpoint '{endpoint}': {why}"));
    let authority = match endpoint.split_once("://") {
        None => endpoint,
        Some(("http", rest)) => rest.strip_suffix('/').unwrap_or(rest),
        Some((scheme, _)) => return Err(invalid(&format!("{scheme}:// is not supported; {EXAMPLE}"))),
    };
    if authority.is_empty() {
        return Err(invalid(&format!("it is empty; {EXAMPLE}")));
    }
    if authority.contains(['/', '?', '#', '@']) || authority.chars().any(char::is_whitespace) {
        return Err(invalid(&format!("{EXAMPLE}, without a path")));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !authority.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(invalid(&format!("the host is missing; {EXAMPLE}")));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(invalid("write an IPv6 address in brackets, e.g. [::1]:7100"));
    }
    let port = match port {
        None | Some("") => return Err(invalid(&format!("the port is missing; {EXAMPLE}"))),
        Some(port) => port,
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("port must be a number, 1-65535"));
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(format!("http://{host}:{p}")),
        _ => Err(invalid("port must be 1-65535")),
    }
}

/// Why a status shows that the peer is not a Mortar gRPC server, if it does: an HTTP server
/// without gRPC (tonic maps its HTTP status), or a server that does not speak HTTP/2.
fn not_mortar_reason(status: &tonic::Status) -> Option<String> {
    let message = status.message();
    if message.contains("grpc-status header missing") {
        // "grpc-status header missing, mapped from HTTP status code 404"
        let code = message.rsplit(' ').next().filter(|c| c.parse::<u16>().is_ok());
        return Some(match code {
            Some(code) => format!("an HTTP {code} without a gRPC status"),
            None => "an HTTP answer without a gRPC status".to_string(),
        });
    }
    let mut chain = message.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        chain.push_str(&err.to_string());
        source = err.source();
    }
    (chain.contains("h2 protocol error") || chain.contains("http2 error"))
        .then(|| "it does not speak HTTP/2".to_string())
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
        assert!(line.contains("not provided: <--expect <OLD>|--expect-file <PATH>|--absent>"), "{line}");
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
    fn endpoints_are_checked_before_connecting() {
        assert_eq!(endpoint_uri("127.0.0.1:7100").unwrap(), "http://127.0.0.1:7100");
        assert_eq!(endpoint_uri("http://node-1:7100/").unwrap(), "http://node-1:7100");
        assert_eq!(endpoint_uri("[::1]:7100").unwrap(), "http://[::1]:7100");
        for (endpoint, why) in [
            ("127.0.0.1:99999", "port must be 1-65535"),
            ("127.0.0.1:0", "port must be 1-65535"),
            ("127.0.0.1", "the port is missing"),
            ("127.0.0.1:", "the port is missing"),
            ("127.0.0.1:http", "port must be a number"),
            (":7100", "the host is missing"),
            ("", "it is empty"),
            ("::1:7100", "in brackets"),
            ("[::1]", "the port is missing"),
            ("https://h:1", "https:// is not supported"),
            ("h:1/path", "without a path"),
        ] {
            let e = endpoint_uri(endpoint).unwrap_err();
            assert_eq!(e.code, EXIT_ERROR);
            assert!(e.message.starts_with(&format!("invalid endpoint '{endpoint}': ")), "{}", e.message);
            assert!(e.message.contains(why), "{endpoint}: {}", e.message);
        }
    }

    #[test]
    fn an_http_answer_is_not_a_mortar_endpoint() {
        let connect = ConnectArgs {
            endpoint: "127.0.0.1:7200".into(),
            timeout_ms: 1500,
            credentials: Credentials::default(),
        };
        let status =
            tonic::Status::unimplemented("grpc-status header missing, mapped from HTTP status code 404");
        let failure = connect.failure(&status, "x");
        assert!(
            failure.message.starts_with(
                "127.0.0.1:7200 answered, but not as a Mortar gRPC endpoint (an HTTP 404 without a \
                 gRPC status); is it the HTTP port?"
            ),
            "{}",
            failure.message
        );
        let failure = connect.failure(&tonic::Status::cancelled("Timeout expired"), "x");
        assert!(
            failure.message.starts_with("no answer from 127.0.0.1:7200 within 1500 ms"),
            "{}",
            failure.message
        );
        let failure = connect.failure(&tonic::Status::not_found("no actor"), "x");
        assert_eq!(failure.message, "NotFound: no actor");
    }

    #[test]
    fn connect_reason_names_the_io_error() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(connect_error_reason(&io), "connection refused");
        assert_eq!(strip_os_error("No such host (os error 2)"), "no such host");
    }
}
