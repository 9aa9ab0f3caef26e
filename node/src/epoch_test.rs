use super::*;
use crate::driver::{META_CUT, META_SEAL, META_SLOT_RESERVATION, forgotten_meta_key, instance_key};
use mortar_epoxy::codec::{encode_cut, encode_key_record};
use mortar_epoxy::{InstanceId, KeyRecord};
use mortar_storage::MemStorage;
use std::collections::BTreeMap;

fn id(replica: u32, slot: u64) -> InstanceId {
    InstanceId { replica: ReplicaId(replica), slot }
}

fn cut() -> Cut {
    Cut { epoch: 1, bounds: vec![(ReplicaId(1), 5), (ReplicaId(2), 3), (ReplicaId(3), 0)] }
}

/// Epoch 2 drops node 3 and adds node 4.
fn next() -> EpochRecord {
    let addresses: BTreeMap<u32, String> =
        [(1, "a:1"), (2, "b:1"), (4, "d:1")].into_iter().map(|(i, a)| (i, a.to_string())).collect();
    EpochRecord { epoch: 2, members: vec![1, 2, 4], addresses, previous_cut: cut() }
}

fn u64_meta(storage: &MemStorage, name: &str) -> Option<u64> {
    storage.get_meta(name).unwrap().map(|b| u64::from_be_bytes(b[..].try_into().unwrap()))
}

#[test]
fn an_epoch_record_round_trips_and_a_corrupt_one_is_an_error() {
    let record = next();
    assert_eq!(EpochRecord::decode(&record.encode()).unwrap(), record);
    assert!(matches!(EpochRecord::decode(&[0xff; 3]), Err(StorageError::Corrupt { .. })));
}

/// The switch deletes what lies above the cut (never committed: it would come back as an
/// instance of the new epoch after a restart), keeps what is up to it (members finishing the old
/// epoch ask for it), floors every instance space and starts this node's own above its bound.
#[test]
fn the_switch_deletes_records_above_the_cut_and_floors_every_instance_space() {
    let storage = MemStorage::new();
    let mut batch = WriteBatch::new();
    for i in [id(1, 4), id(1, 5), id(1, 6), id(2, 3), id(2, 9), id(3, 1)] {
        batch.put_instance(instance_key(i), b"record".to_vec());
    }
    batch.put_meta(META_SLOT_RESERVATION, 40u64.to_be_bytes().to_vec());
    storage.write(batch, true).unwrap();

    let switch = switch_batch(&storage, 2, &cut(), &next()).unwrap();
    storage.write(switch, true).unwrap();

    let mut left = Vec::new();
    storage
        .scan_instances(&mut |key, _| {
            left.push((key.replica, key.slot));
            Ok(())
        })
        .unwrap();
    assert_eq!(left, [(1, 4), (1, 5), (2, 3)]);
    for (replica, bound) in [(1, 5), (2, 3), (3, 0)] {
        assert_eq!(u64_meta(&storage, &forgotten_meta_key(replica)), Some(bound), "replica {replica}");
    }
    assert_eq!(u64_meta(&storage, META_SLOT_RESERVATION), Some(4), "node 2 continues above its bound 3");
    assert_eq!(EpochRecord::load(&storage).unwrap(), Some(next()));
}

/// A node that restarts in the new epoch loads no conflict entry, seal or cut of the old one,
/// and counts every slot up to the cut as executed.
#[test]
fn a_restart_after_the_switch_loads_nothing_of_the_old_epoch() {
    let storage = MemStorage::new();
    let mut batch = WriteBatch::new();
    let old_only = KeyRecord { seq_max: 7, latest: vec![id(1, 5), id(3, 1)] };
    let mixed = KeyRecord { seq_max: 9, latest: vec![id(1, 6), id(2, 2), id(4, 1)] };
    batch.put_conflict(b"old".to_vec(), encode_key_record(&old_only));
    batch.put_conflict(b"mixed".to_vec(), encode_key_record(&mixed));
    batch.put_meta(META_SEAL, encode_cut(&cut()));
    batch.put_meta(META_CUT, encode_cut(&cut()));
    storage.write(batch, true).unwrap();
    storage.write(switch_batch(&storage, 1, &cut(), &next()).unwrap(), true).unwrap();

    let record = EpochRecord::load(&storage).unwrap().unwrap();
    let recovered = crate::server::load(&storage, Some(&record), &[1, 2, 3]).unwrap();
    assert_eq!(recovered.keys.len(), 1, "{:?}", recovered.keys);
    assert_eq!(&recovered.keys[0].0[..], b"mixed");
    assert_eq!(recovered.keys[0].1.latest, [id(1, 6), id(4, 1)], "entries of epoch 1 are gone");
    assert_eq!(recovered.seal, None);
    assert_eq!(recovered.cut, None);
    let mut forgotten = recovered.forgotten.clone();
    forgotten.sort();
    assert_eq!(forgotten, [(ReplicaId(1), 5), (ReplicaId(2), 3), (ReplicaId(3), 0)]);
    assert_eq!(recovered.slot_reservation, 6);
}
