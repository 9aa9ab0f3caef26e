//! The gossip driver: the one task that owns the socket, foca and the timers, and the only place in
//! this crate with `select!`.
//!
//! Each turn of the loop waits for one thing (a datagram, the next deadline, a command, resolved
//! seed addresses), then drains what else the socket holds (bounded), fires the timers that are
//! due, does the periodic chores (announce to seeds while alone, report the load), and finally
//! performs what foca asked for: send the packets, schedule the timers, publish a new view.
//!
//! Draining the socket before firing timers matters after a pause: the acks and refutations that
//! arrived meanwhile are taken into account before a probe timer concludes that nobody answered.
//!
//! Every datagram goes through three gates before foca reads it: its size, its authentication tag
//! (`auth.rs`, with a key) and the screen (`screen.rs`: newer generations of this member, and the
//! directory once set). Every datagram foca asks to send goes through the directory (no datagram to
//! an identity outside it) and is sealed (with a key). Whatever a gate drops is counted in
//! [`Counters`].

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, Incarnation, Member, OwnedNotification, PostcardCodec, State, Timer};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::gossip::auth::{self, GossipKey, Unauthenticated};
use crate::gossip::directory::Directory;
use crate::gossip::identity::GossipId;
use crate::gossip::load::{self, LOAD_TABLE_ENTRIES_MAX, LoadBroadcasts, LoadReport, LoadTable};
use crate::gossip::screen::{self, Refusals, Rules, Verdict};
use crate::gossip::stats::{self, Counters};
use crate::gossip::timers::TimerQueue;
use crate::gossip::view::{live_members, same_identities};
use crate::membership::{MembershipConfig, View};
use crate::ring::NodeId;

/// Most datagrams handled in one turn of the loop before timers get their turn.
const RECV_BATCH_MAX: usize = 64;
/// How long resolving the seeds' names may take before that round of announcements is skipped.
const SEED_RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of the resolver → driver queue (one resolution runs at a time).
const RESOLVED_MAX: usize = 1;
/// After this many announcement rounds without an answer, say so (again) at WARN.
const LONELY_ROUNDS_WARN: u64 = 20;
/// Most resolved seed addresses kept (the addresses this member may announce to outside the
/// directory).
const RESOLVED_SEEDS_MAX: usize = 64;

type Swim = Foca<GossipId, PostcardCodec, SmallRng, LoadBroadcasts>;

/// What the [`Membership`](crate::Membership) handle asks of the driver.
pub(crate) enum Command {
    /// Leave the cluster gracefully, confirm, stop.
    Leave(oneshot::Sender<()>),
    /// Do nothing at all for this long (test hook simulating `SIGSTOP`).
    #[cfg(test)]
    Pause(Duration),
}

/// Everything the driver is made of, prepared by [`Membership::start`](crate::Membership::start).
pub(crate) struct DriverParts {
    pub(crate) config: MembershipConfig,
    pub(crate) foca_config: foca::Config,
    pub(crate) identity: GossipId,
    pub(crate) socket: UdpSocket,
    pub(crate) rng_seed: u64,
    pub(crate) view_tx: watch::Sender<View>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) load: Arc<AtomicU64>,
    /// The directory, as last set by [`Membership::set_directory`](crate::Membership::set_directory).
    pub(crate) directory: watch::Receiver<Option<Arc<Directory>>>,
    pub(crate) counters: Arc<Counters>,
}

/// Spawns the driver on the current tokio runtime.
pub(crate) fn spawn(parts: DriverParts) -> JoinHandle<()> {
    tokio::spawn(Driver::new(parts).run())
}

/// The seeds, split into addresses usable at once and names to resolve at every round.
struct Seeds {
    addrs: Vec<SocketAddr>,
    names: Vec<String>,
}

impl Seeds {
    fn parse(seeds: &[String]) -> Self {
        let mut addrs = Vec::new();
        let mut names = Vec::new();
        for seed in seeds {
            match seed.parse::<SocketAddr>() {
                Ok(addr) => addrs.push(addr),
                Err(_) => names.push(seed.clone()),
            }
        }
        Self { addrs, names }
    }
}

/// What woke the loop up.
enum Event {
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Deadline,
    Command(Option<Command>),
    SeedsResolved(Vec<SocketAddr>),
    DirectoryChanged,
}

