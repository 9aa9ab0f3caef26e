//! Configuration of one node: the `mortar node` flags, their `MORTAR_*` environment variables and
//! the optional TOML file, merged and validated into a [`NodeConfig`].
//!
//! Precedence, highest first: command-line flag, environment variable, config file, default.
//! Every validation error is one line that says what is wrong and what to do about it.
//!
//! ```
//! use mortar_node::config::{NodeArgs, NodeConfig};
//! let args = NodeArgs {
//!     id: Some(2),
//!     data_dir: Some("/var/lib/mortar".into()),
//!     initial_cluster: Some("1=10.0.0.1:7100,2=10.0.0.2:7100,3=10.0.0.3:7100".into()),
//!     ..NodeArgs::default()
//! };
//! let config = NodeConfig::from_args(args).unwrap();
//! assert_eq!(config.listen.to_string(), "10.0.0.2:7100");
//! assert_eq!(config.http.to_string(), "10.0.0.2:7200");
//! assert_eq!(config.peers().map(|m| m.id).collect::<Vec<_>>(), [1, 3]);
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Most members an initial cluster may list (epoxy's quorum arithmetic is tested up to 7).
pub const MEMBERS_MAX: usize = 7;
/// Default for [`NodeConfig::region`].
pub const REGION_DEFAULT: &str = "default";
/// Default for [`NodeConfig::request_timeout`].
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Longest accepted `request_timeout` (one hour): anything longer is almost certainly a typo.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 60 * 60 * 1000;
/// Default for [`NodeConfig::tick_interval`].
pub const TICK_INTERVAL_DEFAULT: Duration = Duration::from_millis(10);
/// When `--http` is not given, the HTTP port is the gRPC port plus this offset.
pub const HTTP_PORT_OFFSET: u16 = 100;
/// Largest config file read (a real one is a few hundred bytes).
pub const CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Longest accepted `--actor-idle-timeout-ms` (one day).
pub const ACTOR_IDLE_TIMEOUT_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// Longest accepted `--actor-lease-ms`: with the clock drift margin it stays below gossip's
/// suspicion time (400 ms), so a cut-off owner stops answering before its actors move.
pub const ACTOR_LEASE_MS_MAX: u64 = 350;
/// Most `--gossip-seeds`.
pub const GOSSIP_SEEDS_MAX: usize = 64;

const _: () = assert!(MEMBERS_MAX % 2 == 1);
const _: () = assert!(REQUEST_TIMEOUT_DEFAULT.as_millis() <= REQUEST_TIMEOUT_MS_MAX as u128);
const _: () = assert!(
    ACTOR_LEASE_MS_MAX * (100 + crate::actor::lease::CLOCK_DRIFT_PERCENT_MAX as u64) / 100 < 400,
    "the longest lease with its drift margin must stay below the gossip suspicion time"
);
const _: () = assert!(crate::actor::runtime::LEASE_DEFAULT.as_millis() <= ACTOR_LEASE_MS_MAX as u128);

/// One member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u32,
    /// `host:port` of the member's gRPC listener, as other nodes dial it.
    pub address: String,
}

/// The validated configuration of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u32,
    /// gRPC listener (clients and peers).
    pub listen: SocketAddr,
    /// HTTP listener: `/metrics`, `/healthz`, `/readyz`.
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    /// Sorted by id, 1..=7 members, ids unique and ≥ 1; contains `id` unless the node joined
    /// later. Empty, with `id` 0, until a joining node learns both (see [`Join`]).
    pub initial_cluster: Vec<Member>,
    /// `host:port` other nodes dial this node's gRPC listener at.
    pub address: String,
    /// Set when the node starts with `--join`.
    pub join: Option<Join>,
    pub region: String,
    /// A request that cannot reach a quorum fails with `Unavailable` after this.
    pub request_timeout: Duration,
    /// Largest value accepted by `mortar.v1.Kv`; at most [`mortar_proto::VALUE_BYTES_LIMIT`].
    pub value_bytes_max: usize,
    /// Period of the protocol timer.
    pub tick_interval: Duration,
    /// UDP address gossip (membership) binds.
    pub gossip_listen: SocketAddr,
    /// The gossip address peers reach this member at, when not the one it binds (behind a relay
    /// or NAT); `None`: the bound one (or, bound to every interface, its --initial-cluster IP).
    pub gossip_advertise: Option<SocketAddr>,
    /// Gossip addresses (`host:port`) of the members to join through.
    pub gossip_seeds: Vec<String>,
    /// The cluster's gossip key (`--gossip-key-file`): every gossip datagram is authenticated
    /// with it. `None`: gossip is open to anyone who can send UDP to the node.
    pub gossip_key: Option<mortar_placement::GossipKey>,
    /// Most connections the gRPC port holds open at once; one more is closed at once.
    pub grpc_connections_max: usize,
    /// The client and admin tokens (`--auth-token-file`, `--admin-token-file`; see
    /// [`crate::auth`]).
    pub tokens: crate::auth::Tokens,
    /// TLS on the gRPC port and to peers (`--tls-cert`, `--tls-key`, `--tls-ca`), checked;
    /// `None`: plain HTTP/2.
    pub tls: Option<crate::tls::NodeTls>,
    /// Whether spans go to an OTLP collector (`--otlp-endpoint`; `main` installs the exporter).
    pub otlp: bool,
    /// An actor without calls for this long sleeps (memory freed, state on disk).
    pub actor_idle_timeout: Duration,
    /// How long an actor's owner answers reads from memory after confirming its ownership.
    pub actor_lease: Duration,
    /// Whether the node holds one lease for reads of all its actors (`--actor-node-lease`).
    pub actor_node_lease: bool,
}

/// How a node started with `--join` enters a running cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// gRPC `host:port` of any member, asked to register this node and add it to the group.
    pub endpoint: String,
    /// The dead member this node takes the place of, instead of adding one more.
    pub replace: Option<u32>,
}

impl NodeConfig {
    /// Stable 64-bit id of the cluster: FNV-1a over the sorted `"id=address,"` list of
    /// `initial_cluster`. A data directory remembers it; starting a node on a directory of another
    /// cluster is refused.
    pub fn cluster_id(&self) -> u64 {
        cluster_id_of(&self.initial_cluster)
    }

    /// Every member but this node.
    pub fn peers(&self) -> impl Iterator<Item = &Member> {
        self.initial_cluster.iter().filter(move |m| m.id != self.id)
    }

    /// How this node dials its peers: with its certificate over TLS, or plain.
    pub fn dialer(&self) -> crate::tls::Dialer {
        self.tls.as_ref().map_or_else(crate::tls::Dialer::plain, crate::tls::NodeTls::dialer)
    }

