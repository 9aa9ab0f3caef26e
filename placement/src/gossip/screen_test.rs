use foca::{AccumulatingRuntime, Foca, Incarnation, Member};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;
use crate::gossip::load::{self, LoadBroadcasts, LoadReport};
use crate::ring::NodeId;

/// The custom broadcast every test datagram ends with.
fn load_report() -> Vec<u8> {
    LoadReport { node: 2, generation: 1, seq: 1, load: 42 }.encode()
}

fn id(node: NodeId, port: u16, generation: u64) -> GossipId {
    GossipId {
        node,
        addr: ([127, 0, 0, 1], port).into(),
        generation,
        region: "eu".to_owned(),
        grpc_addr: format!("127.0.0.1:{}", 50_000 + node),
    }
}

/// This member: node 1 on port 7001, generation 100.
fn local() -> GossipId {
    id(1, 7001, 100)
}

/// Nodes 1, 2 and 3 at their usual gRPC addresses.
fn directory() -> Directory {
    Directory::new((1..=3).map(|node| (node, format!("127.0.0.1:{}", 50_000 + node))).collect())
        .expect("valid directory")
}

/// A datagram from `src` to this member, as foca encodes it, with `updates` and a custom broadcast.
fn datagram(src: GossipId, message: Message<GossipId>, updates: &[Member<GossipId>]) -> Vec<u8> {
    let header = Header { src, src_incarnation: 0, dst: local(), message };
    let mut bytes = Vec::new();
    Codec::<GossipId>::encode_header(&mut PostcardCodec, &header, &mut bytes).expect("encodes");
    bytes.extend_from_slice(&u16::try_from(updates.len()).expect("few").to_be_bytes());
    for update in updates {
        Codec::<GossipId>::encode_member(&mut PostcardCodec, update, &mut bytes).expect("encodes");
    }
    let broadcast = load_report();
    bytes.extend_from_slice(&u16::try_from(broadcast.len()).expect("short").to_be_bytes());
    bytes.extend_from_slice(&broadcast);
    bytes
}

/// The updates foca reads in `bytes` (and that the custom broadcast is still there).
fn updates_of(bytes: &[u8]) -> Vec<Member<GossipId>> {
    let mut rest = bytes;
    let _: Header<GossipId> = PostcardCodec.decode_header(&mut rest).expect("header");
    let count = u16::from_be_bytes([rest[0], rest[1]]);
    rest = &rest[2..];
    let updates = (0..count).map(|_| PostcardCodec.decode_member(&mut rest).expect("member")).collect();
    let broadcast = load_report();
    assert_eq!(rest[..2], u16::try_from(broadcast.len()).expect("short").to_be_bytes());
    assert_eq!(rest[2..], broadcast, "the custom broadcast follows the updates");
    updates
}

fn alive(id: GossipId) -> Member<GossipId> {
    Member::new(id, Incarnation::default(), foca::State::Alive)
}

#[test]
fn without_a_directory_ordinary_gossip_passes_untouched() {
    let local = local();
    let rules = Rules { local: &local, directory: None };
    let updates = [alive(id(3, 7003, 1)), Member::down(id(9, 7009, 1)), alive(id(1, 7001, 99))];
    let bytes = datagram(id(2, 7002, 1), Message::Gossip, &updates);
    assert_eq!(screen(&bytes, &rules), (Verdict::Pass, Refusals::default()));
}

#[test]
fn a_sender_outside_the_directory_is_refused() {
    let (local, directory) = (local(), directory());
    let rules = Rules { local: &local, directory: Some(&directory) };
    let stranger = datagram(id(99, 7099, 1), Message::Announce, &[]);
    assert_eq!(screen(&stranger, &rules), (Verdict::Refused, Refusals { identities: 1, generations: 0 }));

    let mut impostor = id(2, 7099, 1); // node 2's id, another gRPC address
    impostor.grpc_addr = "127.0.0.1:6666".to_owned();
    let forged = datagram(impostor, Message::Gossip, &[]);
    assert_eq!(screen(&forged, &rules), (Verdict::Refused, Refusals { identities: 1, generations: 0 }));
}

#[test]
fn a_request_to_contact_a_stranger_is_refused() {
    let (local, directory) = (local(), directory());
    let rules = Rules { local: &local, directory: Some(&directory) };
    // Node 2 is allowed, but it asks us to probe an address of its choosing.
    let reflect = Message::PingReq { target: id(99, 7099, 1), probe_number: 1 };
    let bytes = datagram(id(2, 7002, 1), reflect, &[]);
    assert_eq!(screen(&bytes, &rules), (Verdict::Refused, Refusals { identities: 1, generations: 0 }));
    let allowed = Message::PingReq { target: id(3, 7003, 1), probe_number: 1 };
    assert_eq!(screen(&datagram(id(2, 7002, 1), allowed, &[]), &rules).0, Verdict::Pass);
}

