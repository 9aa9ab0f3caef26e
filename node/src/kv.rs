//! The key-value state machine that epoxy commands drive, and the `mortar.v1.Kv` service.
//!
//! Every operation, reads included, is an epoxy command on the key it touches, so it is ordered
//! with every other operation on that key: linearizable from any node.

use crate::driver::{DriverHandle, ProposeError};
use crate::state_machine::{Op, Outcome, View};
use bytes::Bytes;
use mortar_proto::v1::kv_server::Kv;
use mortar_proto::v1::{
    CasRequest, CasResponse, DeleteRequest, DeleteResponse, GetRequest, GetResponse, PutRequest, PutResponse,
    cas_request,
};
use mortar_storage::StorageError;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tonic::{Request, Response, Status};

/// Prefix of user keys in the storage `kv` space and in epoxy interference keys (other prefixes
/// are kept for actor state).
pub const USER_KEY_PREFIX: &[u8] = b"k/";

/// One operation on one key, carried in an epoxy command as `state_machine::Op::Kv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Get,
    Put {
        value: Bytes,
    },
    Delete,
    /// `expect: None` means "expect the key to be absent".
    Cas {
        expect: Option<Bytes>,
        value: Bytes,
    },
    /// `op` at most once per `request_id` on this key: a retry answers the first outcome.
    /// `issued_at_ms` is the proposing node's wall clock, fixed in the command so that every
    /// replica expires the record alike.
    Once {
        request_id: Bytes,
        issued_at_ms: u64,
        op: Box<KvOp>,
    },
}

/// Longest client request id.
pub const REQUEST_ID_BYTES_MAX: usize = 64;
/// How long a request id is remembered on its key.
pub const DEDUP_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Most remembered request ids of one key examined for expiry by one operation.
pub const DEDUP_EXPIRY_SCAN_MAX: usize = 64;

/// The storage prefix of the request ids remembered for one storage key. The key is
/// length-prefixed so that one key's prefix is never another's.
fn dedup_prefix(key: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(4 + key.len());
    prefix.extend_from_slice(b"d/");
    prefix.extend_from_slice(&(key.len() as u16).to_be_bytes());
    prefix.extend_from_slice(key);
    prefix
}

/// Applies an operation to `key` through the round's view; the state machine's KV arm.
pub fn apply(key: &Bytes, op: KvOp, view: &mut View) -> Result<KvOutcome, StorageError> {
    let KvOp::Once { request_id, issued_at_ms, op } = op else {
        if let KvOp::Put { value } = op {
            // A plain put answers nothing about the old value: skip the read.
            view.put(key.clone(), Some(value));
            return Ok(KvOutcome { previous: None, written: true });
        }
        let (write, outcome) = op.apply(view.get(key)?);
        if let Some(value) = write {
            view.put(key.clone(), value);
        }
        return Ok(outcome);
    };
    let prefix = dedup_prefix(key);
    let mut record_key = prefix.clone();
    record_key.extend_from_slice(&request_id);
    if let Some(seen) = view.get(&record_key)?
        && let Ok((_, first)) = postcard::from_bytes::<(u64, KvOutcome)>(&seen)
    {
        return Ok(first); // a retry: the first attempt's outcome, no second effect
    }
    // Expire old ids of this key (only commands on this key do, so every replica agrees).
    for (old_key, old) in view.scan_prefix(&prefix, None, DEDUP_EXPIRY_SCAN_MAX)? {
        let expired = postcard::from_bytes::<(u64, KvOutcome)>(&old)
            .map_or(true, |(at, _)| at.saturating_add(DEDUP_WINDOW_MS) < issued_at_ms);
        if expired {
            view.put(old_key, None);
        }
    }
    let outcome = apply(key, *op, view)?;
    let record = postcard::to_stdvec(&(issued_at_ms, &outcome)).expect("encoding into a Vec cannot fail");
    view.put(record_key.into(), Some(record.into()));
    Ok(outcome)
}

/// What an executed operation saw: the value the key held before it, and whether it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KvOutcome {
    pub previous: Option<Bytes>,
    pub written: bool,
}

