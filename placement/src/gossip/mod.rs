//! Gossip membership on top of `foca` (SWIM).
//!
//! # Why foca rather than chitchat
//!
//! Both are maintained Rust crates for gossip membership. We chose `foca`:
//!
//! * **Detection we can reason about.** SWIM probes each member directly, then indirectly through
//!   others, and only then *suspects* it; a suspect has a fixed time to refute before it is declared
//!   down. Detection time is therefore about `probe_period + suspect_to_down_after`, whatever the
//!   cluster size, and tolerance to a pause is a single knob (`suspect_to_down_after`): with 100 ms
//!   probes and 400 ms of suspicion a killed node is down in about 0.6 s while a 200 ms pause is
//!   survived. chitchat's phi-accrual detector judges heartbeats that reach a node *indirectly*
//!   through randomly chosen gossip rounds, so their inter-arrival times are noisy and the
//!   threshold adapts to a learned window: sub-second detection means gossiping (full digests)
//!   every few tens of milliseconds from every node, and the time to detect depends on statistics
//!   rather than on two configured durations.
//! * **A pure state machine.** foca does no I/O: `handle_data`, `handle_timer` and friends return
//!   packets to send, timers to schedule and notifications (the raft-rs `Ready` pattern that
//!   STYLE.md asks for). We own the UDP socket and the timer queue in one driver loop
//!   (`driver.rs`), which is also what lets tests pause a member exactly like `SIGSTOP` would.
//!   chitchat brings its own transport and tasks: less code to write (its integration is a
//!   `spawn_chitchat` call and a key-value API, which would have made the load number trivial), but
//!   no seam to pause, inspect or drive it.
//! * **Restarts and false positives.** foca identities carry a generation: a restarted node (same
//!   id and address, higher generation) replaces its old identity at once, and a node wrongly
//!   declared down rejoins as its next generation by itself (the driver does it, at most once per
//!   `suspect_to_down_after`, rather than foca's `Identity::renew` on every "you are down").
//!
//! The cost is a few hundred lines of our own: the identity (`identity.rs`), the load reports as foca
//! custom broadcasts (`load.rs`), a timer queue (`timers.rs`), the view built from foca's member
//! list (`view.rs`) and the driver.
//!
//! # A hostile network
//!
//! SWIM believes what it hears: a datagram names its sender, and every identity in it is an address
//! to talk to. Out of the box one forged 45-byte `Announce` adds a member at an address of the
//! sender's choosing (and routes actors to it), a forged generation of a member makes it renew
//! itself thousands of times a second, and a small datagram makes the cluster send many times its
//! size to an address named inside it. Three layers stop this:
//!
//! * **Authentication** (`auth.rs`). With a `GossipKey` (`MembershipConfig::key`, derived from a
//!   secret every member shares), every datagram sent is sealed with a keyed-BLAKE3 tag over the
//!   whole payload, and every datagram received is checked (constant-time) before foca reads a
//!   byte: a forged, corrupted (any bit flipped) or unkeyed datagram is dropped and counted. A
//!   member without a key drops sealed datagrams the same way, so keyed and unkeyed members never
//!   half-understand each other. Without a key, gossip works as before: anyone who can send UDP
//!   to the gossip port is a member.
//! * **The allow-list** (`directory.rs`, `screen.rs`). Once the control plane gives its node
//!   directory (`Membership::set_directory`: node ids and gRPC addresses), an identity whose id is
//!   not in it, or whose gRPC address differs, never enters foca: a datagram from it, or asking to
//!   contact it, is dropped; gossip about it is cut out of its datagram; and nothing is ever sent to
//!   it, so a datagram cannot make this member send to an address it does not know. Before the
//!   first directory (while the node starts), every identity is heard, as before.
//! * **Bounds** that hold even against a member with the key: an identity claiming this member's
//!   node id or address with a newer generation is refused (this member runs, so none exists);
//!   renewals are at most one per `suspect_to_down_after`; the timer queue drops the timer due last
//!   rather than panic when full (`timers.rs`).
//!
//! What is dropped is counted in [`GossipStats`](crate::GossipStats). Not covered: replaying an
//! authentic datagram (it repeats old news, which generations and incarnations make lose), and a
//! holder of the key, who is a member: the key is the cluster's trust boundary.

pub(crate) mod auth;
pub(crate) mod directory;
pub(crate) mod driver;
pub(crate) mod identity;
pub(crate) mod load;
pub(crate) mod screen;
pub(crate) mod stats;
pub(crate) mod timers;
pub(crate) mod view;

#[cfg(test)]
mod hostile_test;
