//! Screening an authentic datagram before foca reads it: which identities it names, and whether
//! this member accepts each. Pure: a datagram in, a verdict out.
//!
//! A foca datagram is a header (sender, destination, message), then optionally a `u16` count and
//! that many member updates, then custom broadcasts (our load reports). Two rules apply to every
//! identity in it but the destination (which foca itself checks is this member):
//!
//! * **Generations.** An identity that claims this member's node id with a newer generation, or
//!   this member's gossip address and would win foca's address conflict against it, is refused.
//!   This member is running, so no newer start of it exists. Accepting one at its address makes
//!   foca declare it down, peers learn that, and this member's own datagrams then lose the
//!   conflict: peers answer "you are down" and it renews, again and again until it passes the
//!   forged generation (2^40 renewals for a generation 2^40 ahead).
//! * **Directory.** Once a [`Directory`] is set, an identity it does not allow is refused, except
//!   this member's own.
//!
//! A refused sender, or a refused identity the message asks this member to contact (an indirect
//! probe's target), drops the whole datagram: answering would send to an address an attacker
//! chose. A refused member update is cut out and the rest handed to foca, so that one stale update
//! about a removed node never costs a live peer its acks.

use std::ops::Range;

use foca::{Codec, Header, Identity, Message, PostcardCodec};

use crate::gossip::directory::Directory;
use crate::gossip::identity::GossipId;

/// What this member accepts, as it stands when the datagram arrives.
pub(crate) struct Rules<'a> {
    /// This member's current identity.
    pub(crate) local: &'a GossipId,
    /// The directory, once the control plane gave one.
    pub(crate) directory: Option<&'a Directory>,
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it to foca as it is.
    Pass,
    /// Hand foca this instead: the same datagram without the refused updates.
    Rewritten(Vec<u8>),
    /// Drop it: it does not decode (foca would refuse it as well).
    Malformed,
    /// Drop it: its sender, or an identity its message names, is refused.
    Refused,
}

/// How many identities a datagram named that were refused, by rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Refusals {
    /// Refused by the directory.
    pub(crate) identities: u64,
    /// Refused for claiming a newer generation of this member.
    pub(crate) generations: u64,
}

impl Refusals {
    fn any(self) -> bool {
        self != Self::default()
    }

    fn count(&mut self, refusal: Refusal) {
        match refusal {
            Refusal::Directory => self.identities += 1,
            Refusal::Generation => self.generations += 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Directory,
    Generation,
}

impl Rules<'_> {
    fn judge(&self, id: &GossipId) -> Option<Refusal> {
        let local = self.local;
        if id != local
            && ((id.node == local.node && id.generation > local.generation)
                || (id.addr == local.addr && id.win_addr_conflict(local)))
        {
            return Some(Refusal::Generation);
        }
        match self.directory {
            Some(directory) if !directory_allows(directory, local, id) => Some(Refusal::Directory),
            _ => None,
        }
    }
}

/// Whether `directory` lets this member (`local`) hear from and talk to `id`.
///
/// This member's own identities (its older generations) are not the directory's business: a
/// directory that forgot this member must not stop it from hearing suspicions of itself.
pub(crate) fn directory_allows(directory: &Directory, local: &GossipId, id: &GossipId) -> bool {
    let own = id.node == local.node && id.grpc_addr == local.grpc_addr;
    own || directory.allows(id)
}

/// Judges `payload` (an authentic foca datagram) by `rules`.
pub(crate) fn screen(payload: &[u8], rules: &Rules<'_>) -> (Verdict, Refusals) {
    let mut refusals = Refusals::default();
    let mut rest = payload;
    let Ok(header) = Codec::<GossipId>::decode_header(&mut PostcardCodec, &mut rest) else {
        return (Verdict::Malformed, refusals);
    };
    for id in std::iter::once(&header.src).chain(named_by(&header)) {
        if let Some(refusal) = rules.judge(id) {
            refusals.count(refusal);
        }
    }
    if refusals.any() {
        return (Verdict::Refused, refusals);
    }
    // foca reads updates after the header when at least two bytes follow, except in a Broadcast;
    // an Announce with anything after the header is refused by foca itself.
    if rest.len() < 2 || matches!(header.message, Message::Broadcast | Message::Announce) {
        return (Verdict::Pass, refusals);
    }
    let header_len = payload.len() - rest.len();
    let count = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    rest = &rest[2..];
    // Not preallocated by `count`: that number came from the network.
    let mut kept: Vec<Range<usize>> = Vec::new();
    for _ in 0..count {
        let start = payload.len() - rest.len();
        let Ok(update) = Codec::<GossipId>::decode_member(&mut PostcardCodec, &mut rest) else {
            return (Verdict::Malformed, refusals);
        };
        match rules.judge(update.id()) {
            Some(refusal) => refusals.count(refusal),
            None => kept.push(start..payload.len() - rest.len()),
        }
    }
    if kept.len() == count {
        return (Verdict::Pass, refusals);
    }
    let kept_count = u16::try_from(kept.len()).expect("fewer than the u16 count read");
    let mut rewritten = Vec::with_capacity(payload.len());
    rewritten.extend_from_slice(&payload[..header_len]);
    rewritten.extend_from_slice(&kept_count.to_be_bytes());
    for range in kept {
        rewritten.extend_from_slice(&payload[range]);
    }
    rewritten.extend_from_slice(rest); // the custom broadcasts
    (Verdict::Rewritten(rewritten), refusals)
}

/// The identities a message asks the receiver to contact or vouches for, besides its sender.
fn named_by(header: &Header<GossipId>) -> Option<&GossipId> {
    match &header.message {
        Message::PingReq { target, .. } | Message::IndirectAck { target, .. } => Some(target),
        Message::IndirectPing { origin, .. } | Message::ForwardedAck { origin, .. } => Some(origin),
        Message::Ping(_)
        | Message::Ack(_)
        | Message::Announce
        | Message::Feed
        | Message::Gossip
        | Message::Broadcast
        | Message::TurnUndead => None,
    }
}

#[cfg(test)]
#[path = "screen_test.rs"]
mod screen_test;
