//! The test cluster itself: three nodes in this process, the owner of counters killed (the node
//! the client calls through, too), the counts read back through the survivors and through the
//! node once restarted.

use super::*;
use crate::actor::examples::{self, Counter, GetCount, Increment};

/// Counters of the test; counter `i` ends at `(i + 1)²`.
const COUNTERS: usize = 6;
/// Keys looked at to find one that node 1 owns.
const KEYS_SEARCHED_MAX: usize = 200;

fn count_of(i: usize) -> i64 {
    ((i + 1) * (i + 1)) as i64
}

async fn read(client: &Client, key: &str) -> i64 {
    client.actor::<Counter>(key).call(GetCount).await.unwrap_or_else(|e| panic!("getCount of {key}: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_read_back_from_the_survivors_when_their_owner_is_killed() {
    let mut cluster = TestCluster::start(3, examples::registry).await;
    assert_eq!(cluster.running(), [1, 2, 3]);
    // The client calls through node 1, the first endpoint; node 1 is the victim.
    let client = cluster.client().await;
    let victim = 1;
    let mut keys: Vec<String> = Vec::new();
    for i in 0..KEYS_SEARCHED_MAX {
        let key = format!("c-{i}");
        if keys.len() + 1 < COUNTERS || cluster.owner::<Counter>(&key).await == victim {
            keys.push(key);
        }
        if keys.len() == COUNTERS {
            break;
        }
    }
    assert_eq!(keys.len(), COUNTERS, "node {victim} owns none of {KEYS_SEARCHED_MAX} keys");
    for (i, key) in keys.iter().enumerate() {
        for _ in 0..=i {
            client.actor::<Counter>(key).call(Increment { amount: i as i64 + 1 }).await.unwrap();
        }
        assert_eq!(read(&client, key).await, count_of(i));
    }
    let last = keys.last().unwrap();
    assert_eq!(cluster.owner::<Counter>(last).await, victim);

    let killed_at = Instant::now();
    cluster.kill(victim).await;
    eprintln!(
        "killed node {victim}, the owner of {last}: the survivors saw it gone after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(cluster.running(), [2, 3]);
    for (i, key) in keys.iter().enumerate() {
        assert_ne!(cluster.owner::<Counter>(key).await, victim, "{key} is still placed on the dead node");
        assert_eq!(read(&client, key).await, count_of(i), "{key} through the client of every node");
    }
    for survivor in [2, 3] {
        let only = Client::connect(&cluster.endpoint(survivor)).await.unwrap();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(read(&only, key).await, count_of(i), "{key} through node {survivor}");
        }
    }
    let moved = client.actor::<Counter>(last).call(Increment { amount: 100 }).await.unwrap();
    assert_eq!(moved, count_of(COUNTERS - 1) + 100, "the new owner writes on from the count");

    cluster.restart(victim).await;
    assert_eq!(cluster.running(), [1, 2, 3]);
    let back = Client::connect(&cluster.endpoint(victim)).await.unwrap();
    for (i, key) in keys.iter().enumerate() {
        let expected = if key == last { count_of(i) + 100 } else { count_of(i) };
        assert_eq!(read(&back, key).await, expected, "{key} through the restarted node");
    }
}
