//! The epoxy driver: the one thread that owns the replica. Each round it takes the inputs that
//! are queued (client proposals, peer messages, ticks; at most [`INPUTS_PER_ROUND_MAX`] of them
//! and about [`ROUND_INPUT_BYTES_MAX`] bytes), feeds the replica, and performs the `Ready` in the
//! order epoxy requires: send, persist (group commit: every vote, commit and applied write of the
//! round, in write batches of about [`WRITE_CHUNK_BYTES`], the last one fdatasync'ed when the round
//! holds a vote, see `Ready::needs_sync`), send what promised durability, answer clients, serve
//! catch-up reads.
//!
//! Client commands are admitted by size: at most [`REQUEST_BYTES_INFLIGHT_MAX`] bytes of them are
//! proposed through this node and unanswered at once. A caller beyond it waits up to
//! [`ADMISSION_WAIT_MAX`], then is refused with [`ProposeError::Overloaded`] (nothing proposed).

use crate::actor::keys::{ACTOR_KEY_PREFIX, NODE_LEASE_KEY_PREFIX};
use crate::actor::op::ActorOutcome;
use crate::actor::recent::RecentOps;
use crate::boot::BootMarker;
use crate::epoch::{EpochRecord, EpochStatus};
use crate::state_machine::{self, Outcome, View};
use bytes::Bytes;
use mortar_epoxy::codec::ENCODED_BYTES_MAX;
use mortar_epoxy::codec::{
    MessageEncoding, decode_instance, encode_cut, encode_instance, encode_key_record, encode_message,
};
use mortar_epoxy::config::{BATCH_BYTES_MAX, BATCH_COMMANDS_MAX};
use mortar_epoxy::{
    Command, Counters, Cut, InstanceId, Message, Outbound, Ready, Record, Replica, ReplicaId,
};
use mortar_storage::{InstanceKey, Storage, StorageError, WRITE_BATCH_BYTES_MAX, WriteBatch};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::{error, info, warn};

/// Inputs queued for the driver; senders wait when it is full (backpressure).
pub const INPUT_QUEUE_MAX: usize = 16 * 1024;
/// Most inputs handled in one round (one synced write).
pub const INPUTS_PER_ROUND_MAX: usize = 4096;
/// A round takes no further input once its inputs (proposed commands, peer messages) reach this
/// many bytes, so that what one round persists stays bounded by bytes, not only by count.
pub const ROUND_INPUT_BYTES_MAX: usize = 16 * MIB;
/// A round's persisted records and applied writes go to storage in write batches of about this
/// size (all but the last unsynced; the last synced when the round needs it). Cuts fall between
/// records and between executed instances, never inside one instance's effects.
pub const WRITE_CHUNK_BYTES: usize = 16 * MIB;
/// Most bytes of client commands (keys and payloads) proposed through this node and not yet
/// answered. It bounds what callers can make the node hold (the driver's queue, epoxy's instances
/// and peer queues); a caller beyond it waits up to [`ADMISSION_WAIT_MAX`] and is then refused.
pub const REQUEST_BYTES_INFLIGHT_MAX: usize = 64 * MIB;
/// How long a command waits for room under [`REQUEST_BYTES_INFLIGHT_MAX`] before it is refused
/// with [`ProposeError::Overloaded`]. Short: waiting callers hold their request in memory.
pub const ADMISSION_WAIT_MAX: Duration = Duration::from_millis(250);
/// Most bytes of peer messages queued for the driver and not yet handled. A peer's stream waits
/// (TCP backpressure) beyond it: the input queue's count alone would let 16,384 large messages in.
pub const INBOUND_BYTES_MAX: usize = 64 * MIB;
const MIB: usize = 1024 * 1024;
/// How often a driver with stuck instances logs them.
const DIAGNOSIS_INTERVAL: Duration = Duration::from_secs(5);
/// Storage metadata key of the durable slot reservation.
pub const META_SLOT_RESERVATION: &str = "slot_reservation";
/// Storage metadata key of `Record::Seal` (stored as a cut: the epoch and its bounds).
pub const META_SEAL: &str = "epoxy_seal";
/// Storage metadata key of `Record::Cut`.
pub const META_CUT: &str = "epoxy_cut";
/// Storage metadata key of `Record::OwnCommitsKnownFrom`.
pub const META_OWN_COMMITS_KNOWN_FROM: &str = "own_commits_known_from";

