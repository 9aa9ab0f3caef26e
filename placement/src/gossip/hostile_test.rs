//! Gossip on a hostile network: members on 127.0.0.1 with real sockets, and a test socket that
//! forges, corrupts and replays datagrams the way an attacker on the network would.
//!
//! Every check is about behaviour (what a member's view holds, what it counted, whether a socket
//! heard anything); waits are generous bounds that keep each test finite, never measurements.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{Codec, Header, Incarnation, Member, Message, PostcardCodec, State};
use tokio::net::UdpSocket;

use crate::gossip::auth;
use crate::gossip::identity::GossipId;
use crate::membership::{GossipKey, GossipStats, Membership, MembershipConfig, View};
use crate::ring::NodeId;

/// Generous bound for anything that should take well under a second.
const BOUND: Duration = Duration::from_secs(5);
/// How long a socket listens to conclude that nobody sends to it: several probe and gossip
/// periods, so a member that had learned of it would have written by then.
const SILENCE: Duration = Duration::from_millis(700);
const SECRET: &[u8] = b"the cluster's gossip secret, 32+";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn key() -> GossipKey {
    GossipKey::from_secret(SECRET).expect("long enough")
}

fn grpc_addr(id: NodeId) -> String {
    format!("127.0.0.1:{}", 50_000 + id)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(id: NodeId, bind: SocketAddr, seeds: &[SocketAddr], keyed: bool) -> MembershipConfig {
    let mut config = MembershipConfig::new(id, bind);
    config.grpc_addr = grpc_addr(id);
    config.seeds = seeds.iter().map(SocketAddr::to_string).collect();
    config.key = keyed.then(key);
    config
}

async fn start(id: NodeId, seeds: &[SocketAddr], keyed: bool) -> Membership {
    Membership::start(config(id, loopback(), seeds, keyed)).await.expect("start member")
}

/// Binds `addr` again after its previous owner let it go.
async fn start_at(config: MembershipConfig) -> Membership {
    for _ in 0..50 {
        match Membership::start(config.clone()).await {
            Ok(member) => return member,
            Err(error) if error.is_retryable() => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => panic!("start: {error}"),
        }
    }
    panic!("start: {} still in use", config.bind_addr);
}

/// Keyed members `1..=n`, every one but the first joining through the first, converged.
async fn keyed_cluster(n: NodeId) -> Vec<Membership> {
    let first = start(1, &[], true).await;
    let seed = first.gossip_addr();
    let mut members = vec![first];
    for id in 2..=n {
        members.push(start(id, &[seed], true).await);
    }
    let ids: Vec<NodeId> = (1..=n).collect();
    for member in &members {
        wait_for(member, &format!("view {ids:?}"), |view| view.ids() == ids).await;
    }
    members
}

/// The directory of nodes `ids` at their usual gRPC addresses.
fn directory(ids: &[NodeId]) -> Vec<(NodeId, String)> {
    ids.iter().map(|&id| (id, grpc_addr(id))).collect()
}

async fn wait_for(member: &Membership, what: &str, mut ready: impl FnMut(&View) -> bool) {
    let mut views = member.subscribe();
    match tokio::time::timeout(BOUND, views.wait_for(|view| ready(view))).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => panic!("node {}: driver stopped while waiting for {what}", member.local_id()),
        Err(_) => panic!("node {}: no {what} after {BOUND:?}; view: {:?}", member.local_id(), member.view()),
    }
}

