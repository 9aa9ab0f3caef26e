//! Runs one node: opens storage and checks it belongs to this cluster, rebuilds the epoxy replica
//! from it, starts the driver, the peer transport, gossip membership, the actor runtime and the
//! gRPC and HTTP servers, and stops on SIGINT or SIGTERM.

use crate::actor::service::{ActorAdminService, ActorsService};
use crate::actor::{Registry, Router, Runtime, RuntimeConfig};
use crate::admin::AdminService;
use crate::auth;
use crate::boot::{self, BootMarker};
use crate::config::NodeConfig;
use crate::control::{ControlConfig, ControlPlane};
use crate::driver::{self, META_CUT, META_OWN_COMMITS_KNOWN_FROM, META_SEAL, META_SLOT_RESERVATION};
use crate::epoch::{EpochRecord, META_REMOVED};
use crate::http::{self, HttpState};
use crate::kv::KvService;
use crate::limits::{self, CappedListener};
use crate::metadata::{self, MetadataMachine};
use crate::node_info::{self, LocalInfo, Peer};
use crate::placement_view;
use crate::reconfig::{self, PeerSet};
use crate::transfer;
use crate::transport::{self, EpoxyService};
use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusHandle;
use mortar_epoxy::codec::{decode_cut, decode_instance, decode_key_record};
use mortar_epoxy::{Config as EpoxyConfig, Cut, InstanceId, Recovered, Replica, ReplicaId};
use mortar_placement::View;
use mortar_placement::control::{ClusterMetadata, Command, InitialNode};
use mortar_placement::{Membership, MembershipConfig};
use mortar_proto::internal::v1::actor_forward_server::ActorForwardServer;
use mortar_proto::internal::v1::epoxy_client::EpoxyClient;
use mortar_proto::internal::v1::epoxy_server::EpoxyServer;
use mortar_proto::v1::actor_admin_server::ActorAdminServer;
use mortar_proto::v1::actors_server::ActorsServer;
use mortar_proto::v1::admin_server::AdminServer;
use mortar_proto::v1::kv_server::KvServer;
use mortar_storage::{RocksStorage, Storage, StorageError};
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tracing::{debug, info, warn};

pub const META_CLUSTER_ID: &str = "cluster_id";
pub const META_CLUSTER_MEMBERS: &str = "cluster_members";
pub const META_NODE_ID: &str = "node_id";
/// How long a stopping node waits for requests in progress.
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(1500);
/// How often readiness re-probes the peers.
const READINESS_INTERVAL: Duration = Duration::from_millis(500);
/// How often the node's load (active actors) is handed to gossip.
const LOAD_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a node hosting the actor types of `registry` until SIGINT or SIGTERM, its state in
/// RocksDB under `config.data_dir`.
pub async fn run(config: NodeConfig, metrics: PrometheusHandle, registry: Registry) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data directory {}", config.data_dir.display()))?;
    let storage: Arc<dyn Storage> = Arc::new(RocksStorage::open(&config.data_dir)?);
    run_on(config, metrics, registry, storage, signals()).await
}

/// Opens a checkpoint of this node's data (a RocksDB directory) to stream it to a new member.
fn open_checkpoint(dir: &std::path::Path) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(Arc::new(RocksStorage::open(dir)?))
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed when it is first polled,
/// so a signal before the node serves still ends the process at once.
async fn signals() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            warn!(error = %e, "cannot handle SIGTERM; stop the node with SIGINT (Ctrl-C)");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    info!("signal received, stopping");
}

