//! Helpers shared by the control module's tests: a known cluster, and apply-and-check wrappers.

use super::{ClusterMetadata, Command, GroupId, InitialNode, Outcome, ReconfigKind, Refusal};
use crate::ring::NodeId;

pub const CLUSTER: u64 = 0xc1;

/// Initial node `id`: address `10.0.0.<id>:7100`, region `r<id % 3>`, incarnation `1000 + id`.
pub fn initial_node(id: NodeId) -> InitialNode {
    InitialNode {
        id,
        address: format!("10.0.0.{id}:7100"),
        region: format!("r{}", id % 3),
        incarnation: 1000 + u64::from(id),
    }
}

pub fn initialize_command(ids: impl IntoIterator<Item = NodeId>) -> Command {
    Command::Initialize { cluster_id: CLUSTER, nodes: ids.into_iter().map(initial_node).collect() }
}

/// Metadata initialized with nodes `1..=n`, all members of group 0 at epoch 1.
pub fn cluster(n: NodeId) -> ClusterMetadata {
    let mut meta = ClusterMetadata::new();
    accept(&mut meta, &initialize_command(1..=n));
    meta
}

/// The command a new node `id` would send: address `10.0.1.<id>:7100`, incarnation `2000 + id`.
pub fn register_command(id: NodeId) -> Command {
    Command::RegisterNode {
        cluster_id: CLUSTER,
        address: format!("10.0.1.{id}:7100"),
        region: format!("r{}", id % 3),
        incarnation: 2000 + u64::from(id),
    }
}

/// Applies `command` at the next version; it must be accepted.
pub fn accept(meta: &mut ClusterMetadata, command: &Command) -> Outcome {
    let version = meta.version + 1;
    meta.apply(version, command).unwrap_or_else(|r| panic!("{command:?} refused: {r}"))
}

/// Applies `command` at the next version; it must be refused and change nothing.
pub fn refuse(meta: &mut ClusterMetadata, command: &Command) -> Refusal {
    let before = meta.clone();
    let version = meta.version + 1;
    let refusal = match meta.apply(version, command) {
        Ok(outcome) => panic!("{command:?} accepted: {outcome:?}"),
        Err(refusal) => refusal,
    };
    assert_eq!(*meta, before, "a refusal changed the metadata: {refusal}");
    refusal
}

/// Applies `command` twice: both answers must be equal, and the second must change nothing but
/// the version.
pub fn accept_twice(meta: &mut ClusterMetadata, command: &Command) -> Outcome {
    let first = accept(meta, command);
    let mut after_first = meta.clone();
    let second = accept(meta, command);
    assert_eq!(first, second, "a repeated {command:?} answered differently");
    after_first.version = meta.version;
    assert_eq!(*meta, after_first, "a repeated {command:?} changed the metadata");
    first
}

/// `BeginReconfig` of group 0 from epoch 1, driven by `driver`.
pub fn begin_by(driver: NodeId, kind: ReconfigKind, reachable: &[NodeId]) -> Command {
    Command::BeginReconfig {
        group: GroupId::FIRST,
        from_epoch: 1,
        kind,
        driver,
        reachable: reachable.to_vec(),
    }
}
