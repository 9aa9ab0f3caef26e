//! Who is alive: gossip membership and failure detection, and the [`View`] the node reacts to.
//!
//! [`Membership::start`] binds a UDP socket and spawns one task, the gossip driver
//! (`gossip/driver.rs`), which runs SWIM through `foca`. The handle reads the latest [`View`]
//! (live members with their addresses, region and load, and the [`Ring`] over them) without
//! waiting, and [`Membership::subscribe`] tells the node when it changes.
//!
//! Gossip only says who is alive. It never changes epoxy's replica set or quorums: a member that
//! gossip declares dead stops owning actors, and that is all.
//!
//! # Failure detection and its timings
//!
//! Every [`MembershipConfig::probe_period`] each member pings one other member (round robin over
//! a shuffled list, so the cluster as a whole probes every member about once a period). No ack
//! within [`MembershipConfig::probe_rtt`] → it asks [`MembershipConfig::num_indirect_probes`] others
//! to ping it too. No ack, direct or indirect, by the end of the period → the member is *suspect*.
//! A suspect is still live (it keeps its actors); it has [`MembershipConfig::suspect_to_down_after`]
//! to hear of the suspicion and refute it (it bumps its incarnation and gossips that), otherwise it
//! is declared *down* and the news spreads by gossip every [`MembershipConfig::gossip_interval`].
//!
//! With the defaults (100 ms period, 40 ms RTT, 400 ms suspicion, 50 ms gossip) on a LAN:
//!
//! * a killed node is declared down after about `wait for a probe (≤ 100 ms) + 100 ms + 400 ms`
//!   plus a gossip round, 0.5–0.7 s;
//! * a node paused for 200 ms (a GC pause, `SIGSTOP`, a stalled VM) is at worst suspected and
//!   refutes as soon as it runs again: it would have to stay silent for about 400–500 ms to be
//!   declared down.
//!
//! A node that the cluster wrongly declared down (a longer pause, a partition) learns it and rejoins
//! at once as its next *generation* (at most once per `suspect_to_down_after`). A restarted node
//! starts with a higher generation (by default the start time in microseconds), so its new identity
//! replaces the old one.
//!
//! # On a network others can write to
//!
//! Plain SWIM believes every datagram. Give every member the same [`MembershipConfig::key`] (a
//! [`GossipKey`]) so that only they are heard, and, once the control plane knows the cluster, call
//! [`Membership::set_directory`] so that only its nodes, at their addresses, are heard and talked
//! to. [`Membership::stats`] counts what was dropped; [`Membership::is_running`] says whether gossip
//! still runs at all.
//!
//! ```
//! use mortar_placement::{GossipKey, Membership, MembershipConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = GossipKey::from_secret(b"the cluster's secret, from a file")?;
//! let mut config = MembershipConfig::new(1, "127.0.0.1:0".parse()?);
//! config.grpc_addr = "127.0.0.1:50051".into();
//! config.key = Some(key);
//! let member = Membership::start(config).await?;
//!
//! // The control plane's node directory: from now on nobody else is heard or sent to.
//! member.set_directory(vec![(1, "127.0.0.1:50051".into()), (2, "127.0.0.1:50052".into())])?;
//! assert!(member.is_running());
//! assert_eq!(member.stats().datagrams_unauthenticated, 0);
//! member.leave().await?;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::gossip::auth::SEAL_BYTES;
use crate::gossip::directory::Directory;
use crate::gossip::driver::{self, Command, DriverParts};
use crate::gossip::identity::{GOSSIP_ID_BYTES_MAX, GossipId};
use crate::gossip::stats::Counters;
use crate::ring::{GRPC_ADDR_BYTES_MAX, Member, NodeId, REGION_BYTES_MAX, Ring};

pub use crate::gossip::auth::{GossipKey, KeyError};
pub use crate::gossip::directory::{DIRECTORY_ENTRIES_MAX, DirectoryError};
pub use crate::gossip::stats::GossipStats;

