//! Node-to-node transport for epoxy: one long-lived client stream per peer carries batches of
//! encoded messages; the `Epoxy` gRPC service receives them and hands them to the driver.
//!
//! Per-peer counters (label `peer`, the other node's id), so that an operator can tell a node
//! that hears nothing from one that is not heard:
//! `mortar_node_peer_connects_total` (streams opened to the peer),
//! `mortar_node_peer_messages_sent_total` (handed to the stream),
//! `mortar_node_peer_messages_received_total` (arrived from the peer),
//! `mortar_node_peer_stalls_total` (label `stage`: `connect` or `send`; connections abandoned
//! because the peer did not answer in time, see [`PEER_CONNECT_WAIT`] and [`PEER_SEND_WAIT`]).

use crate::driver::DriverHandle;
use crate::node_info::LocalInfo;
use crate::tls::Dialer;
use bytes::Bytes;
use mortar_epoxy::ReplicaId;
use mortar_epoxy::codec::decode_message;
use mortar_proto::internal::v1::epoxy_client::EpoxyClient;
use mortar_proto::internal::v1::epoxy_server::Epoxy;
use mortar_proto::internal::v1::{
    DeliverAck, MessageBatch, NodeInfoRequest, NodeInfoResponse, TransferChunk, TransferRequest,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

/// Messages queued for one peer; when full, new messages are dropped (epoxy resends).
pub const PEER_QUEUE_MAX: usize = 8192;
/// Bytes queued for one peer; a message that would pass it is dropped (epoxy resends). Large values
/// make few messages many bytes: the count alone would let 8,192 of 1 MiB pile up per peer.
pub const PEER_QUEUE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Most messages in one batch on the wire.
pub const PEER_BATCH_MESSAGES_MAX: usize = 1024;
/// Most bytes in one batch on the wire.
pub const PEER_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(20);
/// A restarted peer hears nothing back until every sender to it has reconnected, so this bounds
/// how long it stays deaf. A refused connect costs next to nothing, and an unreachable one is
/// bounded by the connect timeout anyway.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(100);
/// How long connecting to a peer may take in all: TCP, the TLS handshake and HTTP/2's. The
/// endpoint's connect timeout bounds only the TCP part, and a peer (or a proxy in front of one)
/// that accepts the connection but never answers the TLS handshake would hold the sender, and
/// with it every message to that peer, for good.
pub const PEER_CONNECT_WAIT: Duration = Duration::from_secs(2);
/// How long the sender waits for the call to take one batch. The call takes batches as the peer
/// reads them; one that takes none for this long (a stream HTTP/2 never opened, a peer that stopped
/// reading while still answering pings) is abandoned and the sender reconnects. Longer than the
/// keepalive's 1 s + 3 s, so a peer that is merely gone is found by the keepalive first.
pub const PEER_SEND_WAIT: Duration = Duration::from_secs(5);

/// The node's gRPC server pings a connection that has sent nothing for this long. A peer or client
/// that vanished without closing its connection (killed behind a partition, its host gone) would
/// otherwise keep the socket and its `deliver` task for as long as this node runs: a connection
/// that only receives never learns that the other end is gone. Peers' senders ping every second
/// on their own, so this only reaps what is already dead.
pub const SERVER_PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long the server waits for the answer to its ping before it closes the connection.
pub const SERVER_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Most concurrent HTTP/2 streams (calls) on one connection to the node's gRPC port. Every call's
/// request is held whole in memory before it is handled, so this bounds what one connection makes
/// the node hold (128 requests of at most a few MiB); a client with more calls queues them on its
/// side until a stream ends. Without it (tonic passes no limit to hyper) 1,000 concurrent 1 MiB
/// puts on one connection were all buffered by the node.
pub const GRPC_STREAMS_PER_CONNECTION_MAX: u32 = 128;

const _: () = assert!(PEER_BATCH_BYTES_MAX < mortar_proto::GRPC_MESSAGE_BYTES_MAX);
// The largest epoxy message fits an empty queue.
const _: () = assert!(mortar_epoxy::codec::ENCODED_BYTES_MAX <= PEER_QUEUE_BYTES_MAX);

/// The driver's end of one peer's outbound queue, bounded by count and by bytes.
#[derive(Clone)]
pub struct PeerQueue {
    tx: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
}

impl PeerQueue {
    /// Whether a message of `len` bytes would be queued now (by count and by bytes). The answer
    /// may be stale by the time [`Self::try_push`] runs, which checks again.
    pub fn has_room(&self, len: usize) -> bool {
        self.queued_bytes.load(Ordering::Acquire) + len <= PEER_QUEUE_BYTES_MAX && self.tx.capacity() > 0
    }

    /// Queues an encoded message; false when the queue is full (by count or by bytes) or closed,
    /// and the message is dropped.
    pub fn try_push(&self, message: Bytes) -> bool {
        let len = message.len();
        if self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > PEER_QUEUE_BYTES_MAX {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        if self.tx.try_send(message).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// The sender's end of a [`PeerQueue`].
struct PeerQueueRx {
    rx: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
}

impl PeerQueueRx {
    fn taken(&self, message: Option<Bytes>) -> Option<Bytes> {
        if let Some(m) = &message {
            self.queued_bytes.fetch_sub(m.len(), Ordering::AcqRel);
        }
        message
    }

    async fn recv(&mut self) -> Option<Bytes> {
        let message = self.rx.recv().await;
        self.taken(message)
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        let message = self.rx.try_recv().ok();
        self.taken(message)
    }

    fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

/// Lets a log line through at most once per [`LogLimit::EVERY_MS`], process-wide.
pub struct LogLimit {
    last_ms: AtomicU64,
}

impl LogLimit {
    pub const EVERY_MS: u64 = 1000;

    pub const fn new() -> Self {
        LogLimit { last_ms: AtomicU64::new(0) }
    }

    /// Whether this line may be logged; at most once a second (the first call always may).
    pub fn allow(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.last_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= Self::EVERY_MS
            && self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// Warnings about undecodable peer messages.
static INVALID_WARNINGS: LogLimit = LogLimit::new();

/// A bounded queue for one peer (see [`PeerQueue`]).
fn peer_queue() -> (PeerQueue, PeerQueueRx) {
    let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (PeerQueue { tx, queued_bytes: queued_bytes.clone() }, PeerQueueRx { rx, queued_bytes })
}

/// The gRPC server builder of a node: Nagle off, at most [`GRPC_STREAMS_PER_CONNECTION_MAX`]
/// streams per connection, and silent connections pinged and closed when the ping goes unanswered
/// (the node passes `SERVER_PING_INTERVAL` and `SERVER_PING_TIMEOUT`).
pub fn grpc_server(ping_interval: Duration, ping_timeout: Duration) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .max_concurrent_streams(GRPC_STREAMS_PER_CONNECTION_MAX)
        .http2_keepalive_interval(Some(ping_interval))
        .http2_keepalive_timeout(Some(ping_timeout))
}

/// A lazily connected channel to a peer, for unary calls (node info) with short timeouts.
pub fn peer_channel(dialer: &Dialer, address: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(dialer
        .endpoint(address)?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Starts the sender for one peer and returns its queue.
pub fn spawn_peer(cluster_id: u64, me: u32, peer: u32, address: String, dialer: &Dialer) -> PeerQueue {
    let (tx, rx) = peer_queue();
    let endpoint = dialer.endpoint(&address);
    tokio::spawn(peer_loop(cluster_id, me, peer, address, endpoint, rx));
    tx
}

async fn peer_loop(
    cluster_id: u64,
    me: u32,
    peer: u32,
    address: String,
    endpoint: Result<Endpoint, tonic::transport::Error>,
    mut rx: PeerQueueRx,
) {
    let endpoint = match endpoint {
        Ok(e) => e
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3)),
        Err(e) => {
            warn!(peer, %address, error = %e, "peer address is not a valid endpoint");
            return;
        }
    };
    let peer_label = peer.to_string();
    let connects = metrics::counter!("mortar_node_peer_connects_total", "peer" => peer_label.clone());
    let sent = metrics::counter!("mortar_node_peer_messages_sent_total", "peer" => peer_label.clone());
    let stalled_connect = metrics::counter!("mortar_node_peer_stalls_total", "peer" => peer_label.clone(), "stage" => "connect");
    let stalled_send =
        metrics::counter!("mortar_node_peer_stalls_total", "peer" => peer_label, "stage" => "send");
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        let connected = match tokio::time::timeout(PEER_CONNECT_WAIT, endpoint.connect()).await {
            Ok(connected) => connected.map_err(|e| e.to_string()),
            Err(_) => {
                stalled_connect.increment(1);
                Err(format!("no connection within {PEER_CONNECT_WAIT:?} (TCP, TLS and HTTP/2 handshakes)"))
            }
        };
        let channel = match connected {
            Ok(c) => c,
            Err(error) => {
                debug!(peer, %address, %error, "peer unreachable");
                // Drop what queued up meanwhile: epoxy resends what still matters.
                while rx.try_recv().is_some() {}
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = RECONNECT_BACKOFF_MIN;
        connects.increment(1);
        let mut client = EpoxyClient::new(channel)
            .max_decoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX);
        let (stream_tx, stream_rx) = mpsc::channel::<MessageBatch>(4);
        let mut call = tokio::spawn(async move { client.deliver(ReceiverStream::new(stream_rx)).await });
        loop {
            // Reconnect as soon as the call ends (the peer restarted, or keepalive found it gone),
            // not on the next send, which would lose that batch.
            let first = tokio::select! {
                first = rx.recv() => first,
                ended = &mut call => {
                    if let Ok(Err(status)) = ended {
                        debug!(peer, %address, %status, "peer stream ended");
                    }
                    break;
                }
            };
            let Some(first) = first else {
                call.abort();
                return;
            };
            let mut bytes = first.len();
            let mut messages = vec![first];
            while messages.len() < PEER_BATCH_MESSAGES_MAX && bytes < PEER_BATCH_BYTES_MAX {
                match rx.try_recv() {
                    Some(m) => {
                        bytes += m.len();
                        messages.push(m);
                    }
                    None => break,
                }
            }
            let count = messages.len() as u64;
            let batch = MessageBatch { cluster_id, from: me, to: peer, messages };
            match tokio::time::timeout(PEER_SEND_WAIT, stream_tx.send(batch)).await {
                Ok(Ok(())) => sent.increment(count),
                Ok(Err(_)) => break, // the call ended: reconnect
                Err(_) => {
                    stalled_send.increment(1);
                    warn!(peer, %address, "the stream to the peer took nothing for {PEER_SEND_WAIT:?}; reconnecting");
                    call.abort();
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// The `mortar.internal.v1.Epoxy` service.
pub struct EpoxyService {
    pub cluster_id: u64,
    pub me: u32,
    pub driver: DriverHandle,
    pub local: LocalInfo,
    pub transfer: crate::transfer::Source,
}

#[tonic::async_trait]
impl Epoxy for EpoxyService {
    async fn deliver(
        &self,
        request: Request<Streaming<MessageBatch>>,
    ) -> Result<Response<DeliverAck>, Status> {
        if !self.driver.is_serving() {
            return Err(Status::unavailable(
                "the node is starting: it confirms its data directory with the control plane first",
            ));
        }
        let mut stream = request.into_inner();
        // The counter of the peer this stream comes from, looked up once.
        let mut received: Option<(u32, metrics::Counter)> = None;
        while let Some(batch) = stream.message().await? {
            if batch.cluster_id != self.cluster_id {
                return Err(Status::failed_precondition(format!(
                    "messages from cluster {:016x}, but this node is in cluster {:016x}: check --initial-cluster",
                    batch.cluster_id, self.cluster_id
                )));
            }
            // A sender outside the replica's epoch is ignored by the replica itself: membership
            // changes by epochs, and a new member speaks before this node knows its epoch.
            if batch.to != self.me || batch.from == self.me {
                return Err(Status::invalid_argument(format!(
                    "batch from {} to {} reached node {}",
                    batch.from, batch.to, self.me
                )));
            }
            let counter = match &received {
                Some((from, counter)) if *from == batch.from => counter,
                _ => {
                    let counter = metrics::counter!(
                        "mortar_node_peer_messages_received_total",
                        "peer" => batch.from.to_string()
                    );
                    &received.insert((batch.from, counter)).1
                }
            };
            counter.increment(batch.messages.len() as u64);
            let mut invalid = 0u64;
            let mut first_error = None;
            for bytes in batch.messages {
                match decode_message(&bytes) {
                    Ok((epoch, message)) => {
                        let from = ReplicaId(batch.from);
                        if self.driver.deliver(from, epoch, message, bytes.len()).await.is_err() {
                            return Err(Status::unavailable("node is shutting down"));
                        }
                    }
                    Err(e) => {
                        invalid += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(error) = first_error {
                metrics::counter!("mortar_node_peer_messages_invalid_total").increment(invalid);
                // One line a second at most: a sender of garbage must not flood the log.
                if INVALID_WARNINGS.allow() {
                    warn!(
                        from = batch.from,
                        invalid,
                        %error,
                        "dropping epoxy messages that do not decode (mortar_node_peer_messages_invalid_total counts them all)"
                    );
                }
            }
        }
        Ok(Response::new(DeliverAck {}))
    }

    async fn node_info(
        &self,
        request: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        if request.get_ref().cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "asked by cluster {:016x}, but this node is in cluster {:016x}",
                request.get_ref().cluster_id,
                self.cluster_id
            )));
        }
        Ok(Response::new(self.local.response(&self.driver)))
    }

    type TransferStream = ReceiverStream<Result<TransferChunk, Status>>;

    async fn transfer(
        &self,
        request: Request<TransferRequest>,
    ) -> Result<Response<Self::TransferStream>, Status> {
        let request = request.into_inner();
        if request.cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "asked by cluster {:016x}, but this node is in cluster {:016x}",
                request.cluster_id, self.cluster_id
            )));
        }
        let local = self.driver.epoch_status().borrow().epoch;
        if local <= request.epoch {
            return Err(Status::unavailable(format!(
                "node {} runs epoch {local}: it has not finished epoch {} yet",
                self.me, request.epoch
            )));
        }
        let source = self.transfer.clone();
        let rx = tokio::task::spawn_blocking(move || source.stream(request.epoch, request.start_after))
            .await
            .map_err(|e| Status::internal(format!("open the checkpoint: {e}")))??;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mortar_proto::internal::v1::epoxy_server::EpoxyServer;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_log_limit_lets_one_line_through_per_interval() {
        let limit = LogLimit::new();
        assert!(limit.allow(), "the first line goes through");
        let burst = (0..1000).filter(|_| limit.allow()).count();
        // A burst within one interval adds at most one more (if the clock ticked over).
        assert!(burst <= 1, "{burst} lines of a burst went through");
    }

    /// A peer that takes one batch per call and then ends the call, as a restarting node does;
    /// or, when `never_reads`, takes the call and never reads from it. It counts the calls.
    #[derive(Clone, Default)]
    struct OneBatchPerCall {
        received: Arc<Mutex<Vec<Bytes>>>,
        calls: Arc<AtomicUsize>,
        never_reads: bool,
    }

    #[tonic::async_trait]
    impl Epoxy for OneBatchPerCall {
        async fn deliver(
            &self,
            request: Request<Streaming<MessageBatch>>,
        ) -> Result<Response<DeliverAck>, Status> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.never_reads {
                let _held = request;
                return std::future::pending().await;
            }
            let mut stream = request.into_inner();
            if let Some(batch) = stream.message().await? {
                self.received.lock().unwrap().extend(batch.messages);
            }
            Err(Status::unavailable("restarting"))
        }

        async fn node_info(
            &self,
            _request: Request<NodeInfoRequest>,
        ) -> Result<Response<NodeInfoResponse>, Status> {
            Err(Status::unimplemented("not in this test"))
        }

        type TransferStream = ReceiverStream<Result<TransferChunk, Status>>;

        async fn transfer(
            &self,
            _request: Request<TransferRequest>,
        ) -> Result<Response<Self::TransferStream>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    async fn received_within(peer: &OneBatchPerCall, count: usize, limit: Duration) -> Vec<Bytes> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = peer.received.lock().unwrap().clone();
            if got.len() >= count || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A connection whose other end went silent (as a peer killed behind a partition does: no FIN
    /// ever arrives) is closed by the server once its ping goes unanswered, instead of holding a
    /// socket and a task for as long as the node runs.
    #[tokio::test]
    async fn the_server_closes_a_connection_that_stopped_answering() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(
            grpc_server(Duration::from_millis(200), Duration::from_millis(300))
                .add_service(EpoxyServer::new(OneBatchPerCall::default()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
        // The HTTP/2 client preface and an empty SETTINGS frame; after that this client reads
        // what the server sends but never answers anything, pings included.
        silent.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        silent.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).await.unwrap();
        let mut received = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buffer = [0u8; 1024];
            loop {
                match silent.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server kept a silent connection open for 10 s");
        // The server did speak HTTP/2 to it (its SETTINGS and a ping) before giving up.
        let ping = [0u8, 0, 8, 0x6, 0];
        assert!(received.windows(ping.len()).any(|w| w == ping), "no PING frame among {received:?}");
        server.abort();
    }

    /// A peer's queue holds at most PEER_QUEUE_BYTES_MAX: a message beyond it is dropped, and
    /// room comes back as the sender takes messages out.
    #[tokio::test]
    async fn a_peer_queue_is_bounded_by_bytes() {
        let (queue, mut rx) = peer_queue();
        let big = Bytes::from(vec![0u8; PEER_QUEUE_BYTES_MAX / 4]);
        for _ in 0..4 {
            assert!(queue.try_push(big.clone()));
        }
        assert!(!queue.try_push(Bytes::from_static(b"x")), "a full queue by bytes drops");
        assert_eq!(rx.recv().await.map(|m| m.len()), Some(big.len()));
        assert!(queue.try_push(Bytes::from_static(b"x")), "taking one out makes room");
        assert!(!queue.try_push(big.clone()), "but not for more than was taken out");
        while rx.try_recv().is_some() {}
        assert_eq!(queue.queued_bytes.load(Ordering::Acquire), 0);
    }

    /// The count once it reaches `n` or `limit` has passed, calling `step` every 20 ms meanwhile.
    async fn at_least_within(
        count: &AtomicUsize,
        n: usize,
        limit: Duration,
        mut step: impl FnMut(),
    ) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        while count.load(Ordering::SeqCst) < n && tokio::time::Instant::now() < deadline {
            step();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        count.load(Ordering::SeqCst)
    }

    /// A peer (or a proxy in front of one) that accepts the TCP connection but never answers the
    /// TLS handshake does not hold the sender: it gives up and connects again, and again.
    #[tokio::test]
    async fn a_peer_that_never_answers_the_tls_handshake_is_dialled_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let silent = {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    held.push(socket); // open, read by no one, answered never
                }
            })
        };
        let ca = crate::tls::generate_ca(1).unwrap();
        let queue = spawn_peer(7, 1, 2, address, &Dialer::client(ca.ca_cert.as_bytes(), None));
        assert!(queue.try_push(Bytes::from_static(b"first")));
        let accepts = at_least_within(&accepted, 2, 4 * PEER_CONNECT_WAIT, || {}).await;
        assert!(
            accepts >= 2,
            "the sender waited on one silent TLS handshake for {:?}",
            4 * PEER_CONNECT_WAIT
        );
        silent.abort();
    }

    /// A peer whose connection is alive (it answers pings) but whose call takes nothing does not
    /// hold the sender: once the call has taken nothing for PEER_SEND_WAIT the sender starts a
    /// new call instead of waiting for good while everything queued for the peer is dropped.
    #[tokio::test]
    async fn a_call_that_takes_nothing_is_abandoned_for_a_new_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let peer = OneBatchPerCall { never_reads: true, ..OneBatchPerCall::default() };
        let server = tokio::spawn(
            grpc_server(Duration::from_millis(500), Duration::from_millis(500))
                .add_service(EpoxyServer::new(peer.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let queue = spawn_peer(7, 1, 2, address, &Dialer::plain());
        let message = Bytes::from(vec![7u8; 1024 * 1024]);
        // Enough 1 MiB messages to fill HTTP/2's windows and the call's own buffer, then more.
        let calls = at_least_within(&peer.calls, 2, 3 * PEER_SEND_WAIT, || {
            let _ = queue.try_push(message.clone());
        })
        .await;
        assert!(calls >= 2, "the sender waited on a call that took nothing for {:?}", 3 * PEER_SEND_WAIT);
        server.abort();
    }

    /// When the peer ends the call, the sender reconnects at once: the next message goes out on
    /// a new call instead of being lost on the old one.
    #[tokio::test]
    async fn a_message_after_the_peer_ended_the_call_is_delivered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let peer = OneBatchPerCall::default();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(EpoxyServer::new(peer.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let queue = spawn_peer(7, 1, 2, address, &Dialer::plain());
        assert!(queue.try_push(Bytes::from_static(b"first")));
        assert_eq!(received_within(&peer, 1, Duration::from_secs(5)).await, ["first"]);
        // The call has ended by now; the sender has had time to notice.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(queue.try_push(Bytes::from_static(b"second")));
        assert_eq!(received_within(&peer, 2, Duration::from_secs(5)).await, ["first", "second"]);
        server.abort();
    }
}