struct Driver {
    config: MembershipConfig,
    foca: Swim,
    runtime: AccumulatingRuntime<GossipId>,
    socket: UdpSocket,
    recv_buf: Vec<u8>,
    /// A datagram being sealed (with a key).
    send_buf: Vec<u8>,
    key: Option<GossipKey>,
    directory_rx: watch::Receiver<Option<Arc<Directory>>>,
    directory: Option<Arc<Directory>>,
    counters: Arc<Counters>,
    timers: TimerQueue,
    commands: mpsc::Receiver<Command>,
    view_tx: watch::Sender<View>,
    loads: Arc<Mutex<LoadTable>>,
    local_load: Arc<AtomicU64>,

    seeds: Seeds,
    resolved_tx: mpsc::Sender<Vec<SocketAddr>>,
    resolved_rx: mpsc::Receiver<Vec<SocketAddr>>,
    resolving: bool,
    /// The seeds' addresses from the last resolution, at most [`RESOLVED_SEEDS_MAX`].
    resolved_seeds: Vec<SocketAddr>,
    next_seed_announce: Instant,
    lonely_rounds: u64,

    /// When this member last rejoined as its next generation.
    last_renewal: Option<Instant>,
    /// When it rejoins next: the cluster declared it down.
    rejoin_at: Option<Instant>,

    next_load_check: Instant,
    last_reported_load: Option<u64>,
    last_report_at: Instant,
    load_seq: u64,
    force_load_report: bool,

    /// A notification said the member set changed since the view was last published.
    membership_changed: bool,
    /// The local load in the published view.
    published_local_load: u64,
    /// Node ids claimed by two live identities, as last logged.
    duplicates: Vec<NodeId>,
    left: bool,
}

impl Driver {
    fn new(parts: DriverParts) -> Self {
        let DriverParts {
            config,
            foca_config,
            identity,
            socket,
            rng_seed,
            view_tx,
            commands,
            load,
            directory,
            counters,
        } = parts;
        let (handler, loads) = LoadBroadcasts::new();
        let seeds = Seeds::parse(&config.seeds);
        let foca = Foca::with_custom_broadcast(
            identity,
            foca_config,
            SmallRng::seed_from_u64(rng_seed),
            PostcardCodec,
            handler,
        );
        let (resolved_tx, resolved_rx) = mpsc::channel(RESOLVED_MAX);
        let now = Instant::now();
        Self {
            // One byte more than the largest packet: a datagram that fills the buffer is too big.
            recv_buf: vec![0; config.packet_bytes_max + 1],
            send_buf: Vec::with_capacity(config.packet_bytes_max),
            key: config.key.clone(),
            directory_rx: directory,
            directory: None,
            counters,
            config,
            foca,
            runtime: AccumulatingRuntime::new(),
            socket,
            timers: TimerQueue::default(),
            commands,
            view_tx,
            loads,
            local_load: load,
            seeds,
            resolved_tx,
            resolved_rx,
            resolving: false,
            resolved_seeds: Vec::new(),
            next_seed_announce: now,
            lonely_rounds: 0,
            last_renewal: None,
            rejoin_at: None,
            next_load_check: now,
            last_reported_load: None,
            last_report_at: now,
            load_seq: 0,
            force_load_report: false,
            membership_changed: false,
            published_local_load: 0,
            duplicates: Vec::new(),
            left: false,
        }
    }

    async fn run(mut self) {
        loop {
            self.chores(Instant::now());
            self.flush().await;
            let event = self.next_event().await;
            // A directory set while this event waited applies to it: once `set_directory` has
            // returned, no datagram is read or answered under the previous one. (The select picks
            // among ready branches at random: it took a datagram before a directory set earlier,
            // and foca answered an identity the directory excludes.)
            if self.directory_rx.has_changed().unwrap_or(false) {
                self.on_directory();
            }
            match event {
                Event::Datagram(received) => self.on_datagram(received),
                Event::Deadline => {}
                Event::SeedsResolved(mut addrs) => {
                    self.resolving = false;
                    addrs.truncate(RESOLVED_SEEDS_MAX);
                    self.resolved_seeds = addrs;
                    let addrs = self.resolved_seeds.clone();
                    self.announce_to(&addrs);
                }
                Event::DirectoryChanged => self.on_directory(),
                Event::Command(None) => {
                    // The handle was dropped without leaving: stop like a crash would.
                    debug!(node = self.foca.identity().node, "membership handle dropped, gossip stops");
                    return;
                }
                Event::Command(Some(Command::Leave(done))) => {
                    self.leave().await;
                    let _ = done.send(());
                    return;
                }
                #[cfg(test)]
                Event::Command(Some(Command::Pause(pause))) => tokio::time::sleep(pause).await,
            }
            self.drain_socket();
            self.fire_due_timers(Instant::now());
        }
    }

