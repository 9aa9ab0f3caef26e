//! The `mortar` node.
pub mod actor;
pub mod admin;
pub mod auth;
pub mod bench;
pub mod binary;
pub mod boot;
pub mod budget;
pub mod cli;
pub mod config;
pub mod control;
pub mod driver;
pub mod epoch;
pub mod gateway;
pub mod http;
pub mod join;
pub mod kv;
pub mod limits;
pub mod metadata;
pub mod node_info;
pub mod placement_view;
pub mod reconfig;
pub mod server;
pub mod state_machine;
pub mod telemetry;
pub mod testing;
pub mod tls;
pub mod transfer;
pub mod transport;

/// Everything an application needs to write actors and call them.
pub mod prelude {
    pub use crate::actor::{
        Action, Actions, Actor, ActorError, ActorRef, CallError, Client, Conn, ConnEvent, ConnId, Connection,
        Context, Event, Events, Handles, Kv, Message, NoEvents, Registry, RunContext, RunLoop,
    };
}

pub use binary::main;

/// Runs a node hosting the actor types in `registry` until SIGINT or SIGTERM (installs the
/// Prometheus metrics recorder; call it once per process). For a whole node binary, with its
/// command line, logging and allocator, see [`main`] and [`node_main!`].
pub async fn serve(registry: actor::Registry, config: config::NodeConfig) -> anyhow::Result<()> {
    let metrics =
        telemetry::install_recorder().map_err(|e| anyhow::anyhow!("install the metrics recorder: {e}"))?;
    server::run(config, metrics, registry).await
}
