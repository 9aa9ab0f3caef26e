//! A proxy that holds data back: the `latency` nemesis.
//!
//! Each node's peers reach it through its proxy (see [`crate::topology`]): gRPC over TCP, and
//! gossip over UDP on the same port number. Every chunk read from one side of a TCP connection is
//! written to the other side once it has been held for the current delay, in order; every
//! datagram is sent on to the node likewise (the node answers gossip at the sender's own proxy,
//! so both directions are delayed). A delay of 0 passes data straight through. The delay can
//! change at any time (it applies to chunks read after the change). The `mortar-chaos proxy`
//! command runs one proxy and reads `delay <ms>` lines on its standard input; it stops when its
//! input closes, so it never outlives the runner.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// Connections served at once; more wait in the accept queue.
pub const CONNECTIONS_MAX: usize = 256;
/// Chunks held per direction of one connection; a full queue stops reading (backpressure).
pub const CHUNKS_HELD_MAX: usize = 1024;
/// Bytes read at a time.
const CHUNK_BYTES_MAX: usize = 64 * 1024;
/// How long connecting to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest delay accepted.
pub const DELAY_MS_MAX: u64 = 60_000;
/// Datagrams held at once; more are dropped, as a full network queue drops them.
pub const DATAGRAMS_HELD_MAX: usize = 4096;
/// Largest datagram relayed (the UDP limit).
const DATAGRAM_BYTES_MAX: usize = 65_536;

/// The delay every connection of one proxy applies, shared with whoever changes it.
#[derive(Clone, Debug, Default)]
pub struct Delay(Arc<AtomicU64>);

impl Delay {
    pub fn new(delay: Duration) -> Self {
        let shared = Delay::default();
        shared.set(delay);
        shared
    }

    pub fn set(&self, delay: Duration) {
        self.0.store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

/// Accepts connections on `listener` forever, forwarding each to `target` with `delay`.
pub async fn serve(listener: TcpListener, target: SocketAddr, delay: Delay) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        if slots.available_permits() == 0 {
            tracing::warn!(connections = CONNECTIONS_MAX, "connection limit reached; new connections wait");
        }
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (inbound, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let delay = delay.clone();
        let open = CONNECTIONS_MAX - slots.available_permits();
        tokio::spawn(async move {
            let started = Instant::now();
            match forward(inbound, target, delay, open).await {
                Ok(()) => {
                    tracing::info!(from = %from, seconds = started.elapsed().as_secs(), "connection closed")
                }
                // A refused connect (the node is down) is routine: peers retry often.
                Err(e) if started.elapsed() < CONNECT_TIMEOUT && e.to_string().starts_with("connect to") => {
                    tracing::debug!(from = %from, error = %e, "connection refused onward");
                }
                Err(e) => tracing::info!(
                    from = %from,
                    seconds = started.elapsed().as_secs(),
                    error = format!("{e:#}"),
                    "connection ended"
                ),
            }
            drop(permit);
        });
    }
}

async fn forward(inbound: TcpStream, target: SocketAddr, delay: Delay, open: usize) -> anyhow::Result<()> {
    let outbound = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| anyhow::anyhow!("connect to {target}: timed out"))?
        .with_context(|| format!("connect to {target}"))?;
    if let Ok(from) = inbound.peer_addr() {
        tracing::info!(from = %from, open, "connection forwarded");
    }
    inbound.set_nodelay(true)?;
    outbound.set_nodelay(true)?;
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let (a, b) = tokio::join!(pump(in_read, out_write, delay.clone()), pump(out_read, in_write, delay));
    a.and(b)
}

/// Copies `from` to `to`, holding each chunk for the delay current when it was read. Ends at
/// end of input (shutting `to` down) or at the first error.
async fn pump(
    mut from: impl AsyncRead + Unpin + Send + 'static,
    mut to: impl AsyncWrite + Unpin,
    delay: Delay,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(CHUNKS_HELD_MAX);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK_BYTES_MAX];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return anyhow::Ok(());
            }
            let release = Instant::now() + delay.get();
            if tx.send((release, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                return Ok(()); // the writer failed; its error is reported
            }
        }
    });
    let written = async {
        while let Some((release, chunk)) = rx.recv().await {
            tokio::time::sleep_until(release).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await?;
        anyhow::Ok(())
    }
    .await;
    // The reader stops when the channel closes (receiver dropped here) or on its own error.
    drop(rx);
    let read = match written {
        Ok(()) => reader.await.context("proxy reader task")?,
        Err(_) => {
            reader.abort();
            Ok(())
        }
    };
    written.and(read)
}

/// Relays every datagram arriving on `socket` to `target` after the delay, in order, from the same
/// socket, until the task is dropped.
pub async fn relay_datagrams(socket: UdpSocket, target: SocketAddr, delay: Delay) {
    let socket = Arc::new(socket);
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(DATAGRAMS_HELD_MAX);
    let sender = socket.clone();
    // Ends once this task is gone and its queue closes.
    tokio::spawn(async move {
        while let Some((release, datagram)) = rx.recv().await {
            tokio::time::sleep_until(release).await;
            // The node may be down: the datagram is lost, as on a real network.
            if let Err(e) = sender.send_to(&datagram, target).await {
                tracing::debug!(error = %e, "datagram not sent on");
            }
        }
    });
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        let n = match socket.recv_from(&mut buf).await {
            Ok((n, _from)) => n,
            Err(e) => {
                // An ICMP error for an earlier datagram, and the like: wait a little rather than spin.
                tracing::debug!(error = %e, "datagram receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let release = Instant::now() + delay.get();
        if tx.try_send((release, Bytes::copy_from_slice(&buf[..n]))).is_err() {
            tracing::debug!("relay queue full: datagram dropped");
        }
    }
}

/// `delay <ms>` → the delay; anything else is an error message.
pub fn parse_control(line: &str) -> Result<Duration, String> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next().map(str::parse::<u64>), words.next()) {
        (Some("delay"), Some(Ok(ms)), None) if ms <= DELAY_MS_MAX => Ok(Duration::from_millis(ms)),
        _ => Err(format!("proxy control line {line:?} is not `delay <ms>` with ms at most {DELAY_MS_MAX}")),
    }
}

/// The `mortar-chaos proxy` command: serves until standard input closes, applying `delay <ms>`
/// lines read from it.
pub async fn run_command(listen: SocketAddr, target: SocketAddr, initial: Duration) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen} (is the address local?)"))?;
    let socket = UdpSocket::bind(listen)
        .await
        .with_context(|| format!("listen on UDP {listen} (is the port free?)"))?;
    let delay = Delay::new(initial);
    tracing::info!(listen = %listen, target = %target, delay_ms = initial.as_millis() as u64, "proxy serving");
    let server = tokio::spawn(serve(listener, target, delay.clone()));
    let relay = tokio::spawn(relay_datagrams(socket, target, delay.clone()));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("read proxy control input")? {
        match parse_control(&line) {
            Ok(d) => {
                delay.set(d);
                tracing::info!(delay_ms = d.as_millis() as u64, "delay changed");
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
    server.abort();
    relay.abort();
    tracing::info!("control input closed, proxy stopping");
    Ok(())
}

#[cfg(test)]
#[path = "proxy_test.rs"]
mod tests;