/// Waits until `member`'s counters satisfy `ready`; returns them.
async fn wait_for_stats(
    member: &Membership,
    what: &str,
    ready: impl Fn(&GossipStats) -> bool,
) -> GossipStats {
    let deadline = Instant::now() + BOUND;
    loop {
        let stats = member.stats();
        if ready(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "node {}: no {what} after {BOUND:?}: {stats:?}",
            member.local_id()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A socket on the network that is not a member.
struct Attacker {
    socket: UdpSocket,
}

impl Attacker {
    async fn bind() -> Self {
        Self { socket: UdpSocket::bind(loopback()).await.expect("bind the attacker's socket") }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound")
    }

    async fn send(&self, datagram: &[u8], to: SocketAddr) {
        self.socket.send_to(datagram, to).await.expect("send on loopback");
    }

    /// The next datagram sent to this socket.
    async fn receive(&self) -> Vec<u8> {
        let mut buf = vec![0; 2048];
        let (len, _) = tokio::time::timeout(BOUND, self.socket.recv_from(&mut buf))
            .await
            .expect("a datagram within the bound")
            .expect("receive");
        buf.truncate(len);
        buf
    }

    /// Whether none of `members` sent anything to this socket for [`SILENCE`]. Datagrams from
    /// other addresses are not theirs: the tests of this binary run at once, and a member of
    /// another test may still probe a port this socket was given after that test freed it.
    async fn hears_nothing_from(&self, members: &[Membership]) -> bool {
        let theirs: Vec<SocketAddr> = members.iter().map(Membership::gossip_addr).collect();
        let deadline = tokio::time::Instant::now() + SILENCE;
        let mut buf = vec![0; 2048];
        loop {
            match tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await {
                Err(_) => return true,
                Ok(Ok((_, from))) if theirs.contains(&from) => return false,
                Ok(_) => {}
            }
        }
    }
}

/// An identity as a member would gossip it.
fn identity(node: NodeId, addr: SocketAddr, generation: u64, grpc_addr: String) -> GossipId {
    GossipId { node, addr, generation, region: String::new(), grpc_addr }
}

/// `member`'s own identity as it currently gossips it.
fn identity_of(member: &Membership) -> GossipId {
    let view = member.view();
    let own = view.member(member.local_id()).expect("a member sees itself");
    GossipId {
        node: own.id,
        addr: own.gossip_addr.expect("gossip address"),
        generation: own.generation,
        region: own.region.clone(),
        grpc_addr: own.grpc_addr.clone(),
    }
}

/// A foca datagram, unsealed, exactly as foca would encode it.
fn datagram(
    src: GossipId,
    dst: GossipId,
    message: Message<GossipId>,
    updates: &[Member<GossipId>],
) -> Vec<u8> {
    let header = Header { src, src_incarnation: Incarnation::default(), dst, message };
    let mut bytes = Vec::new();
    Codec::<GossipId>::encode_header(&mut PostcardCodec, &header, &mut bytes).expect("encodes");
    if !updates.is_empty() {
        bytes.extend_from_slice(&u16::try_from(updates.len()).expect("few").to_be_bytes());
        for update in updates {
            Codec::<GossipId>::encode_member(&mut PostcardCodec, update, &mut bytes).expect("encodes");
        }
    }
    bytes
}

/// What only a holder of the cluster's key can send.
fn sealed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    auth::seal(&key(), payload, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_members_converge_and_count_nothing() {
    init_tracing();
    let members = keyed_cluster(3).await;
    for member in &members {
        assert!(member.is_running());
        let stats = member.stats();
        assert_eq!(
            (stats.datagrams_unauthenticated, stats.identities_refused, stats.generations_refused),
            (0, 0, 0),
            "node {}: {stats:?}",
            member.local_id()
        );
        assert_eq!(stats.timers_dropped, 0);
    }
}

/// Attack 1: a 45-byte forged Announce naming node 99 (or node 1, newer) at an address of the
/// sender's choosing joined every unkeyed member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_announce_from_an_unkeyed_socket_is_dropped_by_keyed_members() {
    init_tracing();
    let members = keyed_cluster(2).await;
    let attacker = Attacker::bind().await;
    let node_1 = identity_of(&members[0]);
    let stranger = identity(99, attacker.addr(), 1, "127.0.0.1:6666".to_owned());
    let newer_node_1 =
        GossipId { addr: attacker.addr(), generation: node_1.generation + 1, ..node_1.clone() };

    // The forgery works on a member without a key: it is a real attack. (From another socket,
    // which that member will keep probing.)
    let unkeyed = start(5, &[], false).await;
    let witness = Attacker::bind().await;
    let planted = identity(99, witness.addr(), 1, "127.0.0.1:6666".to_owned());
    let announce = datagram(planted, GossipId::seed(unkeyed.gossip_addr()), Message::Announce, &[]);
    assert!(announce.len() < 64, "{} bytes", announce.len());
    witness.send(&announce, unkeyed.gossip_addr()).await;
    wait_for(&unkeyed, "node 99 joined", |view| view.is_live(99)).await;
    let _feed = witness.receive().await;

    // Keyed members drop it, and the same naming node 1 with a higher generation.
    for member in &members {
        let to = member.gossip_addr();
        attacker.send(&datagram(stranger.clone(), GossipId::seed(to), Message::Announce, &[]), to).await;
        attacker.send(&datagram(newer_node_1.clone(), GossipId::seed(to), Message::Announce, &[]), to).await;
    }
    for member in &members {
        wait_for_stats(member, "2 unauthenticated datagrams", |stats| stats.datagrams_unauthenticated == 2)
            .await;
    }
    assert!(attacker.hears_nothing_from(&members).await, "a keyed member answered a forged datagram");
    for member in &members {
        let view = member.view();
        assert_eq!(view.ids(), [1, 2]);
        assert_eq!(
            view.member(1).map(|m| (m.generation, m.gossip_addr)),
            Some((node_1.generation, Some(node_1.addr)))
        );
        assert!(member.is_running());
    }
}

/// Attack 2's entry point: corrupted datagrams. Every sampled bit flip of an authentic datagram is
/// dropped, while the datagram itself would have been accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bit_flip_of_an_authentic_datagram_is_dropped() {
    init_tracing();
    // Capture node 3's real, sealed Announce to the address node 1 will have.
    let wire = Attacker::bind().await;
    let node_1_addr = wire.addr();
    let node_3 = start(3, &[node_1_addr], true).await;
    let authentic = wire.receive().await;
    assert!(auth::is_sealed(&authentic));
    drop(node_3); // gone: from now on only the captured datagram speaks for it
    drop(wire);

    let node_1 = start_at(config(1, node_1_addr, &[], true)).await;
    let attacker = Attacker::bind().await;
    let bits = authentic.len() * 8;
    let positions: Vec<usize> = (0..bits).step_by(2).collect();
    assert!(positions.len() >= 250, "{} positions of {bits} bits", positions.len());
    let mut sent = 0;
    for batch in positions.chunks(50) {
        for &bit in batch {
            let mut flipped = authentic.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            attacker.send(&flipped, node_1_addr).await;
        }
        sent += batch.len() as u64;
        wait_for_stats(&node_1, "every flip dropped", |stats| stats.datagrams_unauthenticated == sent).await;
    }
    let stats = node_1.stats();
    assert_eq!(
        (stats.datagrams_rejected, stats.identities_refused),
        (0, 0),
        "nothing reached foca: {stats:?}"
    );
    assert_eq!(node_1.view().ids(), [1]);

    // The datagram itself, unflipped, is accepted: node 3 joins.
    attacker.send(&authentic, node_1_addr).await;
    wait_for(&node_1, "node 3 joined", |view| view.is_live(3)).await;
}

/// Bit-flipped and forged identities at arbitrary addresses: a member holding the key but not in
/// the directory is never heard, never sent to, and cannot make a member send to another address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_outside_the_directory_is_ignored_and_never_contacted() {
    init_tracing();
    let members = keyed_cluster(2).await;
    for member in &members {
        member.set_directory(directory(&[1, 2])).expect("valid directory");
    }
    let insider = Attacker::bind().await;
    let victim = Attacker::bind().await;
    let node_7 = identity(7, insider.addr(), 1, grpc_addr(7));
    let node_2 = identity_of(&members[1]);
    for member in &members {
        let to = member.gossip_addr();
        let announce = datagram(node_7.clone(), GossipId::seed(to), Message::Announce, &[]);
        insider.send(&sealed(&announce), to).await;
        // Posing as node 2 (the key is all it takes), ask for a probe of the victim's address.
        let reflect =
            Message::PingReq { target: identity(8, victim.addr(), 1, grpc_addr(8)), probe_number: 1 };
        insider.send(&sealed(&datagram(node_2.clone(), identity_of(member), reflect, &[])), to).await;
        // And gossip a member at the victim's address.
        let planted = [Member::new(identity(9, victim.addr(), 1, grpc_addr(9)), 0, State::Alive)];
        let gossip = datagram(node_2.clone(), identity_of(member), Message::Gossip, &planted);
        insider.send(&sealed(&gossip), to).await;
    }
    // Each member refuses node 7, the probe's target and the planted member: when it reads them
    // (an identity refused) or, when a datagram is handled before the directory check can see
    // the identity, when gossip would send to it (a send refused). Which one it is depends on
    // the order the datagrams are handled in; that nothing reaches them is asserted below.
    let refused = |stats: &GossipStats| stats.identities_refused + stats.sends_refused >= 3;
    wait_for_stats(&members[0], "3 refusals", refused).await;
    wait_for_stats(&members[1], "3 refusals", refused).await;
    assert!(
        insider.hears_nothing_from(&members).await,
        "a member answered an identity outside the directory"
    );
    assert!(victim.hears_nothing_from(&members).await, "a member sent to an address named in a datagram");
    for member in &members {
        assert_eq!(member.view().ids(), [1, 2]);
        assert_eq!(member.stats().datagrams_unauthenticated, 0, "the insider's datagrams were authentic");
    }
}

/// A known id at another gRPC address (an impostor, or a flipped bit before authentication) is not
/// that member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_at_a_wrong_address_for_a_known_id_is_ignored() {
    init_tracing();
    let members = keyed_cluster(2).await;
    members[0].set_directory(directory(&[1, 2])).expect("valid directory");
    let before = members[0].view().member(2).cloned().expect("node 2");
    let insider = Attacker::bind().await;
    let impostor = identity(2, insider.addr(), before.generation + 1, "127.0.0.1:6666".to_owned());
    let to = members[0].gossip_addr();
    insider.send(&sealed(&datagram(impostor, GossipId::seed(to), Message::Announce, &[])), to).await;
    wait_for_stats(&members[0], "the impostor refused", |stats| stats.identities_refused == 1).await;
    assert!(insider.hears_nothing_from(&members).await, "node 1 answered the impostor");
    let view = members[0].view();
    assert_eq!(view.ids(), [1, 2]);
    assert_eq!(view.member(2), Some(&before), "node 2 is still the real one");
}

