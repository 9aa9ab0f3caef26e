//! In-process clusters on 127.0.0.1 with ephemeral UDP ports, real sockets and real time.
//!
//! Timings are printed, never asserted tightly (speed belongs to benchmarks): the only time
//! assertions are generous bounds that keep every test finite.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::*;

/// Generous bound for anything that should take well under a second.
const BOUND: Duration = Duration::from_secs(5);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config(id: NodeId, bind: SocketAddr, seeds: &[SocketAddr]) -> MembershipConfig {
    let mut config = MembershipConfig::new(id, bind);
    config.region = if id.is_multiple_of(2) { "even" } else { "odd" }.to_owned();
    config.grpc_addr = format!("127.0.0.1:{}", 50_000 + id);
    config.seeds = seeds.iter().map(SocketAddr::to_string).collect();
    config
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(id: NodeId, seeds: &[SocketAddr]) -> Membership {
    Membership::start(config(id, loopback(), seeds)).await.expect("start member")
}

/// Starts members `1..=n`; every member but the first joins through the first.
async fn start_cluster(n: NodeId) -> Vec<Membership> {
    let first = start(1, &[]).await;
    let seed = first.gossip_addr();
    let mut members = vec![first];
    for id in 2..=n {
        members.push(start(id, &[seed]).await);
    }
    members
}

/// Waits until `member`'s view satisfies `ready`; returns how long that took.
async fn wait_for(member: &Membership, what: &str, mut ready: impl FnMut(&View) -> bool) -> Duration {
    let started = Instant::now();
    let mut views = member.subscribe();
    match tokio::time::timeout(BOUND, views.wait_for(|view| ready(view))).await {
        Ok(Ok(_)) => started.elapsed(),
        Ok(Err(_)) => panic!("node {}: driver stopped while waiting for {what}", member.local_id()),
        Err(_) => panic!("node {}: no {what} after {BOUND:?}; view: {:?}", member.local_id(), member.view()),
    }
}

/// Waits until every member sees exactly `ids` live.
async fn converge(members: &[&Membership], ids: &[NodeId]) -> Duration {
    let started = Instant::now();
    for member in members {
        wait_for(member, &format!("view {ids:?}"), |view| view.ids() == ids).await;
    }
    started.elapsed()
}

/// Binds `addr` again after its previous owner stopped (the aborted driver may take a moment to
/// release the socket).
async fn restart(config: MembershipConfig) -> Membership {
    for _ in 0..50 {
        match Membership::start(config.clone()).await {
            Ok(member) => return member,
            Err(error) if error.is_retryable() => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => panic!("restart: {error}"),
        }
    }
    panic!("restart: {} still in use", config.bind_addr);
}

async fn converges(n: NodeId) {
    init_tracing();
    let members = start_cluster(n).await;
    let ids: Vec<NodeId> = (1..=n).collect();
    let took = converge(&members.iter().collect::<Vec<_>>(), &ids).await;
    println!("{n} members converged in {took:?}");
    let first = members[0].view();
    for member in &members {
        let view = member.view();
        assert_eq!(view.local, member.local_id());
        assert_eq!(view.ring, first.ring, "every member builds the same ring");
        assert_eq!(view.members.len(), n as usize);
        for (seen, other) in view.members.iter().zip(&members) {
            assert_eq!(seen.id, other.local_id());
            assert_eq!(seen.gossip_addr, Some(other.gossip_addr()));
            assert_eq!(seen.generation, other.generation());
            assert_eq!(seen.grpc_addr, format!("127.0.0.1:{}", 50_000 + seen.id));
            assert_eq!(seen.region, if seen.id.is_multiple_of(2) { "even" } else { "odd" });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_converge() {
    converges(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_converge() {
    converges(5).await;
}

/// Kills (drops without leaving) member `victim` of an `n`-member cluster and measures how long
/// each survivor takes to declare it down.
async fn crash_is_detected(n: NodeId, victim: NodeId) {
    init_tracing();
    let mut members = start_cluster(n).await;
    let ids: Vec<NodeId> = (1..=n).collect();
    converge(&members.iter().collect::<Vec<_>>(), &ids).await;
    // Let the cluster settle into steady probing before the crash.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed = members.remove(victim as usize - 1);
    let mut detections = JoinSet::new();
    for member in members {
        detections.spawn(async move {
            let mut views = member.subscribe();
            let killed_at = Instant::now();
            let result = tokio::time::timeout(BOUND, views.wait_for(|view| !view.is_live(victim))).await;
            (member.local_id(), result.map(|_| killed_at.elapsed()), member)
        });
    }
    drop(killed); // The crash: no goodbye, the socket closes.

    let mut took = Vec::new();
    let mut survivors = Vec::new(); // kept running until every survivor has detected the crash
    while let Some(joined) = detections.join_next().await {
        let (id, elapsed, member) = joined.expect("detection task");
        let elapsed =
            elapsed.unwrap_or_else(|_| panic!("node {id} did not declare node {victim} down in {BOUND:?}"));
        took.push((id, elapsed));
        survivors.push(member);
    }
    took.sort();
    println!("{n} members, node {victim} killed: declared down after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_detect_a_crash() {
    crash_is_detected(3, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_detect_a_crash_of_the_seed() {
    crash_is_detected(5, 1).await;
}

/// Pauses member `paused` of an `n`-member cluster for 200 ms, `pauses` times, and checks that no
/// member ever declared it down.
async fn pause_is_survived(n: NodeId, paused: NodeId, pauses: usize) {
    init_tracing();
    let members = start_cluster(n).await;
    let ids: Vec<NodeId> = (1..=n).collect();
    converge(&members.iter().collect::<Vec<_>>(), &ids).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let generation = members[paused as usize - 1].generation();

    // Every other member records any view in which the paused member is missing or renamed.
    let mut watchers = JoinSet::new();
    for member in members.iter().filter(|member| member.local_id() != paused) {
        let mut views = member.subscribe();
        let id = member.local_id();
        watchers.spawn(async move {
            let mut lapses = Vec::new();
            while views.changed().await.is_ok() {
                let view = views.borrow_and_update().clone();
                match view.member(paused) {
                    Some(seen) if seen.generation == generation => {}
                    other => lapses.push((id, other.cloned())),
                }
            }
            lapses
        });
    }

    let target = &members[paused as usize - 1];
    for _ in 0..pauses {
        let paused_at = Instant::now();
        target.pause_for_test(Duration::from_millis(200)).await;
        // The pause starts when the driver takes the command; wait it out, then some.
        tokio::time::sleep(Duration::from_millis(200 + 600)).await;
        println!("{n} members, node {paused} paused 200 ms at +{:?}", paused_at.elapsed());
    }
    // A false "down" would have been declared and spread by now.
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    for member in &members {
        let view = member.view();
        let seen =
            view.member(paused).unwrap_or_else(|| panic!("node {} lost node {paused}", member.local_id()));
        assert_eq!(seen.generation, generation, "node {paused} was declared down and rejoined");
        assert_eq!(view.ids(), ids);
    }
    drop(members); // Stops the drivers, which ends the watchers.
    while let Some(joined) = watchers.join_next().await {
        let lapses = joined.expect("watcher task");
        assert!(lapses.is_empty(), "node {paused} was declared down during a 200 ms pause: {lapses:?}");
    }
    println!("{n} members: node {paused} survived {pauses} pauses of 200 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_survive_a_200ms_pause() {
    pause_is_survived(3, 2, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_survive_a_200ms_pause() {
    pause_is_survived(5, 4, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_is_seen_alive_again() {
    init_tracing();
    let mut members = start_cluster(3).await;
    converge(&members.iter().collect::<Vec<_>>(), &[1, 2, 3]).await;
    let seed = members[0].gossip_addr();
    let old = members.pop().expect("member 3");
    let (addr, old_generation) = (old.gossip_addr(), old.generation());
    drop(old); // crash
    for member in &members {
        wait_for(member, "node 3 down", |view| !view.is_live(3)).await;
    }

    // Same id, same address, new process: a higher generation.
    let mut again = config(3, addr, &[seed]);
    again.generation = Some(old_generation + 1_000);
    let restarted_at = Instant::now();
    let new = restart(again).await;
    members.push(new);
    for member in &members {
        wait_for(member, "node 3 back", |view| {
            view.ids() == [1, 2, 3] && view.member(3).is_some_and(|m| m.generation == old_generation + 1_000)
        })
        .await;
    }
    println!("restarted node 3 seen alive by all after {:?}", restarted_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_restarted_before_detection_replaces_its_old_self() {
    init_tracing();
    let mut members = start_cluster(3).await;
    converge(&members.iter().collect::<Vec<_>>(), &[1, 2, 3]).await;
    let seed = members[0].gossip_addr();
    let old = members.pop().expect("member 3");
    let (addr, old_generation) = (old.gossip_addr(), old.generation());
    drop(old);
    // Back at once, before anyone declared the old generation down: the new one replaces it.
    let mut again = config(3, addr, &[seed]);
    again.generation = Some(old_generation + 1);
    members.push(restart(again).await);
    for member in &members {
        wait_for(member, "node 3 renewed", |view| {
            view.ids() == [1, 2, 3] && view.member(3).is_some_and(|m| m.generation == old_generation + 1)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_member_is_dropped_at_once() {
    init_tracing();
    let mut members = start_cluster(3).await;
    converge(&members.iter().collect::<Vec<_>>(), &[1, 2, 3]).await;
    let leaving = members.remove(1);
    let left_at = Instant::now();
    leaving.leave().await.expect("leave");
    for member in &members {
        wait_for(member, "node 2 gone", |view| view.ids() == [1, 3]).await;
    }
    println!("node 2 left; dropped by all after {:?}", left_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_are_gossiped() {
    init_tracing();
    let members = start_cluster(3).await;
    converge(&members.iter().collect::<Vec<_>>(), &[1, 2, 3]).await;
    members[1].set_load(42);
    members[2].set_load(7);
    for member in &members {
        wait_for(member, "loads", |view| {
            view.member(2).is_some_and(|m| m.load == 42) && view.member(3).is_some_and(|m| m.load == 7)
        })
        .await;
    }
    let epoch = members[0].view().epoch;
    members[1].set_load(43);
    wait_for(&members[0], "new load", |view| view.member(2).is_some_and(|m| m.load == 43)).await;
    assert_eq!(members[0].view().epoch, epoch, "a load change alone keeps the epoch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_may_be_host_names() {
    init_tracing();
    let first = start(1, &[]).await;
    let mut second = config(2, loopback(), &[]);
    second.seeds = vec![format!("localhost:{}", first.gossip_addr().port())];
    let second = Membership::start(second).await.expect("start");
    converge(&[&first, &second], &[1, 2]).await;
}

#[tokio::test]
async fn a_new_cluster_is_just_this_member() {
    let member = start(9, &[]).await;
    let view = member.view();
    assert_eq!(view.ids(), [9]);
    assert_eq!(view.ring.owner("counter", b"user-42"), Some(9));
    assert_eq!(member.live()[0].grpc_addr, "127.0.0.1:50009");
    member.leave().await.expect("leave");
}

#[test]
fn invalid_configs_say_what_to_fix() {
    let base = MembershipConfig::new(1, loopback());
    assert!(base.validate().is_ok());

    let mut zero = base.clone();
    zero.suspect_to_down_after = Duration::ZERO;
    assert_eq!(
        zero.validate().expect_err("zero").to_string(),
        "membership config: suspect_to_down_after must be greater than zero"
    );

    let mut slow_rtt = base.clone();
    slow_rtt.probe_rtt = slow_rtt.probe_period;
    assert!(matches!(slow_rtt.validate(), Err(ConfigError::ProbeRttNotBelowPeriod { .. })));

    let mut tiny = base.clone();
    tiny.packet_bytes_max = 100;
    assert!(matches!(tiny.validate(), Err(ConfigError::PacketSize { bytes: 100 })));

    let mut long = base.clone();
    long.region = "x".repeat(REGION_BYTES_MAX + 1);
    assert!(matches!(long.validate(), Err(ConfigError::TooLong { field: "region", .. })));
}

#[tokio::test]
async fn an_unspecified_bind_address_needs_an_advertised_one() {
    let config = MembershipConfig::new(1, SocketAddr::from(([0, 0, 0, 0], 0)));
    let error = Membership::start(config).await.err().expect("must fail");
    assert!(matches!(error, StartError::Config(ConfigError::Unadvertisable { .. })), "{error}");
    assert!(!error.is_retryable());
}

/// Environment of [`child_member`]: the seed to join and the node id.
const CHILD_SEED_ENV: &str = "MORTAR_PLACEMENT_TEST_CHILD_SEED";
const CHILD_ID_ENV: &str = "MORTAR_PLACEMENT_TEST_CHILD_ID";
/// A child member exits by itself after this long, whatever happens to its parent.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// Not a test: the body of the member process that [`real_sigstop_is_survived_and_sigkill_detected`]
/// runs by starting this test binary again. Does nothing when run directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "helper process of real_sigstop_is_survived_and_sigkill_detected"]
async fn child_member() {
    let (Ok(seed), Ok(id)) = (std::env::var(CHILD_SEED_ENV), std::env::var(CHILD_ID_ENV)) else {
        return;
    };
    let seed: SocketAddr = seed.parse().expect("seed address");
    let _member = start(id.parse().expect("node id"), &[seed]).await;
    tokio::time::sleep(CHILD_LIFETIME).await;
}

/// A member process, killed when dropped (also when the test fails).
struct ChildMember(std::process::Child);

impl ChildMember {
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).expect("pid fits in i32"))
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal the child member");
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real thing: member 3 is another process, stopped with `SIGSTOP` for 200 ms three times
/// (nobody may declare it down), then killed with `SIGKILL` (everybody must).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sigstop_is_survived_and_sigkill_detected() {
    use nix::sys::signal::Signal;
    init_tracing();
    let members = start_cluster(2).await;
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "membership::membership_test::child_member", "--ignored", "--test-threads=1"])
        .env(CHILD_SEED_ENV, members[0].gossip_addr().to_string())
        .env(CHILD_ID_ENV, "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the child member");
    let child = ChildMember(child);
    converge(&members.iter().collect::<Vec<_>>(), &[1, 2, 3]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let generation = members[0].view().member(3).expect("member 3").generation;

    for _ in 0..3 {
        child.signal(Signal::SIGSTOP);
        tokio::time::sleep(Duration::from_millis(200)).await;
        child.signal(Signal::SIGCONT);
        tokio::time::sleep(Duration::from_millis(800)).await;
        for member in &members {
            let view = member.view();
            let seen = view.member(3).unwrap_or_else(|| panic!("node {} lost node 3", member.local_id()));
            assert_eq!(seen.generation, generation, "node 3 was declared down and rejoined");
        }
    }
    println!("3 members, node 3 (another process) survived 3 SIGSTOPs of 200 ms");

    let mut views: Vec<_> = members.iter().map(Membership::subscribe).collect();
    let killed_at = Instant::now();
    child.signal(Signal::SIGKILL);
    let mut took = Vec::new();
    for (member, views) in members.iter().zip(&mut views) {
        tokio::time::timeout(BOUND, views.wait_for(|view| !view.is_live(3)))
            .await
            .unwrap_or_else(|_| panic!("node {} did not declare node 3 down", member.local_id()))
            .expect("driver running");
        took.push((member.local_id(), killed_at.elapsed()));
    }
    println!("3 members, node 3 (another process) SIGKILLed: declared down after {took:?}");
}
