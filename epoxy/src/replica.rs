//! The replica: the whole protocol state of one epoxy participant, advanced by `propose`, `step`
//! and `tick`, whose effects are collected in a [`Ready`].

use crate::config::{
    BATCH_BYTES_MAX, BATCH_COMMANDS_MAX, COMMAND_KEY_BYTES_MAX, COMMIT_REQUEST_IDS_MAX, Config,
    INFLIGHT_INSTANCES_MAX, SLOT_RESERVATION_CHUNK,
};
use crate::exec::Executor;
use crate::executed_keys::ExecutedKeys;
use crate::message::{Message, Vote};
use crate::quiet_keys::{DroppedSlots, QuietKeys};
use crate::ready::{Outbound, Ready};
use crate::record::{InstanceRecord, KeyRecord, Record, Recovered};
use crate::resend_timer::ResendTimer;
use crate::rng::Rng;
use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};

/// Resends of a phase without a quorum after which the leader asks a replica that answered to
/// recover the instance ([`Message::TakeOver`]).
const TAKE_OVER_AFTER_RESENDS: u32 = 2;
/// Progress exchanges a replica waits, after its floor of forgotten instances passes a key
/// record's slots, before it drops the record: two, since a peer's report reaches this replica
/// and a leader at about the same time but each computes its floor at its own exchange.
pub(crate) const DROP_LAG_EXCHANGES: usize = 2;

/// An instance held in memory (until it is executed).
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) ballot: Ballot,
    pub(crate) accepted_ballot: Ballot,
    pub(crate) status: Status,
    pub(crate) attrs: Attributes,
    pub(crate) commands: Vec<Command>,
    /// See [`Vote::matches_proposal`].
    pub(crate) matches_proposal: bool,
    /// Present while this replica leads the instance (as its command leader, or as a recoverer in
    /// its Accept or PreAccept phase) and it is not committed.
    pub(crate) lead: Option<Box<Lead>>,
}

impl Instance {
    /// A promise and nothing else (a Prepare arrived before any value).
    pub(crate) fn promise_only(ballot: Ballot, leader: ReplicaId) -> Self {
        Self {
            ballot,
            accepted_ballot: Ballot::initial(leader),
            status: Status::None,
            attrs: Attributes::default(),
            commands: Vec::new(),
            matches_proposal: false,
            lead: None,
        }
    }
}

/// A recovery this replica runs (see [`crate::recovery`]).
#[derive(Debug)]
pub(crate) struct Recovery {
    pub(crate) ballot: Ballot,
    pub(crate) votes: std::collections::BTreeMap<ReplicaId, Vote>,
    /// During TryPreAccept: the proposal, and the replicas (other than the leader) known to hold
    /// it unchanged.
    pub(crate) trying: Option<(Attributes, Vec<Command>)>,
    pub(crate) holding: u64,
    /// During TryPreAccept: the replicas that refused the proposal.
    pub(crate) refused: u64,
    /// Replicas without a vote here that cannot have pre-accepted the leader's proposal unchanged
    /// (each led an interfering instance proposed before it saw this one).
    pub(crate) ruled_out: u64,
    pub(crate) ticks: u32,
    /// During TryPreAccept, after a refusal for instances in flight: ticks left before every
    /// replica that does not hold the proposal is asked again in the same ballot (0: not
    /// waiting). Those instances usually commit within a round trip or two.
    pub(crate) try_again_in: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    PreAccept,
    Accept,
}

/// A command leader's view of one of its instances.
#[derive(Debug)]
pub(crate) struct Lead {
    pub(crate) phase: Phase,
    /// The attributes the leader proposed; the fast path needs every reply to equal them.
    pub(crate) original: Attributes,
    /// Replicas (bit = index in `Config::replicas`) whose reply to the current phase arrived,
    /// this replica included.
    pub(crate) replied: u64,
    pub(crate) all_equal: bool,
    pub(crate) ticks: u32,
    /// Resends of the current phase.
    pub(crate) resends: u32,
    /// A replica that answered was asked to take the instance over on a reply, before any
    /// resend (see [`Replica::take_over_when_out_of_reach`]).
    pub(crate) asked_on_reply: bool,
}

/// Why a proposal was refused. None of these is retryable as is, except `Busy` later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("no commands to propose")]
    Empty,
    #[error("{0} commands in one batch, more than {BATCH_COMMANDS_MAX}")]
    TooManyCommands(usize),
    #[error("{0} bytes in one batch, more than {BATCH_BYTES_MAX}")]
    TooLarge(usize),
    #[error("a key of {0} bytes, more than {COMMAND_KEY_BYTES_MAX}")]
    KeyTooLarge(usize),
    #[error("{INFLIGHT_INSTANCES_MAX} instances are in flight: retry when some have committed")]
    Busy,
    /// Restarts in quick succession left more own slots to recover than a proposal may depend on.
    #[error("recovering {0} slots that restarts left, more than {SLOT_RESERVATION_CHUNK}: retry shortly")]
    Recovering(usize),
    /// The replica set is being reconfigured: retry in the next epoch.
    #[error("epoch {0} is sealed for a reconfiguration: retry in the next epoch")]
    Sealed(u64),
}

impl ProposeError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProposeError::Busy | ProposeError::Recovering(_) | ProposeError::Sealed(_))
    }
}

/// Monotonic counters, for metrics and `admin status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub proposed: u64,
    pub committed: u64,
    pub executed: u64,
    pub fast_path: u64,
    pub slow_path: u64,
    pub in_flight: u64,
    pub recoveries_started: u64,
    /// Recovery decisions by branch (see [`crate::recovery::Decision`]).
    pub recovered_commit: u64,
    pub recovered_accept: u64,
    pub recovered_try_pre_accept: u64,
    pub recovered_rerun: u64,
    pub recovered_no_op: u64,
    /// Steps of the executor's searches (an edge examined or an instance closed): its work, which
    /// should stay within a small multiple of `executed`.
    pub execution_steps: u64,
    /// Keys in the conflict index (in memory): the keys with an instance not yet forgotten.
    pub keys_held: u64,
    /// Key records dropped because every instance they named was forgotten (see `quiet_keys`).
    pub keys_forgotten: u64,
    /// Own instances a peer was asked to recover because no quorum answered a resend.
    pub take_overs_asked: u64,
    /// Phases this replica resent as a command leader, to the replicas that had not answered.
    pub resends: u64,
    /// The resend timeout it uses now, in ticks (see [`crate::resend_timer`]).
    pub resend_timeout_ticks: u64,
}

