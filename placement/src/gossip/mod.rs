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
//!   declared down rejoins as its next generation by itself (`Identity::renew`).
//!
//! The cost is a few hundred lines of our own: the identity (`identity.rs`), the load reports as foca
//! custom broadcasts (`load.rs`), a timer queue (`timers.rs`), the view built from foca's member
//! list (`view.rs`) and the driver.

pub(crate) mod driver;
pub(crate) mod identity;
pub(crate) mod load;
pub(crate) mod timers;
pub(crate) mod view;
