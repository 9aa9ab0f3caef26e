//! Where an actor lives in the replicated data: its interference key and its storage keys.
//!
//! An actor `(name, key)` has one epoxy interference key, `a/<len>:<name>/<len>:<key>` (lengths
//! in decimal bytes), so every command of one actor is ordered with every other command of that
//! actor, and commands of different actors never interfere. Its data lives under that key plus
//! `/`:
//!
//! | storage key | value |
//! |---|---|
//! | `<actor>/owner` | [`OwnerRecord`](super::op::OwnerRecord): generation and node of the last activation |
//! | `<actor>/state` | the actor's state, serde JSON |
//! | `<actor>/kv/<k>` | the actor's own key-value space |
//!
//! The length prefixes make the encoding prefix-free: parsing reads exactly `len` bytes, so no
//! actor's keys can start with another actor's prefix, whatever bytes names and keys contain.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;

/// Prefix of every actor key in storage and in epoxy (the KV API uses `k/`).
pub const ACTOR_KEY_PREFIX: &[u8] = b"a/";
/// Longest actor type name.
pub const ACTOR_NAME_BYTES_MAX: usize = 64;
/// Longest actor key (the same limit as a `mortar.v1.Kv` key).
pub const ACTOR_KEY_BYTES_MAX: usize = mortar_proto::KEY_BYTES_MAX;
/// Longest key in an actor's own key-value space.
pub const KV_KEY_BYTES_MAX: usize = 1024;

const OWNER_SUFFIX: &[u8] = b"/owner";
const STATE_SUFFIX: &[u8] = b"/state";
const KV_SUFFIX: &[u8] = b"/kv/";

const _: () = assert!(
    ACTOR_KEY_PREFIX.len() + 2 * 6 + ACTOR_NAME_BYTES_MAX + ACTOR_KEY_BYTES_MAX
        < mortar_epoxy::config::COMMAND_KEY_BYTES_MAX,
    "an actor's interference key must fit in an epoxy command key"
);

/// The address of one actor: its type name and its key.
///
/// Both live in one shared block, `<name length>:<name><key>` (the length in decimal bytes), so
/// that a clone only counts a reference, and an active actor's address costs one small
/// allocation and a pointer: the runtime keeps one per active actor. Equality, ordering and
/// hashing are those of the pair `(name, key)`.
#[derive(Clone)]
pub struct ActorId {
    text: Arc<str>,
}

impl ActorId {
    pub fn new(name: impl AsRef<str>, key: impl AsRef<str>) -> Self {
        let (name, key) = (name.as_ref(), key.as_ref());
        let name_len = name.len().to_string();
        let mut text = String::with_capacity(name_len.len() + 1 + name.len() + key.len());
        text.push_str(&name_len);
        text.push(':');
        text.push_str(name);
        text.push_str(key);
        Self { text: text.into() }
    }

    /// The name and the key.
    fn split(&self) -> (&str, &str) {
        let (name_len, rest) = self.text.split_once(':').expect("an actor id starts with its name length");
        let name_len = name_len.parse().expect("an actor id's name length is a number");
        rest.split_at(name_len)
    }

    /// The actor type name (`counter` in `counter/user-42`).
    pub fn name(&self) -> &str {
        self.split().0
    }

    /// The actor key (`user-42` in `counter/user-42`).
    pub fn key(&self) -> &str {
        self.split().1
    }

    /// An equal id in a block of its own: [`ActorId::is_same`] tells it from every other id.
    pub(crate) fn unshared(&self) -> Self {
        let (name, key) = self.split();
        Self::new(name, key)
    }

    /// Whether `self` and `other` are clones of one id (share one block), not merely equal.
    pub(crate) fn is_same(&self, other: &ActorId) -> bool {
        Arc::ptr_eq(&self.text, &other.text)
    }

    /// The epoxy interference key of this actor.
    pub fn interference_key(&self) -> Bytes {
        let (name, key) = self.split();
        let mut k = Vec::with_capacity(ACTOR_KEY_PREFIX.len() + 12 + name.len() + key.len());
        k.extend_from_slice(ACTOR_KEY_PREFIX);
        k.extend_from_slice(format!("{}:", name.len()).as_bytes());
        k.extend_from_slice(name.as_bytes());
        k.extend_from_slice(format!("/{}:", key.len()).as_bytes());
        k.extend_from_slice(key.as_bytes());
        k.into()
    }

    /// The storage prefix of this actor's own key-value space.
    pub fn kv_prefix(&self) -> Bytes {
        kv_prefix(&self.interference_key())
    }