/// Room in a packet for updates besides the three identities of its header.
const PACKET_UPDATES_BYTES_MIN: usize = 200;
/// Smallest packet size that fits a message carrying three identities (the most any SWIM message
/// carries: source, destination and an indirect-probe target) and some updates, once sealed with
/// a [`GossipKey`].
pub const PACKET_BYTES_MIN: usize = 3 * GOSSIP_ID_BYTES_MAX + PACKET_UPDATES_BYTES_MIN + SEAL_BYTES;
/// Largest UDP payload over IPv4.
pub const PACKET_BYTES_MAX: usize = 65_507;
/// How long [`Membership::leave`] waits for the driver to tell its peers and stop.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of the handle → driver command queue.
pub(crate) const COMMANDS_MAX: usize = 16;

const _: () = assert!(PACKET_BYTES_MIN <= 1400, "the default packet size must fit three identities");
const _: () = assert!(
    PACKET_BYTES_MIN - SEAL_BYTES >= 3 * GOSSIP_ID_BYTES_MAX,
    "a sealed packet of the smallest size must still fit three identities"
);
const _: () = assert!(PACKET_BYTES_MIN < PACKET_BYTES_MAX);

/// How a member joins the cluster and how fast it detects failures.
///
/// Build it with [`MembershipConfig::new`] and adjust the public fields. Every member of a cluster
/// should use the same timings.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// This node's id: unique in the cluster, the same across restarts.
    pub node_id: NodeId,
    /// This node's region (at most [`REGION_BYTES_MAX`] bytes), used by
    /// [`Ring::owner_preferring_region`]. Default: empty.
    pub region: String,
    /// Where peers reach this node's gRPC service, `host:port` (at most [`GRPC_ADDR_BYTES_MAX`]
    /// bytes). Default: empty.
    pub grpc_addr: String,
    /// Local UDP address for gossip, e.g. `0.0.0.0:7946`, or `127.0.0.1:0` for an ephemeral port.
    pub bind_addr: SocketAddr,
    /// The gossip address peers use to reach this node. Default: the bound address, which must
    /// then be a specific IP (not `0.0.0.0`). Seeds must be given as the address they advertise.
    pub advertise_addr: Option<SocketAddr>,
    /// Gossip addresses (`host:port`) of members to join through. Resolved again at every attempt,
    /// so DNS names of peers that are not up yet are fine. Empty: start a new cluster.
    pub seeds: Vec<String>,
    /// Which start of this node this is; must grow across restarts. Default: the start time in
    /// microseconds since the UNIX epoch.
    pub generation: Option<u64>,

    /// How often each member probes one other member. Default: 100 ms.
    pub probe_period: Duration,
    /// How long a direct probe waits for an ack before asking others to probe indirectly; a high
    /// quantile of the network's round trip. Must be below `probe_period`. Default: 40 ms.
    pub probe_rtt: Duration,
    /// How many members are asked to probe indirectly. Default: 3.
    pub num_indirect_probes: usize,
    /// How long a suspect member has to refute the suspicion before it is declared down: the
    /// longest silence (pause) a member survives is about this plus `probe_period`. Also the
    /// shortest time between two rejoins of this member as a new generation. Default: 400 ms.
    pub suspect_to_down_after: Duration,
    /// How often pending updates (joins, suspicions, deaths, loads) are gossiped, besides the probe
    /// messages that also carry them. Default: 50 ms.
    pub gossip_interval: Duration,
    /// How many random members each gossip round goes to. Default: 3.
    pub gossip_fanout: usize,
    /// How many times an update is passed on by each member that learns it. Default: 8, plenty for
    /// clusters up to a few hundred members.
    pub max_transmissions: u8,
    /// While this node knows no live peer, how often it announces itself to the seeds. Default: 500 ms.
    pub seed_announce_interval: Duration,
    /// How often it asks a random peer for its member list (learns members gossip missed).
    /// Default: 10 s.
    pub peer_announce_interval: Duration,
    /// How often it announces itself to two members it believes down, so that partitions heal.
    /// Default: 5 s.
    pub down_announce_interval: Duration,
    /// How long a down member's identity is remembered (an older generation of it cannot come
    /// back meanwhile). Default: 1 h.
    pub down_member_memory: Duration,
    /// Shortest interval between two reports of a changed load. Default: 250 ms.
    pub load_report_interval: Duration,
    /// Interval at which an unchanged load is reported again, for members that joined since.
    /// Default: 5 s.
    pub load_refresh_interval: Duration,
    /// Largest gossip packet sent or accepted, in bytes: below the network's MTU.
    /// Default: 1400.
    pub packet_bytes_max: usize,
    /// Seed of the random choices (probe order, gossip targets). Default: derived from the node id
    /// and generation.
    pub rng_seed: Option<u64>,
    /// The cluster's gossip key: with one, every datagram sent is sealed and every datagram
    /// received must be sealed with the same key, or it is dropped before it is read (see
    /// [`GossipStats::datagrams_unauthenticated`]). Every member of a cluster must have the same
    /// key, or none: keyed and unkeyed members do not hear each other. Sealing adds
    /// 36 bytes to each datagram, within [`MembershipConfig::packet_bytes_max`]. Default: none
    /// (anyone who can send UDP to the gossip port is heard).
    pub key: Option<GossipKey>,
}

