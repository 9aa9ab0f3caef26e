//! Epoxy's byte encoding of messages and records (postcard, a compact serde format), with the
//! protocol's bounds checked on decode so that bytes from the network or the disk never allocate
//! past a limit or reach the state machine malformed.

use crate::config::{
    BATCH_BYTES_MAX, BATCH_COMMANDS_MAX, COMMAND_KEY_BYTES_MAX, COMMIT_REQUEST_IDS_MAX, DEPS_MAX,
    REPLICAS_MAX,
};
use crate::message::Message;
use crate::record::{InstanceRecord, KeyRecord};
use crate::seal::Cut;
use crate::types::{Attributes, Command, ReplicaId};

/// Largest encoded message or record accepted: a full batch plus its dependencies.
pub const ENCODED_BYTES_MAX: usize = BATCH_BYTES_MAX + DEPS_MAX * 16 + BATCH_COMMANDS_MAX * 16 + 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLarge { what: &'static str, len: usize, max: usize },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} breaks a bound: {reason}")]
    OutOfBounds { what: &'static str, reason: String },
}

impl DecodeError {
    /// Decoding the same bytes again cannot help.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

fn decode<'a, T: serde::Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, DecodeError> {
    if bytes.len() > ENCODED_BYTES_MAX {
        return Err(DecodeError::TooLarge { what, len: bytes.len(), max: ENCODED_BYTES_MAX });
    }
    postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed { what, reason: e.to_string() })
}

/// Encodes into a buffer of the exact size: growing one as it fills copied a large value's bytes
/// about twice more (a 1 MiB command passes 1, 2, 4, ... MiB buffers).
fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    encode_sized(value, encoded_len(value))
}

/// [`encode`] when the length is known already (from [`encoded_len`] of the same value).
fn encode_sized<T: serde::Serialize>(value: &T, len: usize) -> Vec<u8> {
    let encoded =
        postcard::to_extend(value, Vec::with_capacity(len)).expect("encoding into a Vec cannot fail");
    debug_assert_eq!(encoded.len(), len, "postcard's size walk and its encoding agree");
    encoded
}

/// The length of `value` encoded, without encoding it (lengths are summed, no bytes copied).
fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).expect("sizing an encoding cannot fail")
}

fn check(what: &'static str, ok: bool, reason: impl FnOnce() -> String) -> Result<(), DecodeError> {
    if ok { Ok(()) } else { Err(DecodeError::OutOfBounds { what, reason: reason() }) }
}

fn check_attrs(what: &'static str, attrs: &Attributes) -> Result<(), DecodeError> {
    check(what, attrs.deps.len() <= DEPS_MAX, || format!("{} deps > {DEPS_MAX}", attrs.deps.len()))?;
    check(what, attrs.deps.windows(2).all(|w| w[0] < w[1]), || "deps not sorted and unique".into())
}

/// An empty batch is a no-op (what recovery commits when no replica holds the commands).
fn check_commands(what: &'static str, commands: &[Command]) -> Result<(), DecodeError> {
    check(what, commands.len() <= BATCH_COMMANDS_MAX, || {
        format!("{} commands, more than {BATCH_COMMANDS_MAX}", commands.len())
    })?;
    let mut total = 0usize;
    for c in commands {
        check(what, c.key.len() <= COMMAND_KEY_BYTES_MAX, || format!("key of {} bytes", c.key.len()))?;
        total += c.bytes();
    }
    check(what, total <= BATCH_BYTES_MAX, || format!("{total} command bytes > {BATCH_BYTES_MAX}"))
}

/// Per-replica slot bounds of a seal or a cut: one per replica, in replica order.
fn check_bounds(what: &'static str, bounds: &[(ReplicaId, u64)]) -> Result<(), DecodeError> {
    check(what, bounds.len() <= REPLICAS_MAX, || format!("{} bounds", bounds.len()))?;
    check(what, bounds.windows(2).all(|w| w[0].0 < w[1].0), || "bounds not one per replica in order".into())
}

