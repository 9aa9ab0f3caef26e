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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId {
    pub name: String,
    pub key: String,
}

impl ActorId {
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self { name: name.into(), key: key.into() }
    }

    /// The epoxy interference key of this actor.
    pub fn interference_key(&self) -> Bytes {
        let mut k = Vec::with_capacity(ACTOR_KEY_PREFIX.len() + 12 + self.name.len() + self.key.len());
        k.extend_from_slice(ACTOR_KEY_PREFIX);
        k.extend_from_slice(format!("{}:", self.name.len()).as_bytes());
        k.extend_from_slice(self.name.as_bytes());
        k.extend_from_slice(format!("/{}:", self.key.len()).as_bytes());
        k.extend_from_slice(self.key.as_bytes());
        k.into()
    }

    /// The storage prefix of this actor's own key-value space.
    pub fn kv_prefix(&self) -> Bytes {
        kv_prefix(&self.interference_key())
    }

    /// Checks the name and key a client sent; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        check_actor_name(&self.name)?;
        if self.key.is_empty() {
            return Err("actor key is empty: give a key of 1 to 1024 bytes, e.g. user-42".into());
        }
        if self.key.len() > ACTOR_KEY_BYTES_MAX {
            return Err(format!(
                "actor key is {} bytes, more than the limit of {ACTOR_KEY_BYTES_MAX} bytes",
                self.key.len()
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for ActorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.key)
    }
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
