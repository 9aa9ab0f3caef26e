use bytes::Bytes;

use crate::{InstanceKey, Op, OpenFailure, StorageError, WriteBatch};

#[test]
fn instance_key_encodes_big_endian_replica_then_slot() {
    let id = InstanceKey { replica: 0x0102_0304, slot: 0x0506_0708_090a_0b0c };
    assert_eq!(id.encode(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(InstanceKey::decode(&id.encode()).expect("decode"), id);
}

#[test]
fn instance_key_byte_order_is_replica_slot_order() {
    let ids = [
        InstanceKey { replica: 0, slot: u64::MAX },
        InstanceKey { replica: 1, slot: 0 },
        InstanceKey { replica: 1, slot: 255 },
        InstanceKey { replica: 1, slot: 256 },
        InstanceKey { replica: 256, slot: 0 },
    ];
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1]);
        assert!(pair[0].encode() < pair[1].encode(), "{} vs {}", pair[0], pair[1]);
    }
}

#[test]
fn instance_key_of_wrong_length_is_corrupt() {
    for len in [0, 11, 13] {
        let err = InstanceKey::decode(&vec![0; len]).expect_err("decode must fail");
        assert!(
            matches!(&err, StorageError::Corrupt { what } if what.contains(&format!("{len} bytes"))),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }
}

#[test]
fn write_batch_counts_ops_and_bytes() {
    let id = InstanceKey { replica: 1, slot: 2 };
    let mut batch = WriteBatch::new();
    assert!(batch.is_empty());
    batch.put_instance(id, "abc"); // 12 + 3
    batch.delete_instance(id); // 12
    batch.mark_executed(id); // 12
    batch.put_conflict("k", "rr"); // 1 + 2
    batch.put_kv("key", "value"); // 3 + 5
    batch.delete_kv("key"); // 3
    batch.put_meta("name", "v"); // 4 + 1
    assert_eq!(batch.len(), 7);
    assert_eq!(batch.bytes(), 15 + 12 + 12 + 3 + 8 + 3 + 5);

    let mut other = WriteBatch::new();
    other.push(Op::PutKv { key: Bytes::from_static(b"x"), value: Bytes::from_static(b"y") });
    let before = batch.bytes();
    batch.append(other);
    assert_eq!(batch.len(), 8);
    assert_eq!(batch.bytes(), before + 2);
    assert_eq!(
        batch.ops().last(),
        Some(&Op::PutKv { key: Bytes::from_static(b"x"), value: Bytes::from_static(b"y") })
    );
}

#[test]
fn errors_tell_whether_to_retry() {
    let open = |kind| StorageError::Open { path: "/data".into(), kind, reason: "r".to_owned() };
    assert!(open(OpenFailure::Locked).is_retryable());
    assert!(!open(OpenFailure::Corrupt).is_retryable());
    assert!(!open(OpenFailure::Other).is_retryable());
    assert!(StorageError::Busy("b".to_owned()).is_retryable());
    assert!(!StorageError::Io("disk".to_owned()).is_retryable());
    assert!(!StorageError::Closed.is_retryable());
    assert!(!StorageError::TooLarge { bytes: 2, max: 1 }.is_retryable());
}

#[test]
fn open_error_message_names_the_directory_and_the_fix() {
    let err = StorageError::Open {
        path: "/data/mortar".into(),
        kind: OpenFailure::Locked,
        reason: "lock held".to_owned(),
    };
    assert_eq!(
        err.to_string(),
        "open data directory /data/mortar: lock held; is another mortar node using it? \
         stop that node or give this one another data directory"
    );
}
