use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn ring_of(ids: &BTreeSet<NodeId>) -> Ring {
    Ring::new(ids.iter().map(|&id| Member::new(id, "")))
}

fn key(i: usize) -> Vec<u8> {
    format!("user-{i}").into_bytes()
}

/// Owner of every actor `(name, key(i))`, `i < keys`.
fn owners(ring: &Ring, name: &str, keys: usize) -> Vec<NodeId> {
    (0..keys).map(|i| ring.owner(name, &key(i)).expect("ring is not empty")).collect()
}

#[test]
fn empty_ring_owns_nothing() {
    let ring = Ring::default();
    assert!(ring.is_empty());
    assert_eq!(ring.owner("counter", b"user-42"), None);
    assert_eq!(ring.owner_preferring_region("counter", b"user-42", "eu"), None);
    assert!(ring.successors("counter", b"user-42", 3).is_empty());
}

#[test]
fn single_member_owns_everything() {
    let ring = Ring::new([Member::new(7, "eu")]);
    assert_eq!(ring.owner("counter", b"user-42"), Some(7));
    assert_eq!(ring.owner_preferring_region("counter", b"user-42", "us"), Some(7));
    assert_eq!(ring.successors("counter", b"user-42", 5), vec![7]);
}

/// Pinned owners: if this fails, the hashing scheme changed and every actor of a running cluster
/// would move during a rolling upgrade. Do not update these values without a migration plan.
#[test]
fn owners_are_pinned_across_releases() {
    let ring = Ring::new((1..=5).map(|id| Member::new(id, "")));
    let got: Vec<(&str, &[u8], Vec<NodeId>)> = [
        ("counter", &b"user-42"[..]),
        ("counter", &b"user-43"[..]),
        ("room", &b"lobby"[..]),
        ("agent", &b""[..]),
    ]
    .into_iter()
    .map(|(name, key)| (name, key, ring.successors(name, key, 5)))
    .collect();
    let want: Vec<(&str, &[u8], Vec<NodeId>)> = vec![
        ("counter", b"user-42", vec![4, 1, 2, 5, 3]),
        ("counter", b"user-43", vec![3, 5, 2, 1, 4]),
        ("room", b"lobby", vec![4, 3, 5, 1, 2]),
        ("agent", b"", vec![1, 3, 2, 4, 5]),
    ];
    assert_eq!(got, want);
}

#[test]
fn name_and_key_are_separated() {
    // ("ab", "c") and ("a", "bc") are different actors: their preference lists are independent.
    let ring = Ring::new((1..=64).map(|id| Member::new(id, "")));
    assert_ne!(ring.successors("ab", b"c", 64), ring.successors("a", b"bc", 64));
}

#[test]
#[should_panic(expected = "duplicate member id in ring: id=3")]
fn duplicate_ids_are_a_bug() {
    let _ = Ring::new([Member::new(3, "a"), Member::new(3, "b")]);
}