    /// Checks the name and key a client sent; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let (name, key) = self.split();
        check_actor_name(name)?;
        if key.is_empty() {
            return Err("actor key is empty: give a key of 1 to 1024 bytes, e.g. user-42".into());
        }
        if key.len() > ACTOR_KEY_BYTES_MAX {
            return Err(format!(
                "actor key is {} bytes, more than the limit of {ACTOR_KEY_BYTES_MAX} bytes",
                key.len()
            ));
        }
        Ok(())
    }
}

impl PartialEq for ActorId {
    fn eq(&self, other: &Self) -> bool {
        // The text says the length of the name: equal texts, equal pairs.
        self.text == other.text
    }
}

impl Eq for ActorId {}

impl Hash for ActorId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the pair `(name, key)` hashes.
        self.split().hash(state);
    }
}

impl PartialOrd for ActorId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ActorId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.split().cmp(&other.split())
    }
}

impl std::fmt::Debug for ActorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, key) = self.split();
        f.debug_struct("ActorId").field("name", &name).field("key", &key).finish()
    }
}

impl std::fmt::Display for ActorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, key) = self.split();
        write!(f, "{name}/{key}")
    }
}

/// The actor key of a compound key (`["org-acme", "general"]`): its parts joined by `/`, with
/// `\` and `/` inside a part written `\\` and `\/`. Unambiguous ([`key_parts`] reads the parts
/// back), and a plain key with neither character is its own one-part key, so building keys from
/// user input this way cannot collide (no key injection).
pub fn compound_key<S: AsRef<str>>(parts: &[S]) -> String {
    let mut key = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('/');
        }
        for c in part.as_ref().chars() {
            if c == '/' || c == '\\' {
                key.push('\\');
            }
            key.push(c);
        }
    }
    key
}

/// The parts of a compound actor key ([`compound_key`]); a plain key is one part.
pub fn key_parts(key: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => parts.last_mut().expect("never empty").push(chars.next().unwrap_or('\\')),
            '/' => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    parts
}

/// An actor type name: 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
pub fn check_actor_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > ACTOR_NAME_BYTES_MAX {
        return Err(format!(
            "actor name {name:?} must be 1 to {ACTOR_NAME_BYTES_MAX} bytes long, e.g. counter"
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err(format!("actor name {name:?} may only contain ASCII letters, digits, '_', '-' and '.'"));
    }
    Ok(())
}

/// A key of an actor's own key-value space: 1 to [`KV_KEY_BYTES_MAX`] bytes.
pub fn check_kv_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > KV_KEY_BYTES_MAX {
        return Err(format!("actor kv key {key:?} must be 1 to {KV_KEY_BYTES_MAX} bytes long"));
    }
    Ok(())
}

/// Parses an interference key back into `(name, key)` bytes; `None` if it is not an actor key.
pub fn parse_interference_key(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = key.strip_prefix(ACTOR_KEY_PREFIX)?;
    let (name, rest) = take_length_prefixed(rest)?;
    let rest = rest.strip_prefix(b"/")?;
    let (actor_key, rest) = take_length_prefixed(rest)?;
    rest.is_empty().then_some((name, actor_key))
}