/// A [`Cut`] as stored by the node (its epoch and bounds), checked like the wire's.
pub fn encode_cut(cut: &Cut) -> Vec<u8> {
    encode(cut)
}

pub fn decode_cut(bytes: &[u8]) -> Result<Cut, DecodeError> {
    const WHAT: &str = "epoch cut";
    let cut: Cut = decode(WHAT, bytes)?;
    check_bounds(WHAT, &cut.bounds)?;
    Ok(cut)
}

/// A message as it travels between replicas: the sender's epoch, then the message (see
/// [`crate::Replica::step_in_epoch`]).
pub fn encode_message(epoch: u64, message: &Message) -> Vec<u8> {
    MessageEncoding::new(epoch, message).encode()
}

/// A message about to be encoded, with its encoded length known (summed, no bytes copied): a
/// sender whose queue has no room for it drops it without copying its commands, and one that
/// encodes it does not size it again.
pub struct MessageEncoding<'a> {
    value: (u64, &'a Message),
    len: usize,
}

impl<'a> MessageEncoding<'a> {
    /// `message`, sent in `epoch`, sized for [`Self::encode`].
    pub fn new(epoch: u64, message: &'a Message) -> Self {
        let value = (epoch, message);
        let len = encoded_len(&value);
        Self { value, len }
    }

    /// The length of [`Self::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.len
    }

    /// The same bytes as [`encode_message`].
    pub fn encode(&self) -> Vec<u8> {
        encode_sized(&self.value, self.len)
    }
}

/// The sender's epoch and the message.
pub fn decode_message(bytes: &[u8]) -> Result<(u64, Message), DecodeError> {
    const WHAT: &str = "epoxy message";
    let (epoch, message): (u64, Message) = decode(WHAT, bytes)?;
    match &message {
        Message::PreAccept { attrs, commands, .. }
        | Message::Accept { attrs, commands, .. }
        | Message::Commit { attrs, commands, .. } => {
            check_attrs(WHAT, attrs)?;
            check_commands(WHAT, commands)?;
        }
        Message::PreAcceptOk { attrs, .. } => check_attrs(WHAT, attrs)?,
        Message::PrepareOk { state, .. } => {
            check_attrs(WHAT, &state.attrs)?;
            check_commands(WHAT, &state.commands)?;
        }
        Message::TryPreAccept { attrs, commands, holders, .. } => {
            check_attrs(WHAT, attrs)?;
            check_commands(WHAT, commands)?;
            check(WHAT, holders.len() <= REPLICAS_MAX, || format!("{} holders", holders.len()))?
        }
        Message::Progress { executed_up_to, .. } => {
            check(WHAT, executed_up_to.len() <= REPLICAS_MAX, || {
                format!("{} watermarks", executed_up_to.len())
            })?
        }
        Message::AcceptOk { .. }
        | Message::Prepare { .. }
        | Message::TryPreAcceptOk { .. }
        | Message::Nack { .. }
        | Message::TakeOver { .. } => {}
        Message::TryPreAcceptNack { excluded, .. } => {
            check(WHAT, excluded.len() <= REPLICAS_MAX, || format!("{} excluded replicas", excluded.len()))?
        }
        Message::Seal { .. } => {}
        Message::SealOk { bounds, .. } => check_bounds(WHAT, bounds)?,
        Message::CommitRequest { ids } => {
            check(WHAT, ids.len() <= COMMIT_REQUEST_IDS_MAX, || format!("{} ids", ids.len()))?
        }
    }
    Ok((epoch, message))
}

pub fn encode_instance(record: &InstanceRecord) -> Vec<u8> {
    encode(record)
}

pub fn decode_instance(bytes: &[u8]) -> Result<InstanceRecord, DecodeError> {
    const WHAT: &str = "instance record";
    let record: InstanceRecord = decode(WHAT, bytes)?;
    check_attrs(WHAT, &record.attrs)?;
    check_commands(WHAT, &record.commands)?;
    Ok(record)
}