#[test]
fn refused_updates_are_cut_out_and_foca_takes_the_rest() {
    let (local, directory) = (local(), directory());
    let rules = Rules { local: &local, directory: Some(&directory) };
    let updates = [
        alive(id(3, 7003, 1)),
        alive(id(99, 7099, 1)),              // not in the directory
        Member::down(id(1, 7001, 99)),       // our previous generation: foca's business
        alive(id(1, 7001, 100 + (1 << 40))), // our address, absurdly newer
        Member::down(id(1, 7055, 101)),      // our node id elsewhere, newer
    ];
    let bytes = datagram(id(2, 7002, 1), Message::Gossip, &updates);
    let (verdict, refusals) = screen(&bytes, &rules);
    assert_eq!(refusals, Refusals { identities: 1, generations: 2 });
    let Verdict::Rewritten(rewritten) = verdict else { panic!("expected a rewrite, got {verdict:?}") };
    assert_eq!(updates_of(&rewritten), [updates[0].clone(), updates[2].clone()]);

    // foca accepts the rewritten datagram and learns exactly the allowed members.
    let mut config = foca::Config::new_lan(std::num::NonZeroU32::new(8).expect("non-zero"));
    config.notify_down_members = false;
    let (handler, loads) = LoadBroadcasts::new();
    let mut foca = Foca::with_custom_broadcast(
        local.clone(),
        config,
        SmallRng::seed_from_u64(1),
        PostcardCodec,
        handler,
    );
    foca.handle_data(&rewritten, AccumulatingRuntime::new()).expect("foca accepts it");
    assert_eq!(load::lock(&loads).load_of(2), 42, "the load report was read");
    let mut learned: Vec<NodeId> = foca.iter_members().map(|member| member.id().node).collect();
    learned.sort_unstable();
    assert_eq!(learned, [2, 3]);
    assert_eq!(foca.identity(), &local, "no renewal");
}

#[test]
fn newer_generations_of_this_member_are_refused_even_without_a_directory() {
    let local = local();
    let rules = Rules { local: &local, directory: None };
    // A forged "you are down" about ourselves 2^40 generations ahead, and the same as the sender.
    let ahead = id(1, 7001, 100 + (1 << 40));
    let bytes = datagram(id(2, 7002, 1), Message::Gossip, &[Member::down(ahead.clone())]);
    let (verdict, refusals) = screen(&bytes, &rules);
    assert_eq!(refusals, Refusals { identities: 0, generations: 1 });
    let Verdict::Rewritten(rewritten) = verdict else { panic!("expected a rewrite, got {verdict:?}") };
    assert!(updates_of(&rewritten).is_empty());

    let mut elsewhere = ahead.clone();
    elsewhere.addr = ([127, 0, 0, 1], 7055).into();
    let from_elsewhere = datagram(elsewhere, Message::TurnUndead, &[]);
    assert_eq!(
        screen(&from_elsewhere, &rules),
        (Verdict::Refused, Refusals { identities: 0, generations: 1 })
    );

    // Another node id at our address that would win the conflict (the same generation, a higher id).
    let squatter = id(5, 7001, 100);
    let bytes = datagram(id(2, 7002, 1), Message::Gossip, &[alive(squatter)]);
    assert_eq!(screen(&bytes, &rules).1, Refusals { identities: 0, generations: 1 });
}

#[test]
fn this_member_hears_of_itself_even_if_the_directory_forgot_it() {
    let local = id(7, 7007, 100);
    let directory = directory();
    let rules = Rules { local: &local, directory: Some(&directory) };
    let suspicion = Member::new(local.clone(), 0, foca::State::Suspect);
    let bytes = datagram(id(2, 7002, 1), Message::Gossip, &[suspicion]);
    assert_eq!(screen(&bytes, &rules), (Verdict::Pass, Refusals::default()));
}

#[test]
fn undecodable_datagrams_are_malformed() {
    let local = local();
    let rules = Rules { local: &local, directory: None };
    assert_eq!(screen(&[], &rules).0, Verdict::Malformed);
    assert_eq!(screen(&[0xff; 40], &rules).0, Verdict::Malformed);
    // The count promises one update that is not all there.
    let bytes = datagram(id(2, 7002, 1), Message::Gossip, &[alive(id(3, 7003, 1))]);
    let broadcast_len = 2 + load_report().len();
    assert_eq!(screen(&bytes[..bytes.len() - broadcast_len - 3], &rules).0, Verdict::Malformed);
    let mut too_many = datagram(id(2, 7002, 1), Message::Gossip, &[]);
    let count_at = too_many.len() - 8;
    too_many[count_at..count_at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(screen(&too_many, &rules).0, Verdict::Malformed);
}

proptest! {
    /// Whatever arrives, screening returns a verdict (never panics), and what it hands foca names
    /// no refused identity.
    #[test]
    fn screening_never_panics_and_never_passes_a_refused_update(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        flip in any::<prop::sample::Index>(),
    ) {
        let (local, directory) = (local(), directory());
        let rules = Rules { local: &local, directory: Some(&directory) };
        let _ = screen(&bytes, &rules);

        let updates = [alive(id(3, 7003, 1)), alive(id(99, 7099, 1))];
        let mut good = datagram(id(2, 7002, 1), Message::Gossip, &updates);
        let at = flip.index(good.len());
        good[at] ^= 0x01;
        if let (Verdict::Rewritten(handed), _) = screen(&good, &rules) {
            let mut rest = handed.as_slice();
            let _: Header<GossipId> = PostcardCodec.decode_header(&mut rest).expect("screened header");
            let count = u16::from_be_bytes([rest[0], rest[1]]);
            rest = &rest[2..];
            for _ in 0..count {
                let member: Member<GossipId> = PostcardCodec.decode_member(&mut rest).expect("screened");
                prop_assert!(rules.judge(member.id()).is_none(), "{member:?}");
            }
        }
    }
}
