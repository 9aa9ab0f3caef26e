use super::*;
use crate::actor::keys::ActorId;
use crate::state_machine::{self, Op, Outcome};
use mortar_storage::{MemStorage, Storage, WriteBatch};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Applies `op` to `actor` through the node's state machine, in its own synced write batch.
fn run(storage: &MemStorage, actor: &Bytes, op: ActorOp) -> Result<ActorOutcome, ProposeError> {
    let mut batch = WriteBatch::new();
    let mut view = View::new(storage, &mut batch);
    let outcome = state_machine::apply(actor, &Op::Actor(op).encode(), &mut view).unwrap();
    drop(view);
    storage.write(batch, true).unwrap();
    outcome.map(|outcome| match outcome {
        Outcome::Actor(outcome) => outcome,
        other => panic!("an actor op answered {other:?}"),
    })
}

fn write(generation: u64, state: &str) -> ActorOp {
    ActorOp::Write {
        generation,
        state: Some(b(state)),
        kv_deletes: vec![],
        kv_puts: vec![(b("k"), b(state))],
    }
}

fn snapshot(storage: &MemStorage, actor: &Bytes) -> Vec<(Bytes, Bytes)> {
    storage.scan_kv_prefix(actor, None, 100).unwrap()
}

/// What the first activation of an actor answers.
fn first_activation() -> ActorOutcome {
    ActorOutcome::Activated {
        generation: 1,
        previous: None,
        state: None,
        destroyed: false,
        last_op_bound: None,
    }
}

#[test]
fn activation_bumps_the_generation_and_returns_the_stored_state() {
    let storage = MemStorage::new();
    let actor = ActorId::new("counter", "x").interference_key();
    let first = run(&storage, &actor, ActorOp::Activate { node: 1 }).unwrap();
    assert_eq!(first, first_activation());
    assert_eq!(run(&storage, &actor, write(1, "s1")).unwrap(), ActorOutcome::Written);
    let second = run(&storage, &actor, ActorOp::Activate { node: 2 }).unwrap();
    assert_eq!(
        second,
        ActorOutcome::Activated {
            generation: 2,
            previous: Some(OwnerRecord { generation: 1, node: 1 }),
            state: Some(b("s1")),
            destroyed: false,
            last_op_bound: None,
        }
    );
    assert_eq!(storage.get_kv(&keys::kv_key(&actor, b"k")).unwrap(), Some(b("s1")));
}

#[test]
fn a_stale_generation_is_fenced_and_writes_nothing() {
    let storage = MemStorage::new();
    let actor = ActorId::new("counter", "x").interference_key();
    run(&storage, &actor, ActorOp::Activate { node: 1 }).unwrap();
    run(&storage, &actor, write(1, "old")).unwrap();
    run(&storage, &actor, ActorOp::Activate { node: 2 }).unwrap();
    let before = snapshot(&storage, &actor);

    let current = Some(OwnerRecord { generation: 2, node: 2 });
    assert_eq!(run(&storage, &actor, write(1, "stale")).unwrap(), ActorOutcome::Fenced { current });
    assert_eq!(
        run(&storage, &actor, ActorOp::Confirm { generation: 1 }).unwrap(),
        ActorOutcome::Fenced { current }
    );
    // A generation from the future (never activated) is fenced too.
    assert_eq!(run(&storage, &actor, write(3, "future")).unwrap(), ActorOutcome::Fenced { current });
    assert_eq!(snapshot(&storage, &actor), before, "a fenced op changed the data");

    assert_eq!(run(&storage, &actor, ActorOp::Confirm { generation: 2 }).unwrap(), ActorOutcome::Confirmed);
    assert_eq!(run(&storage, &actor, write(2, "new")).unwrap(), ActorOutcome::Written);
    assert_eq!(storage.get_kv(&keys::state_key(&actor)).unwrap(), Some(b("new")));
}

#[test]
fn writes_before_any_activation_are_fenced() {
    let storage = MemStorage::new();
    let actor = ActorId::new("counter", "never").interference_key();
    assert_eq!(run(&storage, &actor, write(0, "x")).unwrap(), ActorOutcome::Fenced { current: None });
    assert!(snapshot(&storage, &actor).is_empty());
}

