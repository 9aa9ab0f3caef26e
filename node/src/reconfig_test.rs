use super::*;
use mortar_placement::control::NodeEntry;
use std::collections::BTreeSet;

/// A directory of nodes 1..=n in the given states.
fn directory(states: &[NodeState]) -> ClusterMetadata {
    let mut metadata = ClusterMetadata::new();
    for (i, &state) in states.iter().enumerate() {
        let id = i as u32 + 1;
        let entry = NodeEntry {
            id,
            address: format!("10.0.0.{id}:7100"),
            region: String::new(),
            incarnation: u64::from(id),
            state,
        };
        metadata.nodes.insert(id, entry);
    }
    metadata
}

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

/// A removed voter's seat goes to the lowest active learner; a joining learner (it may never come
/// up) is not promoted; nothing changes when the voters are right.
#[test]
fn voters_follow_the_directory() {
    use NodeState::*;
    let metadata = directory(&[Active, Active, Removed, Joining, Active]);
    let target = control_voters(&metadata, &set(&[1, 2, 3]), &set(&[4, 5]));
    assert_eq!(target, Some([1, 2, 5].into_iter().collect()));
    assert_eq!(control_voters(&metadata, &set(&[1, 2, 5]), &set(&[3, 4])), None);

    // Five settled nodes want five voters.
    let metadata = directory(&[Active, Active, Active, Active, Draining, Dead]);
    let target = control_voters(&metadata, &set(&[1, 2, 3, 6]), &set(&[4, 5]));
    assert_eq!(target, Some([1, 2, 3, 4, 5].into_iter().collect()));
    // Voters above the wanted count are kept, not demoted.
    let metadata = directory(&[Active, Active, Active, Active]);
    assert_eq!(control_voters(&metadata, &set(&[1, 2, 3, 4]), &set(&[])), None);
}
