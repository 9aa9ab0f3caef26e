//! `mortar health`: asks a node's HTTP port for `/healthz` (or `/readyz`) and exits 0 when it
//! answers 200, for a container's HEALTHCHECK or an exec probe (the image has no curl).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Failure, say};

/// Bound on the whole check: connect, ask, read the status line.
const HEALTH_WAIT: Duration = Duration::from_secs(2);
/// Most of the answer read: the status line is at its start.
const ANSWER_BYTES_MAX: usize = 4096;

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The node's HTTP address (`host:port`); an unspecified IP (0.0.0.0, as in the image) means
    /// this host's loopback.
    #[arg(long, env = "MORTAR_HTTP", default_value = "127.0.0.1:7200", value_name = "HOST:PORT")]
    pub http: String,
    /// Ask `/readyz` (serving, a quorum reachable) instead of `/healthz` (the process is alive).
    #[arg(long)]
    pub ready: bool,
}

pub async fn run(args: HealthArgs) -> Result<u8, Failure> {
    let mut address = tokio::time::timeout(HEALTH_WAIT, tokio::net::lookup_host(args.http.as_str()))
        .await
        .map_err(|_| {
            Failure::error(format!("--http {}: the name did not resolve within {HEALTH_WAIT:?}", args.http))
        })?
        .map_err(|e| Failure::error(format!("--http {}: {e}", args.http)))?
        .next()
        .ok_or_else(|| Failure::error(format!("--http {}: no address", args.http)))?;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let answer = tokio::time::timeout(HEALTH_WAIT, ask(address, path))
        .await
        .map_err(|_| Failure::error(format!("no answer from http://{address}{path} within {HEALTH_WAIT:?}")))?
        .map_err(|e| Failure::error(format!("http://{address}{path}: {e}")))?;
    let status_line = answer.lines().next().unwrap_or_default();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).trim();
    if status_line.split_whitespace().nth(1) == Some("200") {
        say(&format!("{path}: {}", if body.is_empty() { "ok" } else { body }))?;
        Ok(super::EXIT_OK)
    } else {
        Err(Failure::error(format!("{path}: {status_line}: {body}")))
    }
}

async fn ask(address: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    (&mut stream).take(ANSWER_BYTES_MAX as u64).read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
