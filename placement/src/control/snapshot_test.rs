use super::super::testing::{accept, begin_by, cluster, register_command};
use super::super::{ClusterMetadata, Command, GroupId, NodeState, ReconfigKind, SNAPSHOT_BYTES_MAX};
use super::{SNAPSHOT_FORMAT, SnapshotError};

/// Initialized, a node registered, a switch committed, another pending, a node draining.
fn busy() -> ClusterMetadata {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    accept(&mut meta, &register_command(5));
    accept(&mut meta, &begin_by(1, ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2]));
    let cut = vec![(1, 7), (2, 8), (3, 9)];
    accept(&mut meta, &Command::CommitReconfig { group: GroupId::FIRST, attempt: 1, cut });
    let begin = Command::BeginReconfig {
        group: GroupId::FIRST,
        from_epoch: 2,
        kind: ReconfigKind::Add { node: 5 },
        driver: 2,
        reachable: vec![1, 2, 4],
    };
    for node in [4, 1, 2] {
        accept(&mut meta, &Command::ReportReady { group: GroupId::FIRST, epoch: 2, node });
    }
    accept(&mut meta, &Command::Drain { node: 1 });
    accept(&mut meta, &begin);
    assert!(meta.groups[&GroupId::FIRST].pending.is_some());
    meta
}

/// A switch committed, and its continuing members not reported running the new epoch yet.
fn behind() -> ClusterMetadata {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    accept(&mut meta, &begin_by(1, ReconfigKind::Add { node: 4 }, &[1, 2, 3, 4]));
    let cut = vec![(1, 7), (2, 8), (3, 9)];
    accept(&mut meta, &Command::CommitReconfig { group: GroupId::FIRST, attempt: 1, cut });
    assert!(!meta.behind.is_empty());
    meta
}

#[test]
fn snapshot_then_restore_gives_the_same_metadata() {
    for meta in [ClusterMetadata::new(), cluster(7), busy(), behind()] {
        assert_eq!(ClusterMetadata::restore(&meta.snapshot()), Ok(meta));
    }
}

#[test]
fn oversized_truncated_and_padded_snapshots_are_typed_errors() {
    let too_large = vec![0u8; SNAPSHOT_BYTES_MAX + 1];
    let want = SnapshotError::TooLarge { len: SNAPSHOT_BYTES_MAX + 1, max: SNAPSHOT_BYTES_MAX };
    assert_eq!(ClusterMetadata::restore(&too_large), Err(want));
    let bytes = busy().snapshot();
    for len in 0..bytes.len() {
        let result = ClusterMetadata::restore(&bytes[..len]);
        assert!(matches!(result, Err(SnapshotError::Malformed { .. })), "cut at {len}: {result:?}");
    }
    let mut padded = bytes;
    padded.push(0);
    let want = SnapshotError::Malformed { reason: "1 bytes after the snapshot".into() };
    assert_eq!(ClusterMetadata::restore(&padded), Err(want));
}

#[test]
fn an_unknown_format_is_refused_before_its_content_is_read() {
    let mut bytes = busy().snapshot();
    bytes[0] = SNAPSHOT_FORMAT as u8 + 1;
    let want = SnapshotError::UnknownFormat { format: SNAPSHOT_FORMAT + 1, known: SNAPSHOT_FORMAT };
    assert_eq!(ClusterMetadata::restore(&bytes), Err(want));
}

#[test]
fn a_snapshot_that_breaks_an_invariant_is_refused() {
    let mut meta = cluster(3);
    meta.nodes.get_mut(&2).expect("node 2").state = NodeState::Dead;
    let result = ClusterMetadata::restore(&meta.snapshot());
    let want = SnapshotError::Invalid { reason: "group 0 epoch 1 members: 2 is dead".into() };
    assert_eq!(result, Err(want));

    let mut meta = cluster(3);
    meta.next_node_id = 2;
    let result = ClusterMetadata::restore(&meta.snapshot());
    assert!(matches!(result, Err(SnapshotError::Invalid { .. })), "{result:?}");
}

#[test]
fn a_format_1_snapshot_reads_as_no_member_behind() {
    // Format 1 wrote every field but the last one, `behind`, which it did not have.
    let meta = busy();
    assert!(meta.behind.is_empty());
    let v2 = meta.snapshot();
    let mut v1 = postcard::to_stdvec(&1u32).unwrap();
    let body = &v2[postcard::to_stdvec(&SNAPSHOT_FORMAT).unwrap().len()..];
    let empty_behind = postcard::to_stdvec(&std::collections::BTreeMap::<u32, u32>::new()).unwrap();
    assert!(body.ends_with(&empty_behind));
    v1.extend_from_slice(&body[..body.len() - empty_behind.len()]);
    assert_eq!(ClusterMetadata::restore(&v1), Ok(meta));
}