    /// This node as a member: its id and the address peers dial.
    pub fn this_member(&self) -> Member {
        Member { id: self.id, address: self.address.clone() }
    }

    /// Merges flags/environment (already in `args`), the config file named by `args.config`,
    /// and defaults; then validates.
    pub fn from_args(args: NodeArgs) -> Result<NodeConfig, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::from_layers(args, file)
    }

    /// Merges `args` (flags and environment) over `file` over defaults, then validates.
    pub fn from_layers(args: NodeArgs, file: FileConfig) -> Result<NodeConfig, ConfigError> {
        let join = match args.join.clone() {
            Some(endpoint) => {
                if !is_host_port(&endpoint) {
                    return Err(ConfigError::BadJoin(endpoint));
                }
                if args.id.is_some() || args.initial_cluster.is_some() {
                    return Err(ConfigError::JoinWithIdentity);
                }
                if args.replace == Some(0) {
                    return Err(ConfigError::ZeroId);
                }
                Some(Join { endpoint, replace: args.replace })
            }
            None if args.replace.is_some() => return Err(ConfigError::ReplaceWithoutJoin),
            None => None,
        };
        let (id, initial_cluster, me) = if join.is_some() {
            (0, Vec::new(), None)
        } else {
            let id = args.id.or(file.id).ok_or(ConfigError::MissingId)?;
            if id == 0 {
                return Err(ConfigError::ZeroId);
            }
            let cluster_text =
                args.initial_cluster.or(file.initial_cluster).ok_or(ConfigError::MissingInitialCluster)?;
            let initial_cluster = parse_initial_cluster(&cluster_text)?;
            let me = initial_cluster
                .iter()
                .find(|m| m.id == id)
                .ok_or_else(|| ConfigError::IdNotInCluster { id, ids: id_list(&initial_cluster) })?
                .clone();
            (id, initial_cluster, Some(me))
        };

        let listen = match (args.listen.or(file.listen), &me) {
            (Some(text), _) => parse_socket_addr(&text).ok_or(ConfigError::BadListen(text))?,
            (None, Some(me)) => parse_socket_addr(&me.address)
                .ok_or_else(|| ConfigError::MissingListen { address: me.address.clone() })?,
            (None, None) => return Err(ConfigError::JoinWithoutListen),
        };
        let address = match (args.advertise.clone(), &me) {
            (Some(text), _) if is_host_port(&text) => text,
            (Some(text), _) => return Err(ConfigError::BadAdvertise(text)),
            (None, Some(me)) => me.address.clone(),
            (None, None) if !listen.ip().is_unspecified() && listen.port() != 0 => listen.to_string(),
            (None, None) => return Err(ConfigError::JoinWithoutAdvertise(listen)),
        };
        let http = match args.http.or(file.http) {
            Some(text) => parse_socket_addr(&text).ok_or(ConfigError::BadHttp(text))?,
            None => {
                let port =
                    listen.port().checked_add(HTTP_PORT_OFFSET).ok_or(ConfigError::MissingHttp { listen })?;
                SocketAddr::new(listen.ip(), port)
            }
        };
        if http == listen {
            return Err(ConfigError::SameListenAndHttp(listen));
        }

        let data_dir = args.data_dir.or(file.data_dir).ok_or(ConfigError::MissingDataDir)?;
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::MissingDataDir);
        }

        let region = args.region.or(file.region).unwrap_or_else(|| REGION_DEFAULT.to_string());
        if region.trim().is_empty() || region.chars().any(char::is_whitespace) {
            return Err(ConfigError::BadRegion(region));
        }

        let request_timeout = match args.request_timeout_ms.or(file.request_timeout_ms) {
            None => REQUEST_TIMEOUT_DEFAULT,
            Some(ms) if ms == 0 || ms > REQUEST_TIMEOUT_MS_MAX => {
                return Err(ConfigError::BadRequestTimeout(ms));
            }
            Some(ms) => Duration::from_millis(ms),
        };

        let value_bytes_max =
            args.value_bytes_max.or(file.value_bytes_max).unwrap_or(mortar_proto::VALUE_BYTES_MAX_DEFAULT);
        if value_bytes_max == 0 || value_bytes_max > mortar_proto::VALUE_BYTES_LIMIT {
            return Err(ConfigError::BadValueBytesMax(value_bytes_max));
        }

        let gossip_listen = match args.gossip_listen.or(file.gossip_listen) {
            Some(text) => parse_socket_addr(&text).ok_or(ConfigError::BadGossipListen(text))?,
            None => listen,
        };
        let gossip_advertise = match args.gossip_advertise.or(file.gossip_advertise) {
            Some(text) => Some(
                parse_socket_addr(&text)
                    .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
                    .ok_or(ConfigError::BadGossipAdvertise(text))?,
            ),
            None => None,
        };
        let gossip_seeds = match args.gossip_seeds.or(file.gossip_seeds) {
            Some(text) => {
                let seeds: Vec<String> =
                    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
                if let Some(bad) = seeds.iter().find(|s| !is_host_port(s)) {
                    return Err(ConfigError::BadGossipSeed(bad.clone()));
                }
                if seeds.len() > GOSSIP_SEEDS_MAX {
                    return Err(ConfigError::TooManyGossipSeeds(seeds.len()));
                }
                seeds
            }
            None => initial_cluster.iter().filter(|m| m.id != id).map(|m| m.address.clone()).collect(),
        };
        let actor_idle_timeout = match args.actor_idle_timeout_ms.or(file.actor_idle_timeout_ms) {
            None => crate::actor::runtime::IDLE_TIMEOUT_DEFAULT,
            Some(ms) if ms == 0 || ms > ACTOR_IDLE_TIMEOUT_MS_MAX => {
                return Err(ConfigError::BadActorIdleTimeout(ms));
            }
            Some(ms) => Duration::from_millis(ms),
        };
        let grpc_connections_max = match args.connections_max.or(file.connections_max) {
            None => crate::limits::default_grpc_connections(),
            Some(n) if (crate::limits::CONNECTIONS_MIN..=crate::limits::CONNECTIONS_MAX).contains(&n) => n,
            Some(n) => return Err(ConfigError::BadConnectionsMax(n)),
        };
        let token =
            |flag: &'static str, path: Option<PathBuf>| -> Result<_, ConfigError> {
                let Some(path) = path else { return Ok(None) };
                crate::auth::Token::from_file(&path)
                    .map(Some)
                    .map_err(|reason| ConfigError::UnreadableToken { flag, path, reason })
            };
        let tokens = crate::auth::Tokens {
            client: token("--auth-token-file", args.auth_token_file.or(file.auth_token_file))?,
            admin: token("--admin-token-file", args.admin_token_file.or(file.admin_token_file))?,
        };
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
            args.tls_ca.or(file.tls_ca),
        ) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => {
                let files = crate::tls::TlsFiles { cert, key, ca };
                let host = crate::tls::host_of(&address);
                Some(crate::tls::NodeTls::load(&files, host, crate::limits::HANDSHAKE_WAIT)?)
            }
            (cert, key, ca) => {
                let missing: Vec<&str> = [
                    (cert.is_none(), "--tls-cert"),
                    (key.is_none(), "--tls-key"),
                    (ca.is_none(), "--tls-ca"),
                ]
                .into_iter()
                .filter_map(|(absent, flag)| absent.then_some(flag))
                .collect();
                return Err(ConfigError::IncompleteTls(missing.join(", ")));
            }
        };
        let gossip_key = match args.gossip_key_file.or(file.gossip_key_file) {
            Some(path) => Some(read_gossip_key(&path)?),
            None => None,
        };
        let actor_lease = match args.actor_lease_ms.or(file.actor_lease_ms) {
            None => crate::actor::runtime::LEASE_DEFAULT,
            Some(ms) if ms == 0 || ms > ACTOR_LEASE_MS_MAX => return Err(ConfigError::BadActorLease(ms)),
            Some(ms) => Duration::from_millis(ms),
        };

        Ok(NodeConfig {
            id,
            listen,
            http,
            data_dir,
            initial_cluster,
            address,
            join,
            region,
            request_timeout,
            value_bytes_max,
            tick_interval: TICK_INTERVAL_DEFAULT,
            gossip_listen,
            gossip_advertise,
            gossip_seeds,
            gossip_key,
            grpc_connections_max,
            tokens,
            tls,
            otlp: args.otlp_endpoint.is_some(),
            actor_idle_timeout,
            actor_lease,
            actor_node_lease: args.actor_node_lease.or(file.actor_node_lease).unwrap_or(true),
        })
    }
}