/// Runs a node hosting the actor types of `registry` on `storage` until `stop` resolves, then
/// stops as on SIGTERM. `config.data_dir` still holds the boot marker and epoch checkpoints.
/// [`run`] gives it RocksDB and the signals; [`crate::testing`] gives it memory and a channel.
pub async fn run_on(
    mut config: NodeConfig,
    metrics: PrometheusHandle,
    registry: Registry,
    storage: Arc<dyn Storage>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data directory {}", config.data_dir.display()))?;
    if let Some(join) = config.join.clone() {
        crate::join::prepare(&*storage, &mut config, &join).await.context("join the cluster")?;
    }
    let fresh = check_identity(&*storage, &config)?;
    let incarnation = match meta_u64(&*storage, crate::join::META_INCARNATION, "incarnation")? {
        Some(incarnation) => incarnation,
        None => {
            let incarnation = crate::join::draw_incarnation();
            let mut batch = mortar_storage::WriteBatch::new();
            batch.put_meta(crate::join::META_INCARNATION, incarnation.to_be_bytes().to_vec());
            storage.write(batch, true)?;
            incarnation
        }
    };
    let epoch_record = EpochRecord::load(&*storage).context("read the epoch from the data directory")?;
    let initial_members: Vec<u32> = config.initial_cluster.iter().map(|m| m.id).collect();
    let mut recovered = load(&*storage, epoch_record.as_ref(), &initial_members)
        .context("load epoxy state from the data directory")?;
    let (writes_complete, boot_marker) =
        BootMarker::check(&config.data_dir, boot::current_boot_id().as_deref()).with_context(|| {
            format!("read the boot marker {}", config.data_dir.join(boot::BOOT_MARKER_FILE).display())
        })?;
    recovered.writes_complete = writes_complete;
    info!(
        instances = recovered.instances.len(),
        executed = recovered.executed.len(),
        writes_complete,
        "state loaded from {}",
        config.data_dir.display()
    );
    let (epoch, members) = match &epoch_record {
        Some(record) => (record.epoch, record.members.clone()),
        None => (1, initial_members.clone()),
    };
    let replicas: Vec<ReplicaId> = members.iter().map(|&m| ReplicaId(m)).collect();
    let mut epoxy_config = EpoxyConfig::new(ReplicaId(config.id), replicas).context("epoxy configuration")?;
    epoxy_config.epoch = epoch;
    let replica = Replica::recover(epoxy_config, recovered);
    info!(epoch, members = ?members, "replica of epoch {epoch}");

    let grpc_listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("listen for gRPC on {} (is another process using the port?)", config.listen)
    })?;
    let http_listener = tokio::net::TcpListener::bind(config.http).await.with_context(|| {
        format!("listen for HTTP on {} (is another process using the port?)", config.http)
    })?;

    let cluster_id = config.cluster_id();
    let dialer = config.dialer();
    warn_if_open(&config);
    let mut peers = Vec::new();
    for member in config.peers() {
        let channel = transport::peer_channel(&dialer, &member.address)
            .with_context(|| format!("peer {} has an invalid address {:?}", member.id, member.address))?;
        peers.push(Peer {
            id: member.id,
            address: member.address.clone(),
            client: EpoxyClient::new(channel),
        });
    }
    let addresses: BTreeMap<u32, String> = match &epoch_record {
        Some(record) => record.addresses.clone(),
        None => config.initial_cluster.iter().map(|m| (m.id, m.address.clone())).collect(),
    };
    let mut peer_set = PeerSet::new(cluster_id, config.id, dialer.clone());
    let peer_queues = peer_set.peers_for(&addresses);
    let previous_cut = epoch_record.as_ref().map(|r| r.previous_cut.clone());
    let (driver, driver_thread) = driver::start(
        replica,
        storage.clone(),
        peer_queues,
        config.request_timeout,
        Some(boot_marker),
        driver::EpochOptions {
            previous_cut,
            checkpoints: Some(transfer::checkpoints_root(&config.data_dir)),
        },
    )
    .context("start the epoxy driver thread")?;
    if fresh && config.join.is_none() {
        // Until the control plane confirms this is the first directory of this id (a wiped one
        // must not vote again), the node proposes nothing and takes no peer message.
        driver.hold();
    }

    let ticker = driver.clone();
    let tick_interval = config.tick_interval;
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if !ticker.tick() {
                return;
            }
        }
    });

    let membership = Arc::new(start_membership(&config).await?);
    let (machine, metadata) = MetadataMachine::new();
    let mut control_config = ControlConfig::new(u64::from(config.id), cluster_id, storage.clone());
    control_config.dialer = dialer.clone();
    let (control, control_service) =
        ControlPlane::start(control_config, machine).await.context("start the control plane")?;
    let bootstrap =
        spawn_control_bootstrap(&config, control.clone(), metadata.clone(), membership.subscribe());
    let checkpoints = transfer::Source::new(transfer::checkpoints_root(&config.data_dir), open_checkpoint);
    let (mut removed, follower) = reconfig::spawn(
        config.id,
        incarnation,
        control.clone(),
        metadata.clone(),
        driver.clone(),
        peer_set,
        checkpoints.clone(),
    );
    let (placement, placement_task) = placement_view::spawn(membership.subscribe(), metadata.clone());
    let mut runtime_config = RuntimeConfig::new(config.id);
    runtime_config.lease = config.actor_lease;
    runtime_config.node_lease = config.actor_node_lease;
    runtime_config.idle_timeout = config.actor_idle_timeout;
    // Room for a failover (detection, then activation on the new owner) within one call.
    runtime_config.call_timeout = 2 * config.request_timeout;
    runtime_config.peer_token = config.tokens.own();
    runtime_config.peer_dialer = dialer.clone();
    let storage_for_exit = storage.clone();
    let runtime = Runtime::new(runtime_config, registry, driver.clone(), storage);
    let router = Router::new(runtime.clone(), placement);
    let rebalancer = router.spawn_rebalancer();
    let scheduler = router.spawn_scheduler();
    let gossip_alive = Arc::new(AtomicBool::new(true));
    let load_reporter = {
        let membership = membership.clone();
        let alive = gossip_alive.clone();
        let view = membership.subscribe();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(LOAD_REPORT_INTERVAL);
            loop {
                interval.tick().await;
                membership.set_load(runtime.active_count() as u64);
                alive.store(membership.is_running(), Ordering::Relaxed);
                export_gossip_stats(membership.stats());
                let live = view.borrow().members.len();
                metrics::gauge!("mortar_gossip_live_members").set(live as f64);
            }
        })
    };
    let gossip_directory = spawn_gossip_directory(membership.clone(), metadata.clone());

    let local = LocalInfo {
        id: config.id,
        address: config.this_member().address.clone(),
        region: config.region.clone(),
    };
    let mut http_state = HttpState::new(metrics, "starting: no peer probed yet");
    http_state.gateway = Some(crate::gateway::Gateway::new(router.clone(), Arc::new(config.tokens.clone())));
    spawn_readiness(
        (cluster_id, config.id, dialer.clone()),
        addresses.clone(),
        driver.clone(),
        metadata.clone(),
        gossip_alive,
        http_state.clone(),
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<KvServer<KvService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mortar_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("build gRPC reflection")?;
    let kv = KvService { driver: driver.clone(), value_bytes_max: config.value_bytes_max };
    let admin = AdminService {
        cluster_id,
        local: local.clone(),
        peers,
        driver: driver.clone(),
        control: control.clone(),
        metadata: metadata.clone(),
        gossip: membership.subscribe(),
    };
    let epoxy =
        EpoxyService { cluster_id, me: config.id, driver: driver.clone(), local, transfer: checkpoints };
    let actors = ActorsService { router: router.clone() };
    let forward = crate::actor::forward::ForwardService { router: router.clone() };
    let actor_admin = ActorAdminService { router };
    let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
    let tokens = Arc::new(config.tokens.clone());
    let client_check = auth::Check::new(tokens.clone(), auth::Level::Client);
    let admin_check = auth::Check::new(tokens, auth::Level::Admin);
    let mut grpc_server =
        transport::grpc_server(transport::SERVER_PING_INTERVAL, transport::SERVER_PING_TIMEOUT);
    if let Some(tls) = &config.tls {
        grpc_server = grpc_server.tls_config(tls.server_config()).context("serve TLS")?;
    }
    if config.otlp {
        grpc_server = grpc_server.trace_fn(crate::telemetry::request_span);
    }
    let peer_check = crate::tls::PeerCheck::new(config.tls.is_some());
    let budget = crate::budget::RequestBudget::new(
        crate::budget::REQUEST_BYTES_IN_FLIGHT_MAX,
        crate::budget::REQUEST_BODY_WAIT,
    );
    let grpc = grpc_server
        .layer(tower::util::MapRequestLayer::new(move |request| budget.apply(request)))
        .add_service(InterceptedService::new(
            KvServer::new(kv).max_decoding_message_size(max).max_encoding_message_size(max),
            client_check.clone(),
        ))
        .add_service(InterceptedService::new(AdminServer::new(admin), admin_check.clone()))
        .add_service(InterceptedService::new(
            ActorsServer::new(actors).max_decoding_message_size(max).max_encoding_message_size(max),
            client_check.clone(),
        ))
        .add_service(InterceptedService::new(ActorAdminServer::new(actor_admin), admin_check))
        // Forwarded calls: a node certificate (with TLS) and the token `Actors` needs.
        .add_service(InterceptedService::new(
            InterceptedService::new(
                ActorForwardServer::new(forward)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
                client_check,
            ),
            peer_check,
        ))
        .add_service(InterceptedService::new(
            EpoxyServer::new(epoxy).max_decoding_message_size(max).max_encoding_message_size(max),
            peer_check,
        ))
        .add_service(InterceptedService::new(
            control_service.into_server().max_decoding_message_size(max).max_encoding_message_size(max),
            peer_check,
        ))
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            // Accepted sockets get TCP_NODELAY there: the builder's tcp_nodelay only applies to
            // listeners tonic binds itself, and Nagle adds ~40 ms stalls to small replies.
            CappedListener::new(grpc_listener, config.grpc_connections_max, "grpc", limits::HANDSHAKE_WAIT)
                .into_incoming(),
            wait_for(shutdown_rx.clone()),
        );
    let http_listener =
        CappedListener::new(http_listener, limits::HTTP_CONNECTIONS, "http", limits::HANDSHAKE_WAIT);
    let http = http::serve(http_listener, http_state, wait_for(shutdown_rx));
    info!(
        id = config.id,
        grpc = %config.listen,
        http = %config.http,
        cluster = format!("{cluster_id:016x}"),
        "node serving"
    );
    let serve = async {
        let (grpc_result, http_result) = tokio::join!(grpc, http);
        grpc_result.context("gRPC server")?;
        http_result.context("HTTP server")?;
        anyhow::Ok(())
    };
    tokio::pin!(serve);
    let mut removed_at = None;
    let mut removed_reason: Option<String> = None;
    tokio::select! {
        result = &mut serve => return result,
        // `stop` says why (signals() logs the signal).
        () = stop => {}
        Some(ended) = removed.recv() => match ended {
            reconfig::Ended::Replaced { reason } => {
                tracing::error!("{reason}");
                removed_reason = Some(reason);
            }
            reconfig::Ended::Removed { epoch } => {
                tracing::error!(
                    epoch,
                    "this node was removed from the cluster (it is not a member of epoch {epoch}); it stops \
                     and will not start again on this data directory"
                );
                if let Err(e) = reconfig::record_removed(&*storage_for_exit, epoch) {
                    tracing::error!(error = %e, "could not record the removal in the data directory");
                }
                // Members still finishing the last epoch may ask this node for its instances.
                tokio::time::sleep(reconfig::REMOVED_LINGER).await;
                removed_at = Some(epoch);
            }
        },
    }
    // Leave gossip first, so peers move this node's actors at once instead of after failure
    // detection.
    load_reporter.abort();
    let _ = load_reporter.await;
    gossip_directory.abort();
    let _ = gossip_directory.await;
    rebalancer.abort();
    scheduler.abort();
    bootstrap.abort();
    follower.abort();
    placement_task.abort();
    match Arc::try_unwrap(membership) {
        Ok(membership) => {
            if let Err(e) = membership.leave().await {
                info!(error = %e, "left gossip without confirmation; peers will detect it");
            }
        }
        Err(_) => info!("gossip still in use; peers will detect this node's exit"),
    }
    let _ = shutdown_tx.send(true);
    // Peers keep their message streams open; wait a bounded time for requests in progress, then
    // stop. Everything acknowledged is already durable, so stopping here is always safe.
    if tokio::time::timeout(SHUTDOWN_DRAIN, &mut serve).await.is_err() {
        info!(
            drain_ms = SHUTDOWN_DRAIN.as_millis() as u64,
            "connections still open after the drain; closing them"
        );
    }
    if let Err(e) = control.shutdown().await {
        info!(error = %e, "the control plane did not stop cleanly");
    }
    // Close storage before the process exits: RocksDB aborts the process if it is still in use
    // when static destructors run.
    driver.stop().await;
    if tokio::task::spawn_blocking(move || driver_thread.join()).await.is_err() {
        tracing::error!("the epoxy driver thread panicked while stopping");
    }
    info!("stopped");
    if let Some(reason) = removed_reason {
        bail!("{reason}");
    }
    if let Some(epoch) = removed_at {
        bail!(
            "node {} was removed from the cluster at epoch {epoch}; its data directory {} is retired: \
             to bring this machine back, join it as a new node with an empty data directory",
            config.id,
            config.data_dir.display()
        );
    }
    Ok(())
}