pub struct Replica {
    pub(crate) config: Config,
    pub(crate) me_bit: u64,
    pub(crate) next_slot: u64,
    /// Own slots below this are reserved (the record may still be in this round's write).
    pub(crate) slot_reserved: u64,
    /// Own slots below this are durably reserved: the reservation was in a round already written.
    pub(crate) slot_durable: u64,
    pub(crate) instances: HashMap<InstanceId, Instance>,
    pub(crate) keys: HashMap<Bytes, KeyRecord>,
    /// Keys whose record may be dropped once the slots it names are forgotten.
    pub(crate) quiet_keys: QuietKeys,
    /// What the dropped records named, in summary (see `quiet_keys`).
    pub(crate) dropped: DroppedSlots,
    /// What every record observed here named, in the same summary: a command leader covers with
    /// it what an acceptor may have dropped (see `merge_seen`).
    pub(crate) seen: DroppedSlots,
    /// Per replica index: records are dropped only once each slot they name is at or below this,
    /// the forgotten floor of [`DROP_LAG_EXCHANGES`] progress exchanges ago (see `merge_seen`).
    pub(crate) drop_floor: Vec<u64>,
    /// The forgotten floors of the last [`DROP_LAG_EXCHANGES`] progress exchanges, oldest first.
    pub(crate) floors_past: std::collections::VecDeque<Vec<u64>>,
    /// The keys of the instances executed here last (they leave `instances` when they execute).
    pub(crate) executed_keys: ExecutedKeys,
    pub(crate) executor: Executor,
    /// Own instances not yet committed.
    pub(crate) leading: BTreeSet<InstanceId>,
    pub(crate) ready: Ready,
    pub(crate) counters: Counters,
    /// Highest own slot committed here.
    pub(crate) own_committed_max: u64,
    /// Highest slot each peer reported committed (`Message::Progress`).
    pub(crate) peer_committed: HashMap<ReplicaId, u64>,
    pub(crate) progress_ticks: u32,
    pub(crate) recoveries: HashMap<InstanceId, Recovery>,
    /// Uncommitted instances this replica does not lead: ticks left before it recovers them.
    pub(crate) stalled: HashMap<InstanceId, u32>,
    /// Lowest ballot round the next recovery of an instance may use (raised by Nacks).
    pub(crate) min_round: HashMap<InstanceId, u32>,
    pub(crate) rng: Rng,
    /// Own slots of the reservation in force at the last restart that this replica has no record
    /// of: a PreAccept for some may have escaped before the crash. Dependencies compress to "the
    /// latest instance of each replica per key", which is sound only while each replica's
    /// instances on a key form a chain; the state a crash lost breaks that chain, so every new
    /// proposal depends on these slots explicitly until they have executed.
    pub(crate) restart_gap: BTreeSet<InstanceId>,
    /// Per replica index: ticks since a message from it last arrived (0 for this replica).
    pub(crate) silent_ticks: Vec<u32>,
    /// This replica's phases' times to a quorum: when to resend (see [`crate::resend_timer`]).
    pub(crate) resend_timer: ResendTimer,
    /// Per replica index: how long its instances take to commit here, from this replica's vote
    /// to the commit; the stall timeout of its instances follows it (see [`Replica::stall_wait`]).
    pub(crate) commit_delays: Vec<ResendTimer>,
    /// Instances of other leaders this replica voted for at the leader's ballot: the tick of the
    /// vote, for [`Replica::commit_delays`] when the leader's commit arrives.
    pub(crate) voted_at: HashMap<InstanceId, u64>,
    /// Ticks since this replica started.
    pub(crate) ticks: u64,
    /// Each peer's last reported executed watermarks (`Message::Progress`).
    pub(crate) peer_executed: HashMap<ReplicaId, Vec<u64>>,
    /// `peer_executed` as it was at the last progress exchange: slots a peer executed a whole
    /// interval ago that this replica still lacks were missed, not merely in flight.
    pub(crate) peer_executed_before: HashMap<ReplicaId, Vec<u64>>,
    /// Per replica index: instances up to this slot are forgotten.
    pub(crate) forgotten: Vec<u64>,
    /// Own instances from this slot on were proposed after the last restart that may have lost
    /// writes: this replica knows whether it committed each (see `Vote::leader_never_committed`).
    pub(crate) own_commits_known_from: u64,
    /// Per replica index: this replica is sealed and votes on no slot above these (see
    /// [`crate::seal`]).
    pub(crate) sealed: Option<Vec<u64>>,
    /// A seal this replica drives.
    pub(crate) sealing: Option<crate::seal::Sealing>,
    /// The cut of this epoch, once installed.
    pub(crate) cut: Option<crate::seal::Cut>,
}

impl Replica {
    /// A replica with no history.
    pub fn new(config: Config) -> Self {
        Self::recover(config, Recovered::default())
    }

    /// A replica restarted from its durable state. Committed instances execute; uncommitted ones,
    /// its own included, are recovered at a higher ballot after a jittered wait (a restarted leader
    /// never resumes ballot 0). When the restart may have lost writes (a power loss), this replica
    /// can no longer vouch that it did not commit the own instances it proposed before.
    pub fn recover(config: Config, recovered: Recovered) -> Self {
        config.validate().expect("valid epoxy config");
        let me = config.index_of(config.id).expect("validated");
        let own_commits_known_from = if recovered.writes_complete {
            recovered.own_commits_known_from
        } else {
            recovered.own_commits_known_from.max(recovered.slot_reservation)
        };
        let mut replica = Self {
            me_bit: 1 << me,
            next_slot: recovered.slot_reservation.max(1),
            slot_reserved: recovered.slot_reservation,
            slot_durable: recovered.slot_reservation,
            instances: HashMap::new(),
            keys: HashMap::new(),
            quiet_keys: QuietKeys::new(config.replicas.len()),
            dropped: DroppedSlots::new(config.replicas.len()),
            seen: DroppedSlots::new(config.replicas.len()),
            drop_floor: vec![0; config.replicas.len()],
            floors_past: std::collections::VecDeque::new(),
            executor: Executor::default(),
            leading: BTreeSet::new(),
            ready: Ready::default(),
            counters: Counters::default(),
            own_committed_max: 0,
            peer_committed: HashMap::new(),
            progress_ticks: 0,
            recoveries: HashMap::new(),
            stalled: HashMap::new(),
            min_round: HashMap::new(),
            rng: Rng::new(config.seed ^ 0x5eed_0000_0000_0000),
            restart_gap: BTreeSet::new(),
            executed_keys: ExecutedKeys::default(),
            silent_ticks: vec![0; config.replicas.len()],
            resend_timer: ResendTimer::default(),
            commit_delays: vec![ResendTimer::with_max(config.stall_ticks_max()); config.replicas.len()],
            voted_at: HashMap::new(),
            ticks: 0,
            peer_executed: HashMap::new(),
            peer_executed_before: HashMap::new(),
            forgotten: vec![0; config.replicas.len()],
            own_commits_known_from,
            sealed: None,
            sealing: None,
            cut: None,
            config,
        };
        if let Some(bounds) = recovered.seal {
            let bounds: Vec<u64> =
                replica.config.replicas.iter().map(|r| crate::seal::bound_of(&bounds, *r)).collect();
            replica.sealed = Some(bounds);
        }
        if let Some(cut) = &recovered.cut {
            assert_eq!(cut.epoch, replica.config.epoch, "a stored cut of another epoch: cut={cut:?}");
            if replica.sealed.is_none() {
                replica.sealed = Some(cut.bounds.iter().map(|(_, s)| *s).collect());
            }
            replica.executor.set_clamp(cut.bounds.iter().copied());
            replica.cut = Some(cut.clone());
        }
        if own_commits_known_from != recovered.own_commits_known_from {
            replica.ready.persist.push(Record::OwnCommitsKnownFrom(own_commits_known_from));
        }
        // What it reports as its own committed slots (`Progress`) covers what it executed: a peer
        // that missed a Commit learns of the slot only so.
        let me = replica.config.id;
        for (r, through) in recovered.forgotten {
            if let Some(at) = replica.config.index_of(r) {
                replica.forgotten[at] = through;
                replica.executor.mark_executed_through(r, through);
            }
            if r == me {
                replica.own_committed_max = replica.own_committed_max.max(through);
            }
        }
        // What records were dropped before is not known: every key without one depends on the
        // floors (see `quiet_keys`).
        replica.dropped.restarted(&replica.forgotten);
        replica.seen.restarted(&replica.forgotten);
        replica.drop_floor = replica.forgotten.clone();
        // A record whose instances are all forgotten is dropped (see `quiet_keys`); its removal
        // may not have reached the disk before the stop.
        for (key, record) in recovered.keys {
            if replica.key_is_quiet(&record) {
                replica.ready.persist.push(Record::ForgetKey { key });
                continue;
            }
            replica.watch_key(&key, &record);
            replica.keys.insert(key, record);
        }
        for id in recovered.executed {
            replica.executor.mark_executed(id);
            if id.replica == me {
                replica.own_committed_max = replica.own_committed_max.max(id.slot);
            }
        }
        for record in recovered.instances {
            let id = record.id;
            if replica.executor.is_executed(id) {
                continue;
            }
            if replica.cut.is_some() && replica.above_vote_limit(id) {
                assert!(
                    record.status != Status::Committed,
                    "a stored instance committed above the cut: instance={id}"
                );
                continue; // never committed anywhere: dropped when the cut was installed
            }
            if id.replica == replica.config.id {
                replica.next_slot = replica.next_slot.max(id.slot + 1);
            }
            let instance = Instance {
                ballot: record.ballot,
                accepted_ballot: record.accepted_ballot,
                status: record.status,
                attrs: record.attrs,
                commands: record.commands,
                matches_proposal: record.matches_proposal,
                lead: None,
            };
            if record.status == Status::Committed {
                if id.replica == replica.config.id {
                    replica.own_committed_max = replica.own_committed_max.max(id.slot);
                }
                replica.executor.on_committed(id);
            } else {
                let wait = replica.stall_wait(id);
                replica.stalled.insert(id, wait);
            }
            replica.instances.insert(id, instance);
        }
        // Slots of the last reservation this replica has no record of: a PreAccept may have left
        // for some before the crash. Recover each (a no-op where nobody saw it) so that no peer
        // waits on a slot forever.
        // (Earlier restarts may have left such slots too: all of them, not only the last chunk.)
        // They are recovered at the first tick: every proposal of this replica waits on them,
        // and no peer knows of them before it sees such a proposal, so none competes yet.
        for slot in replica.executor.executed_contiguous(me) + 1..replica.slot_reserved {
            let id = InstanceId { replica: me, slot };
            if !replica.executor.is_executed(id) && !replica.instances.contains_key(&id) {
                replica.stalled.insert(id, 1);
                replica.restart_gap.insert(id);
            }
        }
        replica.counters.in_flight = replica.leading.len() as u64;
        replica.drop_above_limit();
        replica.chase_cut();
        replica
    }