/// The gossip key from its file (see [`crate::auth::read_secret_file`]). The secret itself
/// never appears in an error.
fn read_gossip_key(path: &Path) -> Result<mortar_placement::GossipKey, ConfigError> {
    let unreadable = |reason: String| ConfigError::UnreadableGossipKey { path: path.to_path_buf(), reason };
    let secret = crate::auth::read_secret_file(path).map_err(unreadable)?;
    mortar_placement::GossipKey::from_secret(&secret).map_err(|e| unreadable(e.to_string()))
}

/// FNV-1a (64-bit) over `"id=address,"` for each member, in id order.
pub fn cluster_id_of(members: &[Member]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| m.id);
    let mut hash = FNV_OFFSET;
    for m in sorted {
        for byte in format!("{}={},", m.id, m.address).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// The flags of `mortar node`. Each is also read from `MORTAR_<FLAG>`; a flag wins over its
/// environment variable, and both win over the config file.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_help = NODE_AFTER_HELP)]
pub struct NodeArgs {
    /// This node's id: a number from 1 up that appears in --initial-cluster.
    #[arg(long, env = "MORTAR_ID", value_name = "N")]
    pub id: Option<u32>,

    /// Join a running cluster as a new node, through the gRPC endpoint of any member, with an
    /// empty --data-dir: the control plane assigns this node's id (give neither --id nor
    /// --initial-cluster). Restarting with the same flags resumes or reuses the data directory.
    #[arg(long, env = "MORTAR_JOIN", value_name = "HOST:PORT")]
    pub join: Option<String>,

    /// With --join: take the place of this dead member in the replica group (one switch: the
    /// group never runs with fewer copies), instead of adding one more member.
    #[arg(long, env = "MORTAR_REPLACE", value_name = "ID")]
    pub replace: Option<u32>,

    /// The gRPC address other nodes dial this node at [default: its --initial-cluster address;
    /// with --join, the --listen address].
    #[arg(long, env = "MORTAR_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,

    /// Address of the gRPC listener (clients and peers) [default: this node's address in
    /// --initial-cluster].
    #[arg(long, env = "MORTAR_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<String>,

    /// Address of the HTTP listener for /metrics, /healthz and /readyz [default: the --listen IP
    /// with port + 100].
    #[arg(long, env = "MORTAR_HTTP", value_name = "IP:PORT")]
    pub http: Option<String>,

    /// Directory of this node's durable state. It remembers the cluster it belongs to.
    #[arg(long, env = "MORTAR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Every member of the cluster, this node included: 1=host:port,2=host:port,3=host:port
    /// (1 to 7 members; 3, 5 or 7 tolerate 1, 2 or 3 failures).
    #[arg(long, env = "MORTAR_INITIAL_CLUSTER", value_name = "ID=HOST:PORT,...")]
    pub initial_cluster: Option<String>,

    /// Region label of this node, used to place new actors near their callers [default:
    /// "default"].
    #[arg(long, env = "MORTAR_REGION", value_name = "NAME")]
    pub region: Option<String>,

    /// A request that cannot reach a quorum fails with Unavailable after this many milliseconds
    /// [default: 5000].
    #[arg(long, env = "MORTAR_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub request_timeout_ms: Option<u64>,

    /// Largest value accepted, in bytes [default: 1048576; at most 3145728].
    #[arg(long, env = "MORTAR_VALUE_BYTES_MAX", value_name = "BYTES")]
    pub value_bytes_max: Option<usize>,

    /// UDP address for gossip (membership and failure detection) [default: the --listen address;
    /// UDP and TCP ports are separate, so gossip shares the gRPC port number].
    #[arg(long, env = "MORTAR_GOSSIP_LISTEN", value_name = "IP:PORT")]
    pub gossip_listen: Option<String>,

    /// The gossip address other members reach this one at, when it is not the one bound (behind a
    /// relay or NAT) [default: the --gossip-listen address].
    #[arg(long, env = "MORTAR_GOSSIP_ADVERTISE", value_name = "IP:PORT")]
    pub gossip_advertise: Option<String>,

    /// Gossip addresses of members to join through [default: the other members' --initial-cluster
    /// addresses, i.e. every member gossips on its gRPC port number].
    #[arg(long, env = "MORTAR_GOSSIP_SEEDS", value_name = "HOST:PORT,...")]
    pub gossip_seeds: Option<String>,

    /// File holding the cluster's gossip secret (at least 16 bytes; every node the same, e.g.
    /// `head -c 32 /dev/urandom > gossip.key`): every gossip datagram is then authenticated, and
    /// forged or corrupted ones are dropped [default: none, gossip is open to the network].
    #[arg(long, env = "MORTAR_GOSSIP_KEY_FILE", value_name = "FILE")]
    pub gossip_key_file: Option<PathBuf>,

    /// Most client and peer connections the gRPC port holds open at once; one more is closed as
    /// soon as it is accepted [default: half the process's file limit, 64 to 65536].
    #[arg(long, env = "MORTAR_CONNECTIONS_MAX", value_name = "N")]
    pub connections_max: Option<usize>,

    /// File holding the token clients present (`mortar --token`) to use keys and actors
    /// [default: none, clients need no token].
    #[arg(long, env = "MORTAR_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// File holding the token for administration (Admin, the actor inspector, membership
    /// changes); it is also accepted where the client token is [default: none].
    #[arg(long, env = "MORTAR_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// This node's TLS certificate chain (PEM): with --tls-key and --tls-ca the gRPC port serves
    /// only TLS, peers dial each other with mutual TLS, and the services only nodes use accept
    /// only connections with a certificate the CA signed. It must name the host peers dial
    /// (`mortar cert node` makes one) [default: none, plain HTTP/2].
    #[arg(long, env = "MORTAR_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "MORTAR_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// The cluster's CA certificate (PEM): it signed every node's certificate.
    #[arg(long, env = "MORTAR_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// An actor without calls for this many milliseconds sleeps: its memory is freed, its state
    /// stays on disk, and its next call activates it again [default: 60000].
    #[arg(long, env = "MORTAR_ACTOR_IDLE_TIMEOUT_MS", value_name = "MS")]
    pub actor_idle_timeout_ms: Option<u64>,

    /// How long an actor's owner answers read-only actions from memory after it last confirmed
    /// its ownership through a quorum [default: 300; at most 350, below failure detection].
    #[arg(long, env = "MORTAR_ACTOR_LEASE_MS", value_name = "MS")]
    pub actor_lease_ms: Option<u64>,

    /// Renew one lease for all of this node's actors every third of a lease, so that reads need
    /// no per-actor ownership check once an actor's own lease lapsed; `false` confirms per actor
    /// (for comparison) [default: true].
    #[arg(long, env = "MORTAR_ACTOR_NODE_LEASE", value_name = "BOOL")]
    pub actor_node_lease: Option<bool>,

    /// Send a span of every client request to this OpenTelemetry collector (OTLP over gRPC,
    /// e.g. http://otel-collector:4317) [default: none]. Flag or environment only.
    #[arg(long, env = "MORTAR_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// TOML file with any of: id, listen, http, data_dir, initial_cluster, region,
    /// request_timeout_ms, value_bytes_max, gossip_listen, gossip_advertise, gossip_seeds,
    /// gossip_key_file, connections_max, auth_token_file, admin_token_file, tls_cert, tls_key,
    /// tls_ca, actor_idle_timeout_ms, actor_lease_ms, actor_node_lease. Flags and environment
    /// variables override it.
    #[arg(long, env = "MORTAR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

const NODE_AFTER_HELP: &str = "\
Every flag can also be set with an environment variable MORTAR_<FLAG> (MORTAR_ID, MORTAR_LISTEN,
MORTAR_INITIAL_CLUSTER, ...) or in the --config file. A flag wins over its variable, which wins
over the file.

Example, a three-node cluster on one machine (one command per terminal):
  mortar node --id 1 --data-dir data/1 --initial-cluster 1=127.0.0.1:7100,2=127.0.0.1:7101,3=127.0.0.1:7102
  mortar node --id 2 --data-dir data/2 --initial-cluster 1=127.0.0.1:7100,2=127.0.0.1:7101,3=127.0.0.1:7102
  mortar node --id 3 --data-dir data/3 --initial-cluster 1=127.0.0.1:7100,2=127.0.0.1:7101,3=127.0.0.1:7102
(`mortar dev` does exactly this for you.)

Config file example:
  id = 1
  data_dir = \"/var/lib/mortar\"
  initial_cluster = \"1=10.0.0.1:7100,2=10.0.0.2:7100,3=10.0.0.3:7100\"
  listen = \"0.0.0.0:7100\"
  http = \"0.0.0.0:7200\"

Logs go to stderr; set MORTAR_LOG (e.g. MORTAR_LOG=debug) to change the level.
The node stops cleanly on SIGINT or SIGTERM.";

/// The `--config` TOML file. Unknown keys are an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub id: Option<u32>,
    pub listen: Option<String>,
    pub http: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub initial_cluster: Option<String>,
    pub region: Option<String>,
    pub request_timeout_ms: Option<u64>,
    pub value_bytes_max: Option<usize>,
    pub gossip_listen: Option<String>,
    pub gossip_advertise: Option<String>,
    pub gossip_seeds: Option<String>,
    pub gossip_key_file: Option<PathBuf>,
    pub connections_max: Option<usize>,
    pub auth_token_file: Option<PathBuf>,
    pub admin_token_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub actor_idle_timeout_ms: Option<u64>,
    pub actor_lease_ms: Option<u64>,
    pub actor_node_lease: Option<bool>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let unreadable = |reason: String| ConfigError::UnreadableFile { path: path.to_path_buf(), reason };
        let len = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?.len();
        if len > CONFIG_FILE_BYTES_MAX {
            return Err(unreadable(format!(
                "it is {len} bytes, more than the {CONFIG_FILE_BYTES_MAX} bytes a config file may have"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        FileConfig::parse(&text)
            .map_err(|reason| ConfigError::InvalidFile { path: path.to_path_buf(), reason })
    }

    /// Parses config file text; the error is one line with the line number.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {message}")
                }
                None => message,
            }
        })
    }
}