#[test]
fn a_write_deletes_then_puts_and_keeps_the_state_when_none() {
    let storage = MemStorage::new();
    let actor = ActorId::new("chatRoom", "r").interference_key();
    run(&storage, &actor, ActorOp::Activate { node: 1 }).unwrap();
    run(&storage, &actor, write(1, "s")).unwrap();
    let op = ActorOp::Write {
        generation: 1,
        state: None,
        kv_deletes: vec![b("k")],
        kv_puts: vec![(b("m/1"), b("hello"))],
    };
    assert_eq!(run(&storage, &actor, op).unwrap(), ActorOutcome::Written);
    assert_eq!(storage.get_kv(&keys::state_key(&actor)).unwrap(), Some(b("s")));
    assert_eq!(storage.get_kv(&keys::kv_key(&actor, b"k")).unwrap(), None);
    assert_eq!(storage.get_kv(&keys::kv_key(&actor, b"m/1")).unwrap(), Some(b("hello")));
}

#[test]
fn actors_do_not_see_each_others_data() {
    let storage = MemStorage::new();
    let a = ActorId::new("counter", "a").interference_key();
    let b_ = ActorId::new("counter", "b").interference_key();
    run(&storage, &a, ActorOp::Activate { node: 1 }).unwrap();
    run(&storage, &a, write(1, "a")).unwrap();
    assert_eq!(run(&storage, &b_, ActorOp::Activate { node: 1 }).unwrap(), first_activation());
}

#[test]
fn ops_on_non_actor_keys_or_corrupt_owner_records_are_errors_for_the_client() {
    let storage = MemStorage::new();
    assert!(matches!(run(&storage, &b("k/x"), ActorOp::Activate { node: 1 }), Err(ProposeError::Invalid(_))));
    let actor = ActorId::new("counter", "x").interference_key();
    let mut batch = WriteBatch::new();
    batch.put_kv(keys::owner_key(&actor), Bytes::from_static(&[0xff, 0xff, 0xff]));
    storage.write(batch, true).unwrap();
    assert!(matches!(
        run(&storage, &actor, ActorOp::Confirm { generation: 1 }),
        Err(ProposeError::Internal(_))
    ));
}

#[test]
fn ops_round_trip_through_the_command_encoding() {
    let take = ActorOp::Take { node: 2, expect: Some(OwnerRecord { generation: 4, node: 1 }) };
    let fence = ActorOp::Fence { node: 1, actor: b("a/1:c/1:x"), generation: 4 };
    for op in [
        ActorOp::Activate { node: 3 },
        write(7, "s"),
        ActorOp::Confirm { generation: 9 },
        ActorOp::Renew { node: 5 },
        fence,
        take,
        ActorOp::Take { node: 1, expect: None },
    ] {
        assert_eq!(Op::decode(&Op::Actor(op.clone()).encode()).unwrap(), Op::Actor(op));
    }
}

fn alarm(due_ms: u64) -> AlarmRecord {
    AlarmRecord { due_ms, action: "tick".into(), args_json: "null".into(), set_ms: 1 }
}

fn index(storage: &MemStorage) -> Vec<Bytes> {
    storage.scan_kv_prefix(keys::ALARM_INDEX_PREFIX, None, 100).unwrap().into_iter().map(|(k, _)| k).collect()
}