const _: () = assert!(INPUTS_PER_ROUND_MAX <= INPUT_QUEUE_MAX);
// One write batch holds at most a chunk plus the one record or executed instance that crossed the
// chunk size: an encoded instance, or the applied writes of one instance's commands (a value and
// a dedup record per command, each at most the instance's payload).
const _: () = assert!(WRITE_CHUNK_BYTES + 2 * ENCODED_BYTES_MAX <= WRITE_BATCH_BYTES_MAX);
// The largest single command must fit the admission budget, or it would wait forever.
const _: () = assert!(BATCH_BYTES_MAX <= REQUEST_BYTES_INFLIGHT_MAX);
const _: () = assert!(REQUEST_BYTES_INFLIGHT_MAX <= u32::MAX as usize, "semaphore permits are u32");
const _: () = assert!(INBOUND_BYTES_MAX <= u32::MAX as usize, "semaphore permits are u32");
const _: () = assert!(ENCODED_BYTES_MAX <= INBOUND_BYTES_MAX, "the largest message fits");

/// Why a command was not executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// No quorum answered in time, or the node is overloaded. The outcome is unknown: the command
    /// may still commit later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    /// Definitely not applied: recovery replaced the command with a no-op after a failure.
    #[error("{0}")]
    Aborted(String),
    /// Not proposed: the node holds [`REQUEST_BYTES_INFLIGHT_MAX`] bytes of commands already.
    /// Retrying later is safe.
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Internal(String),
}

/// Where a proposed command's outcome goes. It holds the command's share of
/// [`REQUEST_BYTES_INFLIGHT_MAX`] until it is answered or dropped: a caller that stops waiting
/// (its request timed out) leaves the command in epoxy, and its bytes stay counted until the
/// command is executed or abandoned. Giving them back when the caller left let a node under
/// more load than it commits admit another 64 MiB every request timeout, and the backlog
/// grew far past the bound (hundreds of MiB of 1 MiB puts, still committing long after the load).
pub struct Waiter {
    reply: oneshot::Sender<Result<Outcome, ProposeError>>,
    _admitted: tokio::sync::OwnedSemaphorePermit,
}

impl Waiter {
    fn send(self, outcome: Result<Outcome, ProposeError>) {
        let _ = self.reply.send(outcome);
    }

    fn is_closed(&self) -> bool {
        self.reply.is_closed()
    }
}

pub enum Input {
    Propose {
        command: Command,
        reply: Waiter,
    },
    Message {
        from: ReplicaId,
        /// The sender's epoch.
        epoch: u64,
        message: Message,
        /// Its encoded size, counted against [`ROUND_INPUT_BYTES_MAX`].
        bytes: usize,
        /// Its share of [`INBOUND_BYTES_MAX`], given back once the replica has handled it.
        _inbound: tokio::sync::OwnedSemaphorePermit,
    },
    Tick,
    /// Seal the replica's epoch as its driver; the cut is sent once a majority sealed.
    Seal {
        epoch: u64,
        reply: oneshot::Sender<Cut>,
    },
    /// Install the cut the control plane committed (ignored unless of the replica's epoch).
    InstallCut(Cut),
    /// Move to the next epoch (see `crate::epoch`): only once the current one is done.
    Switch {
        next: EpochRecord,
        peers: Peers,
        reply: SwitchReply,
    },
    /// Finish the current round and exit the thread, closing storage (see `DriverHandle::stop`).
    Stop,
}

impl Input {
    /// What the input counts against [`ROUND_INPUT_BYTES_MAX`].
    fn bytes(&self) -> usize {
        match self {
            Input::Propose { command, .. } => command.bytes(),
            Input::Message { bytes, .. } => *bytes,
            Input::Tick | Input::Stop | Input::Seal { .. } | Input::InstallCut(_) | Input::Switch { .. } => 0,
        }
    }
}

/// A cloneable handle to the driver thread.
#[derive(Clone)]
pub struct DriverHandle {
    tx: mpsc::Sender<Input>,
    request_timeout: Duration,
    counters: Arc<Mutex<Counters>>,
    /// Permits are bytes of commands admitted and not yet answered.
    admission: Arc<Semaphore>,
    /// Permits are bytes of peer messages queued for the driver.
    inbound: Arc<Semaphore>,
    epoch: watch::Receiver<EpochStatus>,
    /// False while a node on a fresh data directory has not yet confirmed with the control plane
    /// that it is the first directory of its id (see `crate::reconfig`): it proposes nothing and
    /// peers' messages are refused, so a wiped directory never votes.
    serving: Arc<std::sync::atomic::AtomicBool>,
}

