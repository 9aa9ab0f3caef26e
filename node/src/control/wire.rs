//! The control plane's encoding of what it stores (log entries, vote, snapshot) and of the Raft
//! messages it sends: one format byte, then postcard.
//!
//! Postcard is compact (a command's bytes stay bytes, where JSON would spell every byte as a
//! number) but not self-describing: a stored value decodes only with the same struct layout. The
//! format byte and the exact openraft pin (`=0.9.25` in the workspace `Cargo.toml`) keep a layout
//! change from being misread; an upgrade that changes a layout bumps [`FORMAT`].

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format byte in front of every encoded value.
pub(crate) const FORMAT: u8 = 1;

/// Why stored or received bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("{what} is empty: expected a format byte and a body")]
    Empty { what: &'static str },
    #[error(
        "{what} has format {found}, but this node reads format {FORMAT}: was it written by another version of mortar?"
    )]
    UnknownFormat { what: &'static str, found: u8 },
    #[error("{what} does not decode: {reason}")]
    Malformed { what: &'static str, reason: String },
}

/// Encodes `value` behind the format byte.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Postcard fails only on types it cannot express (sequences of unknown length,
    // `deserialize_any`); ours are plain structs and enums, so a failure is a bug.
    postcard::to_extend(value, vec![FORMAT]).expect("postcard encodes every control-plane type")
}

/// Decodes what [`encode`] wrote; `what` names the value in the error.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    let (&format, body) = bytes.split_first().ok_or(DecodeError::Empty { what })?;
    if format != FORMAT {
        return Err(DecodeError::UnknownFormat { what, found: format });
    }
    let (value, rest) = postcard::take_from_bytes(body)
        .map_err(|e| DecodeError::Malformed { what, reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed { what, reason: format!("{} bytes left over", rest.len()) });
    }
    Ok(value)
}
