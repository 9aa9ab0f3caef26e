//! The key-value state machine that epoxy commands drive, and the `mortar.v1.Kv` service.
//!
//! Every operation, reads included, is an epoxy command on the key it touches, so it is ordered
//! with every other operation on that key: linearizable from any node.

use crate::driver::{DriverHandle, ProposeError};
use crate::state_machine::{Op, Outcome};
use bytes::Bytes;
use mortar_proto::v1::kv_server::Kv;
use mortar_proto::v1::{
    CasRequest, CasResponse, DeleteRequest, DeleteResponse, GetRequest, GetResponse, PutRequest, PutResponse,
    cas_request,
};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tonic::{Request, Response, Status};

/// Prefix of user keys in the storage `kv` space and in epoxy interference keys (other prefixes
/// are kept for actor state).
pub const USER_KEY_PREFIX: &[u8] = b"k/";

/// One operation on one key. Encoded (postcard) as an epoxy command's payload.
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
}

/// What an executed operation saw: the value the key held before it, and whether it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvOutcome {
    pub previous: Option<Bytes>,
    pub written: bool,
}

impl KvOp {
    pub fn encode(&self) -> Bytes {
        postcard::to_stdvec(self).expect("encoding into a Vec cannot fail").into()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// Applies the operation to `current`, returning the new value (`None` = absent) when it
    /// writes, and the outcome.
    pub fn apply(&self, current: Option<Bytes>) -> (Option<Option<Bytes>>, KvOutcome) {
        match self {
            KvOp::Get => (None, KvOutcome { previous: current, written: false }),
            KvOp::Put { value } => {
                (Some(Some(value.clone())), KvOutcome { previous: current, written: true })
            }
            KvOp::Delete => (Some(None), KvOutcome { previous: current, written: true }),
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
        mortar_proto::check_key(key)?;
        let started = Instant::now();
        let result = self.driver.execute(storage_key(key), Op::Kv(kv_op).encode()).await;
        metrics::histogram!("mortar_node_kv_request_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        result.map(|Outcome::Kv(outcome)| outcome).map_err(|e| match e {
            ProposeError::Unavailable(why) => Status::unavailable(why),
            ProposeError::Invalid(why) => Status::invalid_argument(why),
            ProposeError::Aborted(why) => Status::aborted(why),
            ProposeError::Internal(why) => Status::internal(why),
        })
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
        self.run("put", &req.key, KvOp::Put { value: req.value }).await?;
        Ok(Response::new(PutResponse {}))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let req = request.into_inner();
        let outcome = self.run("delete", &req.key, KvOp::Delete).await?;
        Ok(Response::new(DeleteResponse { existed: outcome.previous.is_some() }))
    }

    async fn cas(&self, request: Request<CasRequest>) -> Result<Response<CasResponse>, Status> {
        let req = request.into_inner();
        mortar_proto::check_value(&req.value, self.value_bytes_max)?;
        let expect = match req.expect {
            Some(cas_request::Expect::ExpectValue(v)) => Some(v),
            Some(cas_request::Expect::ExpectAbsent(true)) => None,
            Some(cas_request::Expect::ExpectAbsent(false)) | None => {
                return Err(Status::invalid_argument(
                    "cas needs an expectation: set expect_value, or expect_absent = true",
                ));
            }
        };
        let outcome = self.run("cas", &req.key, KvOp::Cas { expect, value: req.value }).await?;
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
            assert_eq!(KvOp::decode(&op.encode()).unwrap(), op);
        }
        assert!(KvOp::decode(&[0xff, 0xff]).is_err());
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

    #[test]
    fn user_keys_are_prefixed() {
        assert_eq!(&storage_key(b"abc")[..], b"k/abc");
    }
}