impl DriverHandle {
    /// Proposes one command and waits until it is committed on a quorum, durable, and executed
    /// here; returns what it saw.
    pub async fn execute(&self, key: Bytes, payload: Bytes) -> Result<Outcome, ProposeError> {
        if !self.is_serving() {
            return Err(ProposeError::Unavailable(
                "not proposed: the node is starting (confirming its data directory with the control plane)"
                    .into(),
            ));
        }
        let command = Command { key, payload };
        // Held by the driver until the command is answered, even when this call gives up first.
        let admitted = self.admit(command.bytes()).await?;
        let (reply, rx) = oneshot::channel();
        let reply = Waiter { reply, _admitted: admitted };
        let wait = async {
            self.tx
                .send(Input::Propose { command, reply })
                .await
                .map_err(|_| ProposeError::Unavailable("the node is shutting down".into()))?;
            rx.await.map_err(|_| ProposeError::Unavailable("the node is shutting down".into()))?
        };
        match tokio::time::timeout(self.request_timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(ProposeError::Unavailable(format!(
                "not committed within {} ms: a quorum of nodes may be unreachable; the outcome is unknown",
                self.request_timeout.as_millis()
            ))),
        }
    }

    /// Waits up to [`ADMISSION_WAIT_MAX`] for room for `bytes` under
    /// [`REQUEST_BYTES_INFLIGHT_MAX`].
    async fn admit(&self, bytes: usize) -> Result<tokio::sync::OwnedSemaphorePermit, ProposeError> {
        let permits = bytes.min(REQUEST_BYTES_INFLIGHT_MAX) as u32;
        let wait = ADMISSION_WAIT_MAX.min(self.request_timeout);
        match tokio::time::timeout(wait, self.admission.clone().acquire_many_owned(permits)).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ProposeError::Unavailable("the node is shutting down".into())),
            Err(_) => {
                metrics::counter!("mortar_node_requests_refused_total", "limit" => "request_bytes_inflight")
                    .increment(1);
                Err(ProposeError::Overloaded(format!(
                    "not proposed: this node already holds {} MiB of requests in flight, its limit \
                     (request_bytes_inflight_max); retry later or through another node",
                    REQUEST_BYTES_INFLIGHT_MAX / MIB
                )))
            }
        }
    }

    /// Hands a peer's message, sent in `epoch` and `bytes` long encoded, to the driver (waits
    /// while the driver is saturated).
    pub async fn deliver(
        &self,
        from: ReplicaId,
        epoch: u64,
        message: Message,
        bytes: usize,
    ) -> Result<(), ()> {
        let permits = bytes.min(INBOUND_BYTES_MAX) as u32;
        let inbound = self.inbound.clone().acquire_many_owned(permits).await.map_err(|_| ())?;
        let input = Input::Message { from, epoch, message, bytes, _inbound: inbound };
        self.tx.send(input).await.map_err(|_| ())
    }

    /// Queues a tick unless the driver is saturated (a skipped tick only delays timeouts).
    pub fn tick(&self) -> bool {
        !matches!(self.tx.try_send(Input::Tick), Err(mpsc::error::TrySendError::Closed(_)))
    }

    /// Stops the driver thread after its current round. RocksDB must be closed before the process
    /// exits (exiting while its threads run aborts the process), so a stopping node calls this and
    /// joins the thread.
    pub async fn stop(&self) {
        let _ = self.tx.send(Input::Stop).await;
    }

    pub fn counters(&self) -> Counters {
        *self.counters.lock().expect("counters lock")
    }

    /// Whether the node proposes and takes peers' messages (see the field).
    pub fn is_serving(&self) -> bool {
        self.serving.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Holds the node (see [`DriverHandle::is_serving`]) until [`DriverHandle::serve`].
    pub fn hold(&self) {
        self.serving.store(false, std::sync::atomic::Ordering::Release);
    }

    pub fn serve(&self) {
        self.serving.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The replica's epoch, as of the driver's last round.
    pub fn epoch_status(&self) -> watch::Receiver<EpochStatus> {
        self.epoch.clone()
    }

    /// Seals `epoch` as its driver and returns the cut, once a majority of its members sealed.
    /// None when the replica is in another epoch or the node is stopping.
    pub async fn seal(&self, epoch: u64) -> Option<Cut> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Input::Seal { epoch, reply }).await.ok()?;
        rx.await.ok()
    }

    /// Installs the committed cut of the replica's epoch.
    pub async fn install_cut(&self, cut: Cut) {
        let _ = self.tx.send(Input::InstallCut(cut)).await;
    }

    /// Moves the replica to the epoch `next`, sending to `peers` from then on.
    pub async fn switch(&self, next: EpochRecord, peers: Peers) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Switch { next, peers, reply })
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await.map_err(|_| "the node is shutting down".to_string())?
    }
}