/// Why a node configuration was refused. Each message is one line that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "missing node id: pass --id <N> (or set MORTAR_ID, or `id` in the config file), or --join \
         <a member's host:port> to join a running cluster as a new node"
    )]
    MissingId,
    #[error("--join `{0}` is not a host:port address of a member, e.g. 10.0.0.1:7100")]
    BadJoin(String),
    #[error("--join takes no --id or --initial-cluster: the control plane assigns a joining node its id")]
    JoinWithIdentity,
    #[error(
        "--replace needs --join: a node replaces a dead one by joining, e.g. --join 10.0.0.1:7100 --replace 3"
    )]
    ReplaceWithoutJoin,
    #[error(
        "--join needs --listen: pass the ip:port for this node's gRPC listener, e.g. --listen 10.0.0.4:7100"
    )]
    JoinWithoutListen,
    #[error("--advertise `{0}` is not a host:port address, e.g. 10.0.0.4:7100")]
    BadAdvertise(String),
    #[error(
        "--listen {0} is not an address other nodes can dial: pass --advertise host:port, the address \
         peers reach this node at"
    )]
    JoinWithoutAdvertise(SocketAddr),
    #[error("node id 0 is invalid: ids start at 1; pass --id 1 or higher")]
    ZeroId,
    #[error(
        "missing --initial-cluster: list every member with its gRPC address, e.g. \
         --initial-cluster 1=10.0.0.1:7100,2=10.0.0.2:7100,3=10.0.0.3:7100"
    )]
    MissingInitialCluster,
    #[error(
        "--initial-cluster entry `{0}` is malformed: write each member as <id>=<host:port>, e.g. \
         2=10.0.0.2:7100, separated by commas"
    )]
    MalformedEntry(String),
    #[error(
        "--initial-cluster entry `{entry}`: `{id}` is not a node id; ids are numbers from 1 up, \
         e.g. 2=10.0.0.2:7100"
    )]
    BadMemberId { entry: String, id: String },
    #[error(
        "--initial-cluster entry `{entry}`: `{address}` is not a host:port address, e.g. \
         10.0.0.2:7100 or node-2.example:7100"
    )]
    BadMemberAddress { entry: String, address: String },
    #[error("--initial-cluster lists node id {0} more than once: give each member its own id")]
    DuplicateId(u32),
    #[error(
        "--initial-cluster lists address {0} for more than one member: give each member its own \
         address"
    )]
    DuplicateAddress(String),
    #[error(
        "--initial-cluster is empty: list every member, e.g. 1=10.0.0.1:7100,2=10.0.0.2:7100,3=10.0.0.3:7100"
    )]
    EmptyCluster,
    #[error(
        "--initial-cluster has {0} members but mortar supports at most {MEMBERS_MAX}: list 3, 5 \
         or 7 members"
    )]
    TooManyMembers(usize),
    #[error(
        "node id {id} is not in --initial-cluster (it lists {ids}): pass one of those ids as --id, \
         or add this node to --initial-cluster"
    )]
    IdNotInCluster { id: u32, ids: String },
    #[error("--listen `{0}` is not an address: give ip:port, e.g. 0.0.0.0:7100")]
    BadListen(String),
    #[error(
        "missing --listen: this node's --initial-cluster address `{address}` is not a local \
         ip:port; pass --listen ip:port, e.g. 0.0.0.0:7100"
    )]
    MissingListen { address: String },
    #[error("--http `{0}` is not an address: give ip:port, e.g. 0.0.0.0:7200")]
    BadHttp(String),
    #[error(
        "missing --http: the default (the --listen port + 100) does not exist for {listen}; pass --http ip:port"
    )]
    MissingHttp { listen: SocketAddr },
    #[error("--listen and --http are both {0}: give the HTTP listener its own port")]
    SameListenAndHttp(SocketAddr),
    #[error(
        "missing --data-dir: pass the directory for this node's durable state, e.g. --data-dir /var/lib/mortar"
    )]
    MissingDataDir,
    #[error("--region `{0}` is invalid: give a non-empty name without spaces, e.g. eu-west")]
    BadRegion(String),
    #[error(
        "--request-timeout-ms {0} is out of range: give 1 to {REQUEST_TIMEOUT_MS_MAX} \
         milliseconds (the default is 5000)"
    )]
    BadRequestTimeout(u64),
    #[error(
        "--value-bytes-max {0} is out of range: give 1 to {limit} bytes (the default is {default})",
        limit = mortar_proto::VALUE_BYTES_LIMIT,
        default = mortar_proto::VALUE_BYTES_MAX_DEFAULT
    )]
    BadValueBytesMax(usize),
    #[error("--gossip-listen `{0}` is not an address: give ip:port, e.g. 0.0.0.0:7100")]
    BadGossipListen(String),
    #[error("--gossip-advertise `{0}` is not an address peers can reach: give ip:port, e.g. 10.0.0.2:7100")]
    BadGossipAdvertise(String),
    #[error("--gossip-seeds entry `{0}` is not a host:port address, e.g. 10.0.0.2:7100")]
    BadGossipSeed(String),
    #[error("--gossip-seeds lists {0} seeds, at most {GOSSIP_SEEDS_MAX} allowed: a few members are enough")]
    TooManyGossipSeeds(usize),
    #[error(
        "--actor-idle-timeout-ms {0} is out of range: give 1 to {ACTOR_IDLE_TIMEOUT_MS_MAX} \
         milliseconds (the default is 60000)"
    )]
    BadActorIdleTimeout(u64),
    #[error(
        "--actor-lease-ms {0} is out of range: give 1 to {ACTOR_LEASE_MS_MAX} milliseconds (the \
         default is 300); a lease must end before failure detection moves the actor"
    )]
    BadActorLease(u64),
    #[error(
        "--connections-max {0} is out of range: give {min} to {max}",
        min = crate::limits::CONNECTIONS_MIN,
        max = crate::limits::CONNECTIONS_MAX
    )]
    BadConnectionsMax(usize),
    #[error("cannot read the token file {} of {flag}: {reason}", path.display())]
    UnreadableToken { flag: &'static str, path: PathBuf, reason: String },
    #[error("cannot read the gossip key file {}: {reason}; check --gossip-key-file", path.display())]
    UnreadableGossipKey { path: PathBuf, reason: String },
    #[error("TLS needs --tls-cert, --tls-key and --tls-ca together; missing: {0}")]
    IncompleteTls(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot read config file {}: {reason}; check the --config path", path.display())]
    UnreadableFile { path: PathBuf, reason: String },
    #[error("config file {} is invalid: {reason}", path.display())]
    InvalidFile { path: PathBuf, reason: String },
}

/// Parses `1=host:port,2=host:port,...` into members sorted by id, checking every rule.
pub fn parse_initial_cluster(text: &str) -> Result<Vec<Member>, ConfigError> {
    let mut members: Vec<Member> = Vec::new();
    for raw in text.split(',') {
        let entry = raw.trim();
        if entry.is_empty() {
            continue; // Tolerate a trailing comma or doubled separators.
        }
        let (id_text, address) =
            entry.split_once('=').ok_or_else(|| ConfigError::MalformedEntry(entry.to_string()))?;
        let (id_text, address) = (id_text.trim(), address.trim());
        if id_text.is_empty() || address.is_empty() {
            return Err(ConfigError::MalformedEntry(entry.to_string()));
        }
        let id = match id_text.parse::<u32>() {
            Ok(id) if id >= 1 => id,
            _ => {
                return Err(ConfigError::BadMemberId { entry: entry.to_string(), id: id_text.to_string() });
            }
        };
        if !is_host_port(address) {
            return Err(ConfigError::BadMemberAddress {
                entry: entry.to_string(),
                address: address.to_string(),
            });
        }
        if members.iter().any(|m| m.id == id) {
            return Err(ConfigError::DuplicateId(id));
        }
        if members.iter().any(|m| m.address == address) {
            return Err(ConfigError::DuplicateAddress(address.to_string()));
        }
        members.push(Member { id, address: address.to_string() });
        if members.len() > MEMBERS_MAX {
            let count = text.split(',').filter(|e| !e.trim().is_empty()).count();
            return Err(ConfigError::TooManyMembers(count));
        }
    }
    if members.is_empty() {
        return Err(ConfigError::EmptyCluster);
    }
    members.sort_by_key(|m| m.id);
    Ok(members)
}

/// `host:port` with a non-empty host (a name, an IPv4 address or a bracketed IPv6 address) and a
/// port from 1 to 65535.
fn is_host_port(address: &str) -> bool {
    if address.parse::<SocketAddr>().is_ok() {
        return !address.ends_with(":0");
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let port_ok = matches!(port.parse::<u16>(), Ok(p) if p != 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    port_ok && host_ok
}

/// An `ip:port`, or a `host:port` that resolves (first address).
fn parse_socket_addr(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    if !is_host_port(text) {
        return None;
    }
    text.to_socket_addrs().ok()?.next()
}

fn id_list(members: &[Member]) -> String {
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    format!("ids {}", ids.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "1=127.0.0.1:7100,2=127.0.0.1:7101,3=127.0.0.1:7102";

    fn args(id: u32) -> NodeArgs {
        NodeArgs {
            id: Some(id),
            data_dir: Some("data".into()),
            initial_cluster: Some(CLUSTER.into()),
            ..NodeArgs::default()
        }
    }

    fn error(args: NodeArgs) -> ConfigError {
        NodeConfig::from_layers(args, FileConfig::default()).unwrap_err()
    }

    fn assert_one_line(e: &ConfigError) {
        let text = e.to_string();
        assert!(!text.contains('\n'), "error spans lines: {text:?}");
        // Room for serde listing every config file key.
        assert!(text.len() < 480, "error too long: {text:?}");
    }

    #[test]
    fn parses_minimal_flags_with_defaults() {
        let config = NodeConfig::from_layers(args(2), FileConfig::default()).unwrap();
        assert_eq!(config.id, 2);
        assert_eq!(config.listen, "127.0.0.1:7101".parse().unwrap());
        assert_eq!(config.http, "127.0.0.1:7201".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("data"));
        assert_eq!(config.region, "default");
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.value_bytes_max, mortar_proto::VALUE_BYTES_MAX_DEFAULT);
        assert_eq!(config.tick_interval, Duration::from_millis(10));
        assert_eq!(config.initial_cluster.len(), 3);
        assert_eq!(config.this_member().address, "127.0.0.1:7101");
        assert_eq!(config.peers().map(|m| m.id).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn parses_every_flag() {
        let config = NodeConfig::from_layers(
            NodeArgs {
                listen: Some("0.0.0.0:9000".into()),
                http: Some("0.0.0.0:9001".into()),
                region: Some("eu-west".into()),
                request_timeout_ms: Some(2000),
                value_bytes_max: Some(mortar_proto::VALUE_BYTES_LIMIT),
                ..args(1)
            },
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.http, "0.0.0.0:9001".parse().unwrap());
        assert_eq!(config.region, "eu-west");
        assert_eq!(config.request_timeout, Duration::from_millis(2000));
        assert_eq!(config.value_bytes_max, mortar_proto::VALUE_BYTES_LIMIT);
    }

    #[test]
    fn initial_cluster_is_sorted_and_trimmed() {
        let members = parse_initial_cluster(" 3=c:3, 1=a:1 ,2=[::1]:2,").unwrap();
        assert_eq!(
            members,
            vec![
                Member { id: 1, address: "a:1".into() },
                Member { id: 2, address: "[::1]:2".into() },
                Member { id: 3, address: "c:3".into() },
            ]
        );
    }

    #[test]
    fn cluster_id_is_stable_and_order_independent() {
        let a = parse_initial_cluster("1=a:1,2=b:2,3=c:3").unwrap();
        let b = parse_initial_cluster("3=c:3,2=b:2,1=a:1").unwrap();
        assert_eq!(cluster_id_of(&a), cluster_id_of(&b));
        // FNV-1a of "1=a:1,2=b:2,3=c:3,", computed independently.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"1=a:1,2=b:2,3=c:3," {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
        assert_eq!(cluster_id_of(&a), hash);
        let c = parse_initial_cluster("1=a:1,2=b:2,3=c:4").unwrap();
        assert_ne!(cluster_id_of(&a), cluster_id_of(&c));
        let config = NodeConfig::from_layers(args(1), FileConfig::default()).unwrap();
        assert_eq!(config.cluster_id(), cluster_id_of(&config.initial_cluster));
    }

    #[test]
    fn file_fills_what_flags_do_not_set_and_flags_win() {
        let file = FileConfig::parse(
            r#"
                id = 3
                listen = "127.0.0.1:8000"
                http = "127.0.0.1:8001"
                data_dir = "/from/file"
                initial_cluster = "1=a:1,2=b:2,3=c:3"
                region = "file-region"
                request_timeout_ms = 1234
                value_bytes_max = 100
            "#,
        )
        .unwrap();
        // Only the file: every value comes from it.
        let config = NodeConfig::from_layers(NodeArgs::default(), file.clone()).unwrap();
        assert_eq!(config.id, 3);
        assert_eq!(config.listen, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(config.http, "127.0.0.1:8001".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.region, "file-region");
        assert_eq!(config.request_timeout, Duration::from_millis(1234));
        assert_eq!(config.value_bytes_max, 100);
        // Flags (or environment, which clap folds into the same fields) win over the file.
        let config = NodeConfig::from_layers(
            NodeArgs {
                id: Some(1),
                region: Some("flag-region".into()),
                request_timeout_ms: Some(99),
                ..NodeArgs::default()
            },
            file,
        )
        .unwrap();
        assert_eq!(config.id, 1);
        assert_eq!(config.region, "flag-region");
        assert_eq!(config.request_timeout, Duration::from_millis(99));
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.value_bytes_max, 100);
    }

    #[test]
    fn clap_reads_flags_into_args() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            node: NodeArgs,
        }
        let cli = Cli::try_parse_from([
            "mortar",
            "--id",
            "2",
            "--initial-cluster",
            CLUSTER,
            "--data-dir",
            "d",
            "--request-timeout-ms",
            "2000",
            "--value-bytes-max",
            "10",
            "--region",
            "r",
            "--listen",
            "127.0.0.1:1",
            "--http",
            "127.0.0.1:2",
        ])
        .unwrap();
        let config = NodeConfig::from_layers(cli.node, FileConfig::default()).unwrap();
        assert_eq!(config.id, 2);
        assert_eq!(config.request_timeout, Duration::from_millis(2000));
        assert_eq!(config.value_bytes_max, 10);
        assert!(Cli::try_parse_from(["mortar", "--id", "x"]).is_err());
    }

    #[test]
    fn missing_id() {
        let e = error(NodeArgs { id: None, ..args(1) });
        assert_eq!(e, ConfigError::MissingId);
        assert!(e.to_string().contains("--id"));
        assert_one_line(&e);
    }

    #[test]
    fn zero_id() {
        assert_eq!(error(args(0)), ConfigError::ZeroId);
    }

    #[test]
    fn id_not_in_cluster() {
        let e = error(args(4));
        assert!(matches!(e, ConfigError::IdNotInCluster { id: 4, .. }));
        assert!(e.to_string().contains("ids 1, 2, 3"), "{e}");
        assert_one_line(&e);
    }

    #[test]
    fn missing_initial_cluster() {
        let e = error(NodeArgs { initial_cluster: None, ..args(1) });
        assert_eq!(e, ConfigError::MissingInitialCluster);
        assert_one_line(&e);
    }

    #[test]
    fn duplicate_id() {
        let e = parse_initial_cluster("1=a:1,2=b:2,1=c:3").unwrap_err();
        assert_eq!(e, ConfigError::DuplicateId(1));
        assert_one_line(&e);
    }

    #[test]
    fn duplicate_address() {
        let e = parse_initial_cluster("1=a:1,2=a:1").unwrap_err();
        assert_eq!(e, ConfigError::DuplicateAddress("a:1".into()));
    }

    #[test]
    fn malformed_entries() {
        for (text, entry) in [("1=a:1,2=", "2="), ("1=a:1,2", "2"), ("=a:1", "=a:1")] {
            let e = parse_initial_cluster(text).unwrap_err();
            assert_eq!(e, ConfigError::MalformedEntry(entry.into()), "{text}");
            assert!(e.to_string().contains(&format!("`{entry}`")), "{e}");
            assert_one_line(&e);
        }
        let e = parse_initial_cluster("1=a:1,x=host:1").unwrap_err();
        assert_eq!(e, ConfigError::BadMemberId { entry: "x=host:1".into(), id: "x".into() });
        assert_one_line(&e);
        let e = parse_initial_cluster("0=a:1").unwrap_err();
        assert!(matches!(e, ConfigError::BadMemberId { .. }));
        assert_eq!(parse_initial_cluster(" , "), Err(ConfigError::EmptyCluster));
    }

    #[test]
    fn too_many_members() {
        let text: Vec<String> = (1..=8).map(|i| format!("{i}=h:{i}")).collect();
        let e = parse_initial_cluster(&text.join(",")).unwrap_err();
        assert_eq!(e, ConfigError::TooManyMembers(8));
        assert!(e.to_string().contains("at most 7"));
        assert_one_line(&e);
        let seven: Vec<String> = (1..=7).map(|i| format!("{i}=h:{i}")).collect();
        assert_eq!(parse_initial_cluster(&seven.join(",")).unwrap().len(), 7);
    }

    #[test]
    fn unparsable_addresses() {
        for address in ["a", "a:", ":1", "a:0", "a:70000", "a b:1", "a:x"] {
            let e = parse_initial_cluster(&format!("1={address}")).unwrap_err();
            assert!(matches!(e, ConfigError::BadMemberAddress { .. }), "{address}: {e}");
            assert_one_line(&e);
        }
        let e = error(NodeArgs { listen: Some("nonsense".into()), ..args(1) });
        assert_eq!(e, ConfigError::BadListen("nonsense".into()));
        assert_one_line(&e);
        let e = error(NodeArgs { http: Some("1.2.3.4".into()), ..args(1) });
        assert_eq!(e, ConfigError::BadHttp("1.2.3.4".into()));
        let e = error(NodeArgs {
            listen: Some("127.0.0.1:5".into()),
            http: Some("127.0.0.1:5".into()),
            ..args(1)
        });
        assert!(matches!(e, ConfigError::SameListenAndHttp(_)));
    }

    #[test]
    fn gossip_and_actor_flags() {
        let config = NodeConfig::from_layers(args(2), FileConfig::default()).unwrap();
        assert_eq!(config.gossip_listen, config.listen, "gossip shares the gRPC port number by default");
        assert_eq!(config.gossip_advertise, None);
        assert_eq!(config.gossip_seeds, ["127.0.0.1:7100", "127.0.0.1:7102"]);
        assert_eq!(config.actor_idle_timeout, Duration::from_secs(60));
        assert_eq!(config.actor_lease, Duration::from_millis(300));
        assert!(config.actor_node_lease, "node leases are on by default");
        let off = FileConfig { actor_node_lease: Some(false), ..FileConfig::default() };
        assert!(!NodeConfig::from_layers(args(2), off.clone()).unwrap().actor_node_lease);
        let on = NodeArgs { actor_node_lease: Some(true), ..args(2) };
        assert!(NodeConfig::from_layers(on, off).unwrap().actor_node_lease, "the flag overrides the file");
        let config = NodeConfig::from_layers(
            NodeArgs {
                gossip_listen: Some("0.0.0.0:7946".into()),
                gossip_advertise: Some("10.1.2.3:17946".into()),
                gossip_seeds: Some("a:7946, b:7946".into()),
                actor_idle_timeout_ms: Some(500),
                actor_lease_ms: Some(200),
                ..args(2)
            },
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(config.gossip_listen, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(config.gossip_advertise, Some("10.1.2.3:17946".parse().unwrap()));
        assert_eq!(config.gossip_seeds, ["a:7946", "b:7946"]);
        assert_eq!(config.actor_idle_timeout, Duration::from_millis(500));
        assert_eq!(config.actor_lease, Duration::from_millis(200));
        for (bad, expected) in [
            (NodeArgs { actor_lease_ms: Some(351), ..args(1) }, ConfigError::BadActorLease(351)),
            (NodeArgs { actor_lease_ms: Some(0), ..args(1) }, ConfigError::BadActorLease(0)),
            (NodeArgs { actor_idle_timeout_ms: Some(0), ..args(1) }, ConfigError::BadActorIdleTimeout(0)),
            (
                NodeArgs { gossip_listen: Some("x".into()), ..args(1) },
                ConfigError::BadGossipListen("x".into()),
            ),
            (
                NodeArgs { gossip_advertise: Some("0.0.0.0:7946".into()), ..args(1) },
                ConfigError::BadGossipAdvertise("0.0.0.0:7946".into()),
            ),
            (
                NodeArgs { gossip_seeds: Some("a:1,b".into()), ..args(1) },
                ConfigError::BadGossipSeed("b".into()),
            ),
        ] {
            let e = error(bad);
            assert_eq!(e, expected);
            assert_one_line(&e);
        }
    }

    #[test]
    fn value_bytes_max_above_limit() {
        let too_big = mortar_proto::VALUE_BYTES_LIMIT + 1;
        let e = error(NodeArgs { value_bytes_max: Some(too_big), ..args(1) });
        assert_eq!(e, ConfigError::BadValueBytesMax(too_big));
        assert!(e.to_string().contains(&mortar_proto::VALUE_BYTES_LIMIT.to_string()));
        assert_one_line(&e);
        assert_eq!(error(NodeArgs { value_bytes_max: Some(0), ..args(1) }), ConfigError::BadValueBytesMax(0));
    }

    #[test]
    fn tls_takes_all_three_files_checked_against_the_node_address() {
        let e = error(NodeArgs { tls_cert: Some("node.pem".into()), ..args(1) });
        assert_eq!(e, ConfigError::IncompleteTls("--tls-key, --tls-ca".to_string()));
        assert_one_line(&e);
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::tls::generate_ca(1).unwrap();
        let (cert, key) = crate::tls::generate_node(&ca, &["127.0.0.1".to_string()], 1).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let files = FileConfig {
            tls_cert: Some(write("node.pem", &cert)),
            tls_key: Some(write("node.key", &key)),
            tls_ca: Some(write("ca.pem", &ca.ca_cert)),
            ..FileConfig::default()
        };
        // args(1) puts node 1 at a 127.0.0.1 address, which the certificate names.
        let config = NodeConfig::from_layers(args(1), files.clone()).unwrap();
        assert!(config.tls.is_some() && config.dialer().is_tls());
        assert!(!NodeConfig::from_layers(args(1), FileConfig::default()).unwrap().dialer().is_tls());
        // A flag wins over the file: a missing key file is an error naming the flag.
        let missing = NodeArgs { tls_key: Some(dir.path().join("absent.key")), ..args(1) };
        let e = NodeConfig::from_layers(missing, files).unwrap_err();
        assert!(e.to_string().starts_with("cannot read --tls-key"), "{e}");
        assert_one_line(&e);
    }

    #[test]
    fn connections_max_is_bounded() {
        let config =
            |n| NodeConfig::from_layers(NodeArgs { connections_max: n, ..args(1) }, FileConfig::default());
        assert_eq!(config(Some(64)).unwrap().grpc_connections_max, 64);
        assert_eq!(config(None).unwrap().grpc_connections_max, crate::limits::default_grpc_connections());
        for bad in [0, 63, 65_537] {
            let e = config(Some(bad)).unwrap_err();
            assert_eq!(e, ConfigError::BadConnectionsMax(bad));
            assert!(e.to_string().contains("--connections-max"), "{e}");
        }
    }

    #[test]
    fn bad_request_timeout_and_region() {
        assert_eq!(
            error(NodeArgs { request_timeout_ms: Some(0), ..args(1) }),
            ConfigError::BadRequestTimeout(0)
        );
        assert!(matches!(error(NodeArgs { region: Some("".into()), ..args(1) }), ConfigError::BadRegion(_)));
        assert_eq!(error(NodeArgs { data_dir: None, ..args(1) }), ConfigError::MissingDataDir);
    }

    #[test]
    fn a_gossip_key_file_is_read_without_its_trailing_newline_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let with_newline = dir.path().join("a.key");
        let without = dir.path().join("b.key");
        std::fs::write(&with_newline, "0123456789abcdef-secret\n").unwrap();
        std::fs::write(&without, "0123456789abcdef-secret").unwrap();
        let key = |path: &PathBuf| {
            let args = NodeArgs { gossip_key_file: Some(path.clone()), ..args(1) };
            NodeConfig::from_layers(args, FileConfig::default()).unwrap().gossip_key.expect("a key")
        };
        let (a, b) = (key(&with_newline), key(&without));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(!format!("{a:?}").contains("secret"), "{a:?}");
        assert!(NodeConfig::from_layers(args(1), FileConfig::default()).unwrap().gossip_key.is_none());

        let short = dir.path().join("short.key");
        std::fs::write(&short, "tiny-secret\n").unwrap();
        let e = error(NodeArgs { gossip_key_file: Some(short), ..args(1) });
        assert!(matches!(e, ConfigError::UnreadableGossipKey { .. }), "{e}");
        assert!(e.to_string().contains("short.key") && e.to_string().contains("at least 16"), "{e}");
        assert!(!e.to_string().contains("tiny-secret"), "{e}");
        assert_one_line(&e);
        let missing = dir.path().join("missing.key");
        let e = error(NodeArgs { gossip_key_file: Some(missing), ..args(1) });
        assert!(e.to_string().contains("missing.key") && e.to_string().contains("--gossip-key-file"), "{e}");
    }

    #[test]
    fn unreadable_config_file_names_the_path() {
        let path = PathBuf::from("/nonexistent/mortar/config.toml");
        let e = NodeConfig::from_args(NodeArgs { config: Some(path), ..args(1) }).unwrap_err();
        assert!(matches!(e, ConfigError::UnreadableFile { .. }));
        assert!(e.to_string().contains("/nonexistent/mortar/config.toml"), "{e}");
        assert_one_line(&e);
    }

    #[test]
    fn invalid_config_file_names_the_path_the_line_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mortar.toml");
        std::fs::write(&path, "id = 1\nregoin = \"eu\"\n").unwrap();
        let e = NodeConfig::from_args(NodeArgs { config: Some(path.clone()), ..args(1) }).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ConfigError::InvalidFile { .. }));
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("regoin"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert_one_line(&e);

        std::fs::write(&path, "id = \"one\"\n").unwrap();
        let e = NodeConfig::from_args(NodeArgs { config: Some(path.clone()), ..args(1) }).unwrap_err();
        assert!(matches!(e, ConfigError::InvalidFile { .. }), "{e}");
        assert_one_line(&e);

        std::fs::write(&path, "id = [\n").unwrap();
        let e = NodeConfig::from_args(NodeArgs { config: Some(path), ..args(1) }).unwrap_err();
        assert!(matches!(e, ConfigError::InvalidFile { .. }), "{e}");
        assert_one_line(&e);
    }

    #[test]
    fn config_file_is_used_through_from_args() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mortar.toml");
        std::fs::write(&path, format!("id = 3\ninitial_cluster = \"{CLUSTER}\"\ndata_dir = \"d\"\n"))
            .unwrap();
        let config = NodeConfig::from_args(NodeArgs { config: Some(path), ..NodeArgs::default() }).unwrap();
        assert_eq!(config.id, 3);
        assert_eq!(config.listen, "127.0.0.1:7102".parse().unwrap());
    }
}