impl KvOp {
    /// Applies the operation to `current`, returning the new value (`None` = absent) when it
    /// writes, and the outcome.
    pub fn apply(&self, current: Option<Bytes>) -> (Option<Option<Bytes>>, KvOutcome) {
        match self {
            KvOp::Get => (None, KvOutcome { previous: current, written: false }),
            KvOp::Put { value } => {
                (Some(Some(value.clone())), KvOutcome { previous: current, written: true })
            }
            KvOp::Delete => (Some(None), KvOutcome { previous: current, written: true }),
            KvOp::Once { op, .. } => op.apply(current),
            KvOp::Cas { expect, value } => {
                if *expect == current {
                    (Some(Some(value.clone())), KvOutcome { previous: current, written: true })
                } else {
                    (None, KvOutcome { previous: current, written: false })
                }
            }
        }
    }
}

/// The storage / interference key of a user key.
pub fn storage_key(user_key: &[u8]) -> Bytes {
    let mut k = Vec::with_capacity(USER_KEY_PREFIX.len() + user_key.len());
    k.extend_from_slice(USER_KEY_PREFIX);
    k.extend_from_slice(user_key);
    k.into()
}

pub struct KvService {
    pub driver: DriverHandle,
    pub value_bytes_max: usize,
}

impl KvService {
    async fn run(&self, op: &'static str, key: &[u8], kv_op: KvOp) -> Result<KvOutcome, Status> {
        self.run_once(op, key, kv_op, &Bytes::new()).await
    }