#[test]
fn with_and_without_edit_the_member_set() {
    let ring = Ring::new([Member::new(1, "eu"), Member::new(3, "us")]);
    let grown = ring.with(&Member::new(2, "eu"));
    assert_eq!(grown.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(grown, Ring::new([Member::new(3, "us"), Member::new(2, "eu"), Member::new(1, "eu")]));
    let moved = grown.with(&Member::new(2, "ap"));
    assert_eq!(moved.region_of(2), Some("ap"));
    assert_eq!(moved.len(), 3);
    let shrunk = moved.without(1).without(99);
    assert_eq!(shrunk.ids().collect::<Vec<_>>(), vec![2, 3]);
    assert!(!shrunk.contains(1));
}

#[test]
fn region_preference_picks_the_region_then_falls_back() {
    let members = [
        Member::new(1, "eu"),
        Member::new(2, "eu"),
        Member::new(3, "us"),
        Member::new(4, "us"),
        Member::new(5, "ap"),
    ];
    let ring = Ring::new(members.iter());
    for i in 0..1_000 {
        let key = key(i);
        for region in ["eu", "us", "ap"] {
            let owner = ring.owner_preferring_region("counter", &key, region).expect("not empty");
            assert_eq!(ring.region_of(owner), Some(region));
            let list = ring.successors_preferring_region("counter", &key, region, 5);
            assert_eq!(list[0], owner);
            let in_region = list.iter().take_while(|&&id| ring.region_of(id) == Some(region)).count();
            assert_eq!(in_region, members.iter().filter(|m| m.region == region).count());
        }
        // No member in that region: the ordinary owner.
        assert_eq!(ring.owner_preferring_region("counter", &key, "mars"), ring.owner("counter", &key));
        assert_eq!(
            ring.successors_preferring_region("counter", &key, "mars", 5),
            ring.successors("counter", &key, 5)
        );
    }
}

#[test]
fn region_owner_is_stable_when_other_regions_change() {
    let ring = Ring::new([Member::new(1, "eu"), Member::new(2, "eu"), Member::new(3, "us")]);
    let changed = ring.with(&Member::new(4, "us")).without(3).with(&Member::new(5, "ap"));
    for i in 0..2_000 {
        let key = key(i);
        assert_eq!(
            ring.owner_preferring_region("counter", &key, "eu"),
            changed.owner_preferring_region("counter", &key, "eu")
        );
    }
}

/// 3 to 7 distinct member ids.
fn member_ids() -> impl Strategy<Value = BTreeSet<NodeId>> {
    prop::collection::btree_set(any::<NodeId>(), 3..=7)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every member's share of 100k actors is within 10 % of the mean.
    #[test]
    fn balance(ids in member_ids(), name in "[a-z]{1,12}") {
        const KEYS: usize = 100_000;
        let ring = ring_of(&ids);
        let mut counts: BTreeMap<NodeId, usize> = ids.iter().map(|&id| (id, 0)).collect();
        for owner in owners(&ring, &name, KEYS) {
            *counts.get_mut(&owner).expect("owner is a member") += 1;
        }
        let mean = KEYS as f64 / ids.len() as f64;
        for (&id, &count) in &counts {
            let deviation = (count as f64 - mean).abs() / mean;
            prop_assert!(deviation < 0.10, "member {id} owns {count} actors, mean {mean:.0}: {counts:?}");
        }
    }

    /// A joining member takes actors only for itself, and about 1/(N+1) of them.
    #[test]
    fn join_moves_only_to_the_new_member(ids in member_ids(), new in any::<NodeId>(), name in "[a-z]{1,12}") {
        prop_assume!(!ids.contains(&new));
        const KEYS: usize = 20_000;
        let before = ring_of(&ids);
        let after = before.with(&Member::new(new, ""));
        let mut moved = 0usize;
        for (old, now) in owners(&before, &name, KEYS).into_iter().zip(owners(&after, &name, KEYS)) {
            if old != now {
                prop_assert_eq!(now, new, "an actor moved between two old members");
                moved += 1;
            }
        }
        let expected = KEYS as f64 / (ids.len() + 1) as f64;
        let ratio = moved as f64 / expected;
        prop_assert!((0.8..1.2).contains(&ratio), "moved {moved}, expected about {expected:.0}");
    }

    /// A leaving member gives away only its own actors, each to its next successor.
    #[test]
    fn leave_moves_only_the_leavers_actors(ids in member_ids(), pick in any::<prop::sample::Index>(), name in "[a-z]{1,12}") {
        const KEYS: usize = 20_000;
        let gone = *pick.get(&ids.iter().copied().collect::<Vec<_>>());
        let before = ring_of(&ids);
        let after = before.without(gone);
        for i in 0..KEYS {
            let key = key(i);
            let list = before.successors(&name, &key, ids.len());
            let now = after.owner(&name, &key).expect("not empty");
            if list[0] == gone {
                prop_assert_eq!(now, list[1], "the next successor takes over");
            } else {
                prop_assert_eq!(now, list[0], "an actor of a remaining member moved");
            }
        }
    }

    /// The same members give the same owners, whatever order they are listed in.
    #[test]
    fn owners_do_not_depend_on_member_order(
        shuffled in member_ids().prop_flat_map(|ids| {
            let ids: Vec<NodeId> = ids.into_iter().collect();
            (Just(ids.clone()), Just(ids).prop_shuffle())
        }),
        name in "[a-z]{1,12}",
    ) {
        let (sorted, shuffled) = shuffled;
        let a = Ring::new(sorted.iter().map(|&id| Member::new(id, "r")));
        let b = Ring::new(shuffled.iter().map(|&id| Member::new(id, "r")));
        prop_assert_eq!(&a, &b);
        for i in 0..1_000 {
            let key = key(i);
            prop_assert_eq!(a.successors(&name, &key, 7), b.successors(&name, &key, 7));
            prop_assert_eq!(a.owner(&name, &key), b.owner(&name, &key));
        }
    }

    /// The preference list is every member once, starting with the owner.
    #[test]
    fn successors_are_a_permutation_led_by_the_owner(ids in member_ids(), key in prop::collection::vec(any::<u8>(), 0..32)) {
        let ring = ring_of(&ids);
        let list = ring.successors("actor", &key, usize::MAX);
        prop_assert_eq!(list.first().copied(), ring.owner("actor", &key));
        let set: BTreeSet<NodeId> = list.iter().copied().collect();
        prop_assert_eq!(set, ids);
        prop_assert_eq!(ring.successors("actor", &key, 2).len(), 2);
    }
}
