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

#[test]
fn activation_bumps_the_generation_and_returns_the_stored_state() {
    let storage = MemStorage::new();
    let actor = ActorId::new("counter", "x").interference_key();
    let first = run(&storage, &actor, ActorOp::Activate { node: 1 }).unwrap();
    assert_eq!(first, ActorOutcome::Activated { generation: 1, previous: None, state: None });
    assert_eq!(run(&storage, &actor, write(1, "s1")).unwrap(), ActorOutcome::Written);
    let second = run(&storage, &actor, ActorOp::Activate { node: 2 }).unwrap();
    assert_eq!(
        second,
        ActorOutcome::Activated {
            generation: 2,
            previous: Some(OwnerRecord { generation: 1, node: 1 }),
            state: Some(b("s1")),
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
    assert_eq!(
        run(&storage, &b_, ActorOp::Activate { node: 1 }).unwrap(),
        ActorOutcome::Activated { generation: 1, previous: None, state: None }
    );
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
    for op in [ActorOp::Activate { node: 3 }, write(7, "s"), ActorOp::Confirm { generation: 9 }] {
        assert_eq!(Op::decode(&Op::Actor(op.clone()).encode()).unwrap(), Op::Actor(op));
    }
}