/// Joins gossip: binds `--gossip-listen` and advertises the gRPC address of this member.
/// Says at start-up what a node open to its network lets in: without TLS anyone who reaches the
/// gRPC port can speak as a peer (the internal services check only the cluster id), and without
/// tokens anyone can use keys, actors and administration. Quiet on loopback (`mortar dev`).
fn warn_if_open(config: &NodeConfig) {
    if config.listen.ip().is_loopback() {
        return;
    }
    if config.tls.is_none() {
        warn!(
            listen = %config.listen,
            "serving without TLS beyond loopback: traffic is in clear text and anyone who reaches this \
             port can send peer messages; pass --tls-cert, --tls-key and --tls-ca"
        );
    }
    if config.tokens.admin.is_none() {
        warn!(
            listen = %config.listen,
            "serving without --admin-token-file beyond loopback: anyone who reaches this port can \
             change membership"
        );
    }
}

async fn start_membership(config: &NodeConfig) -> anyhow::Result<Membership> {
    let mut gossip = MembershipConfig::new(config.id, config.gossip_listen);
    gossip.region = config.region.clone();
    gossip.grpc_addr = config.this_member().address.clone();
    gossip.seeds = config.gossip_seeds.clone();
    gossip.key = config.gossip_key.clone();
    if let Some(advertise) = config.gossip_advertise {
        gossip.advertise_addr = Some(advertise);
    } else if config.gossip_listen.ip().is_unspecified() {
        // Bound to every interface: advertise the IP peers know this member by.
        let address = &config.this_member().address;
        let ip = tokio::net::lookup_host(address.as_str())
            .await
            .ok()
            .and_then(|mut addresses| addresses.next())
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .with_context(|| {
                format!(
                    "find the gossip address to advertise: {address} does not resolve to a specific IP; \
                     pass --gossip-listen <this node's IP>:<port>"
                )
            })?;
        gossip.advertise_addr = Some(std::net::SocketAddr::new(ip, config.gossip_listen.port()));
    }
    let membership = Membership::start(gossip).await.with_context(|| {
        format!("start gossip on UDP {} (set --gossip-listen to use another address)", config.gossip_listen)
    })?;
    info!(gossip = %membership.gossip_addr(), seeds = ?config.gossip_seeds, "gossip membership started");
    Ok(membership)
}