    pub fn id(&self) -> ReplicaId {
        self.config.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn counters(&self) -> Counters {
        Counters { keys_held: self.keys.len() as u64, ..self.counters }
    }

    pub fn is_executed(&self, id: InstanceId) -> bool {
        self.executor.is_executed(id)
    }

    /// The status of an instance held in memory (executed instances are not).
    pub fn status(&self, id: InstanceId) -> Option<Status> {
        self.instances.get(&id).map(|i| i.status)
    }

    /// Own instances not yet committed, and recoveries under way (diagnostics).
    pub fn stuck(&self) -> (Vec<InstanceId>, Vec<InstanceId>) {
        let leading = self.leading.iter().take(5).copied().collect();
        let mut recovering: Vec<InstanceId> = self.recoveries.keys().copied().collect();
        recovering.sort_unstable();
        recovering.truncate(5);
        (leading, recovering)
    }

    /// A one-line description of what this replica holds for an instance (diagnostics).
    pub fn debug_instance(&self, id: InstanceId) -> String {
        format!(
            "{id}: status {:?}, ballot {:?}, leading {}, recovering {:?}, stalled {:?}, min_round {:?}, executed {}",
            self.instances.get(&id).map(|i| i.status),
            self.instances.get(&id).map(|i| i.ballot),
            self.leading.contains(&id),
            self.recoveries.get(&id).map(|r| (r.ballot, r.votes.len(), r.trying.is_some())),
            self.stalled.get(&id),
            self.min_round.get(&id),
            self.is_executed(id)
        )
    }

    /// Instances that committed instances wait on, not yet committed here.
    pub fn blocked_on(&self) -> Vec<InstanceId> {
        let mut ids: Vec<_> = self.executor.waiting_on().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Proposes a batch of commands as one new instance led by this replica.
    pub fn propose(&mut self, commands: Vec<Command>) -> Result<InstanceId, ProposeError> {
        if commands.is_empty() {
            return Err(ProposeError::Empty);
        }
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(ProposeError::TooManyCommands(commands.len()));
        }
        let mut bytes = 0;
        for c in &commands {
            if c.key.len() > COMMAND_KEY_BYTES_MAX {
                return Err(ProposeError::KeyTooLarge(c.key.len()));
            }
            bytes += c.bytes();
        }
        if bytes > BATCH_BYTES_MAX {
            return Err(ProposeError::TooLarge(bytes));
        }
        if self.sealed.is_some() {
            return Err(ProposeError::Sealed(self.config.epoch));
        }
        if self.leading.len() >= INFLIGHT_INSTANCES_MAX {
            return Err(ProposeError::Busy);
        }
        // Every proposal depends on the whole restart gap, which grows by up to a chunk with each
        // restart that comes before the last one's gap is recovered (a node restarted into a
        // minority, say). Past a chunk the proposal could exceed DEPS_MAX, which no peer decodes
        // and no restart loads: wait for the recoveries instead.
        self.prune_restart_gap();
        if self.restart_gap.len() > SLOT_RESERVATION_CHUNK as usize {
            return Err(ProposeError::Recovering(self.restart_gap.len()));
        }
        let id = InstanceId { replica: self.config.id, slot: self.next_slot };
        self.next_slot += 1;
        // A slot is used only once it is durably reserved, so that a restart never reuses a slot
        // whose PreAccept may have left before a crash. Reservations run ahead in chunks.
        // Reserved in a round already written: a reservation raised in this round is not durable
        // until its write, and a round may propose more than half a chunk of instances.
        let reserved_before = id.slot < self.slot_durable;
        if id.slot + SLOT_RESERVATION_CHUNK / 2 >= self.slot_reserved {
            self.slot_reserved = id.slot + SLOT_RESERVATION_CHUNK;
            self.ready.persist.push(Record::SlotReservation(self.slot_reserved));
        }
        let ballot = Ballot::initial(self.config.id);
        let mut attrs = Attributes { seq: 1, deps: Vec::new() };
        attrs.deps.extend(self.restart_gap.iter().copied());
        self.merge_local_attrs(id, &commands, &mut attrs);
        self.merge_seen(id, &commands, &mut attrs);
        self.observe_keys(id, &commands, attrs.seq);
        let instance = Instance {
            ballot,
            accepted_ballot: ballot,
            status: Status::PreAccepted,
            attrs: attrs.clone(),
            commands,
            matches_proposal: true,
            lead: Some(Box::new(Lead {
                phase: Phase::PreAccept,
                original: attrs,
                replied: self.me_bit,
                all_equal: true,
                ticks: 0,
                resends: 0,
                asked_on_reply: false,
            })),
        };
        self.ready.persist.push(record_of(id, &instance));
        self.instances.insert(id, instance);
        self.broadcast_phase(id, None, !reserved_before);
        self.leading.insert(id);
        self.counters.proposed += 1;
        self.counters.in_flight = self.leading.len() as u64;
        self.check_pre_accept_quorum(id);
        Ok(id)
    }

    /// Handles one message from a peer.
    pub fn step(&mut self, from: ReplicaId, message: Message) {
        let Some(from_at) = self.config.index_of(from).filter(|_| from != self.config.id) else {
            return; // not a peer: a misdirected or forged message changes nothing
        };
        self.silent_ticks[from_at] = 0;
        match &message {
            // A sealed replica never votes above its limit (see `crate::seal`): silence, so the
            // leader's quorum never forms there.
            Message::PreAccept { id, .. } | Message::Accept { id, .. } | Message::TryPreAccept { id, .. }
                if self.above_vote_limit(*id) =>
            {
                return;
            }
            // Above an installed cut an instance is a no-op forever, and its records are gone:
            // a promise there would only overwrite an older one.
            Message::Prepare { id, .. } if self.cut.is_some() && self.above_vote_limit(*id) => return,
            Message::Commit { id, .. } if self.cut.is_some() && self.above_vote_limit(*id) => {
                panic!("a commit above the cut of epoch {}: instance={id} from={from}", self.config.epoch)
            }
            _ => {}
        }
        match message {
            Message::PreAccept { id, ballot, attrs, commands } => {
                self.handle_pre_accept(from, id, ballot, attrs, commands)
            }
            Message::PreAcceptOk { id, ballot, attrs } => self.handle_pre_accept_ok(from, id, ballot, attrs),
            Message::Accept { id, ballot, attrs, commands } => {
                self.handle_accept(from, id, ballot, attrs, commands)
            }
            Message::AcceptOk { id, ballot } => self.handle_accept_ok(from, id, ballot),
            Message::Commit { id, attrs, commands } => self.handle_commit(id, attrs, commands),
            Message::CommitRequest { ids } => self.handle_commit_request(from, ids),
            Message::Progress { committed_up_to, executed_up_to } => {
                self.handle_progress(from, committed_up_to, executed_up_to)
            }
            Message::Prepare { id, ballot } => self.handle_prepare(from, id, ballot),
            Message::PrepareOk { id, ballot, state } => self.handle_prepare_ok(from, id, ballot, state),
            Message::TryPreAccept { id, ballot, attrs, commands, holders } => {
                self.handle_try_pre_accept(from, id, ballot, attrs, commands, &holders)
            }
            Message::TryPreAcceptOk { id, ballot } => self.handle_try_pre_accept_ok(from, id, ballot),
            Message::TryPreAcceptNack { id, ballot, committed, excluded, .. } => {
                self.handle_try_pre_accept_nack(from, id, ballot, committed, &excluded)
            }
            Message::Nack { id, promised } => self.handle_nack(id, promised),
            Message::Seal { epoch } => self.handle_seal(from, epoch),
            Message::SealOk { epoch, bounds } => self.handle_seal_ok(from, epoch, bounds),
            Message::TakeOver { id } => self.handle_take_over(from, id),
        }
    }

    /// Advances time by one tick: resends unanswered phases, settles for the slow path when a fast
    /// quorum does not answer in time, and asks peers for commits the executor waits on.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.prune_restart_gap();
        let me = self.me_bit;
        for (at, silent) in self.silent_ticks.iter_mut().enumerate() {
            if me & (1 << at) == 0 {
                *silent = silent.saturating_add(1);
            }
        }
        let resend_after = self.resend_timer.timeout(self.config.resend_ticks_min, self.config.retry_ticks);
        self.counters.resend_timeout_ticks = u64::from(resend_after);
        let mut resent = false;
        let leading: Vec<InstanceId> = self.leading.iter().copied().collect();
        for id in leading {
            let (phase, ticks, replied) = {
                let lead = self
                    .instances
                    .get_mut(&id)
                    .and_then(|i| i.lead.as_mut())
                    .expect("leading instance has a lead");
                lead.ticks += 1;
                (lead.phase, lead.ticks, lead.replied)
            };
            if phase == Phase::PreAccept
                && ticks >= self.config.fast_path_wait_ticks
                && replied.count_ones() as usize >= self.config.slow_quorum()
            {
                self.start_accept(id);
                continue;
            }
            if ticks >= resend_after {
                let instance = self.instances.get_mut(&id).expect("leading instance in memory");
                let lead = instance.lead.as_mut().expect("lead");
                lead.ticks = 0;
                lead.resends += 1;
                self.counters.resends += 1;
                resent = true;
                let (after_persist, resends) = (lead.phase == Phase::Accept, lead.resends);
                self.broadcast_phase(id, Some(replied), after_persist);
                if resends >= TAKE_OVER_AFTER_RESENDS || !self.quorum_within_reach(replied) {
                    self.ask_take_over(id, replied);
                }
            }
        }
        if resent {
            self.resend_timer.backed_off();
        }
        // Dependencies the executor waits on: any peer may have them committed.
        let due = self.executor.tick(self.config.commit_request_ticks.min(resend_after));
        for chunk in due.chunks(COMMIT_REQUEST_IDS_MAX) {
            for &peer in &self.config.replicas {
                if peer != self.config.id {
                    self.ready
                        .messages
                        .push(Outbound { to: peer, message: Message::CommitRequest { ids: chunk.to_vec() } });
                }
            }
        }
        self.tick_recovery();
        self.tick_seal();
        self.progress_ticks += 1;
        if self.progress_ticks >= self.config.progress_ticks() {
            self.progress_ticks = 0;
            self.exchange_progress();
            if !self.epoch_done() {
                self.chase_cut();
            }
        }
    }