impl MembershipConfig {
    /// A configuration with the default timings for node `node_id` gossiping on `bind_addr`.
    pub fn new(node_id: NodeId, bind_addr: SocketAddr) -> Self {
        Self {
            node_id,
            region: String::new(),
            grpc_addr: String::new(),
            bind_addr,
            advertise_addr: None,
            seeds: Vec::new(),
            generation: None,
            probe_period: Duration::from_millis(100),
            probe_rtt: Duration::from_millis(40),
            num_indirect_probes: 3,
            suspect_to_down_after: Duration::from_millis(400),
            gossip_interval: Duration::from_millis(50),
            gossip_fanout: 3,
            max_transmissions: 8,
            seed_announce_interval: Duration::from_millis(500),
            peer_announce_interval: Duration::from_secs(10),
            down_announce_interval: Duration::from_secs(5),
            down_member_memory: Duration::from_secs(3600),
            load_report_interval: Duration::from_millis(250),
            load_refresh_interval: Duration::from_secs(5),
            packet_bytes_max: 1400,
            rng_seed: None,
            key: None,
        }
    }

    /// Checks every field; the error says which one is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("probe_period", self.probe_period),
            ("probe_rtt", self.probe_rtt),
            ("suspect_to_down_after", self.suspect_to_down_after),
            ("gossip_interval", self.gossip_interval),
            ("seed_announce_interval", self.seed_announce_interval),
            ("peer_announce_interval", self.peer_announce_interval),
            ("down_announce_interval", self.down_announce_interval),
            ("down_member_memory", self.down_member_memory),
            ("load_report_interval", self.load_report_interval),
            ("load_refresh_interval", self.load_refresh_interval),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| value.is_zero()) {
            return Err(ConfigError::Zero { field });
        }
        let counts = [
            ("num_indirect_probes", self.num_indirect_probes),
            ("gossip_fanout", self.gossip_fanout),
            ("max_transmissions", usize::from(self.max_transmissions)),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero { field });
        }
        if self.probe_rtt >= self.probe_period {
            return Err(ConfigError::ProbeRttNotBelowPeriod {
                rtt: self.probe_rtt,
                period: self.probe_period,
            });
        }
        if !(PACKET_BYTES_MIN..=PACKET_BYTES_MAX).contains(&self.packet_bytes_max) {
            return Err(ConfigError::PacketSize { bytes: self.packet_bytes_max });
        }
        if self.region.len() > REGION_BYTES_MAX {
            return Err(ConfigError::TooLong {
                field: "region",
                bytes: self.region.len(),
                max: REGION_BYTES_MAX,
            });
        }
        if self.grpc_addr.len() > GRPC_ADDR_BYTES_MAX {
            return Err(ConfigError::TooLong {
                field: "grpc_addr",
                bytes: self.grpc_addr.len(),
                max: GRPC_ADDR_BYTES_MAX,
            });
        }
        if let Some(addr) = self.advertise_addr
            && (addr.ip().is_unspecified() || addr.port() == 0)
        {
            return Err(ConfigError::Unadvertisable { addr });
        }
        Ok(())
    }

    fn foca_config(&self) -> foca::Config {
        use std::num::{NonZeroU8, NonZeroUsize};
        let nonzero = |n: usize| NonZeroUsize::new(n).expect("validated: non-zero");
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: nonzero(self.num_indirect_probes),
            max_transmissions: NonZeroU8::new(self.max_transmissions).expect("validated: non-zero"),
            suspect_to_down_after: self.suspect_to_down_after,
            remove_down_after: Some(self.down_member_memory),
            // A sealed datagram must still fit in `packet_bytes_max`.
            max_packet_size: nonzero(self.packet_bytes_max - self.key.as_ref().map_or(0, |_| SEAL_BYTES)),
            // Tell a member we declared down, so that it rejoins as its next generation instead
            // of talking to a cluster that ignores it.
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: self.peer_announce_interval,
                num_members: nonzero(1),
            }),
            periodic_announce_to_down_members: Some(foca::PeriodicParams {
                frequency: self.down_announce_interval,
                num_members: nonzero(2),
            }),
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: self.gossip_interval,
                num_members: nonzero(self.gossip_fanout),
            }),
        }
    }
}