/// How often an uninitialized control plane tries to initialize itself.
const BOOTSTRAP_RETRY: Duration = Duration::from_millis(500);
/// How long bootstrap waits for gossip to tell the other initial members' regions.
const BOOTSTRAP_REGIONS_WAIT: Duration = Duration::from_secs(5);

/// The control plane's voters when a cluster starts: 5 of the initial members (by id), or 3, or
/// all of them when there are fewer than 3. The others follow as learners.
pub fn bootstrap_voters(initial: &[crate::config::Member]) -> BTreeMap<u64, String> {
    let count = match initial.len() {
        n if n >= 5 => 5,
        n if n >= 3 => 3,
        n => n,
    };
    let mut members: Vec<&crate::config::Member> = initial.iter().collect();
    members.sort_by_key(|m| m.id);
    members.iter().take(count).map(|m| (u64::from(m.id), m.address.clone())).collect()
}

/// The incarnation of an initial member: distinct per id within a cluster (a multiplication by
/// an odd constant is a bijection), and known to every initial member without asking.
fn initial_incarnation(cluster_id: u64, id: u32) -> u64 {
    cluster_id ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Until the control plane holds the cluster's metadata, each initial voter initializes the raft
/// group (the same voters everywhere: safe on several nodes), adds the other initial members as
/// learners, and commits `Initialize` (idempotent), with the regions gossip reports.
fn spawn_control_bootstrap(
    config: &NodeConfig,
    control: ControlPlane<MetadataMachine>,
    mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
    mut gossip: watch::Receiver<View>,
) -> tokio::task::JoinHandle<()> {
    let voters = bootstrap_voters(&config.initial_cluster);
    let initial = config.initial_cluster.clone();
    let (me, cluster_id, region) = (u64::from(config.id), config.cluster_id(), config.region.clone());
    tokio::spawn(async move {
        if metadata.borrow().is_initialized() || !voters.contains_key(&me) {
            return;
        }
        let _ = tokio::time::timeout(
            BOOTSTRAP_REGIONS_WAIT,
            gossip.wait_for(|view| initial.iter().all(|m| view.members.iter().any(|g| g.id == m.id))),
        )
        .await;
        let regions: BTreeMap<u32, String> =
            gossip.borrow().members.iter().map(|m| (m.id, m.region.clone())).collect();
        let nodes = initial
            .iter()
            .map(|m| InitialNode {
                id: m.id,
                address: m.address.clone(),
                region: if u64::from(m.id) == me {
                    region.clone()
                } else {
                    regions.get(&m.id).cloned().unwrap_or_default()
                },
                incarnation: initial_incarnation(cluster_id, m.id),
            })
            .collect();
        let initialize = Command::Initialize { cluster_id, nodes };
        let record_voters = Command::SetControlVoters { voters: voters.keys().map(|&v| v as u32).collect() };
        loop {
            if let Err(e) = control.initialize(voters.clone()).await {
                debug!(error = %e, "control plane not initialized yet");
            }
            let done = async {
                for m in initial.iter().filter(|m| !voters.contains_key(&u64::from(m.id))) {
                    control.add_learner(u64::from(m.id), m.address.clone()).await.ok()?;
                }
                metadata::change(&control, &initialize).await.ok()?;
                metadata::change(&control, &record_voters).await.ok()
            };
            if done.await.is_some() {
                info!("control plane initialized with the initial members");
                return;
            }
            if metadata.borrow_and_update().is_initialized() {
                return;
            }
            tokio::time::sleep(BOOTSTRAP_RETRY).await;
        }
    })
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps gossip's directory equal to the control plane's live nodes (joining, active, draining)
/// and their addresses: gossip then ignores any other identity, and sends nothing to it.
fn spawn_gossip_directory(
    membership: Arc<Membership>,
    mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = Vec::new();
        loop {
            let live: Vec<(u32, String)> = metadata
                .borrow_and_update()
                .nodes
                .values()
                .filter(|n| n.state.is_live())
                .map(|n| (n.id, n.address.clone()))
                .collect();
            // Before the control plane is initialized gossip stays open: the initial members
            // find each other first.
            if !live.is_empty() && live != last {
                match membership.set_directory(live.clone()) {
                    Ok(()) => last = live,
                    Err(e) => tracing::warn!(error = %e, "gossip directory not updated"),
                }
            }
            if metadata.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Gossip's refusal counters as metrics (`mortar_gossip_*_total`).
fn export_gossip_stats(stats: mortar_placement::GossipStats) {
    for (name, value) in [
        ("mortar_gossip_datagrams_unauthenticated_total", stats.datagrams_unauthenticated),
        ("mortar_gossip_datagrams_rejected_total", stats.datagrams_rejected),
        ("mortar_gossip_identities_refused_total", stats.identities_refused),
        ("mortar_gossip_generations_refused_total", stats.generations_refused),
        ("mortar_gossip_sends_refused_total", stats.sends_refused),
        ("mortar_gossip_renewals_total", stats.renewals),
        ("mortar_gossip_renewals_refused_total", stats.renewals_refused),
        ("mortar_gossip_timers_dropped_total", stats.timers_dropped),
    ] {
        metrics::counter!(name).absolute(value);
    }
}

/// Marks the node ready while it reaches a majority of its epoch's members (itself included).
/// Addresses come from the epoch's members as the node started (`addresses`), then from the
/// control plane's directory.
fn spawn_readiness(
    (cluster_id, me, dialer): (u64, u32, crate::tls::Dialer),
    mut addresses: BTreeMap<u32, String>,
    driver: driver::DriverHandle,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    gossip_alive: Arc<AtomicBool>,
    state: HttpState,
) {
    let epoch = driver.epoch_status();
    tokio::spawn(async move {
        let mut clients: BTreeMap<u32, Peer> = BTreeMap::new();
        loop {
            let members = epoch.borrow().members.clone();
            for (id, node) in &metadata.borrow().nodes {
                addresses.insert(*id, node.address.clone());
            }
            let mut peers = Vec::new();
            for &id in members.iter().filter(|&&m| m != me) {
                let Some(address) = addresses.get(&id) else { continue };
                if clients.get(&id).is_none_or(|p| &p.address != address) {
                    let Ok(channel) = transport::peer_channel(&dialer, address) else { continue };
                    let client = EpoxyClient::new(channel);
                    clients.insert(id, Peer { id, address: address.clone(), client });
                }
                peers.push(clients[&id].clone());
            }
            let quorum = members.len() / 2 + 1;
            let statuses =
                futures::future::join_all(peers.iter().map(|p| node_info::probe(cluster_id, p))).await;
            let reachable = 1 + statuses.iter().filter(|s| s.reachable).count();
            let serving = driver.is_serving();
            let gossiping = gossip_alive.load(Ordering::Relaxed);
            let ready = reachable >= quorum && serving && gossiping;
            metrics::gauge!("mortar_node_members_reachable").set(reachable as f64);
            if !gossiping {
                *state.not_ready_reason.lock().expect("reason lock") =
                    "gossip stopped (a bug: see the log); restart this node".to_string();
            } else if !serving {
                *state.not_ready_reason.lock().expect("reason lock") =
                    "confirming this data directory with the control plane (a wiped one must not vote again)"
                        .to_string();
            } else if !ready {
                let down: Vec<String> = statuses
                    .iter()
                    .filter(|s| !s.reachable)
                    .map(|s| format!("{} ({})", s.id, s.error))
                    .collect();
                *state.not_ready_reason.lock().expect("reason lock") = format!(
                    "{reachable} of {} members reachable, a quorum needs {quorum}; unreachable: {}",
                    members.len(),
                    down.join(", ")
                );
            }
            state.ready.store(ready, Ordering::Relaxed);
            tokio::time::sleep(READINESS_INTERVAL).await;
        }
    });
}

/// A data directory remembers which cluster and node it belongs to; another is refused. True
/// when the directory was new: this start wrote its identity.
fn check_identity(storage: &dyn Storage, config: &NodeConfig) -> anyhow::Result<bool> {
    let dir = config.data_dir.display();
    let members: Vec<String> =
        config.initial_cluster.iter().map(|m| format!("{}={}", m.id, m.address)).collect();
    let members = members.join(",");
    let cluster_id = config.cluster_id();
    if let Some(epoch) = meta_u64(storage, META_REMOVED, "the epoch this node was removed at")? {
        bail!(
            "data directory {dir} belongs to node {}, which was removed from the cluster at epoch {epoch}: \
             a removed node never serves again; join this machine as a new node with an empty data directory",
            config.id
        );
    }
    match storage.get_meta(META_CLUSTER_ID)? {
        Some(stored) => {
            let stored_id = u64::from_be_bytes(
                stored[..]
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("data directory {dir}: cluster id is corrupt"))?,
            );
            if stored_id != cluster_id {
                let stored_members = storage
                    .get_meta(META_CLUSTER_MEMBERS)?
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                bail!(
                    "data directory {dir} belongs to another cluster ({stored_members}), not the one in \
                     --initial-cluster ({members}); use a fresh --data-dir, or the --initial-cluster it was \
                     created with"
                );
            }
            let node = storage.get_meta(META_NODE_ID)?.unwrap_or_default();
            let node = u32::from_be_bytes(
                node[..]
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("data directory {dir}: node id is corrupt"))?,
            );
            if node != config.id {
                bail!(
                    "data directory {dir} belongs to node {node}, not node {}; give each node its own",
                    config.id
                );
            }
        }
        None => {
            let mut batch = mortar_storage::WriteBatch::new();
            batch.put_meta(META_CLUSTER_ID, cluster_id.to_be_bytes().to_vec());
            batch.put_meta(META_CLUSTER_MEMBERS, members.into_bytes());
            batch.put_meta(META_NODE_ID, config.id.to_be_bytes().to_vec());
            storage.write(batch, true)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads everything a replica restarts from: in the epoch of `epoch` (the stored
/// [`EpochRecord`]), or in epoch 1 over `initial_members` when the node never switched.
pub fn load(
    storage: &dyn Storage,
    epoch: Option<&EpochRecord>,
    initial_members: &[u32],
) -> Result<Recovered, StorageError> {
    let current = epoch.map_or(1, |e| e.epoch);
    let mut members: Vec<u32> = initial_members.to_vec();
    if let Some(record) = epoch {
        members = record.members.clone();
        members.extend(record.previous_cut.bounds.iter().map(|(r, _)| r.0));
        members.sort_unstable();
        members.dedup();
    }
    let mut recovered = Recovered::default();
    storage.scan_executed(&mut |key| {
        recovered.executed.push(InstanceId { replica: ReplicaId(key.replica), slot: key.slot });
        Ok(())
    })?;
    let executed: HashSet<InstanceId> = recovered.executed.iter().copied().collect();
    storage.scan_instances(&mut |key, bytes| {
        let id = InstanceId { replica: ReplicaId(key.replica), slot: key.slot };
        if !executed.contains(&id) {
            let record = decode_instance(bytes)
                .map_err(|e| StorageError::Corrupt { what: format!("instance {id}: {e}") })?;
            recovered.instances.push(record);
        }
        Ok(())
    })?;
    storage.scan_conflicts(&mut |key, bytes| {
        let mut record = decode_key_record(bytes)
            .map_err(|e| StorageError::Corrupt { what: format!("key record: {e}") })?;
        if let Some(epoch) = epoch {
            // Entries of earlier epochs are no dependency of anything in this one.
            record.latest.retain(|id| !crate::epoch::is_stale_entry(epoch, id.replica, id.slot));
            if record.latest.is_empty() {
                return Ok(());
            }
        }
        recovered.keys.push((bytes::Bytes::copy_from_slice(key), record));
        Ok(())
    })?;
    for member in members {
        if let Some(through) = meta_u64(storage, &driver::forgotten_meta_key(member), "forgotten floor")? {
            recovered.forgotten.push((ReplicaId(member), through));
        }
    }
    if let Some(slot) = meta_u64(storage, META_SLOT_RESERVATION, "slot reservation")? {
        recovered.slot_reservation = slot;
    }
    if let Some(slot) = meta_u64(storage, META_OWN_COMMITS_KNOWN_FROM, "own commits known from")? {
        recovered.own_commits_known_from = slot;
    }
    // A seal or cut of an earlier epoch stays stored until the next one replaces it.
    let of_current = |c: &Cut| c.epoch == current;
    recovered.seal = meta_cut(storage, META_SEAL, "epoch seal")?.filter(of_current).map(|seal| seal.bounds);
    recovered.cut = meta_cut(storage, META_CUT, "epoch cut")?.filter(of_current);
    Ok(recovered)
}

/// A metadata entry holding an epoch's bounds (`what` names it in the corruption error).
fn meta_cut(storage: &dyn Storage, name: &str, what: &str) -> Result<Option<Cut>, StorageError> {
    let Some(bytes) = storage.get_meta(name)? else { return Ok(None) };
    decode_cut(&bytes).map(Some).map_err(|e| StorageError::Corrupt { what: format!("{what}: {e}") })
}

/// A metadata entry holding a big-endian u64 (`what` names it in the corruption error).
pub(crate) fn meta_u64(storage: &dyn Storage, name: &str, what: &str) -> Result<Option<u64>, StorageError> {
    let Some(bytes) = storage.get_meta(name)? else { return Ok(None) };
    let raw: [u8; 8] = bytes[..].try_into().map_err(|_| StorageError::Corrupt { what: what.into() })?;
    Ok(Some(u64::from_be_bytes(raw)))
}