#[test]
fn commits_keep_the_alarm_and_work_indexes_in_step_and_are_fenced() {
    let storage = MemStorage::new();
    let actor = ActorId::new("reminder", "r").interference_key();
    run(&storage, &actor, ActorOp::Activate { node: 1 }).unwrap();
    let set = Commit {
        generation: 1,
        alarms_set: vec![(b("1.0"), alarm(20)), (b("1.1"), alarm(10))],
        queue_writes: vec![(keys::queue_message_key(&actor, "jobs", 0), Some(b("m")))],
        ..Commit::default()
    };
    assert_eq!(run(&storage, &actor, ActorOp::Commit(Box::new(set.clone()))).unwrap(), ActorOutcome::Written);
    let alarm_key = keys::alarm_key(&actor, b"1.1");
    assert_eq!(
        index(&storage),
        [keys::alarm_index_key(10, &alarm_key), keys::alarm_index_key(20, &keys::alarm_key(&actor, b"1.0"))]
    );
    assert!(storage.get_kv(&keys::work_index_key(&actor)).unwrap().is_some(), "queued work is indexed");

    // A deposed generation changes nothing.
    run(&storage, &actor, ActorOp::Activate { node: 2 }).unwrap();
    let stale = Commit { generation: 1, alarms_removed: vec![b("1.1")], ..Commit::default() };
    assert!(matches!(
        run(&storage, &actor, ActorOp::Commit(Box::new(stale))).unwrap(),
        ActorOutcome::Fenced { .. }
    ));
    assert_eq!(index(&storage).len(), 2);

    // Removing a fired alarm and consuming the message clear their entries; unknown ids are ignored.
    let fire = Commit {
        generation: 2,
        alarms_removed: vec![b("1.1"), b("9.9")],
        queue_writes: vec![(keys::queue_message_key(&actor, "jobs", 0), None)],
        ..Commit::default()
    };
    run(&storage, &actor, ActorOp::Commit(Box::new(fire))).unwrap();
    assert_eq!(index(&storage), [keys::alarm_index_key(20, &keys::alarm_key(&actor, b"1.0"))]);
    assert!(storage.get_kv(&alarm_key).unwrap().is_none());
    assert!(storage.get_kv(&keys::work_index_key(&actor)).unwrap().is_none(), "no queued work left");

    // A queue write outside the actor's own data is ignored.
    let other = ActorId::new("reminder", "s").interference_key();
    let sneaky = Commit {
        generation: 2,
        queue_writes: vec![(keys::state_key(&other), Some(b("x")))],
        ..Commit::default()
    };
    run(&storage, &actor, ActorOp::Commit(Box::new(sneaky))).unwrap();
    assert!(storage.get_kv(&keys::state_key(&other)).unwrap().is_none());
}

#[test]
fn destruction_removes_everything_but_the_owner_record_and_leaves_a_tombstone() {
    let storage = MemStorage::new();
    let actor = ActorId::new("worker", "w").interference_key();
    run(&storage, &actor, ActorOp::Activate { node: 1 }).unwrap();
    run(&storage, &actor, write(1, "s1")).unwrap();
    let set = Commit {
        generation: 1,
        alarms_set: vec![(b("1.0"), alarm(5))],
        queue_writes: vec![(keys::queue_message_key(&actor, "jobs", 0), Some(b("m")))],
        ..Commit::default()
    };
    run(&storage, &actor, ActorOp::Commit(Box::new(set))).unwrap();
    let destroy = Commit { generation: 1, destroy: true, state: Some(b("ignored")), ..Commit::default() };
    run(&storage, &actor, ActorOp::Commit(Box::new(destroy))).unwrap();
    let left: Vec<Bytes> = snapshot(&storage, &actor).into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, [keys::owner_key(&actor), keys::tombstone_key(&actor)]);
    assert!(index(&storage).is_empty());
    assert!(storage.get_kv(&keys::work_index_key(&actor)).unwrap().is_none());
    let ActorOutcome::Activated { generation, state, destroyed, .. } =
        run(&storage, &actor, ActorOp::Activate { node: 1 }).unwrap()
    else {
        panic!("activation answered otherwise")
    };
    assert_eq!((generation, state, destroyed), (2, None, true));
    // Creating it again clears the tombstone.
    let again = Commit { generation: 2, recreate: true, state: Some(b("s0")), ..Commit::default() };
    run(&storage, &actor, ActorOp::Commit(Box::new(again))).unwrap();
    assert!(storage.get_kv(&keys::tombstone_key(&actor)).unwrap().is_none());
}

