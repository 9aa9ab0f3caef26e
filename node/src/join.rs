//! `mortar node --join <member> [--replace <id>]`: a new node enters a running cluster.
//!
//! 1. The node draws an *incarnation* (a random number naming its data directory) and stores it.
//! 2. It asks the member (`Admin.Join`): the control plane registers it (assigning its id) and
//!    the member drives one switch of epochs that adds it to the group, or puts it in the place
//!    of a dead member. The answer names the new epoch, its members, and the cut that ended the
//!    epoch before.
//! 3. It copies the group's data at that cut from a member that ran the epoch before (see
//!    `crate::transfer`), resuming where it stopped after a restart.
//! 4. It stores its identity and its epoch in one synced write, and starts like any node; its
//!    replica of the new epoch reports ready to the control plane (see `crate::reconfig`).
//!
//! Each step is idempotent: the same command again after any crash resumes; once the join is
//! done, it is an ordinary restart.

use crate::config::{Join, NodeConfig, parse_initial_cluster};
use crate::epoch::EpochRecord;
use crate::server::meta_u64;
use anyhow::{Context, bail};
use mortar_epoxy::{Cut, ReplicaId};
use mortar_proto::v1::admin_client::AdminClient;
use mortar_proto::v1::{JoinRequest, JoinResponse};
use mortar_storage::{Storage, WriteBatch};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::Code;
use tracing::{info, warn};

/// Storage metadata key of the incarnation a joining node drew.
pub const META_INCARNATION: &str = "incarnation";
/// Storage metadata key written when a join starts (with the incarnation), before anything else:
/// a directory with an identity but without it belongs to a node started with `--id`.
pub const META_JOINING: &str = "joining";
/// Storage metadata key written once the join is complete.
pub const META_JOINED: &str = "joined";
/// How long the node keeps asking the member while it answers UNAVAILABLE.
const JOIN_RETRY: Duration = Duration::from_secs(120);
/// How long the node waits for a member to send the data.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(600);

/// Fills in `config`'s id and cluster from a completed join, or performs the join. Called
/// before the node opens its services.
pub async fn prepare(storage: &dyn Storage, config: &mut NodeConfig, join: &Join) -> anyhow::Result<()> {
    let stored_cluster = storage.get_meta(crate::server::META_CLUSTER_ID)?;
    if storage.get_meta(META_JOINED)?.is_some() {
        let (id, initial) = stored_identity(storage)?;
        config.id = id;
        config.initial_cluster = parse_initial_cluster(&initial)
            .map_err(|e| anyhow::anyhow!("the data directory's cluster list is corrupt: {e}"))?;
        fill_seeds(config, storage)?;
        info!(id, "joined before: starting as node {id}");
        return Ok(());
    }
    if stored_cluster.is_some() && storage.get_meta(META_JOINING)?.is_none() {
        bail!(
            "data directory {} belongs to a node that was started with --id and --initial-cluster: start it \
             that way, or join with an empty data directory",
            config.data_dir.display()
        );
    }
    let incarnation = match meta_u64(storage, META_INCARNATION, "incarnation")? {
        Some(incarnation) => incarnation,
        None => {
            let incarnation = draw_incarnation();
            let mut batch = WriteBatch::new();
            batch.put_meta(META_INCARNATION, incarnation.to_be_bytes().to_vec());
            batch.put_meta(META_JOINING, Vec::new());
            storage.write(batch, true)?;
            incarnation
        }
    };
    let cluster_id = meta_u64(storage, crate::server::META_CLUSTER_ID, "cluster id")?.unwrap_or(0);
    let answer = ask(config, join, cluster_id, incarnation).await?;
    for step in &answer.progress {
        info!("join: {step}");
    }
    if cluster_id != 0 && answer.cluster_id != cluster_id {
        bail!(
            "{} is in cluster {:016x}, but data directory {} belongs to cluster {cluster_id:016x}: join with an \
             empty data directory, or through a member of its own cluster",
            join.endpoint,
            answer.cluster_id,
            config.data_dir.display()
        );
    }
    let initial = parse_initial_cluster(&answer.initial_cluster)
        .map_err(|e| anyhow::anyhow!("the member answered a cluster list that does not parse: {e}"))?;
    if crate::config::cluster_id_of(&initial) != answer.cluster_id {
        bail!(
            "the member's cluster list does not match its cluster id: is it a Mortar node of this version?"
        );
    }
    let id = answer.id;
    if cluster_id == 0 {
        let mut batch = WriteBatch::new();
        batch.put_meta(crate::server::META_CLUSTER_ID, answer.cluster_id.to_be_bytes().to_vec());
        batch.put_meta(crate::server::META_CLUSTER_MEMBERS, answer.initial_cluster.clone().into_bytes());
        batch.put_meta(crate::server::META_NODE_ID, id.to_be_bytes().to_vec());
        storage.write(batch, true)?;
    }
    config.id = id;
    config.initial_cluster = initial;
    info!(id, epoch = answer.epoch, members = ?answer.members, "admitted as node {id}; copying the group's data");

    let record = epoch_record(&answer)?;
    let donors: Vec<(u32, String)> = record
        .members
        .iter()
        .filter(|m| **m != id && record.previous_cut.bounds.iter().any(|(r, _)| r.0 == **m))
        .map(|m| (*m, record.addresses[m].clone()))
        .collect();
    let started = Instant::now();
    let (pairs, bytes) = crate::transfer::fetch(
        storage,
        answer.cluster_id,
        record.previous_cut.epoch,
        &donors,
        TRANSFER_DEADLINE,
        &config.dialer(),
    )
    .await?;
    info!(
        pairs,
        megabytes = bytes / (1024 * 1024),
        seconds = started.elapsed().as_secs_f64(),
        "copied the data at the start of epoch {}",
        record.epoch
    );
    // The same write a member makes when it switches to this epoch (this node holds no record
    // of the one before), plus the mark that the join is done.
    let mut batch = crate::epoch::switch_batch(storage, id, &record.previous_cut, &record)?;
    batch.put_meta(META_JOINED, Vec::new());
    storage.write(batch, true)?;
    fill_seeds(config, storage)?;
    Ok(())
}

