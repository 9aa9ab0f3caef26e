//! Mortar's wire protocol: the generated tonic/prost code for `mortar.v1` (public) and
//! `mortar.internal.v1` (node-to-node), plus the limits every server enforces on it.
//!
//! ```
//! use mortar_proto::v1::PutRequest;
//! let req = PutRequest { key: "k".into(), value: "v".into(), ..Default::default() };
//! assert!(mortar_proto::check_key(&req.key).is_ok());
//! ```

pub mod codec;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("mortar.v1");
}

#[allow(clippy::all, missing_docs)]
pub mod internal {
    pub mod v1 {
        tonic::include_proto!("mortar.internal.v1");
    }
}

/// The encoded descriptor set of every service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mortar_descriptor");

/// Largest key accepted by `mortar.v1.Kv`.
pub const KEY_BYTES_MAX: usize = 1024;
/// Default largest value accepted by `mortar.v1.Kv` (configurable per node up to
/// [`VALUE_BYTES_LIMIT`]).
pub const VALUE_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// Hard ceiling on a configured value size: one value must fit in one gRPC message.
pub const VALUE_BYTES_LIMIT: usize = 3 * 1024 * 1024;
/// Largest gRPC message a node decodes.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

const _: () = assert!(KEY_BYTES_MAX + VALUE_BYTES_LIMIT < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(VALUE_BYTES_MAX_DEFAULT <= VALUE_BYTES_LIMIT);

/// Why a key or value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    EmptyKey,
    KeyTooLarge { len: usize, max: usize },
    ValueTooLarge { len: usize, max: usize },
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitError::EmptyKey => {
                write!(f, "key is empty: give a key of 1 to {KEY_BYTES_MAX} bytes")
            }
            LimitError::KeyTooLarge { len, max } => {
                write!(f, "key is {len} bytes, more than the limit of {max} bytes")
            }
            LimitError::ValueTooLarge { len, max } => write!(
                f,
                "value is {len} bytes, more than this node's limit of {max} bytes (--value-bytes-max)"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// Checks a key against [`KEY_BYTES_MAX`].
pub fn check_key(key: &[u8]) -> Result<(), LimitError> {
    if key.is_empty() {
        return Err(LimitError::EmptyKey);
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(LimitError::KeyTooLarge { len: key.len(), max: KEY_BYTES_MAX });
    }
    Ok(())
}

/// Checks a value against a node's configured maximum.
pub fn check_value(value: &[u8], max: usize) -> Result<(), LimitError> {
    if value.len() > max {
        return Err(LimitError::ValueTooLarge { len: value.len(), max });
    }
    Ok(())
}

impl From<LimitError> for tonic::Status {
    fn from(e: LimitError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limits() {
        assert_eq!(check_key(b""), Err(LimitError::EmptyKey));
        assert!(check_key(&[0u8; KEY_BYTES_MAX]).is_ok());
        assert_eq!(
            check_key(&[0u8; KEY_BYTES_MAX + 1]),
            Err(LimitError::KeyTooLarge { len: KEY_BYTES_MAX + 1, max: KEY_BYTES_MAX })
        );
    }

    #[test]
    fn value_limits() {
        assert!(check_value(&[0u8; 10], 10).is_ok());
        assert_eq!(check_value(&[0u8; 11], 10), Err(LimitError::ValueTooLarge { len: 11, max: 10 }));
    }

    #[test]
    fn descriptor_set_names_every_service() {
        let raw = String::from_utf8_lossy(FILE_DESCRIPTOR_SET);
        for service in ["Kv", "Admin", "Epoxy", "Control"] {
            assert!(raw.contains(service), "descriptor set lacks {service}");
        }
    }
}