#[test]
fn a_take_applies_only_over_the_expected_owner() {
    let storage = MemStorage::new();
    let actor = ActorId::new("counter", "t").interference_key();
    assert_eq!(run(&storage, &actor, ActorOp::Take { node: 1, expect: None }).unwrap(), first_activation());
    assert_eq!(run(&storage, &actor, write(1, "s1")).unwrap(), ActorOutcome::Written);
    let owner = Some(OwnerRecord { generation: 1, node: 1 });
    let before = snapshot(&storage, &actor);
    // Expecting no owner, or another one, writes nothing and answers the owner as it is.
    for wrong in
        [None, Some(OwnerRecord { generation: 1, node: 3 }), Some(OwnerRecord { generation: 0, node: 1 })]
    {
        assert_eq!(
            run(&storage, &actor, ActorOp::Take { node: 2, expect: wrong }).unwrap(),
            ActorOutcome::Fenced { current: owner }
        );
        assert_eq!(snapshot(&storage, &actor), before, "a refused take wrote something");
    }
    assert_eq!(
        run(&storage, &actor, ActorOp::Take { node: 2, expect: owner }).unwrap(),
        ActorOutcome::Activated {
            generation: 2,
            previous: owner,
            state: Some(b("s1")),
            destroyed: false,
            last_op_bound: None,
        }
    );
    assert_eq!(
        run(&storage, &actor, write(1, "stale")).unwrap(),
        ActorOutcome::Fenced { current: Some(OwnerRecord { generation: 2, node: 2 }) }
    );
}

#[test]
fn renewals_write_nothing_and_fences_only_rise() {
    let storage = MemStorage::new();
    let node = keys::node_lease_key(1);
    let actor = ActorId::new("counter", "f").interference_key();
    assert_eq!(run(&storage, &node, ActorOp::Renew { node: 1 }).unwrap(), ActorOutcome::Renewed);
    assert!(storage.scan_kv_prefix(b"n/", None, 10).unwrap().is_empty(), "a renewal wrote something");
    let fence = |generation| ActorOp::Fence { node: 1, actor: actor.clone(), generation };
    let stored = || read_fence(storage.get_kv(&keys::fence_key(1, &actor)).unwrap().as_deref());
    assert_eq!(stored(), 0, "no fence: nothing fenced");
    assert_eq!(run(&storage, &node, fence(3)).unwrap(), ActorOutcome::FenceSet { last_op_bound: None });
    assert_eq!(stored(), 3);
    run(&storage, &node, fence(2)).unwrap();
    assert_eq!(stored(), 3, "a late fence for an older generation lowered a newer one");
    run(&storage, &node, fence(5)).unwrap();
    assert_eq!(stored(), 5);
    assert_eq!(read_fence(storage.get_kv(&keys::fence_key(2, &actor)).unwrap().as_deref()), 0);
    assert_eq!(read_fence(Some(b"\x01")), u64::MAX, "a damaged record fences everything");
}

#[test]
fn node_lease_ops_must_be_on_their_nodes_lease_key_and_name_an_actor() {
    let storage = MemStorage::new();
    let actor = ActorId::new("counter", "f").interference_key();
    for (key, op) in [
        (keys::node_lease_key(2), ActorOp::Renew { node: 1 }),
        (actor.clone(), ActorOp::Renew { node: 1 }),
        (b("k/x"), ActorOp::Renew { node: 1 }),
        (keys::node_lease_key(2), ActorOp::Fence { node: 1, actor: actor.clone(), generation: 1 }),
        (keys::node_lease_key(1), ActorOp::Fence { node: 1, actor: b("k/x"), generation: 1 }),
        (keys::node_lease_key(1), ActorOp::Take { node: 1, expect: None }),
        (keys::node_lease_key(1), ActorOp::Confirm { generation: 1 }),
    ] {
        assert!(
            matches!(run(&storage, &key, op.clone()), Err(ProposeError::Invalid(_))),
            "{op:?} on {key:?}"
        );
    }
    assert!(storage.scan_kv_prefix(b"", None, 10).unwrap().is_empty(), "a refused op wrote something");
}
