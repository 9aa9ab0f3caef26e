use proptest::prelude::*;

use super::super::testing::{begin_by, initialize_command, register_command};
use super::super::{COMMAND_BYTES_MAX, Command, DecodeError, GroupId, NODES_MAX, ReconfigKind};
use crate::ring::NodeId;

fn every_command() -> Vec<Command> {
    let g = GroupId::FIRST;
    vec![
        initialize_command(1..=3),
        register_command(4),
        begin_by(1, ReconfigKind::Add { node: 4 }, &[1, 2, 3]),
        begin_by(1, ReconfigKind::Remove { node: 4 }, &[]),
        begin_by(1, ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2]),
        Command::CommitReconfig { group: g, attempt: 1, cut: vec![(1, 10), (2, u64::MAX)] },
        Command::AbortReconfig { group: g, attempt: 1 },
        Command::ReportReady { group: g, epoch: 2, node: 4 },
        Command::Drain { node: 1 },
        Command::Undrain { node: 1 },
        Command::SetControlVoters { voters: vec![1, 2, 3] },
        Command::ClaimIncarnation { node: 2, incarnation: u64::MAX },
        Command::RegisterReplacement {
            cluster_id: 1,
            address: "10.0.0.3:7100".into(),
            region: "r1".into(),
            incarnation: 9,
            replaces: 3,
        },
    ]
}

#[test]
fn every_command_round_trips() {
    for command in every_command() {
        assert_eq!(Command::decode(&command.encode()), Ok(command));
    }
}

#[test]
fn the_largest_begin_fits_in_a_command() {
    let reachable: Vec<NodeId> = (NodeId::MAX - NODES_MAX as NodeId..NodeId::MAX).collect();
    let command =
        begin_by(NodeId::MAX, ReconfigKind::Replace { dead: NodeId::MAX, with: NodeId::MAX }, &reachable);
    let bytes = command.encode();
    assert!(bytes.len() <= COMMAND_BYTES_MAX, "{} bytes", bytes.len());
    assert_eq!(Command::decode(&bytes), Ok(command));
}

#[test]
fn oversized_truncated_and_padded_bytes_are_typed_errors() {
    let too_large = vec![0u8; COMMAND_BYTES_MAX + 1];
    assert_eq!(
        Command::decode(&too_large),
        Err(DecodeError::TooLarge { len: COMMAND_BYTES_MAX + 1, max: COMMAND_BYTES_MAX })
    );
    for command in every_command() {
        let bytes = command.encode();
        for len in 0..bytes.len() {
            assert!(
                matches!(Command::decode(&bytes[..len]), Err(DecodeError::Malformed { .. })),
                "{command:?} cut at {len}"
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        let want = DecodeError::Malformed { reason: "1 bytes after the command".into() };
        assert_eq!(Command::decode(&padded), Err(want));
    }
    // An unknown variant (a newer release's command).
    assert!(matches!(Command::decode(&[200]), Err(DecodeError::Malformed { .. })));
}

proptest! {
    /// Whatever the bytes, decoding answers (and a command it accepts encodes back to them).
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(command) = Command::decode(&bytes) {
            prop_assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }
}