pub fn encode_key_record(record: &KeyRecord) -> Vec<u8> {
    encode(record)
}

pub fn decode_key_record(bytes: &[u8]) -> Result<KeyRecord, DecodeError> {
    const WHAT: &str = "key record";
    let record: KeyRecord = decode(WHAT, bytes)?;
    check(WHAT, record.latest.windows(2).all(|w| w[0].replica < w[1].replica), || {
        "latest instances not one per replica in order".into()
    })?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Ballot, InstanceId, ReplicaId, Status};

    fn sample() -> Message {
        Message::PreAccept {
            id: InstanceId::new(1, 7),
            ballot: Ballot::initial(ReplicaId(1)),
            attrs: Attributes { seq: 3, deps: vec![InstanceId::new(2, 1), InstanceId::new(3, 9)] },
            commands: vec![Command::new("k", "v")],
        }
    }

    #[test]
    fn message_round_trips() {
        let m = sample();
        assert_eq!(decode_message(&encode_message(7, &m)).unwrap(), (7, m));
    }

    #[test]
    fn record_round_trips() {
        let r = InstanceRecord {
            id: InstanceId::new(1, 1),
            ballot: Ballot::initial(ReplicaId(1)),
            accepted_ballot: Ballot::initial(ReplicaId(1)),
            status: Status::Committed,
            attrs: Attributes::default(),
            commands: vec![Command::new("a", "b")],
            matches_proposal: true,
        };
        assert_eq!(decode_instance(&encode_instance(&r)).unwrap(), r);
        let k = KeyRecord { seq_max: 4, latest: vec![InstanceId::new(1, 2), InstanceId::new(2, 1)] };
        assert_eq!(decode_key_record(&encode_key_record(&k)).unwrap(), k);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(matches!(decode_message(&[0xff, 0xff, 0xff]), Err(DecodeError::Malformed { .. })));
        let bytes = encode_message(1, &sample());
        assert!(decode_message(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_instance(b"").is_err());
    }

    #[test]
    fn unsorted_deps_are_refused_and_no_ops_accepted() {
        let m = Message::Commit {
            id: InstanceId::new(1, 1),
            attrs: Attributes { seq: 1, deps: vec![InstanceId::new(3, 1), InstanceId::new(2, 1)] },
            commands: vec![Command::new("k", "")],
        };
        assert!(matches!(decode_message(&encode_message(1, &m)), Err(DecodeError::OutOfBounds { .. })));
        let noop =
            Message::Commit { id: InstanceId::new(1, 1), attrs: Attributes::default(), commands: vec![] };
        assert_eq!(decode_message(&encode_message(1, &noop)).unwrap(), (1, noop));
    }

    #[test]
    fn try_pre_accept_carries_its_holders_and_refuses_too_many() {
        let try_with = |holders: Vec<ReplicaId>| Message::TryPreAccept {
            id: InstanceId::new(1, 1),
            ballot: Ballot { round: 1, replica: ReplicaId(2) },
            attrs: Attributes { seq: 1, deps: vec![] },
            commands: vec![Command::new("k", "v")],
            holders,
        };
        let m = try_with(vec![ReplicaId(3), ReplicaId(4)]);
        assert_eq!(decode_message(&encode_message(1, &m)).unwrap(), (1, m));
        let m = try_with((1..=REPLICAS_MAX as u32 + 1).map(ReplicaId).collect());
        assert!(matches!(decode_message(&encode_message(1, &m)), Err(DecodeError::OutOfBounds { .. })));
    }

    #[test]
    fn oversize_input_is_refused_before_decoding() {
        let big = vec![0u8; ENCODED_BYTES_MAX + 1];
        assert!(matches!(decode_message(&big), Err(DecodeError::TooLarge { .. })));
    }
}