/// A configuration that cannot work. Retrying does not help: fix the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration or count is zero.
    #[error("membership config: {field} must be greater than zero")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// The probe RTT leaves no time for indirect probes.
    #[error(
        "membership config: probe_rtt ({rtt:?}) must be below probe_period ({period:?}); about a third of it is usual"
    )]
    ProbeRttNotBelowPeriod {
        /// Configured `probe_rtt`.
        rtt: Duration,
        /// Configured `probe_period`.
        period: Duration,
    },
    /// The packet size is outside what UDP and three identities allow.
    #[error(
        "membership config: packet_bytes_max is {bytes}, must be between {PACKET_BYTES_MIN} and {PACKET_BYTES_MAX} (1400 suits an ethernet MTU)"
    )]
    PacketSize {
        /// Configured `packet_bytes_max`.
        bytes: usize,
    },
    /// A string gossiped in every packet is too long.
    #[error("membership config: {field} is {bytes} bytes long, at most {max} allowed")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Peers cannot reach this address.
    #[error(
        "membership: gossip address {addr} cannot be advertised to peers; set advertise_addr to this node's reachable IP and port"
    )]
    Unadvertisable {
        /// The address that would have been advertised.
        addr: SocketAddr,
    },
}

/// Why [`Membership::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; retrying does not help.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The UDP socket could not be bound (address in use, no permission, no such interface).
    #[error("membership: bind gossip socket on {addr}: {source}; free the port or choose another bind_addr")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl StartError {
    /// Whether starting again may succeed without changing the configuration (a port in use may be
    /// freed).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// Why [`Membership::leave`] did not complete cleanly. The member has stopped either way; peers
/// that did not hear the goodbye declare it down by failure detection instead.
#[derive(Debug, thiserror::Error)]
pub enum LeaveError {
    /// The gossip driver had already stopped (it panicked: a bug, see the log).
    #[error("membership: the gossip driver had already stopped")]
    Stopped,
    /// The driver did not confirm within [`LEAVE_TIMEOUT`].
    #[error("membership: leaving took longer than {LEAVE_TIMEOUT:?}")]
    Timeout,
}

