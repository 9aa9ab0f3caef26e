//! A switch of epochs: `BeginReconfig`, `CommitReconfig`, `AbortReconfig`, then `ReportReady`
//! from each new member.

use std::collections::BTreeSet;

use super::metadata::{ClusterMetadata, GroupId, LastCommit, NodeState, Outcome, Reconfig, ReconfigKind};
use super::refusal::Refusal;
use crate::ring::NodeId;

impl ClusterMetadata {
    pub(super) fn begin_reconfig(
        &mut self,
        group_id: GroupId,
        from_epoch: u64,
        kind: ReconfigKind,
        driver: NodeId,
        reachable: &[NodeId],
    ) -> Result<Outcome, Refusal> {
        let group = self.group(group_id)?;
        if let Some(pending) = &group.pending {
            // A driver that retries after losing the answer gets its attempt back; anyone else
            // waits: two switches of one group at once could each seal without the other.
            if pending.from_epoch == from_epoch && pending.kind == kind && pending.driver == driver {
                return Ok(Outcome::ReconfigBegun { group: group_id, attempt: pending.attempt });
            }
            return Err(Refusal::ReconfigPending {
                group: group_id,
                attempt: pending.attempt,
                driver: pending.driver,
            });
        }
        let to = self.plan(group, from_epoch, kind, driver, reachable)?;
        let group = self.groups.get_mut(&group_id).expect("looked up above");
        let attempt = group.attempts + 1;
        group.attempts = attempt;
        group.pending = Some(Reconfig { from_epoch, to, attempt, driver, kind });
        Ok(Outcome::ReconfigBegun { group: group_id, attempt })
    }

    pub(super) fn commit_reconfig(
        &mut self,
        group_id: GroupId,
        attempt: u64,
        cut: &[(NodeId, u64)],
    ) -> Result<Outcome, Refusal> {
        let group = self.group(group_id)?;
        let mut cut = cut.to_vec();
        cut.sort_unstable();
        let pending = match &group.pending {
            Some(pending) if pending.attempt == attempt => pending.clone(),
            _ => {
                return match &group.last_commit {
                    // A retried commit: the switch happened, with this very cut.
                    Some(last) if last.attempt == attempt && last.cut == cut => {
                        Ok(Outcome::ReconfigCommitted { group: group_id, epoch: last.epoch })
                    }
                    Some(last) if last.attempt == attempt => {
                        Err(Refusal::CutConflict { group: group_id, attempt })
                    }
                    _ => Err(Refusal::AttemptNotPending {
                        group: group_id,
                        attempt,
                        pending: group.pending.as_ref().map(|p| p.attempt),
                    }),
                };
            }
        };
        // Every old member's instance space must end somewhere: an instance space left out would
        // be executed by nobody, or by some and not others.
        let cut_nodes: Vec<NodeId> = cut.iter().map(|&(node, _)| node).collect();
        if cut_nodes != group.members {
            return Err(Refusal::CutMismatch {
                group: group_id,
                expected: group.members.clone(),
                got: cut_nodes,
            });
        }
        if let Some(joining) = pending.kind.joining() {
            // Another group's switch may have retired it since the begin (one pending switch per
            // group, not per node).
            let state = self.nodes[&joining].state;
            if !state.is_live() {
                return Err(Refusal::NodeRetired { node: joining, state });
            }
        }
        let old: BTreeSet<NodeId> = group.members.iter().copied().collect();
        let epoch = group.epoch + 1;
        let group = self.groups.get_mut(&group_id).expect("looked up above");
        // Continuing members hold the data up to the cut (they execute it themselves, from their
        // peers if they were cut off); new ones install it first. Until each continuing member
        // reports running the new epoch, it is behind.
        group.ready = pending.to.iter().copied().filter(|m| old.contains(m)).collect();
        let behind = group.ready.clone();
        group.members = pending.to;
        group.epoch = epoch;
        group.pending = None;
        group.last_commit = Some(LastCommit { attempt, epoch, cut });
        if behind.is_empty() {
            self.behind.remove(&group_id);
        } else {
            self.behind.insert(group_id, behind);
        }
        if let Some(joining) = pending.kind.joining()
            && self.nodes[&joining].state == NodeState::Joining
        {
            self.set_state(joining, NodeState::Active);
        }
        if let Some(leaving) = pending.kind.leaving()
            && self.groups_of(leaving).next().is_none()
        {
            // Retired for good: the node's id and data directory are never taken for live ones
            // again. A node still in other groups retires once the last of them lets it go.
            let retired = match pending.kind {
                ReconfigKind::Replace { .. } => NodeState::Dead,
                _ => NodeState::Removed,
            };
            self.set_state(leaving, retired);
        }
        Ok(Outcome::ReconfigCommitted { group: group_id, epoch })
    }

    pub(super) fn abort_reconfig(&mut self, group_id: GroupId, attempt: u64) -> Result<Outcome, Refusal> {
        let group = self.group(group_id)?;
        let last_committed = group.last_commit.as_ref().map_or(0, |l| l.attempt);
        let pending = group.pending.as_ref().map(|p| p.attempt);
        if pending == Some(attempt) {
            self.groups.get_mut(&group_id).expect("looked up above").pending = None;
            return Ok(Outcome::ReconfigAborted { group: group_id, attempt });
        }
        if let Some(last) = group.last_commit.as_ref().filter(|l| l.attempt == attempt) {
            return Err(Refusal::AttemptCommitted { group: group_id, attempt, epoch: last.epoch });
        }
        // An attempt begun after the last commit that is not pending any more was aborted: a
        // retried abort.
        if attempt > last_committed && attempt <= group.attempts {
            return Ok(Outcome::ReconfigAborted { group: group_id, attempt });
        }
        Err(Refusal::AttemptNotPending { group: group_id, attempt, pending })
    }

    pub(super) fn report_ready(
        &mut self,
        group_id: GroupId,
        epoch: u64,
        node: NodeId,
    ) -> Result<Outcome, Refusal> {
        let group = self.group(group_id)?;
        if epoch < group.epoch {
            // Late news: the group moved on, and the node reports again for the new epoch.
            return Ok(Outcome::ReportIgnored { group: group_id, epoch, current: group.epoch });
        }
        if epoch > group.epoch {
            return Err(Refusal::EpochNotReached { group: group_id, epoch, current: group.epoch });
        }
        if group.members.binary_search(&node).is_err() {
            return Err(Refusal::NotMember { group: group_id, node });
        }
        self.groups.get_mut(&group_id).expect("looked up above").ready.insert(node);
        if let Some(behind) = self.behind.get_mut(&group_id) {
            behind.remove(&node);
            if behind.is_empty() {
                self.behind.remove(&group_id);
            }
        }
        Ok(Outcome::Ready { group: group_id, epoch, node })
    }
}

#[cfg(test)]
#[path = "reconfig_test.rs"]
mod reconfig_test;