/// What the driver needs to know about epochs when it starts.
#[derive(Debug, Default)]
pub struct EpochOptions {
    /// The cut of the epoch before the replica's (see `crate::epoch::EpochRecord`).
    pub previous_cut: Option<Cut>,
    /// Where to take the checkpoint of an epoch when it ends (see `crate::transfer`); none: no
    /// checkpoint (tests without RocksDB).
    pub checkpoints: Option<std::path::PathBuf>,
}

/// Where the outcome of a switch goes.
type SwitchReply = oneshot::Sender<Result<(), String>>;

/// Per-peer outbound queues (see `transport`).
pub type Peers = HashMap<ReplicaId, crate::transport::PeerQueue>;

struct Driver {
    replica: Replica,
    storage: Arc<dyn Storage>,
    peers: Peers,
    pending: HashMap<InstanceId, Vec<Waiter>>,
    proposals: Vec<(Command, Waiter)>,
    counters: Arc<Mutex<Counters>>,
    /// When the driver last looked for stuck instances, and the oldest it saw then.
    last_diagnosis: Instant,
    last_stuck: Option<InstanceId>,
    /// Removed when a write fails (see `crate::boot`).
    boot_marker: Option<BootMarker>,
    /// The cut of the epoch before the replica's, whose instances it still serves to members
    /// finishing that epoch.
    previous_cut: Option<Cut>,
    checkpoints: Option<std::path::PathBuf>,
    /// Callers of [`DriverHandle::seal`] waiting for the cut.
    seal_waiters: Vec<oneshot::Sender<Cut>>,
    /// A switch asked for, done at the end of the round.
    switch: Option<(EpochRecord, Peers, SwitchReply)>,
    epoch: watch::Sender<EpochStatus>,
    /// When the latest ops on actors executed here, for new owners' handover waits.
    recent_actor_ops: RecentOps,
}

/// Starts the driver thread.
pub fn start(
    replica: Replica,
    storage: Arc<dyn Storage>,
    peers: Peers,
    request_timeout: Duration,
    boot_marker: Option<BootMarker>,
    epochs: EpochOptions,
) -> std::io::Result<(DriverHandle, std::thread::JoinHandle<()>)> {
    let EpochOptions { previous_cut, checkpoints } = epochs;
    let (tx, rx) = mpsc::channel(INPUT_QUEUE_MAX);
    let counters = Arc::new(Mutex::new(replica.counters()));
    let (epoch, epoch_rx) = watch::channel(epoch_status(&replica));
    let driver = Driver {
        replica,
        storage,
        peers,
        pending: HashMap::new(),
        proposals: Vec::new(),
        counters: counters.clone(),
        last_diagnosis: Instant::now(),
        last_stuck: None,
        recent_actor_ops: RecentOps::new(Instant::now()),
        boot_marker,
        previous_cut,
        checkpoints,
        seal_waiters: Vec::new(),
        switch: None,
        epoch,
    };
    let thread =
        std::thread::Builder::new().name("mortar-epoxy-driver".into()).spawn(move || driver.run(rx))?;
    let admission = Arc::new(Semaphore::new(REQUEST_BYTES_INFLIGHT_MAX));
    let inbound = Arc::new(Semaphore::new(INBOUND_BYTES_MAX));
    let serving = Arc::new(std::sync::atomic::AtomicBool::new(true));
    Ok((DriverHandle { tx, request_timeout, counters, admission, inbound, epoch: epoch_rx, serving }, thread))
}

fn epoch_status(replica: &Replica) -> EpochStatus {
    EpochStatus {
        epoch: replica.epoch(),
        members: replica.config().replicas.iter().map(|r| r.0).collect(),
        sealed: replica.is_sealed(),
        cut_installed: replica.cut().is_some(),
        done: replica.epoch_done(),
        newer_epoch_seen: None,
    }
}