/// What this node currently believes about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Grows by one whenever the set of live members (or an identity: generation, addresses,
    /// region) changes; load changes alone do not change it. Local to this node.
    pub epoch: u64,
    /// This node's id.
    pub local: NodeId,
    /// The live members (alive or suspect), sorted by id, including this node unless it left.
    pub members: Vec<Member>,
    /// The ring over [`View::members`].
    pub ring: Ring,
}

impl View {
    pub(crate) fn new(epoch: u64, local: NodeId, members: Vec<Member>) -> Self {
        let ring = Ring::new(&members);
        Self { epoch, local, members, ring }
    }

    /// The live member with id `id`.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        let index = self.members.binary_search_by_key(&id, |member| member.id).ok()?;
        Some(&self.members[index])
    }

    /// Whether member `id` is live.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.member(id).is_some()
    }

    /// The ids of the live members, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        self.members.iter().map(|member| member.id).collect()
    }
}

/// A running member of the cluster. See the [module docs](self).
///
/// Dropping it stops gossip at once without telling anyone, as a crash would: peers declare it
/// down by failure detection. Call [`Membership::leave`] to leave gracefully.
pub struct Membership {
    local: NodeId,
    gossip_addr: SocketAddr,
    generation: u64,
    view: watch::Receiver<View>,
    commands: mpsc::Sender<Command>,
    load: Arc<AtomicU64>,
    directory: watch::Sender<Option<Arc<Directory>>>,
    counters: Arc<Counters>,
    driver: Option<JoinHandle<()>>,
}

