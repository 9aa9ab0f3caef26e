//! The metadata's invariants: [`check`] for one state (also run on every restored snapshot), and
//! [`assert_transition`] for one accepted command, on in release: a control plane that broke one
//! would hand out reused ids or regressed epochs to the whole cluster.

use std::collections::{BTreeMap, BTreeSet};

use super::metadata::{ClusterMetadata, NodeEntry, NodeState};
use super::{CONTROL_VOTERS_MAX, GROUP_MEMBERS_MAX, GROUPS_MAX, NODES_MAX};
use crate::ring::{GRPC_ADDR_BYTES_MAX, NodeId, REGION_BYTES_MAX};

/// Whether `meta` is a state the commands can reach; the first broken rule otherwise.
pub(super) fn check(meta: &ClusterMetadata) -> Result<(), String> {
    if meta.nodes.len() > NODES_MAX || meta.groups.len() > GROUPS_MAX {
        return Err(format!(
            "{} nodes (max {NODES_MAX}), {} groups (max {GROUPS_MAX})",
            meta.nodes.len(),
            meta.groups.len()
        ));
    }
    if meta.control_voters.len() > CONTROL_VOTERS_MAX {
        return Err(format!("{} control voters, more than {CONTROL_VOTERS_MAX}", meta.control_voters.len()));
    }
    if !meta.is_initialized() && (!meta.nodes.is_empty() || !meta.control_voters.is_empty()) {
        return Err("nodes or voters before initialization".into());
    }
    if meta.is_initialized() && meta.initial.is_empty() {
        return Err("initialized without initial nodes".into());
    }
    let mut incarnations = BTreeSet::new();
    let mut live_addresses = BTreeMap::new();
    for (&id, node) in &meta.nodes {
        if node.id != id || id == 0 || id >= meta.next_node_id {
            return Err(format!("node {} under id {id}, next_node_id={}", node.id, meta.next_node_id));
        }
        if node.address.len() > GRPC_ADDR_BYTES_MAX || node.region.len() > REGION_BYTES_MAX {
            return Err(format!("node {id}: address or region over its bound"));
        }
        if !incarnations.insert(node.incarnation) {
            return Err(format!(
                "incarnation {:#x} held by two nodes (node {id} and another)",
                node.incarnation
            ));
        }
        if node.state.is_live() {
            live_addresses.entry(node.address.as_str()).or_insert_with(Vec::new).push(node);
        }
    }
    for (address, holders) in &live_addresses {
        // One live node an address, but for a replacement still joining at the address of the
        // node it replaces.
        let joining = holders.iter().filter(|n| n.state == NodeState::Joining).count();
        if holders.len() > 2 || (holders.len() == 2 && joining != 1) {
            let ids: Vec<NodeId> = holders.iter().map(|n| n.id).collect();
            return Err(format!("address {address} held by live nodes {ids:?}"));
        }
    }
    for &voter in &meta.control_voters {
        if !meta.nodes.contains_key(&voter) {
            return Err(format!("control voter {voter} is not in the directory"));
        }
    }
    if let Some(gid) = meta.behind.keys().find(|g| !meta.groups.contains_key(g)) {
        return Err(format!("members behind are kept for group {gid}, which does not exist"));
    }
    for (&gid, group) in &meta.groups {
        let name = format!("group {gid} epoch {}", group.epoch);
        if group.id != gid || group.epoch == 0 {
            return Err(format!("{name}: id {} under {gid}, or epoch 0", group.id));
        }
        check_members(&meta.nodes, &group.members, true).map_err(|why| format!("{name} members: {why}"))?;
        if let Some(stray) = group.ready.iter().find(|r| group.members.binary_search(r).is_err()) {
            return Err(format!("{name}: ready node {stray} is not a member"));
        }
        if let Some(behind) = meta.behind.get(&gid) {
            if behind.is_empty() {
                return Err(format!("{name}: an empty set of members behind is kept"));
            }
            if let Some(stray) = behind.iter().find(|b| !group.ready.contains(b)) {
                return Err(format!("{name}: node {stray} is behind but not a ready member"));
            }
        }
        let last_attempt = group.last_commit.as_ref().map_or(0, |l| l.attempt);
        if let Some(last) = &group.last_commit
            && (last.epoch != group.epoch || last.attempt > group.attempts)
        {
            return Err(format!(
                "{name}: last commit attempt {} made epoch {}, attempts={}",
                last.attempt, last.epoch, group.attempts
            ));
        }
        if let Some(p) = &group.pending {
            if p.from_epoch != group.epoch || p.attempt <= last_attempt || p.attempt > group.attempts {
                return Err(format!(
                    "{name}: pending attempt {} from epoch {}, last committed attempt {last_attempt}, attempts={}",
                    p.attempt, p.from_epoch, group.attempts
                ));
            }
            // Another group's switch may retire the node this one adds: its commit then refuses.
            check_members(&meta.nodes, &p.to, false)
                .map_err(|why| format!("{name} pending members: {why}"))?;
            if !meta.nodes.contains_key(&p.driver) {
                return Err(format!("{name}: pending driver {} is not in the directory", p.driver));
            }
        }
    }
    Ok(())
}