fn take_length_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = bytes.iter().take(6).position(|&b| b == b':')?;
    let digits = std::str::from_utf8(&bytes[..colon]).ok()?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    let len: usize = digits.parse().ok()?;
    let rest = &bytes[colon + 1..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Storage prefix of the alarm index: `t/<due unix ms, 8 bytes big-endian><alarm key>`, one
/// entry per pending alarm of any actor, in due order (written by [`op::apply`](super::op::apply)
/// on every replica, so every node can fire the alarms of the actors it comes to own).
pub const ALARM_INDEX_PREFIX: &[u8] = b"t/";
/// Storage prefix of the work index: `w/<interference key>` while the actor has queued messages
/// (so that a node that comes to own it wakes it and its run loop).
pub const WORK_INDEX_PREFIX: &[u8] = b"w/";
const ALARM_SUFFIX: &[u8] = b"/alarm/";
const QUEUE_SUFFIX: &[u8] = b"/q/";
const QUEUE_META_SUFFIX: &[u8] = b"/qm/";
const TOMBSTONE_SUFFIX: &[u8] = b"/tomb";
/// Longest queue name.
pub const QUEUE_NAME_BYTES_MAX: usize = 64;

/// Storage prefix of everything of the actor with interference key `actor` (owner record
/// included).
pub fn data_prefix(actor: &[u8]) -> Bytes {
    [actor, b"/"].concat().into()
}

/// Storage key of alarm `alarm_id` of the actor with interference key `actor`.
pub fn alarm_key(actor: &[u8], alarm_id: &[u8]) -> Bytes {
    [actor, ALARM_SUFFIX, alarm_id].concat().into()
}

/// Storage prefix of the alarms of the actor with interference key `actor`.
pub fn alarm_prefix(actor: &[u8]) -> Bytes {
    [actor, ALARM_SUFFIX].concat().into()
}

/// The alarm index entry of the alarm stored under `alarm_key`, due at `due_ms`.
pub fn alarm_index_key(due_ms: u64, alarm_key: &[u8]) -> Bytes {
    [ALARM_INDEX_PREFIX, &due_ms.to_be_bytes()[..], alarm_key].concat().into()
}

/// An alarm index entry's due time, actor and alarm id.
pub fn parse_alarm_index_key(key: &[u8]) -> Option<(u64, ActorId, String)> {
    let rest = key.strip_prefix(ALARM_INDEX_PREFIX)?;
    let (due, alarm_key) = rest.split_at_checked(8)?;
    let due = u64::from_be_bytes(due.try_into().ok()?);
    let (id, rest) = parse_interference_key_prefix(alarm_key)?;
    let alarm_id = rest.strip_prefix(ALARM_SUFFIX)?;
    Some((due, id, String::from_utf8(alarm_id.to_vec()).ok()?))
}

/// The work index entry of the actor with interference key `actor`.
pub fn work_index_key(actor: &[u8]) -> Bytes {
    [WORK_INDEX_PREFIX, actor].concat().into()
}

/// The actor of a work index entry.
pub fn parse_work_index_key(key: &[u8]) -> Option<ActorId> {
    let (id, rest) = parse_interference_key_prefix(key.strip_prefix(WORK_INDEX_PREFIX)?)?;
    rest.is_empty().then_some(id)
}

/// Storage prefix of all queued messages of the actor with interference key `actor`.
pub fn queues_prefix(actor: &[u8]) -> Bytes {
    [actor, QUEUE_SUFFIX].concat().into()
}

/// Storage prefix of the messages of queue `queue`.
pub fn queue_prefix(actor: &[u8], queue: &str) -> Bytes {
    [actor, QUEUE_SUFFIX, queue.as_bytes(), b"/"].concat().into()
}

/// Storage key of message `seq` of queue `queue` (in sequence order).
pub fn queue_message_key(actor: &[u8], queue: &str, seq: u64) -> Bytes {
    [actor, QUEUE_SUFFIX, queue.as_bytes(), b"/", &seq.to_be_bytes()[..]].concat().into()
}

/// Storage key of the length and next sequence number of queue `queue`.
pub fn queue_meta_key(actor: &[u8], queue: &str) -> Bytes {
    [actor, QUEUE_META_SUFFIX, queue.as_bytes()].concat().into()
}

/// Storage key of the tombstone a destroyed actor leaves.
pub fn tombstone_key(actor: &[u8]) -> Bytes {
    [actor, TOMBSTONE_SUFFIX].concat().into()
}

/// A queue name: 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > QUEUE_NAME_BYTES_MAX {
        return Err(format!("queue name {name:?} must be 1 to {QUEUE_NAME_BYTES_MAX} bytes long, e.g. jobs"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err(format!("queue name {name:?} may only contain ASCII letters, digits, '_', '-' and '.'"));
    }
    Ok(())
}

/// Parses the interference key at the start of `bytes`: the actor and the bytes after it.
fn parse_interference_key_prefix(bytes: &[u8]) -> Option<(ActorId, &[u8])> {
    let rest = bytes.strip_prefix(ACTOR_KEY_PREFIX)?;
    let (name, rest) = take_length_prefixed(rest)?;
    let rest = rest.strip_prefix(b"/")?;
    let (key, rest) = take_length_prefixed(rest)?;
    let id = ActorId::new(std::str::from_utf8(name).ok()?, std::str::from_utf8(key).ok()?);
    Some((id, rest))
}

/// Interference-key prefix of the node leases: `n/<node id>` orders one node's lease renewals
/// and the fences other nodes set on it ([`ActorOp::Renew`](super::op::ActorOp::Renew),
/// [`ActorOp::Fence`](super::op::ActorOp::Fence)).
pub const NODE_LEASE_KEY_PREFIX: &[u8] = b"n/";
const FENCE_INFIX: &[u8] = b"/f/";

/// The interference key of node `node`'s lease.
pub fn node_lease_key(node: u32) -> Bytes {
    [NODE_LEASE_KEY_PREFIX, node.to_string().as_bytes()].concat().into()
}

/// The node whose lease key `key` is, if it is one (`n/` and the node id in decimal, no leading
/// zero).
pub fn parse_node_lease_key(key: &[u8]) -> Option<u32> {
    let digits = std::str::from_utf8(key.strip_prefix(NODE_LEASE_KEY_PREFIX)?).ok()?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
}

/// Storage key of the fence set on node `node` for the actor with interference key `actor`: the
/// highest generation of that actor node `node` may no longer answer reads for under its node
/// lease (8 bytes, big-endian).
pub fn fence_key(node: u32, actor: &[u8]) -> Bytes {
    [&node_lease_key(node)[..], FENCE_INFIX, actor].concat().into()
}

/// Storage key of the owner record of the actor with interference key `actor`.
pub fn owner_key(actor: &[u8]) -> Bytes {
    [actor, OWNER_SUFFIX].concat().into()
}

/// Storage key of the state of the actor with interference key `actor`.
pub fn state_key(actor: &[u8]) -> Bytes {
    [actor, STATE_SUFFIX].concat().into()
}

/// Storage prefix of the key-value space of the actor with interference key `actor`.
pub fn kv_prefix(actor: &[u8]) -> Bytes {
    [actor, KV_SUFFIX].concat().into()
}

/// Storage key of `kv_key` in the key-value space of the actor with interference key `actor`.
pub fn kv_key(actor: &[u8], kv_key: &[u8]) -> Bytes {
    [actor, KV_SUFFIX, kv_key].concat().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher as _;

    #[test]
    fn node_lease_keys_round_trip_and_fence_keys_stay_under_their_node() {
        assert_eq!(&node_lease_key(7)[..], b"n/7");
        assert_eq!(parse_node_lease_key(&node_lease_key(7)), Some(7));
        assert_eq!(parse_node_lease_key(&node_lease_key(u32::MAX)), Some(u32::MAX));
        for bad in [&b"n/"[..], b"n/07", b"n/1x", b"n/-1", b"k/1", b"n/99999999999", b"n/1/f/a"] {
            assert_eq!(parse_node_lease_key(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let actor = ActorId::new("counter", "a").interference_key();
        assert!(fence_key(1, &actor).starts_with(b"n/1/f/"));
        assert!(!fence_key(12, &actor).starts_with(b"n/1/"), "one node's fences are not another's");
        assert!(parse_interference_key(&node_lease_key(1)).is_none(), "not an actor key");
    }

    #[test]
    fn interference_key_is_readable_and_parses_back() {
        let id = ActorId::new("counter", "user-42");
        assert_eq!(&id.interference_key()[..], b"a/7:counter/7:user-42");
        assert_eq!(parse_interference_key(&id.interference_key()), Some((&b"counter"[..], &b"user-42"[..])));
        assert_eq!(parse_interference_key(b"k/counter"), None);
        assert_eq!(parse_interference_key(b"a/7:counter/7:user-42/owner"), None);
        assert_eq!(parse_interference_key(b"a/07:counter/7:user-42"), None);
    }

    #[test]
    fn prefixes_of_different_actors_never_nest() {
        // Keys chosen to collide under a naive `a/<name>/<key>/` layout.
        let ids = [
            ActorId::new("a", "b/kv/c"),
            ActorId::new("a", "b"),
            ActorId::new("a", "b/"),
            ActorId::new("a.b", "c"),
            ActorId::new("a", "1:b"),
        ];
        for x in &ids {
            for y in &ids {
                if x == y {
                    continue;
                }
                let (kx, ky) = (x.interference_key(), y.interference_key());
                for suffix in [owner_key(&kx), state_key(&kx), kv_key(&kx, b"z")] {
                    assert!(!suffix.starts_with(&kv_prefix(&ky)), "{x} data under {y}");
                    assert_ne!(suffix, owner_key(&ky));
                    assert_ne!(suffix, state_key(&ky));
                }
                assert_ne!(kx, ky);
            }
        }
    }

    #[test]
    fn an_id_keeps_any_name_and_key_and_compares_as_the_pair() {
        // Names and keys that look like the id's own length prefix, empty ones, long ones.
        let pairs = [
            ("counter", "user-42"),
            ("counter", "user-420"),
            ("counte", "ruser-42"),
            ("", "7:counter"),
            ("7:counter", ""),
            ("", ""),
            ("a:b", "c:d"),
            ("12", "34"),
            ("1", "234"),
            ("ünï", "cöde/κλειδί"),
        ];
        let long = ("n".repeat(1000), "k".repeat(5000));
        let state = std::hash::RandomState::new();
        let ids: Vec<ActorId> = pairs.iter().map(|(n, k)| ActorId::new(n, k)).collect();
        let long_id = ActorId::new(&long.0, &long.1);
        assert_eq!((long_id.name(), long_id.key()), (long.0.as_str(), long.1.as_str()));
        for (x, (xn, xk)) in ids.iter().zip(pairs) {
            assert_eq!((x.name(), x.key()), (xn, xk));
            assert_eq!(x.to_string(), format!("{xn}/{xk}"));
            assert_eq!(format!("{x:?}"), format!("ActorId {{ name: {xn:?}, key: {xk:?} }}"));
            assert_eq!(state.hash_one(x), state.hash_one((xn, xk)), "hashes as the pair");
            for (y, (yn, yk)) in ids.iter().zip(pairs) {
                assert_eq!(x == y, (xn, xk) == (yn, yk), "{x:?} == {y:?}");
                assert_eq!(x.cmp(y), (xn, xk).cmp(&(yn, yk)), "{x:?} cmp {y:?}");
                if x == y {
                    assert_eq!(state.hash_one(x), state.hash_one(y));
                }
            }
        }
    }

    #[test]
    fn a_clone_is_the_same_id_and_an_unshared_copy_only_an_equal_one() {
        let id = ActorId::new("counter", "user-42");
        let clone = id.clone();
        let copy = id.unshared();
        assert!(clone.is_same(&id));
        assert_eq!(copy, id);
        assert!(!copy.is_same(&id));
        assert!(!ActorId::new("counter", "user-42").is_same(&id));
        assert_eq!(copy.interference_key(), id.interference_key());
    }

    #[test]
    fn index_keys_parse_back_and_sort_by_due_time() {
        let id = ActorId::new("reminder", "r/1:x");
        let ikey = id.interference_key();
        let early = alarm_index_key(5, &alarm_key(&ikey, b"3.1"));
        let late = alarm_index_key(256, &alarm_key(&ikey, b"2.9"));
        assert!(early < late);
        assert_eq!(parse_alarm_index_key(&late), Some((256, id.clone(), "2.9".to_string())));
        assert_eq!(parse_alarm_index_key(b"t/short"), None);
        assert_eq!(parse_work_index_key(&work_index_key(&ikey)), Some(id.clone()));
        assert_eq!(parse_work_index_key(&[&work_index_key(&ikey)[..], b"x"].concat()), None);
        assert!(queue_message_key(&ikey, "jobs", 1) < queue_message_key(&ikey, "jobs", 256));
        assert!(queue_message_key(&ikey, "jobs", 1).starts_with(&queue_prefix(&ikey, "jobs")));
        assert!(!queue_message_key(&ikey, "jobs2", 1).starts_with(&queue_prefix(&ikey, "jobs")));
        assert!(check_queue_name("jobs").is_ok());
        assert!(check_queue_name("a/b").is_err());
        assert!(check_queue_name("").is_err());
    }

    #[test]
    fn compound_keys_round_trip_and_never_collide() {
        let cases: &[&[&str]] = &[
            &["org-acme", "general"],
            &["org-acme/general"],
            &["a\\", "b"],
            &["a\\/b"],
            &["", ""],
            &["plain"],
            &["x", "", "y/z\\"],
        ];
        let mut seen = std::collections::HashSet::new();
        for parts in cases {
            let key = compound_key(parts);
            assert_eq!(key_parts(&key), *parts, "{key:?}");
            assert!(seen.insert(key.clone()), "{parts:?} collides as {key:?}");
        }
        assert_eq!(compound_key(&["org-acme", "general"]), "org-acme/general");
        assert_eq!(compound_key(&["org-acme/general"]), "org-acme\\/general");
        assert_eq!(key_parts("user-42"), ["user-42"]);
    }

    #[test]
    fn names_and_keys_are_checked() {
        assert!(check_actor_name("chatRoom").is_ok());
        assert!(check_actor_name("").is_err());
        assert!(check_actor_name("a b").is_err());
        assert!(check_actor_name(&"x".repeat(65)).is_err());
        assert!(ActorId::new("counter", "").validate().is_err());
        assert!(ActorId::new("counter", "k".repeat(1025)).validate().is_err());
        assert!(ActorId::new("counter", "ünïcode key").validate().is_ok());
        assert!(check_kv_key("").is_err());
    }
}
