//! `mortar-chaos bench`: the benchmarks that build whole clusters, and the etcd side of every
//! comparison.
//!
//! * `bench compare` ([`compare::run`]) starts a 3-node Mortar cluster and a 3-node etcd cluster
//!   on loopback, runs a matrix of `bench kv` workloads against each in alternation, and prints
//!   one table.
//! * `bench wan` ([`wan::run`]) runs both across three emulated regions: network namespaces
//!   joined through the harness's delay proxies ([`wan_net`]); needs root.
//! * `bench actors` ([`actors::run`]) measures the actor runtime on a 3-node cluster it starts:
//!   calls/s, activation latency, failover time, memory per idle actor; and, when named in
//!   `--parts` ([`actors_durable`]), alarm lateness (quiet and across a failover), queue
//!   messages sent and handled per second, memory per sleeping actor with a pending alarm.
//! * `bench kv` is `mortar bench kv` that also drives etcd (`--target etcd`): the load generator
//!   is the node's ([`mortar_node::bench::run_kv_on`]); the etcd client ([`target`]) lives here,
//!   so that the `mortar` binary operators deploy links neither the lab nor an etcd client.
//!
//! The clusters run the `mortar` binary found beside `mortar-chaos` (or `--bin`). Build both:
//!
//! ```text
//! $ cargo build --release -p mortar-node -p mortar-chaos
//! $ mortar-chaos bench compare --duration 5 --matrix clients=1,16,64,256 conflict=0,1
//! $ sudo mortar-chaos bench wan --duration 10 --clients 4
//! $ mortar-chaos bench actors --json
//! $ mortar-chaos bench actors --parts alarms,queue,alarm-memory --json
//! $ mortar-chaos bench kv --target etcd --endpoints 127.0.0.1:2379 --clients 16 --rate 2000 --json
//! ```

pub mod actors;
pub mod actors_durable;
pub mod cluster;
pub mod compare;
pub mod matrix;
pub mod metrics;
pub mod systems;
pub mod table;
pub mod target;
pub mod wan;
pub mod wan_net;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

/// `mortar-chaos bench <command>`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load on a running Mortar or etcd cluster (closed loop, or open loop with --rate): ops/s and
    /// latency percentiles (HDR histogram). `mortar bench kv` does the same for Mortar only.
    Kv(mortar_node::bench::KvBenchArgs),
    /// Mortar and etcd side by side: starts a 3-node cluster of each on loopback, runs a matrix of
    /// workloads against both in alternation, prints one table.
    Compare(compare::CompareArgs),
    /// Actors on a cluster this command starts: failover time, activation latency, calls/s,
    /// memory per idle actor; with --parts, alarm lateness, queue throughput, memory per
    /// sleeping actor with an alarm.
    Actors(actors::ActorBenchArgs),
    /// Mortar and etcd across three emulated regions (network namespaces and delay proxies; needs
    /// root): per-region latency of both next to the floor of the network and the disk.
    Wan(wan::WanArgs),
}

/// Runs one benchmark and prints what it measured.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Kv(args) => {
            let json = args.json;
            let result = target::run_kv(args).await?;
            println!("{}", mortar_node::bench::render(&result, json));
        }
        BenchCommand::Compare(args) => {
            let report = compare::run(args.clone()).await?;
            compare::print(&report, &args);
        }
        BenchCommand::Wan(args) => {
            let json = args.json;
            let report = wan::run(args).await?;
            wan::print(&report, json);
        }
        BenchCommand::Actors(args) => actors::run(args).await?,
    }
    Ok(())
}

/// The `mortar` binary the clusters run: `bin` if given, else `mortar` beside this program.
pub fn mortar_bin(bin: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidate = match bin {
        Some(bin) => bin.to_path_buf(),
        None => std::env::current_exe()
            .context("find this program's path; pass --bin <path>")?
            .with_file_name("mortar"),
    };
    anyhow::ensure!(
        candidate.is_file(),
        "the mortar binary {} does not exist: build it (cargo build --release -p mortar-node) or pass --bin <path>",
        candidate.display()
    );
    Ok(candidate)
}