    /// Waits for the next thing to do.
    async fn next_event(&mut self) -> Event {
        let mut wake = self.next_load_check;
        if let Some(due) = self.timers.next_due() {
            wake = wake.min(Instant::from_std(due));
        }
        if self.is_alone() {
            wake = wake.min(self.next_seed_announce);
        }
        if let Some(rejoin_at) = self.rejoin_at {
            wake = wake.min(rejoin_at);
        }
        tokio::select! {
            received = self.socket.recv_from(&mut self.recv_buf) => Event::Datagram(received),
            () = tokio::time::sleep_until(wake) => Event::Deadline,
            command = self.commands.recv() => Event::Command(command),
            Some(addrs) = self.resolved_rx.recv() => Event::SeedsResolved(addrs),
            // An error means the handle is gone; the command branch stops the loop then.
            Ok(()) = self.directory_rx.changed() => Event::DirectoryChanged,
        }
    }

    fn is_alone(&self) -> bool {
        !self.left && self.foca.num_members() == 0
    }

    /// Authenticates, screens and hands one datagram to foca; drops (and counts) it at the first
    /// gate it fails.
    fn on_datagram(&mut self, received: std::io::Result<(usize, SocketAddr)>) {
        let (len, from) = match received {
            Ok(received) => received,
            // With UDP this is transient (e.g. an ICMP error surfaced by the OS); keep serving.
            Err(error) => return debug!(%error, "gossip receive failed"),
        };
        if len >= self.recv_buf.len() {
            stats::add(&self.counters.datagrams_rejected, 1);
            return debug!(%from, len, max = self.config.packet_bytes_max, "gossip packet too large, dropped");
        }
        let datagram = &self.recv_buf[..len];
        let opened = match &self.key {
            Some(key) => auth::open(key, datagram),
            None if auth::is_sealed(datagram) => Err(Unauthenticated),
            None => Ok(datagram),
        };
        let Ok(payload) = opened else {
            if stats::add(&self.counters.datagrams_unauthenticated, 1) {
                warn!(
                    %from,
                    keyed = self.key.is_some(),
                    total = self.counters.snapshot().datagrams_unauthenticated,
                    "gossip datagram failed authentication, dropped: a member with another gossip key (or none), corruption, or an attacker"
                );
            }
            return;
        };
        let rules = Rules { local: self.foca.identity(), directory: self.directory.as_deref() };
        let (verdict, refusals) = screen::screen(payload, &rules);
        self.count_refusals(from, refusals);
        let payload = match verdict {
            Verdict::Pass => Cow::Borrowed(payload),
            Verdict::Rewritten(rewritten) => Cow::Owned(rewritten),
            Verdict::Refused => return,
            Verdict::Malformed => {
                stats::add(&self.counters.datagrams_rejected, 1);
                return debug!(%from, len, "undecodable gossip packet, dropped");
            }
        };
        if let Err(error) = self.foca.handle_data(&payload, &mut self.runtime) {
            // Garbage, a peer with incompatible code, or a stale packet: the peer's problem.
            stats::add(&self.counters.datagrams_rejected, 1);
            debug!(%from, %error, "gossip packet rejected");
        }
    }

    fn count_refusals(&self, from: SocketAddr, refusals: Refusals) {
        if stats::add(&self.counters.identities_refused, refusals.identities) {
            warn!(
                %from,
                total = self.counters.snapshot().identities_refused,
                "gossip from or about an identity outside the directory refused: a node the control plane does not know, or at another address"
            );
        }
        if stats::add(&self.counters.generations_refused, refusals.generations) {
            warn!(
                %from,
                total = self.counters.snapshot().generations_refused,
                "gossip claiming a newer generation of this node refused: forged or corrupted, or another node runs with this node id or gossip address"
            );
        }
    }

