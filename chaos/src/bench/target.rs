//! The lab's side of the load generator: a [`Connection`] to Mortar (the node's) or to etcd
//! (through the `etcd-client` crate, v3 API: `Put`, and `Range` without `serializable`, which etcd
//! answers linearizably).

use anyhow::Context as _;
use bytes::Bytes;
use mortar_node::bench::target::{self, CONNECT_TIMEOUT, check_answers, status_line};
use mortar_node::bench::workload::Op;
use mortar_node::bench::{Connection, KvBenchArgs, KvBenchResult, MortarConnection, Target};

/// A connection to one node (Mortar) or member (etcd); cheap to clone (clones share it).
#[derive(Clone)]
pub enum LabConnection {
    Mortar(Box<MortarConnection>),
    Etcd(Box<etcd_client::KvClient>),
}

impl LabConnection {
    /// Connects to `endpoint` (`host:port`) and checks that it answers a read.
    pub async fn open(
        target: Target,
        endpoint: &str,
        access: &mortar_node::cli::Credentials,
    ) -> anyhow::Result<LabConnection> {
        match target {
            Target::Mortar => {
                Ok(LabConnection::Mortar(Box::new(MortarConnection::open(endpoint, access).await?)))
            }
            Target::Etcd => {
                let options = etcd_client::ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
                let client = etcd_client::Client::connect([target::uri(endpoint)], Some(options))
                    .await
                    .with_context(|| format!("cannot connect to an etcd member at {endpoint}"))?;
                let mut connection = LabConnection::Etcd(Box::new(client.kv_client()));
                check_answers(&mut connection, target, endpoint).await?;
                Ok(connection)
            }
        }
    }
}

impl Connection for LabConnection {
    async fn send(&mut self, op: &Op, value: &Bytes) -> Result<(), String> {
        match (self, op) {
            (LabConnection::Mortar(connection), op) => connection.send(op, value).await,
            (LabConnection::Etcd(client), Op::Put(key)) => {
                client.put(key.to_vec(), value.to_vec(), None).await.map(drop).map_err(|e| etcd_line(&e))
            }
            (LabConnection::Etcd(client), Op::Get(key)) => {
                client.get(key.to_vec(), None).await.map(drop).map_err(|e| etcd_line(&e))
            }
        }
    }
}

fn etcd_line(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => status_line(status),
        other => other.to_string().replace(['\n', '\r'], " "),
    }
}

/// `bench kv`: one load on a running Mortar or etcd cluster, through the node's load generator.
pub async fn run_kv(args: KvBenchArgs) -> anyhow::Result<KvBenchResult> {
    args.validate()?;
    let mut connections = Vec::new();
    for endpoint in args.endpoints() {
        connections.push(LabConnection::open(args.target, &endpoint, &args.access).await?);
    }
    mortar_node::bench::run_kv_on(args, connections).await
}