    /// Tells peers how far this replica's own instances are committed, and asks each peer for its
    /// slots up to what it reported that this replica has not seen committed; and, for every other
    /// replica, asks the peer that had executed the most of its slots an interval ago for those
    /// this replica still lacks (so that it catches up on a leader that is down for good).
    fn exchange_progress(&mut self) {
        let me = self.config.id;
        // The watermarks reported must survive a crash: this round's write is synced and the
        // Progress messages leave after it.
        let executed_up_to: Vec<u64> =
            self.config.replicas.iter().map(|r| self.executor.executed_contiguous(*r)).collect();
        self.ready.persist.push(Record::Checkpoint);
        self.forget_executed_everywhere(&executed_up_to);
        for at in 0..self.config.replicas.len() {
            let peer = self.config.replicas[at];
            if peer == me {
                continue;
            }
            let message = Message::Progress {
                committed_up_to: self.own_committed_max,
                executed_up_to: executed_up_to.clone(),
            };
            self.ready.messages_after_persist.push(Outbound { to: peer, message });
            let reported = self.peer_committed.get(&peer).copied().unwrap_or(0);
            let mut ids = Vec::new();
            let first = self.executor.executed_contiguous(peer) + 1;
            for slot in (first..=reported).take(4 * COMMIT_REQUEST_IDS_MAX) {
                let id = InstanceId { replica: peer, slot };
                let committed = self.instances.get(&id).is_some_and(|i| i.status == Status::Committed);
                if !committed && !self.executor.is_executed(id) {
                    ids.push(id);
                    if ids.len() == COMMIT_REQUEST_IDS_MAX {
                        break;
                    }
                }
            }
            ids.extend(self.missed_elsewhere(peer, COMMIT_REQUEST_IDS_MAX - ids.len()));
            if !ids.is_empty() {
                self.ready.messages.push(Outbound { to: peer, message: Message::CommitRequest { ids } });
            }
        }
        self.peer_executed_before.clone_from(&self.peer_executed);
    }