/// Sorted, unique, 1 to [`GROUP_MEMBERS_MAX`], each a node of the directory (a live one if `live`).
fn check_members(nodes: &BTreeMap<NodeId, NodeEntry>, members: &[NodeId], live: bool) -> Result<(), String> {
    if members.is_empty() || members.len() > GROUP_MEMBERS_MAX {
        return Err(format!("{members:?}: 1 to {GROUP_MEMBERS_MAX} expected"));
    }
    if !members.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("{members:?} not sorted and unique"));
    }
    for m in members {
        match nodes.get(m) {
            None => return Err(format!("{m} is not in the directory")),
            Some(n) if live && !n.state.is_live() => return Err(format!("{m} is {}", n.state)),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Panics unless `after` is a valid state that one accepted command can make of `before`.
pub(super) fn assert_transition(before: &ClusterMetadata, after: &ClusterMetadata) {
    if let Err(why) = check(after) {
        panic!("control metadata invariant broken at version {}: {why}", after.version);
    }
    assert!(
        after.version > before.version,
        "control metadata version regressed: before={} after={}",
        before.version,
        after.version
    );
    if before.is_initialized() {
        assert_eq!(before.cluster_id, after.cluster_id, "cluster id changed at version {}", after.version);
    }
    assert!(
        after.next_node_id >= before.next_node_id,
        "next_node_id regressed: before={} after={}",
        before.next_node_id,
        after.next_node_id
    );
    for (id, old) in &before.nodes {
        let new = after.nodes.get(id);
        // An initial node's deterministic incarnation is replaced once, by the one its data
        // directory drew at its first start (ClaimIncarnation); nothing else changes it.
        let initial = before.initial.iter().find(|i| i.id == *id).map(|i| i.incarnation);
        let kept = new.is_some_and(|n| {
            (n.incarnation == old.incarnation || Some(old.incarnation) == initial)
                && n.address == old.address
                && n.region == old.region
        });
        assert!(
            kept,
            "node {id} vanished or changed identity at version {}: {old:?} -> {new:?}",
            after.version
        );
        let new_state = new.map(|n| n.state);
        assert!(
            old.state.is_live() || new_state == Some(old.state),
            "retired node {id} came back at version {}: {} -> {new_state:?}",
            after.version,
            old.state
        );
    }
    for id in after.nodes.keys().filter(|id| !before.nodes.contains_key(id)) {
        assert!(
            *id >= before.next_node_id,
            "node id {id} reused at version {}: next_node_id was {}",
            after.version,
            before.next_node_id
        );
    }
    for (gid, old) in &before.groups {
        let new = after
            .groups
            .get(gid)
            .unwrap_or_else(|| panic!("group {gid} vanished at version {}", after.version));
        assert!(
            new.epoch == old.epoch || new.epoch == old.epoch + 1,
            "group {gid} epoch went from {} to {} at version {}",
            old.epoch,
            new.epoch,
            after.version
        );
        assert!(
            new.attempts >= old.attempts,
            "group {gid} attempts regressed: {} -> {} at version {}",
            old.attempts,
            new.attempts,
            after.version
        );
    }
}

#[cfg(test)]
#[path = "invariants_test.rs"]
mod invariants_test;
