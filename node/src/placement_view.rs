//! The members the actor runtime places actors on: gossip's live members, less those the control
//! plane says may not own actors (draining, joining, removed, dead, or without their group's
//! data). A drained node stays a live replica but leaves this view, so its actors move to the
//! others with fencing, as after a failure but without waiting for failure detection.

use mortar_placement::control::{ClusterMetadata, GroupId};
use mortar_placement::{Ring, View};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The view placement uses, given gossip's and the control plane's (before the control plane is
/// initialized, gossip's alone).
pub fn placement_view(gossip: &View, metadata: &ClusterMetadata) -> View {
    if !metadata.is_initialized() {
        return gossip.clone();
    }
    let allowed = metadata.placement_members(GroupId::FIRST);
    let members: Vec<_> = gossip.members.iter().filter(|m| allowed.contains(&m.id)).cloned().collect();
    View { epoch: gossip.epoch, local: gossip.local, ring: Ring::new(members.iter().cloned()), members }
}

/// Publishes [`placement_view`] whenever gossip or the control plane changes what it holds.
pub fn spawn(
    mut gossip: watch::Receiver<View>,
    mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
) -> (watch::Receiver<View>, JoinHandle<()>) {
    let first = placement_view(&gossip.borrow_and_update(), &metadata.borrow_and_update());
    let (tx, rx) = watch::channel(first);
    let task = tokio::spawn(async move {
        // Views are numbered here: the router waits for a new number after each change.
        let mut epoch = 0u64;
        loop {
            tokio::select! {
                changed = gossip.changed() => if changed.is_err() { return },
                changed = metadata.changed() => if changed.is_err() { return },
            }
            let mut view = placement_view(&gossip.borrow_and_update(), &metadata.borrow_and_update());
            if tx.borrow().members == view.members {
                continue;
            }
            epoch += 1;
            view.epoch = epoch;
            if tx.send(view).is_err() {
                return;
            }
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mortar_placement::Member;
    use mortar_placement::control::{Command, InitialNode};

    fn gossip(ids: &[u32]) -> View {
        let members: Vec<Member> = ids.iter().map(|&id| Member::new(id, "default")).collect();
        View { epoch: 1, local: ids[0], ring: Ring::new(members.iter().cloned()), members }
    }

    fn initialized(ids: &[u32]) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::new();
        let nodes = ids
            .iter()
            .map(|&id| InitialNode {
                id,
                address: format!("127.0.0.1:{}", 7000 + id),
                region: "default".into(),
                incarnation: u64::from(id),
            })
            .collect();
        metadata.apply(1, &Command::Initialize { cluster_id: 9, nodes }).unwrap();
        metadata
    }

    #[test]
    fn a_drained_node_owns_nothing_and_an_undrained_one_owns_again() {
        let gossip = gossip(&[1, 2, 3]);
        let mut metadata = ClusterMetadata::new();
        assert_eq!(placement_view(&gossip, &metadata).members.len(), 3, "before initialization: gossip's");
        metadata = initialized(&[1, 2, 3]);
        metadata.apply(2, &Command::Drain { node: 2 }).unwrap();
        let view = placement_view(&gossip, &metadata);
        assert_eq!(view.members.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 3]);
        for key in 0..200u32 {
            assert_ne!(view.ring.owner("counter", key.to_string().as_bytes()), Some(2));
        }
        metadata.apply(3, &Command::Undrain { node: 2 }).unwrap();
        assert_eq!(placement_view(&gossip, &metadata).members.len(), 3);
    }

    #[test]
    fn a_node_gossip_does_not_see_stays_out() {
        let metadata = initialized(&[1, 2, 3]);
        let view = placement_view(&gossip(&[1, 3]), &metadata);
        assert_eq!(view.members.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 3]);
    }
}
