//! The systems a benchmark can drive, and the one small client the load generator needs of each:
//! [`Connection`]. The node holds Mortar's, through its gRPC `Kv` service; etcd's, through the
//! `etcd-client` crate, is the lab's (`mortar-chaos bench kv|compare|wan`), so that the `mortar`
//! binary does not link an etcd client.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use mortar_proto::v1::kv_client::KvClient;
use mortar_proto::v1::{GetRequest, PutRequest};

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

/// A connection to one member of the system under test, as the load generator ([`super::run_kv_on`])
/// drives it: cheap to clone (clones share it), one request at a time per clone.
pub trait Connection: Clone + Send + 'static {
    /// Sends one request and waits for its answer; the error is one line.
    fn send(&mut self, op: &Op, value: &Bytes) -> impl Future<Output = Result<(), String>> + Send;
}

/// A connection to one Mortar node.
#[derive(Clone)]
pub struct MortarConnection(KvClient<crate::auth::AuthChannel>);

impl MortarConnection {
    /// Connects to `endpoint` (`host:port`) and checks that it answers a read.
    pub async fn open(endpoint: &str, access: &crate::cli::Credentials) -> anyhow::Result<MortarConnection> {
        let token = access.token().map_err(anyhow::Error::msg)?;
        let dialer = access.dialer().map_err(anyhow::Error::msg)?;
        let channel = dialer
            .endpoint(endpoint)
            .with_context(|| format!("--endpoints: {endpoint:?} is not a host:port address"))?
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .with_context(|| format!("cannot reach a mortar node at {endpoint}; is it running?"))?;
        let mut connection = MortarConnection(KvClient::new(crate::auth::with_token(channel, token)));
        check_answers(&mut connection, Target::Mortar, endpoint).await?;
        Ok(connection)
    }
}

impl Connection for MortarConnection {
    async fn send(&mut self, op: &Op, value: &Bytes) -> Result<(), String> {
        match op {
            Op::Put(key) => self
                .0
                .put(PutRequest { key: key.clone(), value: value.clone(), ..Default::default() })
                .await
                .map(drop)
                .map_err(|s| status_line(&s)),
            Op::Get(key) => {
                self.0.get(GetRequest { key: key.clone() }).await.map(drop).map_err(|s| status_line(&s))
            }
        }
    }
}

/// `endpoint` as a URI: `http://` unless it names a scheme.
pub fn uri(endpoint: &str) -> String {
    if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") }
}

/// Checks that a fresh connection to `target` at `endpoint` answers a read. etcd connects
/// lazily, and a Mortar node without quorum accepts connections: one read tells whether the
/// cluster answers at all.
pub async fn check_answers(
    connection: &mut impl Connection,
    target: Target,
    endpoint: &str,
) -> anyhow::Result<()> {
    let probe = Op::Get(Bytes::from_static(b"bench/probe"));
    match tokio::time::timeout(CONNECT_TIMEOUT, connection.send(&probe, &Bytes::new())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            anyhow::bail!("{target} at {endpoint} does not answer a read: {e}; is the cluster up?")
        }
        Err(_) => anyhow::bail!(
            "{target} at {endpoint} did not answer a read within {} s; is the cluster up?",
            CONNECT_TIMEOUT.as_secs()
        ),
    }
}

/// A gRPC status as one line.
pub fn status_line(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message()).replace(['\n', '\r'], " ")
}