impl Membership {
    /// Binds the gossip socket, spawns the gossip driver on the current tokio runtime and starts
    /// joining through the seeds (in the background: this returns before the cluster answers).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(config: MembershipConfig) -> Result<Self, StartError> {
        config.validate()?;
        let socket = tokio::net::UdpSocket::bind(config.bind_addr)
            .await
            .map_err(|source| StartError::Bind { addr: config.bind_addr, source })?;
        let bound =
            socket.local_addr().map_err(|source| StartError::Bind { addr: config.bind_addr, source })?;
        let gossip_addr = config.advertise_addr.unwrap_or(bound);
        if gossip_addr.ip().is_unspecified() {
            return Err(ConfigError::Unadvertisable { addr: gossip_addr }.into());
        }
        let generation = config.generation.unwrap_or_else(generation_from_clock);
        let identity = GossipId {
            node: config.node_id,
            addr: gossip_addr,
            generation,
            region: config.region.clone(),
            grpc_addr: config.grpc_addr.clone(),
        };
        let load = Arc::new(AtomicU64::new(0));
        let local = config.node_id;
        let (view_tx, view) = watch::channel(View::new(0, local, vec![identity.to_member(0)]));
        let (commands, commands_rx) = mpsc::channel(COMMANDS_MAX);
        // A watch rather than a command: the driver only needs the latest directory, and setting
        // one never waits for a queue.
        let (directory, directory_rx) = watch::channel(None);
        let counters = Arc::new(Counters::default());
        let rng_seed =
            config.rng_seed.unwrap_or_else(|| u64::from(config.node_id).rotate_left(32) ^ generation);
        tracing::info!(
            node = config.node_id,
            %gossip_addr,
            generation,
            seeds = ?config.seeds,
            keyed = config.key.is_some(),
            "membership starting"
        );
        let driver = driver::spawn(DriverParts {
            foca_config: config.foca_config(),
            config,
            identity,
            socket,
            rng_seed,
            view_tx,
            commands: commands_rx,
            load: Arc::clone(&load),
            directory: directory_rx,
            counters: Arc::clone(&counters),
        });
        Ok(Self {
            local,
            gossip_addr,
            generation,
            view,
            commands,
            load,
            directory,
            counters,
            driver: Some(driver),
        })
    }

    /// This node's id.
    pub fn local_id(&self) -> NodeId {
        self.local
    }

    /// The gossip address this node advertises (with an ephemeral bind port: the port it got).
    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    /// The generation this node started with (a rejoin after a false "down" bumps it; the view
    /// shows the current one).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The live members now, sorted by id.
    pub fn live(&self) -> Vec<Member> {
        self.view.borrow().members.clone()
    }

    /// The whole current view.
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// The ring over the live members now.
    pub fn ring(&self) -> Ring {
        self.view.borrow().ring.clone()
    }

    /// A receiver that sees every new view (membership or load change). When the driver stops
    /// (after [`Membership::leave`] or drop) `changed()` returns an error.
    pub fn subscribe(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// Sets the load this node reports (e.g. active actors). Cheap: call it as often as the load
    /// changes; peers hear of it at most every [`MembershipConfig::load_report_interval`].
    pub fn set_load(&self, load: u64) {
        self.load.store(load, Ordering::Relaxed);
    }

    /// Sets the allow-list: the cluster's node ids and their gRPC addresses as the control plane's
    /// node directory knows them. Call it again whenever the directory changes; the latest call
    /// wins.
    ///
    /// From the first call on, an identity whose node id is not listed, or whose gRPC address
    /// (its [`MembershipConfig::grpc_addr`], compared byte for byte) differs from the listed one,
    /// is ignored: datagrams from it, or asking to contact it, are dropped, gossip about it is
    /// removed, it never enters the [`View`], and nothing is sent to it (see
    /// [`GossipStats::identities_refused`] and [`GossipStats::sends_refused`]). Members already in
    /// the view that the directory does not allow are dropped from it. A listed node restarted
    /// with a higher generation, even on another gossip port, is still that node. Seeds can still
    /// be announced to. Before the first call every identity is heard.
    ///
    /// So a new node must be in the directory of the members it joins through before it can join.
    /// This member itself need not be listed.
    ///
    /// Errors: a directory no cluster has (too many entries, an address too long, one node at two
    /// addresses), or a stopped driver; the previous directory stays in force.
    pub fn set_directory(&self, members: Vec<(NodeId, String)>) -> Result<(), DirectoryError> {
        let directory = Directory::new(members)?;
        self.directory.send(Some(Arc::new(directory))).map_err(|_| DirectoryError::Stopped)
    }

    /// What gossip refused or dropped so far (all counts grow from 0). Cheap: a few atomic loads.
    pub fn stats(&self) -> GossipStats {
        self.counters.snapshot()
    }

    /// Whether the gossip driver still runs. It stops only after [`Membership::leave`] or when it
    /// panicked (a bug; see the log); once it has stopped, the view is frozen and peers will
    /// declare this node down: the node should report itself not ready and restart.
    pub fn is_running(&self) -> bool {
        self.driver.as_ref().is_some_and(|driver| !driver.is_finished())
    }

    /// Leaves the cluster gracefully: tells some peers this node is going (they spread it, so the
    /// cluster drops it at once instead of after failure detection), then stops the driver.
    pub async fn leave(mut self) -> Result<(), LeaveError> {
        let driver = self.driver.take().expect("the driver handle is only taken here");
        let (done_tx, done_rx) = oneshot::channel();
        if self.commands.send(Command::Leave(done_tx)).await.is_err() {
            return Err(LeaveError::Stopped);
        }
        let result = match tokio::time::timeout(LEAVE_TIMEOUT, done_rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(LeaveError::Stopped),
            Err(_) => Err(LeaveError::Timeout),
        };
        if result.is_err() {
            driver.abort();
        }
        // The driver returns right after confirming (or was aborted): this does not wait long.
        let _ = driver.await;
        result
    }

    /// Test hook: the driver stops doing anything (no receive, no timers, no send) for `pause`,
    /// like a process under `SIGSTOP`; packets sent to it meanwhile wait in the socket buffer.
    #[cfg(test)]
    pub(crate) async fn pause_for_test(&self, pause: Duration) {
        self.commands.send(Command::Pause(pause)).await.expect("driver running");
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}

fn generation_from_clock() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "membership_test.rs"]
mod membership_test;