/// Members that joined before the first directory, and are not in it, leave the view; a member
/// of the directory that restarts (a new generation at its address) is still heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_drops_strangers_and_keeps_restarts() {
    init_tracing();
    let mut members = keyed_cluster(4).await;
    for member in &members[..3] {
        member.set_directory(directory(&[1, 2, 3])).expect("valid directory");
    }
    for member in &members[..3] {
        wait_for(member, "node 4 dropped", |view| view.ids() == [1, 2, 3]).await;
        assert!(member.stats().identities_refused >= 1);
    }

    let seed = members[0].gossip_addr();
    let old = members.remove(2);
    let (addr, generation) = (old.gossip_addr(), old.generation());
    drop(old);
    let mut again = config(3, addr, &[seed], true);
    again.generation = Some(generation + 1_000);
    let restarted = start_at(again).await;
    restarted.set_directory(directory(&[1, 2, 3])).expect("valid directory");
    for member in [&members[0], &members[1], &restarted] {
        wait_for(member, "node 3 back as its new generation", |view| {
            view.ids() == [1, 2, 3] && view.member(3).is_some_and(|m| m.generation == generation + 1_000)
        })
        .await;
    }
}

/// Attack 2: "you are down" with the member's generation + 2^40, repeated, made it renew thousands
/// of times a second until the timer queue panicked. Forging it needs the key here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_you_are_down_far_in_the_future_does_not_make_a_member_renew_in_a_loop() {
    init_tracing();
    let members = keyed_cluster(2).await;
    let insider = Attacker::bind().await;
    let first = identity_of(&members[0]);
    let forger = identity(9, insider.addr(), 1, grpc_addr(9));
    let renew_interval = MembershipConfig::new(1, loopback()).suspect_to_down_after;

    let started = Instant::now();
    let forgeries = 200;
    for _ in 0..forgeries {
        // Addressed to the member's current identity, as a peer that declared it down would.
        let current = identity_of(&members[0]);
        let far_future = GossipId { generation: first.generation + (1 << 40), ..current.clone() };
        let forged = datagram(
            forger.clone(),
            current,
            Message::TurnUndead,
            &[Member::new(far_future, 0, State::Down)],
        );
        insider.send(&sealed(&forged), first.addr).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats =
        wait_for_stats(&members[0], "every forgery screened", |stats| stats.generations_refused == forgeries)
            .await;
    // Renewals are at least `renew_interval` apart: however slow this machine, no more than this.
    let allowed = 1 + (started.elapsed().as_millis() / renew_interval.as_millis()) as u64;
    println!("{forgeries} forged 'you are down' in {:?}: {stats:?}", started.elapsed());
    assert!(stats.renewals >= 1, "the forgery was meant to reach foca: {stats:?}");
    assert!(stats.renewals <= allowed, "renewed {} times, at most {allowed} allowed", stats.renewals);
    assert!(stats.renewals_refused >= 1, "{stats:?}");
    assert_eq!(stats.timers_dropped, 0);
    assert!(members[0].is_running());
    assert!(
        identity_of(&members[0]).generation < first.generation + 1_000,
        "no jump to the forged generation"
    );

    // The member is back: node 2 sees its current generation.
    let node_1 = &members[0];
    wait_for(&members[1], "node 1 seen at its current generation", |view| {
        view.member(1).is_some_and(|m| m.generation == identity_of(node_1).generation)
    })
    .await;
}

/// Keyed and unkeyed members drop each other's datagrams, both ways, and count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_and_unkeyed_members_do_not_hear_each_other() {
    init_tracing();
    let keyed = start(1, &[], true).await;
    let unkeyed = start(2, &[keyed.gossip_addr()], false).await;
    let keyed_too = start(3, &[unkeyed.gossip_addr()], true).await;
    wait_for_stats(&keyed, "unsealed datagrams dropped", |stats| stats.datagrams_unauthenticated >= 1).await;
    wait_for_stats(&unkeyed, "sealed datagrams dropped", |stats| stats.datagrams_unauthenticated >= 1).await;
    assert_eq!(keyed.view().ids(), [1]);
    assert_eq!(unkeyed.view().ids(), [2]);
    assert_eq!(keyed_too.view().ids(), [3]);
    assert_eq!(unkeyed.stats().datagrams_rejected, 0, "a sealed datagram never reaches foca unkeyed");
}
