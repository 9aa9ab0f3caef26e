//! Authenticating gossip datagrams with the cluster's [`GossipKey`]. Pure: bytes in, bytes out.
//!
//! A keyed member *seals* every datagram it sends: `SEAL_MAGIC ‖ foca payload ‖ tag`, where the tag
//! is keyed BLAKE3 of everything before it. A keyed member *opens* every datagram it receives
//! before foca sees a byte of it: a missing, truncated or wrong tag, or any changed bit, and the
//! datagram is dropped. Without a key nothing is sealed, but a sealed datagram is still recognised
//! by its magic and dropped rather than half-understood.
//!
//! What this does not do: hide the contents (gossip is not secret) or stop a replay of an authentic
//! datagram, which carries only what a member once said; foca's generations and incarnations make
//! old news lose against newer news.

use std::fmt;

/// Where every sealed datagram starts. An unsealed foca datagram can never start like this: it
/// starts with the sender's identity, a node id (`'M'`, one varint byte) then its socket address,
/// whose first byte is postcard's variant index, 0 (IPv4) or 1 (IPv6), never `'G'`. So a member
/// without a key recognises a sealed datagram, and a keyed one never mistakes an unsealed one.
pub(crate) const SEAL_MAGIC: [u8; 4] = *b"MGA1";
/// Length of the authentication tag (a full BLAKE3 output).
pub(crate) const TAG_BYTES: usize = blake3::OUT_LEN;
/// What sealing adds to a foca payload.
pub(crate) const SEAL_BYTES: usize = SEAL_MAGIC.len() + TAG_BYTES;

const _: () = assert!(SEAL_MAGIC[0] < 0x80, "one varint byte, so that the next byte is the address variant");
const _: () = assert!(SEAL_MAGIC[1] > 1, "not a socket address variant of postcard");

/// BLAKE3 `derive_key` context: binds the key to this use, so the same secret used elsewhere (a
/// TLS key, another protocol) never yields this key.
const KEY_CONTEXT: &str = "mortar gossip v1";

/// The cluster's gossip key: 32 secret bytes derived from a shared secret.
///
/// Every member of a cluster must use the same key (set [`MembershipConfig::key`]); a member with
/// another key, or none, is not heard. [`Debug`] never prints the bytes.
///
/// [`MembershipConfig::key`]: crate::MembershipConfig::key
#[derive(Clone)]
pub struct GossipKey([u8; blake3::KEY_LEN]);

impl GossipKey {
    /// Shortest secret accepted, in bytes.
    pub const SECRET_BYTES_MIN: usize = 16;

    /// Derives the key from `secret` (read from a file or a secret store; every member uses the
    /// same), with a domain separator so the secret can be shared with nothing else by mistake.
    ///
    /// Refuses a secret shorter than [`GossipKey::SECRET_BYTES_MIN`] bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < Self::SECRET_BYTES_MIN {
            return Err(KeyError::SecretTooShort { bytes: secret.len(), min: Self::SECRET_BYTES_MIN });
        }
        Ok(Self(blake3::derive_key(KEY_CONTEXT, secret)))
    }
}

impl fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GossipKey(<redacted>)")
    }
}

/// Why a secret cannot become a [`GossipKey`]. Retrying does not help: use a longer secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The secret is too short to be hard to guess.
    #[error(
        "gossip secret is {bytes} bytes long, at least {min} needed; generate one with e.g. `openssl rand -hex 32`"
    )]
    SecretTooShort {
        /// Length of the secret given.
        bytes: usize,
        /// The minimum, [`GossipKey::SECRET_BYTES_MIN`].
        min: usize,
    },
}

/// A datagram that is not authentic for this member's key (or sealed while it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unauthenticated;

/// Writes `payload` sealed with `key` into `out` (cleared first).
pub(crate) fn seal(key: &GossipKey, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(payload.len() + SEAL_BYTES);
    out.extend_from_slice(&SEAL_MAGIC);
    out.extend_from_slice(payload);
    let tag = blake3::keyed_hash(&key.0, out);
    out.extend_from_slice(tag.as_bytes());
}

/// The foca payload of `datagram` if it was sealed with `key`.
pub(crate) fn open<'a>(key: &GossipKey, datagram: &'a [u8]) -> Result<&'a [u8], Unauthenticated> {
    if datagram.len() < SEAL_BYTES || !is_sealed(datagram) {
        return Err(Unauthenticated);
    }
    let (sealed, tag) = datagram.split_at(datagram.len() - TAG_BYTES);
    let tag: &[u8; TAG_BYTES] = tag.try_into().map_err(|_| Unauthenticated)?;
    // `Hash == [u8; 32]` compares in constant time: timing tells nothing about the expected tag.
    if blake3::keyed_hash(&key.0, sealed) != *tag {
        return Err(Unauthenticated);
    }
    Ok(&sealed[SEAL_MAGIC.len()..])
}

/// Whether `datagram` looks sealed (starts with [`SEAL_MAGIC`]); says nothing of its authenticity.
pub(crate) fn is_sealed(datagram: &[u8]) -> bool {
    datagram.starts_with(&SEAL_MAGIC)
}

#[cfg(test)]
#[path = "auth_test.rs"]
mod auth_test;