    /// Handles what else is already waiting in the socket, up to [`RECV_BATCH_MAX`] datagrams.
    fn drain_socket(&mut self) {
        for _ in 0..RECV_BATCH_MAX {
            match self.socket.try_recv_from(&mut self.recv_buf) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return,
                received => self.on_datagram(received),
            }
        }
    }

    fn fire_due_timers(&mut self, now: Instant) {
        for timer in self.timers.pop_due(now.into_std()) {
            if let Timer::ChangeSuspectToDown { member_id, incarnation, .. } = &timer
                && !self.is_suspect(member_id, *incarnation)
            {
                // Work around foca 2.0: with `notify_down_members` it sends `TurnUndead` when this
                // timer fires even if the suspicion was refuted meanwhile (it checks the refutation
                // before declaring the member down, but not before the courtesy message). The member
                // would then renew its identity for nothing. Without a standing suspicion this timer
                // has nothing else to do, so it is dropped here.
                debug!(node = member_id.node, incarnation, "suspicion refuted in time");
                continue;
            }
            if let Err(error) = self.foca.handle_timer(timer, &mut self.runtime) {
                // foca recovers from these by itself; they point at a scheduling problem (a driver
                // starved of CPU for a long time, say).
                warn!(%error, "gossip timer failed");
            }
        }
    }

    /// Whether foca still holds `id` as suspect at `incarnation` (nobody refuted or replaced it).
    fn is_suspect(&self, id: &GossipId, incarnation: Incarnation) -> bool {
        self.foca.iter_membership_state().any(|member| {
            member.id() == id && member.state() == State::Suspect && member.incarnation() == incarnation
        })
    }

    /// Announcing to seeds while alone, rejoining when declared down, and reporting the load.
    fn chores(&mut self, now: Instant) {
        self.rejoin_if_due(now);
        if self.is_alone() && now >= self.next_seed_announce {
            self.next_seed_announce = now + self.config.seed_announce_interval;
            self.announce_to_seeds();
        }
        if now >= self.next_load_check {
            self.next_load_check = now + self.config.load_report_interval;
            self.report_load(now);
        }
    }

    fn announce_to_seeds(&mut self) {
        if self.seeds.addrs.is_empty() && self.seeds.names.is_empty() {
            return; // The first member of a new cluster: others will announce to it.
        }
        self.lonely_rounds += 1;
        if self.lonely_rounds.is_multiple_of(LONELY_ROUNDS_WARN) {
            warn!(
                seeds = ?self.config.seeds,
                rounds = self.lonely_rounds,
                "no live peer yet: still announcing to the seeds; check that they run and are reachable"
            );
        }
        let addrs = self.seeds.addrs.clone();
        self.announce_to(&addrs);
        if !self.seeds.names.is_empty() && !self.resolving {
            self.resolving = true;
            let names = self.seeds.names.clone();
            let resolved_tx = self.resolved_tx.clone();
            tokio::spawn(async move {
                let mut addrs = Vec::new();
                for name in names {
                    match tokio::time::timeout(SEED_RESOLVE_TIMEOUT, tokio::net::lookup_host(&name)).await {
                        Ok(Ok(found)) => addrs.extend(found),
                        Ok(Err(error)) => debug!(seed = %name, %error, "cannot resolve seed"),
                        Err(_) => debug!(seed = %name, "resolving seed timed out"),
                    }
                }
                // The driver may have stopped meanwhile; then nobody needs the answer.
                let _ = resolved_tx.send(addrs).await;
            });
        }
    }

    fn announce_to(&mut self, addrs: &[SocketAddr]) {
        let own = self.foca.identity().addr;
        for &addr in addrs.iter().filter(|&&addr| addr != own) {
            if let Err(error) = self.foca.announce(GossipId::seed(addr), &mut self.runtime) {
                warn!(seed = %addr, %error, "cannot announce to seed");
            }
        }
    }

    /// Whether a datagram may go to `to`: anyone before a directory is set; then only the identities
    /// it allows (and this member's own), or a seed this member announces itself to.
    fn may_send_to(&self, to: &GossipId) -> bool {
        let Some(directory) = self.directory.as_deref() else {
            return true;
        };
        let seed = *to == GossipId::seed(to.addr)
            && (self.seeds.addrs.contains(&to.addr) || self.resolved_seeds.contains(&to.addr));
        seed || screen::directory_allows(directory, self.foca.identity(), to)
    }

    /// Takes the directory just set, and drops from foca's members those it does not allow (they
    /// may have joined before the first directory): locally, without telling anyone.
    fn on_directory(&mut self) {
        self.directory = self.directory_rx.borrow_and_update().clone();
        let Some(directory) = self.directory.as_deref() else {
            return;
        };
        let local = self.foca.identity();
        let outside: Vec<GossipId> = self
            .foca
            .iter_members()
            .map(|member| member.id())
            .filter(|id| !screen::directory_allows(directory, local, id))
            .cloned()
            .collect();
        info!(entries = directory.len(), dropped = outside.len(), "gossip directory set");
        if outside.is_empty() {
            return;
        }
        for id in &outside {
            info!(node = id.node, addr = %id.addr, grpc_addr = %id.grpc_addr, "member outside the directory dropped");
        }
        stats::add(&self.counters.identities_refused, outside.len() as u64);
        if let Err(error) =
            self.foca.apply_many(outside.into_iter().map(Member::down), false, &mut self.runtime)
        {
            warn!(%error, "cannot drop the members outside the directory");
        }
    }

    /// The cluster declared this member down (foca went idle): rejoin as the next generation, at
    /// once unless the last renewal is recent. Bounding the rate is what keeps a forged or
    /// corrupted "you are down", repeated, from making it renew in a tight loop.
    fn schedule_rejoin(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let due = self.last_renewal.map_or(now, |last| last + self.config.suspect_to_down_after);
        let refused = self.rejoin_at.is_some() || due > now;
        if refused && stats::add(&self.counters.renewals_refused, 1) {
            warn!(
                node = self.foca.identity().node,
                total = self.counters.snapshot().renewals_refused,
                "declared down again right after rejoining: rejoining once suspect_to_down_after has passed"
            );
        }
        self.rejoin_at = Some(self.rejoin_at.unwrap_or(due).max(now));
    }

    fn rejoin_if_due(&mut self, now: Instant) {
        if self.left || self.rejoin_at.is_none_or(|rejoin_at| now < rejoin_at) {
            return;
        }
        self.rejoin_at = None;
        let local = self.foca.identity().node;
        let Some(renewed) = self.foca.identity().next_generation() else {
            return warn!(
                local,
                "the cluster declared this node down and its generation is at its maximum; restart it"
            );
        };
        let generation = renewed.generation;
        if let Err(error) = self.foca.change_identity(renewed, &mut self.runtime) {
            return warn!(local, %error, "cannot rejoin as a new generation; restart this node");
        }
        self.last_renewal = Some(now);
        stats::add(&self.counters.renewals, 1);
        warn!(
            local,
            generation,
            "the cluster declared this node down (paused or partitioned too long); rejoined as a new generation"
        );
        self.membership_changed = true;
        self.force_load_report = true;
    }

    /// Queues a load report when the load changed (at most once per `load_report_interval`, the
    /// rate of this call), when a member joined, or when the last report is old.
    fn report_load(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let load = self.local_load.load(Ordering::Relaxed);
        let stale = now >= self.last_report_at + self.config.load_refresh_interval;
        if self.last_reported_load == Some(load) && !stale && !self.force_load_report {
            return;
        }
        self.load_seq += 1;
        let identity = self.foca.identity();
        let report =
            LoadReport { node: identity.node, generation: identity.generation, seq: self.load_seq, load };
        if let Err(error) = self.foca.add_broadcast(&report.encode()) {
            warn!(%error, "cannot queue load report");
        }
        self.last_reported_load = Some(load);
        self.last_report_at = now;
        self.force_load_report = false;
    }

    async fn leave(&mut self) {
        info!(node = self.foca.identity().node, "leaving the cluster");
        self.left = true;
        if let Err(error) = self.foca.leave_cluster(&mut self.runtime) {
            warn!(%error, "cannot announce leaving; peers will detect it instead");
        }
        self.flush().await;
    }

    /// Performs what foca asked for: packets, timers, then a new view if anything changed.
    async fn flush(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            if !self.may_send_to(&to) {
                stats::add(&self.counters.sends_refused, 1);
                debug!(node = to.node, peer = %to.addr, "not sending gossip outside the directory");
                continue;
            }
            let datagram: &[u8] = match &self.key {
                Some(key) => {
                    auth::seal(key, &data, &mut self.send_buf);
                    &self.send_buf
                }
                None => &data,
            };
            if let Err(error) = self.socket.send_to(datagram, to.addr).await {
                // The peer's failure detector deals with unreachable members.
                debug!(peer = %to.addr, %error, "gossip send failed");
            }
        }
        let now = std::time::Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            if let Some(dropped) = self.timers.push(now, after, timer)
                && stats::add(&self.counters.timers_dropped, 1)
            {
                warn!(
                    ?dropped,
                    pending = self.timers.len(),
                    total = self.counters.snapshot().timers_dropped,
                    "gossip timer queue full, the timer due last dropped: flooded with identities?"
                );
            }
        }
        while let Some(notification) = self.runtime.to_notify() {
            self.on_notification(notification);
        }
        self.publish_view();
    }

    fn on_notification(&mut self, notification: OwnedNotification<GossipId>) {
        let local = self.foca.identity().node;
        match notification {
            OwnedNotification::MemberUp(id) => {
                info!(local, node = id.node, addr = %id.addr, generation = id.generation, "member up");
                self.membership_changed = true;
                // Let the newcomer hear our load soon rather than at the next refresh.
                self.force_load_report = true;
            }
            OwnedNotification::MemberDown(id) => {
                info!(local, node = id.node, addr = %id.addr, generation = id.generation, "member down");
                self.membership_changed = true;
            }
            OwnedNotification::Rename(old, new) => {
                info!(
                    local,
                    node = new.node,
                    addr = %new.addr,
                    old_generation = old.generation,
                    generation = new.generation,
                    "member came back as a new generation"
                );
                self.membership_changed = true;
            }
            OwnedNotification::Active => {
                info!(local, "joined the cluster");
                self.membership_changed = true;
                self.lonely_rounds = 0;
            }
            OwnedNotification::Idle => {
                warn!(local, "no live peer left; announcing to the seeds");
                self.membership_changed = true;
            }
            OwnedNotification::Rejoin(id) => {
                // foca never renews by itself (`GossipId::renew` is `None`): see `rejoin_if_due`.
                debug!(local, generation = id.generation, "foca rejoined");
                self.membership_changed = true;
            }
            OwnedNotification::Defunct => {
                if !self.left {
                    info!(local, "the cluster declared this node down");
                    self.schedule_rejoin(Instant::now());
                }
                self.membership_changed = true;
            }
        }
    }

    /// Publishes a new view if the members or a load changed.
    fn publish_view(&mut self) {
        let local_load = self.local_load.load(Ordering::Relaxed);
        let mut loads = load::lock(&self.loads);
        let loads_changed = loads.take_changed();
        if !self.membership_changed && !loads_changed && local_load == self.published_local_load {
            return;
        }
        let peers = self.foca.iter_members().map(|member| member.id());
        let (members, duplicates) = live_members(self.foca.identity(), local_load, !self.left, peers, &loads);
        if loads.len() > LOAD_TABLE_ENTRIES_MAX {
            let live: BTreeSet<NodeId> = members.iter().map(|member| member.id).collect();
            loads.retain(|node| live.contains(&node));
        }
        drop(loads);
        if duplicates != self.duplicates {
            if !duplicates.is_empty() {
                info!(?duplicates, "node ids claimed by two live identities; the newer generation counts");
            }
            self.duplicates = duplicates;
        }
        self.membership_changed = false;
        self.published_local_load = local_load;
        self.view_tx.send_if_modified(|view| {
            if same_identities(&view.members, &members) {
                let loads_differ = view.members != members;
                view.members = members;
                loads_differ
            } else {
                *view = View::new(view.epoch + 1, view.local, members);
                true
            }
        });
    }
}
