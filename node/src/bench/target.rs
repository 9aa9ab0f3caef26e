//! The systems a benchmark can drive, behind one small client: Mortar through its gRPC `Kv`
//! service, etcd through the `etcd-client` crate (v3 API: `Put`, and `Range` without
//! `serializable`, which etcd answers linearizably).

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use mortar_proto::v1::kv_client::KvClient;
use mortar_proto::v1::{GetRequest, PutRequest};
use tonic::transport::{Channel, Endpoint};

use super::workload::Op;

/// Bound on connecting to one endpoint and on the probe request that checks it answers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Mortar,
    Etcd,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Mortar => "mortar",
            Target::Etcd => "etcd",
        }
    }

    /// Where a local cluster of this system listens by default (`mortar dev`; a lone etcd).
    pub fn endpoints_default(self) -> Vec<String> {
        match self {
            Target::Mortar => vec!["127.0.0.1:7100".into(), "127.0.0.1:7101".into(), "127.0.0.1:7102".into()],
            Target::Etcd => vec!["127.0.0.1:2379".into()],
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A connection to one node (Mortar) or member (etcd); cheap to clone (clones share it).
#[derive(Clone)]
pub enum Connection {
    Mortar(KvClient<Channel>),
    Etcd(Box<etcd_client::KvClient>),
}

impl Connection {
    /// Connects to `endpoint` (`host:port`) and checks that it answers a read.
    pub async fn open(target: Target, endpoint: &str) -> anyhow::Result<Connection> {
        let uri = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let mut connection = match target {
            Target::Mortar => {
                let channel = Endpoint::from_shared(uri)
                    .with_context(|| format!("--endpoints: {endpoint:?} is not a host:port address"))?
                    .tcp_nodelay(true)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .connect()
                    .await
                    .with_context(|| format!("cannot reach a mortar node at {endpoint}; is it running?"))?;
                Connection::Mortar(KvClient::new(channel))
            }
            Target::Etcd => {
                let options = etcd_client::ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
                let client = etcd_client::Client::connect([uri], Some(options))
                    .await
                    .with_context(|| format!("cannot connect to an etcd member at {endpoint}"))?;
                Connection::Etcd(Box::new(client.kv_client()))
            }
        };
        // etcd connects lazily, and a Mortar node without quorum accepts connections: one read
        // tells whether the cluster answers at all.
        let probe = Op::Get(Bytes::from_static(b"bench/probe"));
        match tokio::time::timeout(CONNECT_TIMEOUT, connection.send(&probe, &Bytes::new())).await {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(e)) => {
                anyhow::bail!("{target} at {endpoint} does not answer a read: {e}; is the cluster up?")
            }
            Err(_) => anyhow::bail!(
                "{target} at {endpoint} did not answer a read within {} s; is the cluster up?",
                CONNECT_TIMEOUT.as_secs()
            ),
        }
    }

    /// Sends one request and waits for its answer; the error is one line.
    pub async fn send(&mut self, op: &Op, value: &Bytes) -> Result<(), String> {
        match (self, op) {
            (Connection::Mortar(client), Op::Put(key)) => client
                .put(PutRequest { key: key.clone(), value: value.clone(), ..Default::default() })
                .await
                .map(drop)
                .map_err(|s| status_line(&s)),
            (Connection::Mortar(client), Op::Get(key)) => {
                client.get(GetRequest { key: key.clone() }).await.map(drop).map_err(|s| status_line(&s))
            }
            (Connection::Etcd(client), Op::Put(key)) => {
                client.put(key.to_vec(), value.to_vec(), None).await.map(drop).map_err(|e| etcd_line(&e))
            }
            (Connection::Etcd(client), Op::Get(key)) => {
                client.get(key.to_vec(), None).await.map(drop).map_err(|e| etcd_line(&e))
            }
        }
    }
}

fn status_line(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message()).replace(['\n', '\r'], " ")
}

fn etcd_line(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => status_line(status),
        other => other.to_string().replace(['\n', '\r'], " "),
    }
}
