//! The `mortar` node.
//!
//! # Features
//!
//! * `server` (default): everything that runs a node: [`serve`], [`main`] and [`node_main!`], the
//!   CLI, the benchmark tool, the HTTP endpoints and gateway, telemetry, `testing::TestCluster`,
//!   and RocksDB (through `mortar-storage/rocksdb`). The `mortar` binary, the integration tests
//!   and the examples need it.
//! * Without it (`default-features = false`), the crate is what an application that calls actors,
//!   or defines actor types to share with its clients, needs: the SDK traits, the typed client
//!   ([`actor::Client`], [`actor::ActorRef`], [`actor::Connection`]) and the [`prelude`], without
//!   RocksDB's C++ build. The actor runtime's own code still compiles in (the SDK's `Context` is
//!   its view of an activation), but nothing in such a build opens a store or serves.
pub mod actor;
#[cfg(feature = "server")]
pub mod admin;
pub mod auth;
#[cfg(feature = "server")]
pub mod bench;
#[cfg(feature = "server")]
pub mod binary;
pub mod boot;
pub mod budget;
#[cfg(feature = "server")]
pub mod cli;
pub mod config;
pub mod control;
pub mod driver;
pub mod epoch;
#[cfg(feature = "server")]
pub mod gateway;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod join;
pub mod kv;
pub mod limits;
pub mod metadata;
pub mod node_info;
pub mod placement_view;
pub mod reconfig;
#[cfg(feature = "server")]
pub mod server;
pub mod state_machine;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod testing;
pub mod tls;
pub mod transfer;
pub mod transport;

/// Everything an application needs to write actors and call them.
pub mod prelude {
    pub use crate::actor::{
        Action, Actor, ActorError, ActorEvent, ActorRef, CallError, Client, Conn, ConnEvent, ConnId,
        Connection, Context, Event, Handles, Kv, Message, Registry, RunContext, RunLoop, Work,
    };
}

#[cfg(feature = "server")]
pub use binary::main;

/// Runs a node hosting the actor types in `registry` until SIGINT or SIGTERM (installs the
/// Prometheus metrics recorder; call it once per process). For a whole node binary, with its
/// command line, logging and allocator, see [`main`] and [`node_main!`].
#[cfg(feature = "server")]
pub async fn serve(registry: actor::Registry, config: config::NodeConfig) -> anyhow::Result<()> {
    let metrics =
        telemetry::install_recorder().map_err(|e| anyhow::anyhow!("install the metrics recorder: {e}"))?;
    server::run(config, metrics, registry).await
}