impl Driver {
    fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        // Whatever recovery left executable (committed before a restart) runs first, and what the
        // replica concluded from how it restarted is written; only then may the boot be marked.
        self.round();
        if let Some(marker) = &self.boot_marker
            && let Err(e) = marker.mark()
        {
            warn!(error = %e, "could not record the boot id: the next restart will count on synced writes only");
        }
        while let Some(first) = rx.blocking_recv() {
            let mut bytes = first.bytes();
            let mut stop = self.handle(first);
            for _ in 1..INPUTS_PER_ROUND_MAX {
                if bytes >= ROUND_INPUT_BYTES_MAX {
                    break;
                }
                match rx.try_recv() {
                    Ok(input) => {
                        bytes += input.bytes();
                        stop |= self.handle(input);
                    }
                    Err(_) => break,
                }
            }
            self.round();
            if stop {
                return;
            }
        }
    }

    /// Feeds one input to the replica; true when it asks the driver to stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Propose { command, reply } => {
                if !reply.is_closed() {
                    self.proposals.push((command, reply));
                }
            }
            Input::Message { from, epoch, message: Message::CommitRequest { ids }, .. }
                if epoch + 1 == self.replica.epoch() =>
            {
                self.serve_previous_epoch(from, epoch, ids)
            }
            Input::Message { from, epoch, message, .. } => self.replica.step_in_epoch(from, epoch, message),
            Input::Tick => self.replica.tick(),
            Input::Seal { epoch, reply } => {
                if epoch == self.replica.epoch() {
                    match self.replica.cut() {
                        // The control plane committed a cut already: it is the one to commit.
                        Some(cut) => {
                            let _ = reply.send(cut.clone());
                        }
                        None => {
                            self.replica.start_seal();
                            self.seal_waiters.push(reply);
                        }
                    }
                }
            }
            Input::InstallCut(cut) => {
                if cut.epoch == self.replica.epoch() {
                    self.replica.install_cut(cut);
                }
            }
            Input::Switch { next, peers, reply } => {
                if let Some((_, _, earlier)) = self.switch.replace((next, peers, reply)) {
                    let _ = earlier.send(Err("superseded by a later switch request".into()));
                }
            }
            Input::Stop => return true,
        }
        false
    }

    fn round(&mut self) {
        self.flush_proposals();
        let mut ready = self.replica.ready();
        let newer_epoch = ready.newer_epoch.take();
        if !ready.is_empty()
            && let Err(e) = self.perform(ready)
        {
            // A failed synced write leaves durability unknown: stop rather than risk answering. The
            // failure may have dropped unsynced writes too: the next start must not count on them.
            error!(error = %e, "storage write failed; stopping the node: check the disk, then restart");
            if let Some(marker) = &self.boot_marker
                && let Err(e) = marker.invalidate()
            {
                error!(error = %e, "could not remove the boot marker: delete {} before restarting", crate::boot::BOOT_MARKER_FILE);
            }
            std::process::exit(70);
        }
        if let Some((next, peers, reply)) = self.switch.take() {
            let result = self.switch_epoch(next, peers);
            if let Err(e) = &result
                && e.starts_with("storage")
            {
                error!(error = %e, "storage write failed; stopping the node: check the disk, then restart");
                std::process::exit(70);
            }
            let _ = reply.send(result);
        }
        let mut status = epoch_status(&self.replica);
        status.newer_epoch_seen =
            newer_epoch.or(self.epoch.borrow().newer_epoch_seen).filter(|&e| e > status.epoch);
        self.epoch.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
        let counters = self.replica.counters();
        *self.counters.lock().expect("counters lock") = counters;
        if self.last_diagnosis.elapsed() >= DIAGNOSIS_INTERVAL {
            self.last_diagnosis = Instant::now();
            self.diagnose();
        }
        metrics::gauge!("mortar_epoxy_instances_in_flight").set(counters.in_flight as f64);
        metrics::counter!("mortar_epoxy_instances_committed_total").absolute(counters.committed);
        metrics::counter!("mortar_epoxy_instances_executed_total").absolute(counters.executed);
        metrics::counter!("mortar_epoxy_fast_path_commits_total").absolute(counters.fast_path);
        metrics::counter!("mortar_epoxy_slow_path_commits_total").absolute(counters.slow_path);
        // Keys with an instance not yet executed everywhere; the rest leave memory (quiet keys).
        metrics::gauge!("mortar_epoxy_keys_held").set(counters.keys_held as f64);
        metrics::counter!("mortar_epoxy_keys_forgotten_total").absolute(counters.keys_forgotten);
        // The executor's work: a few steps per executed instance; far more means it searches
        // dependency graphs it cannot execute yet.
        metrics::counter!("mortar_epoxy_execution_search_steps_total").absolute(counters.execution_steps);
        metrics::counter!("mortar_epoxy_phase_resends_total").absolute(counters.resends);
        metrics::gauge!("mortar_epoxy_resend_timeout_ticks").set(counters.resend_timeout_ticks as f64);
    }

    /// Logs, at most every [`DIAGNOSIS_INTERVAL`], what keeps this replica from executing or
    /// committing, so that a node that stops serving explains itself in its log.
    fn diagnose(&mut self) {
        let blocked = self.replica.blocked_on();
        let (leading, recovering) = self.replica.stuck();
        let oldest = blocked.first().or(leading.first()).copied();
        // Under load something is always in flight: report only an instance still stuck a whole
        // interval later.
        let stuck = oldest.is_some() && oldest == self.last_stuck;
        self.last_stuck = oldest;
        if !stuck {
            return;
        }
        let first = oldest.map(|id| self.replica.debug_instance(id));
        warn!(
            blocked_on = blocked.len(),
            waiting_for = ?blocked.iter().take(5).map(|i| i.to_string()).collect::<Vec<_>>(),
            leading = ?leading.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            recovering = ?recovering.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            first = first.unwrap_or_default(),
            // mortar-chaos prints the last line with this text of a node that stopped serving.
            "epoxy: instances waiting"
        );
    }

    /// Proposes the queued client commands, several to an instance. A sealed replica proposes
    /// nothing: they wait for the next epoch (or their caller's timeout).
    fn flush_proposals(&mut self) {
        if self.replica.is_sealed() {
            self.proposals.retain(|(_, waiter)| !waiter.is_closed());
            return;
        }
        let mut commands = Vec::new();
        let mut waiters = Vec::new();
        let mut bytes = 0;
        let proposals = std::mem::take(&mut self.proposals);
        for (command, waiter) in proposals {
            if commands.len() == BATCH_COMMANDS_MAX || bytes + command.bytes() > BATCH_BYTES_MAX {
                self.propose(std::mem::take(&mut commands), std::mem::take(&mut waiters));
                bytes = 0;
            }
            bytes += command.bytes();
            commands.push(command);
            waiters.push(waiter);
        }
        if !commands.is_empty() {
            self.propose(commands, waiters);
        }
    }

    fn propose(&mut self, commands: Vec<Command>, waiters: Vec<Waiter>) {
        metrics::histogram!("mortar_epoxy_batch_commands").record(commands.len() as f64);
        match self.replica.propose(commands) {
            Ok(id) => {
                self.pending.insert(id, waiters);
            }
            Err(e) => {
                let error = if e.is_retryable() {
                    ProposeError::Unavailable(format!("not proposed: {e}"))
                } else {
                    ProposeError::Invalid(e.to_string())
                };
                for w in waiters {
                    w.send(Err(error.clone()));
                }
            }
        }
    }

    fn send(&self, out: Outbound) {
        let Some(queue) = self.peers.get(&out.to) else { return };
        let message = MessageEncoding::new(self.replica.epoch(), &out.message);
        // Under load a peer's queue is often full; a message it cannot take is not encoded.
        if !(queue.has_room(message.encoded_len()) && queue.try_push(message.encode().into())) {
            metrics::counter!("mortar_node_peer_messages_dropped_total").increment(1);
        }
    }

    fn perform(&mut self, ready: Ready) -> Result<(), StorageError> {
        let sync = ready.needs_sync();
        for out in ready.messages {
            self.send(out);
        }
        let mut batch = WriteBatch::new();
        for record in ready.persist {
            if batch.bytes() >= WRITE_CHUNK_BYTES {
                self.write_chunk(std::mem::take(&mut batch), false)?;
            }
            match record {
                Record::Instance(r) => batch.put_instance(instance_key(r.id), encode_instance(&r)),
                Record::Key { key, record } => batch.put_conflict(key, encode_key_record(&record)),
                Record::ForgetKey { key } => batch.delete_conflict(key),
                Record::SlotReservation(slot) => {
                    batch.put_meta(META_SLOT_RESERVATION, slot.to_be_bytes().to_vec())
                }
                Record::OwnCommitsKnownFrom(slot) => {
                    batch.put_meta(META_OWN_COMMITS_KNOWN_FROM, slot.to_be_bytes().to_vec())
                }
                Record::Forget { replica, through } => {
                    batch.forget_instances(replica.0, through);
                    batch.put_meta(forgotten_meta_key(replica.0), through.to_be_bytes().to_vec());
                }
                Record::Checkpoint => {} // makes the round's write synced (see Ready::needs_sync)
                Record::Seal { epoch, bounds } => {
                    batch.put_meta(META_SEAL, encode_cut(&Cut { epoch, bounds }));
                }
                Record::Cut(cut) => batch.put_meta(META_CUT, encode_cut(&cut)),
            }
        }
        // Apply executed commands in order; later commands of the round read earlier ones' writes
        // (through the view, and through storage once an earlier chunk is written).
        let mut replies = Vec::new();
        let mut view = View::new(&*self.storage, &mut batch);
        // Every command of the round was committed, hence sent, before this instant.
        let now = Instant::now();
        for executed in ready.executed {
            if view.batch_bytes() >= WRITE_CHUNK_BYTES {
                drop(view);
                self.write_chunk(std::mem::take(&mut batch), false)?;
                view = View::new(&*self.storage, &mut batch);
            }
            let mut outcomes = Vec::with_capacity(executed.commands.len());
            for command in &executed.commands {
                let mut outcome = state_machine::apply(&command.key, &command.payload, &mut view)?;
                if command.key.starts_with(ACTOR_KEY_PREFIX) || command.key.starts_with(NODE_LEASE_KEY_PREFIX)
                {
                    if let Ok(Outcome::Actor(
                        ActorOutcome::Activated { last_op_bound, .. }
                        | ActorOutcome::FenceSet { last_op_bound },
                    )) = &mut outcome
                    {
                        *last_op_bound = Some(self.recent_actor_ops.last_op_bound(&command.key, now));
                    }
                    self.recent_actor_ops.record(&command.key, now);
                }
                outcomes.push(outcome);
            }
            view.mark_executed(instance_key(executed.id));
            if let Some(waiters) = self.pending.remove(&executed.id) {
                if outcomes.len() != waiters.len() {
                    // Recovery committed a no-op in this instance's place: nothing was applied.
                    let aborted = ProposeError::Aborted(
                        "the write was abandoned while recovering from a failure and did not take effect; retry it"
                            .into(),
                    );
                    outcomes = waiters.iter().map(|_| Err(aborted.clone())).collect();
                }
                replies.push((waiters, outcomes));
            }
        }
        drop(view);
        // A synced round syncs even with nothing left to write: earlier chunks, and earlier
        // rounds' unsynced writes, must be durable before its promises are sent.
        if !batch.is_empty() || sync {
            self.write_chunk(batch, sync)?;
        }
        for out in ready.messages_after_persist {
            self.send(out);
        }
        for id in ready.dropped {
            // Above the cut of a sealed epoch: never applied anywhere.
            for waiter in self.pending.remove(&id).unwrap_or_default() {
                let error =
                    "the replica set is being reconfigured and the write did not take effect; retry it";
                waiter.send(Err(ProposeError::Aborted(error.into())));
            }
        }
        if let Some(cut) = &ready.cut {
            info!(epoch = cut.epoch, bounds = ?cut.bounds, "epoch sealed: its cut is ready for the control plane");
            for waiter in self.seal_waiters.drain(..) {
                let _ = waiter.send(cut.clone());
            }
        }
        for (waiters, outcomes) in replies {
            for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
                waiter.send(outcome);
            }
        }
        for load in ready.load_requests {
            let Some(bytes) = self.storage.get_instance(instance_key(load.id))? else { continue };
            match decode_instance(&bytes) {
                Ok(r) => self.send(Outbound {
                    to: load.to,
                    message: Message::Commit { id: r.id, attrs: r.attrs, commands: r.commands },
                }),
                Err(e) => error!(instance = %load.id, error = %e, "stored instance does not decode"),
            }
        }
        Ok(())
    }

    /// Answers a `CommitRequest` a member still finishing the previous epoch sent: the committed
    /// instances up to that epoch's cut, from storage, in that epoch.
    fn serve_previous_epoch(&self, from: ReplicaId, epoch: u64, ids: Vec<InstanceId>) {
        let Some(cut) = self.previous_cut.as_ref().filter(|c| c.epoch == epoch) else { return };
        let Some(queue) = self.peers.get(&from) else { return };
        for id in ids.into_iter().filter(|id| id.slot <= cut.bound(id.replica)) {
            let record = match self.storage.get_instance(instance_key(id)) {
                Ok(Some(bytes)) => decode_instance(&bytes),
                Ok(None) => continue,
                Err(e) => {
                    warn!(instance = %id, error = %e, "could not read an instance of the previous epoch");
                    continue;
                }
            };
            match record {
                Ok(r) if r.status == mortar_epoxy::Status::Committed => {
                    let commit = Message::Commit { id: r.id, attrs: r.attrs, commands: r.commands };
                    let _ = queue.try_push(encode_message(epoch, &commit).into());
                }
                Ok(_) => {}
                Err(e) => error!(instance = %id, error = %e, "stored instance does not decode"),
            }
        }
    }

    /// Moves the replica to the epoch `next` (see `crate::epoch`). An error starting with
    /// "storage" is a failed write: the node stops.
    fn switch_epoch(&mut self, next: EpochRecord, peers: Peers) -> Result<(), String> {
        let Some(cut) = self.replica.cut().cloned() else {
            return Err(format!("epoch {} has no cut installed", self.replica.epoch()));
        };
        if next.previous_cut != cut || next.epoch != cut.epoch + 1 {
            return Err(format!("epoch {} does not follow the installed cut {cut:?}", next.epoch));
        }
        if !self.replica.epoch_done() {
            return Err(format!("epoch {} has not executed through its cut yet", cut.epoch));
        }
        let me = self.replica.id();
        let members: Vec<ReplicaId> = next.members.iter().map(|&m| ReplicaId(m)).collect();
        let mut config = self.replica.config().clone();
        config.epoch = next.epoch;
        config.replicas = members;
        if let Err(e) = config.validate() {
            return Err(format!("epoch {} cannot run here: {e}", next.epoch));
        }
        if let Some(root) = &self.checkpoints {
            // The data exactly at the cut, for members new in the next epoch. One left by a
            // switch interrupted before its write below is taken again.
            let dir = crate::transfer::checkpoint_dir(root, cut.epoch);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| format!("storage: remove {}: {e}", dir.display()))?;
            }
            std::fs::create_dir_all(root).map_err(|e| format!("storage: create {}: {e}", root.display()))?;
            self.storage.checkpoint(&dir).map_err(|e| format!("storage: checkpoint: {e}"))?;
        }
        let batch = crate::epoch::switch_batch(&*self.storage, me.0, &cut, &next)
            .map_err(|e| format!("storage: {e}"))?;
        self.write_chunk(batch, true).map_err(|e| format!("storage: {e}"))?;
        self.replica = Replica::recover(config, mortar_epoxy::Recovered::starting_epoch(&cut, me));
        self.peers = peers;
        self.previous_cut = Some(cut);
        for (_, waiters) in self.pending.drain() {
            for waiter in waiters {
                let error = "the replica set was reconfigured and the write did not take effect; retry it";
                waiter.send(Err(ProposeError::Aborted(error.into())));
            }
        }
        info!(epoch = next.epoch, members = ?next.members, "switched to the next epoch");
        Ok(())
    }

    /// Writes one of a round's write batches (see [`WRITE_CHUNK_BYTES`]).
    fn write_chunk(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        // The constants guarantee it; a larger batch would be refused by storage, which is not a
        // disk failure but a bug here.
        assert!(
            batch.bytes() <= WRITE_BATCH_BYTES_MAX,
            "a round's write chunk holds {} bytes, more than storage's {WRITE_BATCH_BYTES_MAX}",
            batch.bytes()
        );
        let started = Instant::now();
        self.storage.write(batch, sync)?;
        let seconds = started.elapsed().as_secs_f64();
        if sync {
            metrics::histogram!("mortar_storage_sync_write_seconds").record(seconds);
        } else {
            metrics::histogram!("mortar_storage_write_seconds").record(seconds);
        }
        Ok(())
    }
}

/// Storage metadata key of the slot through which a replica's instances were forgotten.
pub fn forgotten_meta_key(replica: u32) -> String {
    format!("forgotten/{replica}")
}

pub fn instance_key(id: InstanceId) -> InstanceKey {
    InstanceKey { replica: id.replica.0, slot: id.slot }
}

#[cfg(test)]
#[path = "driver_test.rs"]
mod driver_test;
