//! Planning a switch: whether a `BeginReconfig` is safe, and the members of the next epoch.
//!
//! Checked in this order, so that the first refusal names the most basic problem: the epoch the
//! driver planned from, the driver, the nodes the kind names, the group's size bounds, the
//! control plane's last voter, then whether the switch can finish (the staying members ready and
//! not behind, a majority of the old epoch and of the new one reachable).

use super::metadata::{ClusterMetadata, Group, NodeEntry, ReconfigKind};
use super::refusal::{Action, Refusal};
use super::{GROUP_MEMBERS_MAX, GROUP_MEMBERS_MIN};
use crate::ring::NodeId;

impl ClusterMetadata {
    /// The sorted members of the next epoch, if switching `group` this way is safe now.
    pub(super) fn plan(
        &self,
        group: &Group,
        from_epoch: u64,
        kind: ReconfigKind,
        driver: NodeId,
        reachable: &[NodeId],
    ) -> Result<Vec<NodeId>, Refusal> {
        if from_epoch != group.epoch {
            return Err(Refusal::StaleEpoch { group: group.id, epoch: group.epoch, from_epoch });
        }
        let driver_state = self.node(driver)?.state;
        if !driver_state.is_live() {
            return Err(Refusal::WrongNodeState {
                node: driver,
                state: driver_state,
                action: Action::DriveReconfig,
            });
        }
        let is_member = |node: NodeId| group.members.binary_search(&node).is_ok();
        if let Some(joining) = kind.joining() {
            let entry = self.node(joining)?;
            if !entry.state.is_live() {
                return Err(Refusal::NodeRetired { node: joining, state: entry.state });
            }
            // A replacement registered at the address of the node it replaces becomes a member
            // only by that replace, which retires the other.
            let shares = |n: &&NodeEntry| {
                n.id != joining
                    && Some(n.id) != kind.leaving()
                    && n.state.is_live()
                    && n.address == entry.address
            };
            if let Some(other) = self.nodes.values().find(shares) {
                return Err(Refusal::AddressInUse { address: entry.address.clone(), node: other.id });
            }
        }
        match kind {
            ReconfigKind::Add { node } => {
                if is_member(node) {
                    return Err(Refusal::AlreadyMember { group: group.id, node });
                }
                let count = group.members.len() + 1;
                if count > GROUP_MEMBERS_MAX {
                    return Err(Refusal::TooManyMembers { group: group.id, count, max: GROUP_MEMBERS_MAX });
                }
            }
            ReconfigKind::Remove { node } => {
                if !is_member(node) {
                    return Err(Refusal::NotMember { group: group.id, node });
                }
                let left = group.members.len() - 1;
                if left == 0 {
                    return Err(Refusal::WouldEmptyGroup { group: group.id, node });
                }
                // A group already below the minimum (a small test cluster) may shrink further, but
                // a healthy one never drops below it by a removal.
                if group.members.len() >= GROUP_MEMBERS_MIN && left < GROUP_MEMBERS_MIN {
                    return Err(Refusal::TooFewMembers { group: group.id, left, min: GROUP_MEMBERS_MIN });
                }
                if self.control_voters.len() == 1 && self.control_voters.contains(&node) {
                    return Err(Refusal::LastControlVoter { node });
                }
            }
            ReconfigKind::Replace { dead, with } => {
                if !is_member(dead) {
                    return Err(Refusal::NotMember { group: group.id, node: dead });
                }
                if is_member(with) {
                    return Err(Refusal::AlreadyMember { group: group.id, node: with });
                }
                // A live node replaced would keep serving the old epoch beside its replacement.
                if reachable.contains(&dead) {
                    return Err(Refusal::ReplacingReachableNode { group: group.id, node: dead });
                }
            }
        }
        let leaving = kind.leaving();
        let staying = || group.members.iter().copied().filter(move |&m| Some(m) != leaving);
        // A member that does not hold the data yet adds no copy: switching now could leave the
        // acknowledged writes of the old epochs on fewer nodes than a majority of the new one.
        let not_ready: Vec<NodeId> = staying().filter(|m| !group.ready.contains(m)).collect();
        if !not_ready.is_empty() {
            return Err(Refusal::MembersNotReady { group: group.id, epoch: group.epoch, nodes: not_ready });
        }
        // A member that has not switched to this epoch yet would be two switches behind after
        // this one, and could not finish its epoch from its peers: wait for it (removing or
        // replacing it is allowed, it does not stay).
        let behind = self.behind.get(&group.id);
        let behind: Vec<NodeId> = staying().filter(|m| behind.is_some_and(|b| b.contains(m))).collect();
        if !behind.is_empty() {
            return Err(Refusal::MembersBehind { group: group.id, epoch: group.epoch, nodes: behind });
        }
        let mut to: Vec<NodeId> = staying().chain(kind.joining()).collect();
        to.sort_unstable();
        // The switch can finish only if the driver can seal the old epoch (a majority of its
        // members answer) and the new epoch can work (a majority of its members are up). The
        // leaving node may help seal when it answers (a removed node is alive; a replaced one never
        // is), but never counts for the new epoch: the group must not depend on it afterwards.
        let reachable_of = |members: &[NodeId]| members.iter().filter(|m| reachable.contains(m)).count();
        for (epoch, members) in [(group.epoch, &group.members), (group.epoch + 1, &to)] {
            let needed = members.len() / 2 + 1;
            let up = reachable_of(members);
            if up < needed {
                return Err(Refusal::NoSurvivingQuorum {
                    group: group.id,
                    epoch,
                    reachable: up,
                    members: members.len(),
                    needed,
                });
            }
        }
        Ok(to)
    }
}

#[cfg(test)]
#[path = "plan_test.rs"]
mod plan_test;