/// Asks the member to admit this node, retrying while it is unavailable.
async fn ask(
    config: &NodeConfig,
    join: &Join,
    cluster_id: u64,
    incarnation: u64,
) -> anyhow::Result<JoinResponse> {
    let started = Instant::now();
    let request = JoinRequest {
        cluster_id,
        address: config.address.clone(),
        region: config.region.clone(),
        incarnation,
        replace: join.replace.unwrap_or(0),
    };
    loop {
        let channel = config
            .dialer()
            .endpoint(&join.endpoint)
            .with_context(|| format!("--join {} is not an endpoint", join.endpoint))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(75))
            .connect_lazy();
        let what = match join.replace {
            Some(dead) => format!("to take the place of node {dead}"),
            None => "as a new member".to_string(),
        };
        info!(endpoint = %join.endpoint, "asking to join {what}");
        let channel = crate::auth::with_token(channel, config.tokens.own());
        match AdminClient::new(channel).join(request.clone()).await {
            Ok(answer) => return Ok(answer.into_inner()),
            Err(status)
                if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
                    && started.elapsed() < JOIN_RETRY =>
            {
                warn!(code = ?status.code(), message = status.message(), "the member cannot admit this node yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(status) => bail!("{} refused to admit this node: {}", join.endpoint, status.message()),
        }
    }
}

fn epoch_record(answer: &JoinResponse) -> anyhow::Result<EpochRecord> {
    if answer.members.len() != answer.addresses.len() || answer.cut_nodes.len() != answer.cut_slots.len() {
        bail!("the member's answer is malformed (lists of different lengths)");
    }
    if answer.epoch < 2 || !answer.members.contains(&answer.id) {
        bail!("the member's answer does not make this node a member of a later epoch: {answer:?}");
    }
    let addresses: BTreeMap<u32, String> =
        answer.members.iter().copied().zip(answer.addresses.iter().cloned()).collect();
    let bounds =
        answer.cut_nodes.iter().map(|&n| ReplicaId(n)).zip(answer.cut_slots.iter().copied()).collect();
    Ok(EpochRecord {
        epoch: answer.epoch,
        members: answer.members.clone(),
        addresses,
        previous_cut: Cut { epoch: answer.epoch - 1, bounds },
    })
}

fn stored_identity(storage: &dyn Storage) -> anyhow::Result<(u32, String)> {
    let id = storage.get_meta(crate::server::META_NODE_ID)?.context("the data directory has no node id")?;
    let id = u32::from_be_bytes(id[..].try_into().context("the stored node id is corrupt")?);
    let members = storage
        .get_meta(crate::server::META_CLUSTER_MEMBERS)?
        .context("the data directory has no cluster list")?;
    Ok((id, String::from_utf8_lossy(&members).into_owned()))
}

/// Gossip seeds, when none were given: the members of the node's epoch.
fn fill_seeds(config: &mut NodeConfig, storage: &dyn Storage) -> anyhow::Result<()> {
    if config.gossip_seeds.is_empty()
        && let Some(record) = EpochRecord::load(storage)?
    {
        config.gossip_seeds =
            record.addresses.iter().filter(|(id, _)| **id != config.id).map(|(_, a)| a.clone()).collect();
    }
    Ok(())
}

/// A random incarnation: never 0, distinct per data directory for all practical purposes.
pub fn draw_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}
