use std::collections::HashMap;

use super::*;

#[test]
fn an_equal_id_finds_the_actor_and_only_its_own_block_finds_the_activation() {
    let mut table = Table::default();
    let id = ActorId::new("counter", "a").unshared();
    table.insert(id.clone(), 1);
    let equal = ActorId::new("counter", "a");
    assert_eq!(table.get(&equal).map(|n| n.entry), Some(1));
    assert!(table.get_same(&equal).is_none(), "an equal id of another block is another activation");
    assert!(table.remove_same(&equal).is_none());
    table.get_same(&id).expect("its own block").entry = 2;
    assert_eq!(table.get_mut(&equal).map(|n| n.entry), Some(2));
    let removed = table.remove_same(&id).expect("removed");
    assert!(removed.id.is_same(&id));
    assert_eq!((removed.entry, table.len()), (2, 0));
    assert!(table.get(&equal).is_none());
}

#[test]
fn the_table_holds_what_a_map_holds_through_inserts_removals_and_extractions() {
    let mut table = Table::default();
    let mut map = HashMap::new();
    let mut blocks = HashMap::new();
    // A deterministic walk: insert, remove and extract across several growths of the table.
    let mut x: u64 = 7;
    for step in 0..20_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let key = format!("k{}", (x >> 33) % 3_000);
        let id = ActorId::new("counter", &key);
        match (x >> 20) % 10 {
            0..=5 => {
                if let std::collections::hash_map::Entry::Vacant(vacant) = map.entry(key.clone()) {
                    let block = id.unshared();
                    table.insert(block.clone(), step);
                    blocks.insert(key, block);
                    vacant.insert(step);
                }
            }
            6..=8 => {
                if let Some(block) = blocks.remove(&key) {
                    let node = table.remove_same(&block).expect("present");
                    assert_eq!(Some(node.entry), map.remove(&key));
                }
            }
            _ => {
                let odd: Vec<_> = table.extract_if(|_, entry| *entry % 7 == step % 7);
                for node in odd {
                    let key = node.id.key().to_string();
                    assert_eq!(map.remove(&key), Some(node.entry));
                    blocks.remove(&key);
                }
            }
        }
        assert_eq!(table.len(), map.len());
    }
    for (key, entry) in &map {
        assert_eq!(table.get(&ActorId::new("counter", key)).map(|n| n.entry), Some(*entry));
    }
    let mut listed: Vec<_> = table.iter().map(|n| (n.id.key().to_string(), n.entry)).collect();
    listed.sort();
    let mut expected: Vec<_> = map.into_iter().collect();
    expected.sort();
    assert_eq!(listed, expected);
    for node in table.iter_mut() {
        node.entry += 1;
    }
    assert!(expected.iter().all(|(k, e)| table.get(&ActorId::new("counter", k)).unwrap().entry == e + 1));
}
