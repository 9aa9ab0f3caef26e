//! Caps on what one client can hold of a node: connections per listener, and a deadline for a
//! new connection's first bytes.
//!
//! Without them an idle or slowloris connection stayed forever, and once the process ran out of
//! file descriptors the node was unreachable to clients and peers alike (issue 17). A
//! [`CappedListener`] accepts at most its cap of connections at once: one more is closed as soon
//! as it is accepted (counted in `mortar_node_connections_refused_total`), so the descriptors the
//! node needs for its peers, its disk and its other port stay free. A connection must also send
//! its first [`LimitedStream::HANDSHAKE_BYTES`] bytes (an HTTP/2 preface and SETTINGS header, an
//! HTTP/1 request line) within the handshake deadline, or it is closed
//! (`mortar_node_connections_timed_out_total`). After that, HTTP/2 keepalive pings close dead
//! peers and the streams per connection are capped by the gRPC server
//! ([`crate::transport::GRPC_STREAMS_PER_CONNECTION_MAX`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tracing::warn;

/// How long a new connection has to send its first bytes.
pub const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);
/// Fewest connections a listener is allowed, whatever the file limit.
pub const CONNECTIONS_MIN: usize = 64;
/// Most connections a listener is allowed, whatever the file limit.
pub const CONNECTIONS_MAX: usize = 65_536;

/// The default cap on the gRPC listener's connections: half the process's file limit (the rest
/// is for peers, RocksDB and the HTTP port), within [`CONNECTIONS_MIN`]..=[`CONNECTIONS_MAX`].
pub fn default_grpc_connections() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    usize::try_from(soft / 2).unwrap_or(CONNECTIONS_MAX).clamp(CONNECTIONS_MIN, CONNECTIONS_MAX)
}

/// The HTTP listener's cap: metrics scrapers and probes need few.
pub const HTTP_CONNECTIONS: usize = 128;

/// A TCP listener that holds at most `cap` connections open at once, with Nagle off.
pub struct CappedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    port: &'static str,
    handshake: Duration,
}

impl CappedListener {
    /// `port` names the listener in metrics and logs (`grpc`, `http`).
    pub fn new(listener: TcpListener, cap: usize, port: &'static str, handshake: Duration) -> Self {
        CappedListener { listener, permits: Arc::new(Semaphore::new(cap)), port, handshake }
    }

    /// The next connection within the cap. Accept errors (e.g. the file limit reached anyway)
    /// are logged and retried after a pause; connections over the cap are closed.
    pub async fn next(&mut self) -> (LimitedStream, SocketAddr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(port = self.port, %error, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                metrics::counter!("mortar_node_connections_refused_total", "port" => self.port).increment(1);
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let open = metrics::gauge!("mortar_node_connections_open", "port" => self.port);
            open.increment(1.0);
            let limited = LimitedStream {
                stream,
                handshake: Some(Box::pin(tokio::time::sleep(self.handshake))),
                received: 0,
                port: self.port,
                _permit: permit,
                open,
            };
            return (limited, peer);
        }
    }

    /// The connections tonic serves: this listener as a stream.
    pub fn into_incoming(self) -> impl futures::Stream<Item = io::Result<LimitedStream>> {
        futures::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.next().await;
            Some((Ok(stream), listener))
        })
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send {
        self.next()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An accepted connection that holds its slot under the cap until it closes, and fails its reads
/// when its first bytes do not come in time.
pub struct LimitedStream {
    stream: TcpStream,
    /// Until the first [`Self::HANDSHAKE_BYTES`] bytes are in.
    handshake: Option<Pin<Box<Sleep>>>,
    received: usize,
    port: &'static str,
    _permit: OwnedSemaphorePermit,
    open: metrics::Gauge,
}

impl LimitedStream {
    /// Bytes a client sends before anything else: the HTTP/2 preface (24) and a frame header (9).
    /// An HTTP/1 request line is longer.
    pub const HANDSHAKE_BYTES: usize = 33;
}

impl Drop for LimitedStream {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.received += buf.filled().len() - before;
            if this.received >= Self::HANDSHAKE_BYTES {
                this.handshake = None;
            }
            return result;
        }
        if let Some(deadline) = this.handshake.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.handshake = None;
            metrics::counter!("mortar_node_connections_timed_out_total", "port" => this.port).increment(1);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection sent too little within the handshake deadline",
            )));
        }
        result
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for LimitedStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

#[cfg(test)]
#[path = "limits_test.rs"]
mod tests;