    /// Slots of replicas other than `peer` (and this one) that `peer` had executed by the last
    /// exchange, and had executed the most of, that this replica has not seen committed; at most
    /// `max`.
    fn missed_elsewhere(&self, peer: ReplicaId, max: usize) -> Vec<InstanceId> {
        let mut ids = Vec::new();
        let Some(theirs) = self.peer_executed_before.get(&peer) else { return ids };
        for (at, &replica) in self.config.replicas.iter().enumerate() {
            if replica == peer || replica == self.config.id {
                continue;
            }
            let through = theirs[at];
            // The first peer with the highest watermark answers for this replica.
            let best = (self.config.replicas.iter())
                .filter(|r| **r != replica && **r != self.config.id)
                .filter_map(|r| self.peer_executed_before.get(r).map(|w| (w[at], *r)))
                .max_by_key(|(w, r)| (*w, std::cmp::Reverse(*r)));
            if best.map(|(_, r)| r) != Some(peer) {
                continue;
            }
            for slot in
                (self.executor.executed_contiguous(replica) + 1..=through).take(4 * COMMIT_REQUEST_IDS_MAX)
            {
                if ids.len() >= max {
                    return ids;
                }
                let id = InstanceId { replica, slot };
                let committed = self.instances.get(&id).is_some_and(|i| i.status == Status::Committed);
                if !committed && !self.executor.is_executed(id) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    pub(crate) fn handle_progress(
        &mut self,
        from: ReplicaId,
        committed_up_to: u64,
        executed_up_to: Vec<u64>,
    ) {
        let known = self.peer_committed.entry(from).or_insert(0);
        *known = (*known).max(committed_up_to);
        if executed_up_to.len() == self.config.replicas.len() {
            let reported = self.peer_executed.entry(from).or_insert_with(|| vec![0; executed_up_to.len()]);
            for (old, new) in reported.iter_mut().zip(executed_up_to) {
                *old = (*old).max(new); // durable at the sender, so it never goes back
            }
        }
    }

    /// Forgets the instances every replica has executed (as far as each has reported).
    fn forget_executed_everywhere(&mut self, own: &[u64]) {
        if self.peer_executed.len() + 1 < self.config.replicas.len() {
            return; // not every peer has reported yet
        }
        for (at, &replica) in self.config.replicas.iter().enumerate() {
            let floor = self.peer_executed.values().map(|w| w[at]).fold(own[at], u64::min);
            if floor > self.forgotten[at] {
                self.forgotten[at] = floor;
                self.ready.persist.push(Record::Forget { replica, through: floor });
            }
        }
        // Records are dropped at the floors of a few exchanges ago: by then a leader has mostly
        // heard the reports those floors came from, and its proposals cover the drops (see
        // `merge_seen`); dropped at once, they made acceptors' votes differ from proposals.
        self.floors_past.push_back(self.forgotten.clone());
        if self.floors_past.len() <= DROP_LAG_EXCHANGES {
            return;
        }
        let lagged = self.floors_past.pop_front().expect("longer than the lag");
        let mut advanced = Vec::new();
        for (at, floor) in lagged.into_iter().enumerate() {
            if floor > self.drop_floor[at] {
                self.drop_floor[at] = floor;
                advanced.push((at, floor));
            }
        }
        for (at, floor) in advanced {
            self.forget_quiet_keys(at, floor);
        }
    }

    /// Drops the records of the keys named with a slot of the replica at index `at` up to
    /// `through` whose instances are now all forgotten (see `quiet_keys`).
    fn forget_quiet_keys(&mut self, at: usize, through: u64) {
        for key in self.quiet_keys.due(at, through) {
            let Some(record) = self.keys.get(&key) else { continue }; // dropped already
            if self.key_is_quiet(record) {
                self.dropped.dropped_record(&key, record.seq_max);
                for latest in &record.latest {
                    if let Some(at) = self.config.index_of(latest.replica) {
                        self.dropped.dropped(&key, at, latest.slot);
                    }
                }
                self.keys.remove(&key);
                self.counters.keys_forgotten += 1;
                self.ready.persist.push(Record::ForgetKey { key });
            }
        }
    }

    /// Looks at `key` again when each slot its `record` names is forgotten (see `quiet_keys`).
    pub(crate) fn watch_key(&mut self, key: &Bytes, record: &KeyRecord) {
        for latest in &record.latest {
            if let Some(at) = self.config.index_of(latest.replica) {
                self.quiet_keys.named(at, latest.slot, key.clone());
            }
        }
    }

    /// Whether every instance `record` names is at or below the drop floor: forgotten (executed
    /// on every replica) a few progress exchanges ago.
    pub(crate) fn key_is_quiet(&self, record: &KeyRecord) -> bool {
        record
            .latest
            .iter()
            .all(|l| self.config.index_of(l.replica).is_some_and(|at| l.slot <= self.drop_floor[at]))
    }

    /// The slot through which `replica`'s instances are forgotten here (0: none, or not a member).
    pub(crate) fn forgotten_through(&self, replica: ReplicaId) -> u64 {
        self.config.index_of(replica).map_or(0, |at| self.forgotten[at])
    }

    /// Takes everything produced since the last call, after executing what can be executed.
    pub fn ready(&mut self) -> Ready {
        // The driver writes this round before it feeds more input (see [`Ready`]).
        self.slot_durable = self.slot_reserved;
        let before = self.ready.executed.len();
        self.executor.run(&mut self.instances, &mut self.ready.executed);
        for e in &self.ready.executed[before..] {
            self.executed_keys.record(e.id, &e.commands);
        }
        self.counters.executed += (self.ready.executed.len() - before) as u64;
        self.counters.execution_steps = self.executor.search_steps;
        std::mem::take(&mut self.ready)
    }

    // ---- shared steps of the handlers ----

    /// Adds what this replica knows to `attrs`: every instance of every replica that last touched
    /// one of the keys (but `id` itself), and a seq above all of theirs.
    pub(crate) fn merge_local_attrs(&self, id: InstanceId, commands: &[Command], attrs: &mut Attributes) {
        let mut without_record = false;
        for c in commands {
            if let Some(k) = self.keys.get(&c.key) {
                for &latest in &k.latest {
                    let Some(dep) = self.clamp_to_cut(latest) else { continue };
                    if dep != id {
                        attrs.deps.push(dep);
                        attrs.seq = attrs.seq.max(k.seq_max + 1);
                    }
                }
            } else {
                without_record = true;
            }
        }
        if without_record {
            self.merge_dropped(id, commands, attrs);
        }
        attrs.normalize();
    }

    /// For the keys of `commands` without a record: the slots their dropped records named, unless
    /// `attrs` covers them already, and a seq above theirs (see `quiet_keys`). Forgotten, so
    /// nothing waits on them.
    fn merge_dropped(&self, id: InstanceId, commands: &[Command], attrs: &mut Attributes) {
        for c in commands {
            if self.keys.contains_key(&c.key) {
                continue;
            }
            let Some((slots, seq)) = self.dropped.of(&c.key) else { return };
            self.merge_bucket(id, slots, seq, None, attrs);
        }
    }

    /// Adds a bucket's summary to `attrs` (see `quiet_keys`): a seq above `seq`, and per replica
    /// index the slot in `slots` (at most `ceiling`'s, when given) unless `attrs` covers it.
    fn merge_bucket(
        &self,
        id: InstanceId,
        slots: &[u64],
        seq: u64,
        ceiling: Option<&[u64]>,
        attrs: &mut Attributes,
    ) {
        if seq > 0 {
            attrs.seq = attrs.seq.max(seq + 1);
        }
        for (at, &slot) in slots.iter().enumerate() {
            let replica = self.config.replicas[at];
            let slot = ceiling.map_or(slot, |c| slot.min(c[at]));
            // An instance's own leader's earlier slots are all it can follow of that replica.
            let slot = if replica == id.replica { slot.min(id.slot.saturating_sub(1)) } else { slot };
            if slot == 0 {
                continue;
            }
            let Some(dep) = self.clamp_to_cut(InstanceId { replica, slot }) else { continue };
            if !crate::handler::covers(&attrs.deps, dep) {
                attrs.deps.push(dep);
            }
        }
    }

    /// A command leader's proposal also covers what an acceptor may have dropped, so that the
    /// acceptor's vote (the proposal merged with its own conflict index) equals it and the
    /// instance commits on the fast path: per key, the highest slot of each replica that any record
    /// in the key's bucket named, clamped to this replica's forgotten floor (an acceptor drops
    /// records only at floors a few progress exchanges old, which a leader has mostly reached; and
    /// forgotten, so no executor waits on them), and a seq above every seq seen in the bucket.
    /// Without it a leader still holding a bucket-mate's record proposed less than an acceptor
    /// that had dropped it voted: a quarter of the instances of KV puts from one leader over 32,000
    /// keys took the slow path. A higher seq and forgotten deps are always a valid proposal.
    fn merge_seen(&self, id: InstanceId, commands: &[Command], attrs: &mut Attributes) {
        for c in commands {
            let Some((slots, seq)) = self.seen.of(&c.key) else { return };
            self.merge_bucket(id, slots, seq, Some(&self.forgotten), attrs);
        }
        attrs.normalize();
    }

    /// The attributes this replica's conflict index gives a new instance `id` of `commands`: the
    /// dependency lookup of PreAccept and propose, alone. For benchmarks (`benches/epoxy.rs`).
    #[doc(hidden)]
    pub fn local_attrs(&self, id: InstanceId, commands: &[Command]) -> Attributes {
        let mut attrs = Attributes { seq: 1, deps: Vec::new() };
        self.merge_local_attrs(id, commands, &mut attrs);
        attrs
    }

    /// Drops the slots of the restart gap that have executed.
    fn prune_restart_gap(&mut self) {
        if !self.restart_gap.is_empty() {
            let executor = &self.executor;
            self.restart_gap.retain(|gap| !executor.is_executed(*gap));
        }
    }

    /// Whether some own slot a crash may have lost is not executed yet (see `restart_gap`).
    pub(crate) fn restart_gap_open(&self) -> bool {
        self.restart_gap.iter().any(|gap| !self.executor.is_executed(*gap))
    }

    /// Records that `id` touches the keys of `commands` with sequence number `seq`.
    pub(crate) fn observe_keys(&mut self, id: InstanceId, commands: &[Command], seq: u64) {
        let mut keys: Vec<&Bytes> = commands.iter().map(|c| &c.key).collect();
        keys.sort_unstable();
        keys.dedup();
        let at = self.config.index_of(id.replica);
        for key in keys {
            self.seen.saw(key, at, id.slot, seq);
            let record = self.keys.entry(key.clone()).or_default();
            if record.observe(id, seq) {
                self.ready.persist.push(Record::Key { key: key.clone(), record: record.clone() });
                if record.latest.contains(&id)
                    && let Some(at) = self.config.index_of(id.replica)
                {
                    self.quiet_keys.named(at, id.slot, key.clone());
                }
            }
        }
    }

    pub(crate) fn persist_instance(&mut self, id: InstanceId, instance: &Instance) {
        self.ready.persist.push(record_of(id, instance));
    }

    /// Records an acceptor's vote: persisted, held, and watched so it is recovered if it stalls.
    /// A first vote at the leader's own ballot starts a sample of its commit delay.
    pub(crate) fn record_vote(&mut self, id: InstanceId, instance: Instance) {
        if id.replica != self.config.id && instance.ballot == Ballot::initial(id.replica) {
            self.voted_at.entry(id).or_insert(self.ticks);
        }
        self.persist_instance(id, &instance);
        self.instances.insert(id, instance);
        self.watch_stall(id);
    }

    /// The commit of `id`, held here at `ballot`, arrived from its leader's round: the ticks since
    /// this replica's vote are a sample of the leader's commit delay. Only the leader's ballot
    /// gives one: a recovery's commit came after a stall timeout, and sampling it would let the
    /// timeout raise itself (Karn's rule, as for resends).
    pub(crate) fn sample_commit_delay(&mut self, id: InstanceId, ballot: Ballot) {
        let Some(voted) = self.voted_at.remove(&id) else { return };
        if ballot != Ballot::initial(id.replica) {
            return;
        }
        if let Some(at) = self.config.index_of(id.replica) {
            let ticks = u32::try_from(self.ticks - voted).unwrap_or(u32::MAX);
            self.commit_delays[at].sample(ticks);
        }
    }

    /// Sends the leader's current phase message for `id` to every peer not in `skip`.
    pub(crate) fn broadcast_phase(&mut self, id: InstanceId, skip: Option<u64>, after_persist: bool) {
        let instance = &self.instances[&id];
        let out =
            if after_persist { &mut self.ready.messages_after_persist } else { &mut self.ready.messages };
        phase_messages(&self.config, id, instance, skip, out);
    }

    pub(crate) fn check_pre_accept_quorum(&mut self, id: InstanceId) {
        let Some(lead) = self.instances.get(&id).and_then(|i| i.lead.as_ref()) else {
            return;
        };
        let replies = lead.replied.count_ones() as usize;
        if lead.all_equal && replies >= self.config.fast_quorum() {
            self.commit(id, true);
        } else if !lead.all_equal && replies >= self.config.slow_quorum() {
            self.start_accept(id);
        }
    }

    /// Phase 2 (Paxos-Accept) of the union of the attributes the leader collected.
    pub(crate) fn start_accept(&mut self, id: InstanceId) {
        let instance = self.instances.get_mut(&id).expect("leader's instance in memory");
        instance.status = Status::Accepted;
        instance.accepted_ballot = instance.ballot;
        let lead = instance.lead.as_mut().expect("leader");
        lead.phase = Phase::Accept;
        lead.replied = self.me_bit;
        lead.ticks = 0;
        lead.resends = 0;
        let (seq, commands) = (instance.attrs.seq, std::mem::take(&mut instance.commands));
        self.observe_keys(id, &commands, seq);
        let instance = self.instances.get_mut(&id).expect("in memory");
        instance.commands = commands;
        // Accept messages leave after the leader's own accept is durable, so that a leader that
        // restarts never finds acceptors a phase ahead of its own record.
        self.ready.persist.push(record_of(id, &self.instances[&id]));
        self.broadcast_phase(id, None, true);
        if self.config.slow_quorum() == 1 {
            self.commit(id, false);
        }
    }

    /// Commits an instance this replica leads, and tells every peer.
    pub(crate) fn commit(&mut self, id: InstanceId, fast: bool) {
        let instance = self.instances.get_mut(&id).expect("leader's instance in memory");
        assert!(instance.status != Status::Committed, "instance committed twice: instance={id}");
        instance.status = Status::Committed;
        instance.lead = None;
        self.leading.remove(&id);
        if fast {
            self.counters.fast_path += 1;
        } else {
            self.counters.slow_path += 1;
        }
        self.counters.committed += 1;
        self.counters.in_flight = self.leading.len() as u64;
        if id.replica == self.config.id {
            self.own_committed_max = self.own_committed_max.max(id.slot);
        }
        let instance = &self.instances[&id];
        self.ready.persist.push(record_of(id, instance));
        // Only once the commit is durable here may anyone learn of it: a recoverer trusts a
        // leader that says it has not committed.
        for &peer in &self.config.replicas {
            if peer != self.config.id {
                self.ready.messages_after_persist.push(Outbound {
                    to: peer,
                    message: Message::Commit {
                        id,
                        attrs: instance.attrs.clone(),
                        commands: instance.commands.clone(),
                    },
                });
            }
        }
        self.executor.on_committed(id);
        self.forget_recovery(id);
    }

    /// A second resend of own instance `id` is due (or a first, when the replicas missing from a
    /// quorum have long been silent) and `replied` (bits) answered the phase: without a quorum
    /// among them, one of those that answered, chosen at random, is asked to recover it now
    /// ([`Message::TakeOver`]). It holds the proposal and may reach replicas this one cannot.
    /// Not at the first resend otherwise: a reply lost to the network comes back with it, and a
    /// recovery then only takes the instance from a leader that was about to commit it.
    fn ask_take_over(&mut self, id: InstanceId, replied: u64) {
        if id.replica != self.config.id || replied.count_ones() as usize >= self.config.slow_quorum() {
            return; // a recoverer's own attempt, or a quorum that only waits for a fast path
        }
        let others = replied & !self.me_bit;
        if others == 0 {
            return;
        }
        let pick = self.rng.below(u64::from(others.count_ones())) as usize;
        let at = (0..64).filter(|bit| others & (1 << bit) != 0).nth(pick).expect("a set bit");
        let to = self.config.replicas[at];
        self.counters.take_overs_asked += 1;
        self.ready.messages.push(Outbound { to, message: Message::TakeOver { id } });
    }

    /// Whether the replicas that answered (`replied`) and those heard from lately (within two
    /// resend intervals) make a slow quorum: if not, a resend is unlikely to bring one, and the
    /// leader asks for a take-over at its first resend.
    fn quorum_within_reach(&self, replied: u64) -> bool {
        self.reachable_within(replied, 2 * self.config.retry_ticks) >= self.config.slow_quorum()
    }

    /// The replicas that answered (`replied`) or were heard from within the last `ticks` ticks.
    fn reachable_within(&self, replied: u64, ticks: u32) -> usize {
        (0..self.config.replicas.len())
            .filter(|&at| replied & (1 << at) != 0 || self.silent_ticks[at] < ticks)
            .count()
    }

    /// A peer answered the PreAccept of own instance `id`, and the replicas it would take to make
    /// a slow quorum have all been silent for two progress exchanges (each replica sends every
    /// peer one per `progress_ticks`, so they are cut off or down, not merely idle): no resend
    /// will bring a quorum, so a replica that answered is asked to recover the instance now
    /// ([`Message::TakeOver`]), once, instead of at the first resend. A replica that reaches the
    /// others (chaos seed 9191's majorities ring: replica 1 for 3 and 4) commits it in a few
    /// round trips rather than after `retry_ticks`.
    pub(crate) fn take_over_when_out_of_reach(&mut self, id: InstanceId) {
        let long_silent = 2 * self.config.progress_ticks();
        let Some(lead) = self.instances.get(&id).and_then(|i| i.lead.as_deref()) else { return };
        let replied = lead.replied;
        if lead.phase != Phase::PreAccept
            || lead.asked_on_reply
            || self.reachable_within(replied, long_silent) >= self.config.slow_quorum()
        {
            return;
        }
        if let Some(lead) = self.instances.get_mut(&id).and_then(|i| i.lead.as_deref_mut()) {
            lead.asked_on_reply = true;
        }
        self.ask_take_over(id, replied);
    }

    /// Per replica index: how long it must stay silent before its stalled instances are
    /// recovered at once ([`silent_leader_wait`]): a progress interval, or as long as its instances
    /// take to commit here when that is longer. Under load a live leader's messages arrive in
    /// bursts with gaps longer than a progress interval (its queues hold seconds of large values),
    /// and a fixed interval took it for down and recovered its instances.
    fn silence_ticks(&self) -> Vec<u32> {
        let progress = self.config.progress_ticks();
        self.commit_delays.iter().map(|delays| delays.timeout(progress, progress)).collect()
    }

    /// A random wait before recovering stalled instance `id`: the stall timeout of its leader
    /// plus up to `recovery_ticks` of jitter, so that competing recoverers rarely collide.
    ///
    /// The timeout is `recovery_ticks` while the leader's instances commit here promptly, and
    /// follows their commit delay (smoothed, plus four deviations, as TCP's retransmission
    /// timeout) when they do not, up to [`Config::stall_ticks_max`]. A fixed timeout turned load
    /// into a recovery storm: 1 MiB values from 1,000 clients delayed commits past 300-600 ms,
    /// both followers recovered nearly every instance of the live leader (about 150 each within
    /// seconds), the leader answered each Prepare with the whole committed instance, and those
    /// answers filled its queues and delayed the next commits further; a put took 6-15 s after
    /// the load had ended (over 30 s once in CI). A leader that is down is recovered as soon as its silence shows
    /// ([`silent_leader_wait`]), whatever its timeout.
    pub(crate) fn stall_wait(&mut self, id: InstanceId) -> u32 {
        let base = self.config.recovery_ticks;
        let timeout = match self.config.index_of(id.replica) {
            Some(at) if id.replica != self.config.id => self.commit_delays[at].timeout(base, base),
            _ => base,
        };
        timeout + self.rng.below(u64::from(base)) as u32
    }

    /// Notes an uncommitted instance this replica does not lead, so it is recovered if it stalls.
    pub(crate) fn watch_stall(&mut self, id: InstanceId) {
        if !self.leading.contains(&id) && !self.stalled.contains_key(&id) {
            let wait = self.stall_wait(id);
            self.stalled.insert(id, wait);
        }
    }

    pub(crate) fn forget_recovery(&mut self, id: InstanceId) {
        self.recoveries.remove(&id);
        self.stalled.remove(&id);
        self.min_round.remove(&id);
        self.voted_at.remove(&id);
    }

    /// What this replica holds for an instance, as a vote for a recoverer.
    pub(crate) fn vote_of(&self, id: InstanceId) -> Vote {
        match self.instances.get(&id) {
            Some(i) => Vote {
                status: i.status,
                accepted_ballot: i.accepted_ballot,
                attrs: i.attrs.clone(),
                commands: i.commands.clone(),
                matches_proposal: i.matches_proposal,
                // A leader still leading in ballot 0 qualifies too: it proposed after its last
                // restart, so at or above `own_commits_known_from`.
                leader_never_committed: id.replica == self.config.id
                    && i.status != Status::Committed
                    && id.slot >= self.own_commits_known_from,
            },
            None => Vote::none(id.replica),
        }
    }

    /// Stops leading an instance (a recoverer took over with a higher ballot).
    pub(crate) fn abandon_lead(&mut self, id: InstanceId) {
        if let Some(i) = self.instances.get_mut(&id) {
            i.lead = None;
        }
        if self.leading.remove(&id) {
            self.counters.in_flight = self.leading.len() as u64;
        }
    }

    fn tick_recovery(&mut self) {
        // Instances that committed ones wait on are recovered if they stay uncommitted.
        let mut waited: Vec<InstanceId> = self.executor.waiting_on().copied().collect();
        waited.sort_unstable(); // every iteration that draws randomness or sends is in a fixed order
        for id in waited {
            self.watch_stall(id);
            // A dependency stands for a prefix: every slot of it this replica has never seen is
            // watched too, so that they are recovered together, not discovered one at a time.
            let mut slot = self.executor.next_unexecuted(id.replica, 1);
            let mut watched = 0;
            while slot < id.slot && watched < SLOT_RESERVATION_CHUNK {
                let gap = InstanceId { replica: id.replica, slot };
                if !self.instances.contains_key(&gap) {
                    self.watch_stall(gap);
                    watched += 1;
                }
                slot = self.executor.next_unexecuted(id.replica, slot + 1);
            }
        }
        let mut due = Vec::new();
        // Per replica index: a stall timeout ran out on an instance of that leader (or its
        // silence did). If the leader lives, its instances commit slower than the timeout; if it
        // is down, a longer timeout costs nothing (its silence keeps growing past it).
        let mut timed_out = 0u64;
        let silence = self.silence_ticks();
        for (id, left) in self.stalled.iter_mut() {
            let silent = silent_leader_wait(&self.config, &self.silent_ticks, &silence, &self.instances, *id);
            if let Some(cap) = silent {
                *left = (*left).min(cap);
            }
            *left = left.saturating_sub(1);
            if *left == 0 {
                due.push(*id);
                if id.replica != self.config.id
                    && let Some(at) = self.config.index_of(id.replica)
                {
                    timed_out |= 1 << at;
                }
            }
        }
        // Once per tick, as the resend timer: the leader's timeout doubles until its next sample.
        for (at, delays) in self.commit_delays.iter_mut().enumerate() {
            if timed_out & (1 << at) != 0 {
                delays.backed_off();
            }
        }
        due.sort_unstable();
        for id in due {
            let wait = self.stall_wait(id);
            self.stalled.insert(id, wait);
            if !self.recoveries.contains_key(&id) {
                self.start_recovery(id);
            }
        }
        let mut retry = Vec::new();
        let mut try_again = Vec::new();
        let mut give_up = Vec::new();
        for (id, r) in self.recoveries.iter_mut() {
            r.ticks += 1;
            if r.ticks >= self.config.recovery_give_up_ticks() {
                give_up.push(*id);
            } else if r.try_again_in > 0 {
                r.try_again_in -= 1;
                if r.try_again_in == 0 {
                    try_again.push(*id);
                }
            } else if r.ticks % self.config.retry_ticks == 0 {
                retry.push(*id);
            }
        }
        try_again.sort_unstable();
        give_up.sort_unstable();
        retry.sort_unstable();
        for id in give_up {
            // The stall timer starts the next attempt, at a higher ballot.
            self.recoveries.remove(&id);
        }
        for id in retry {
            self.resend_recovery(id);
        }
        for id in try_again {
            self.try_again(id);
        }
    }
}

/// Ticks between the turns of the survivors in [`silent_leader_wait`].
const SILENT_LEADER_TURN_TICKS: u32 = 2;

/// How long at most a stalled instance `id` still waits here before this replica recovers it,
/// when its leader has gone silent: nothing heard from it for `silence[leader]` ticks (a whole
/// progress interval, in which every live, connected replica sends each peer at least a
/// `Progress`, so it is down or cut off from here; longer while its instances take longer than
/// that to commit here, see `Replica::silence_ticks`), and no recoverer has come forward (the
/// instance is held at the leader's ballot 0, or not at all). Without this, a crashed leader's instance waited out its whole stall
/// timeout (`recovery_ticks` plus up to as much again: 300-600 ms) before any survivor began,
/// and a survivor's proposal that depended on it waited that long and the recovery on top
/// (pair_kill: the N = 7 runs' slowest, near 1 s). The survivors take turns in ring order after
/// the leader, [`SILENT_LEADER_TURN_TICKS`] apart, so that the first usually finishes before the
/// next would compete; one that promises a recoverer's ballot waits a whole stall timeout as
/// before. Recovering early is always safe, only wasteful when the leader lives (under load,
/// ruinous: see `Replica::stall_wait`), and a leader silent that long would have been recovered
/// after its stall timeout anyway.
/// None: the normal stall timeout applies.
fn silent_leader_wait(
    config: &Config,
    silent_ticks: &[u32],
    silence: &[u32],
    instances: &HashMap<InstanceId, Instance>,
    id: InstanceId,
) -> Option<u32> {
    let n = config.replicas.len();
    let leader_at = config.index_of(id.replica)?;
    let me_at = config.index_of(config.id)?;
    if leader_at == me_at || silent_ticks[leader_at] < silence[leader_at] {
        return None;
    }
    if instances.get(&id).is_some_and(|i| i.ballot.round > 0) {
        return None; // a recoverer came forward (perhaps this replica): its turn runs
    }
    let turn = ((me_at + n - leader_at) % n) as u32; // 1..n-1
    Some(1 + turn * SILENT_LEADER_TURN_TICKS)
}

/// The durable form of an instance.
pub(crate) fn record_of(id: InstanceId, instance: &Instance) -> Record {
    Record::Instance(InstanceRecord {
        id,
        ballot: instance.ballot,
        accepted_ballot: instance.accepted_ballot,
        status: instance.status,
        attrs: instance.attrs.clone(),
        commands: instance.commands.clone(),
        matches_proposal: instance.matches_proposal,
    })
}

/// The leader's current phase message for each peer not in `skip`.
fn phase_messages(
    config: &Config,
    id: InstanceId,
    instance: &Instance,
    skip: Option<u64>,
    out: &mut Vec<Outbound>,
) {
    let lead = instance.lead.as_ref().expect("only a leader broadcasts a phase");
    for (at, &peer) in config.replicas.iter().enumerate() {
        if peer == config.id || skip.is_some_and(|s| s & (1 << at) != 0) {
            continue;
        }
        let message = match lead.phase {
            Phase::PreAccept => Message::PreAccept {
                id,
                ballot: instance.ballot,
                attrs: lead.original.clone(),
                commands: instance.commands.clone(),
            },
            Phase::Accept => Message::Accept {
                id,
                ballot: instance.ballot,
                attrs: instance.attrs.clone(),
                commands: instance.commands.clone(),
            },
        };
        out.push(Outbound { to: peer, message });
    }
}