    /// Runs an operation, at most once per non-empty `request_id`.
    async fn run_once(
        &self,
        op: &'static str,
        key: &[u8],
        kv_op: KvOp,
        request_id: &Bytes,
    ) -> Result<KvOutcome, Status> {
        mortar_proto::check_key(key)?;
        if request_id.len() > REQUEST_ID_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "request_id is {} bytes, more than the limit of {REQUEST_ID_BYTES_MAX}",
                request_id.len()
            )));
        }
        let kv_op = if request_id.is_empty() {
            kv_op
        } else {
            let issued_at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            KvOp::Once { request_id: request_id.clone(), issued_at_ms, op: Box::new(kv_op) }
        };
        let started = Instant::now();
        let result = self.driver.execute(storage_key(key), Op::Kv(kv_op).encode()).await;
        metrics::histogram!("mortar_node_kv_request_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(Outcome::Kv(outcome)) => Ok(outcome),
            Ok(other) => Err(Status::internal(format!("a kv command answered {other:?}"))),
            Err(ProposeError::Unavailable(why)) => Err(Status::unavailable(why)),
            Err(ProposeError::Invalid(why)) => Err(Status::invalid_argument(why)),
            Err(ProposeError::Aborted(why)) => Err(Status::aborted(why)),
            Err(ProposeError::Overloaded(why)) => Err(Status::resource_exhausted(why)),
            Err(ProposeError::Internal(why)) => Err(Status::internal(why)),
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let req = request.into_inner();
        let outcome = self.run("get", &req.key, KvOp::Get).await?;
        let found = outcome.previous.is_some();
        Ok(Response::new(GetResponse { found, value: outcome.previous.unwrap_or_default() }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = request.into_inner();
        mortar_proto::check_value(&req.value, self.value_bytes_max)?;
        self.run_once("put", &req.key, KvOp::Put { value: req.value }, &req.request_id).await?;
        Ok(Response::new(PutResponse {}))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let req = request.into_inner();
        let outcome = self.run_once("delete", &req.key, KvOp::Delete, &req.request_id).await?;
        Ok(Response::new(DeleteResponse { existed: outcome.previous.is_some() }))
    }

    async fn cas(&self, request: Request<CasRequest>) -> Result<Response<CasResponse>, Status> {
        let req = request.into_inner();
        mortar_proto::check_value(&req.value, self.value_bytes_max)?;
        let expect = match req.expect {
            Some(cas_request::Expect::ExpectValue(v)) => {
                // The expected value travels in the replicated command like a value does.
                mortar_proto::check_value(&v, self.value_bytes_max)
                    .map_err(|e| Status::invalid_argument(format!("expect_value: {e}")))?;
                Some(v)
            }
            Some(cas_request::Expect::ExpectAbsent(true)) => None,
            Some(cas_request::Expect::ExpectAbsent(false)) | None => {
                return Err(Status::invalid_argument(
                    "cas needs an expectation: set expect_value, or expect_absent = true",
                ));
            }
        };
        let outcome =
            self.run_once("cas", &req.key, KvOp::Cas { expect, value: req.value }, &req.request_id).await?;
        Ok(Response::new(CasResponse {
            swapped: outcome.written,
            found: outcome.previous.is_some(),
            current: outcome.previous.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn ops_round_trip() {
        for op in
            [KvOp::Get, KvOp::Delete, KvOp::Put { value: b("v") }, KvOp::Cas { expect: None, value: b("x") }]
        {
            let op = Op::Kv(op);
            assert_eq!(Op::decode(&op.encode()).unwrap(), op);
        }
        assert!(Op::decode(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn cas_semantics() {
        let absent = KvOp::Cas { expect: None, value: b("1") };
        assert_eq!(absent.apply(None), (Some(Some(b("1"))), KvOutcome { previous: None, written: true }));
        assert_eq!(absent.apply(Some(b("0"))), (None, KvOutcome { previous: Some(b("0")), written: false }));
        let expect = KvOp::Cas { expect: Some(b("1")), value: b("2") };
        assert!(expect.apply(Some(b("1"))).1.written);
        assert!(!expect.apply(Some(b("3"))).1.written);
        assert!(!expect.apply(None).1.written);
    }

    #[test]
    fn get_put_delete() {
        assert_eq!(
            KvOp::Get.apply(Some(b("a"))),
            (None, KvOutcome { previous: Some(b("a")), written: false })
        );
        assert_eq!(KvOp::Delete.apply(Some(b("a"))).0, Some(None));
        assert_eq!(KvOp::Put { value: b("z") }.apply(None).0, Some(Some(b("z"))));
    }

    fn apply_on(storage: &mortar_storage::MemStorage, key: &Bytes, op: KvOp) -> KvOutcome {
        use mortar_storage::Storage;
        let mut batch = mortar_storage::WriteBatch::new();
        let outcome = apply(key, op, &mut View::new(storage, &mut batch)).unwrap();
        storage.write(batch, true).unwrap();
        outcome
    }

    fn once(id: &str, at: u64, op: KvOp) -> KvOp {
        KvOp::Once { request_id: b(id), issued_at_ms: at, op: Box::new(op) }
    }

    #[test]
    fn a_retried_request_takes_effect_once_and_answers_the_first_outcome() {
        let storage = mortar_storage::MemStorage::new();
        let key = storage_key(b"x");
        let cas = || once("req-1", 1_000, KvOp::Cas { expect: None, value: b("1") });
        let first = apply_on(&storage, &key, cas());
        assert!(first.written);
        apply_on(&storage, &key, KvOp::Put { value: b("2") });
        // The retry would fail as a fresh CAS (the key is no longer absent): it answers the first
        // outcome and writes nothing.
        assert_eq!(apply_on(&storage, &key, cas()), first);
        assert_eq!(apply_on(&storage, &key, KvOp::Get).previous, Some(b("2")));
    }

    #[test]
    fn request_ids_expire_after_the_window_on_their_key() {
        use mortar_storage::Storage;
        let storage = mortar_storage::MemStorage::new();
        let key = storage_key(b"x");
        apply_on(&storage, &key, once("old", 1_000, KvOp::Put { value: b("1") }));
        let later = 1_000 + DEDUP_WINDOW_MS + 1;
        apply_on(&storage, &key, once("new", later, KvOp::Put { value: b("2") }));
        let left = storage.scan_kv_prefix(&dedup_prefix(&key), None, 10).unwrap();
        assert_eq!(left.len(), 1, "only the new id is remembered");
        // Another key's ids are untouched by this key's operations.
        let other = storage_key(b"y");
        apply_on(&storage, &other, once("o", 1_000, KvOp::Put { value: b("1") }));
        apply_on(&storage, &key, once("newer", later * 2, KvOp::Put { value: b("3") }));
        assert_eq!(storage.scan_kv_prefix(&dedup_prefix(&other), None, 10).unwrap().len(), 1);
    }

    #[test]
    fn user_keys_are_prefixed() {
        assert_eq!(&storage_key(b"abc")[..], b"k/abc");
    }
}
