//! `mortar-chaos bench wan`: Mortar and etcd across three emulated regions.
//!
//! Builds three network namespaces (regions a, b and c) joined through user-space delay proxies
//! that add a configured one-way delay between every pair ([`wan_net`]; this kernel has no netem),
//! starts a 3-node Mortar cluster and a 3-node etcd cluster with one member of each per region
//! (both fsync as they do by default), moves etcd's leader to the chosen region, and runs closed-
//! loop puts from clients in every region against their region's own member, all regions at once,
//! first against Mortar and then against etcd. Next to each region's latency it prints the floor
//! the network and the disk allow, measured on the spot: a TCP echo round trip through the
//! proxies and a 4 KiB overwrite + fdatasync in a preallocated file in the data directory.
//!
//! * Mortar commits on the EPaxos fast path: one round trip from the region to its fast quorum
//!   (with 3 replicas, itself and the nearest other region) and one fsync on the way.
//! * etcd sends every write to its leader, which commits once a majority (itself and its nearest
//!   follower) has the entry and tells the region: the round trip to the leader plus the
//!   leader's round trip to its nearest follower, and one fsync.
//!
//! Everything it starts (namespaces, routes, proxies, servers, data) is removed at the end, on an
//! error and on Ctrl-C; a run killed with SIGKILL leaves namespaces that the next run removes.
//!
//! ```text
//! $ sudo mortar-chaos bench wan --duration 10 --clients 4
//! $ sudo mortar-chaos bench wan --delays a-b=10,a-c=40,b-c=45 --etcd-leader b --json
//! ```

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::signal::unix::{SignalKind, signal};

use mortar_node::bench::workload::{Op, Ops, Workload};
use mortar_node::bench::{
    Connection as _, DURATION_SECONDS_MAX, KvBenchArgs, KvBenchResult, LATENCY_MAX, Target, VALUE_BYTES_MAX,
    new_histogram,
};

use super::metrics::{self, Sample};
use super::systems::SystemsArgs;
use super::table::{self, Table};
use super::target::LabConnection;
use super::wan_net::{
    self, ETCD_CLIENT_PORT, ETCD_PEER_PORT, Lab, MORTAR_GRPC_PORT, MORTAR_HTTP_PORT, REGION_NAMES, REGIONS,
    RegionNet, Server,
};

/// Largest one-way delay between two regions.
pub const ONE_WAY_MS_MAX: u64 = 5_000;
const _: () = assert!(ONE_WAY_MS_MAX <= crate::proxy::DELAY_MS_MAX);
/// Most clients in one region.
pub const CLIENTS_PER_REGION_MAX: u64 = 256;
/// Bound on every member answering a write after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one readiness probe (connect, read, write).
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Timed echo round trips from each region to each other region.
const RTT_SAMPLES: usize = 10;
/// Bound on one region's echo round trips to one other region.
const RTT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timed writes + fdatasync in each region's data directory.
const FSYNC_SAMPLES: usize = 20;
/// Bytes written before each timed fdatasync: one small write-ahead-log record.
const FSYNC_BYTES: usize = 4096;
/// How long etcd may take to move its leadership.
const LEADER_MOVE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause after each system's run, for stragglers to settle.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Needs root (it creates network namespaces on 10.78.0.0/24, nothing else) and \
    `ip`; etcd from `apt-get install etcd-server` unless --targets mortar. Example:\n  \
    sudo mortar-chaos bench wan --duration 10 --clients 4\n  \
    sudo mortar-chaos bench wan --delays a-b=10,a-c=40,b-c=45 --etcd-leader b --json")]
pub struct WanArgs {
    /// One-way delay between each pair of the regions a, b and c, in milliseconds; it applies in
    /// both directions, so a round trip takes twice as long.
    #[arg(long, value_delimiter = ',', value_name = "X-Y=MS,...", default_values_t = [
        "a-b=30".to_string(), "a-c=70".to_string(), "b-c=90".to_string()])]
    pub delays: Vec<String>,
    /// Concurrent clients in each region (each with one request in flight), all talking to their
    /// region's member.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=CLIENTS_PER_REGION_MAX))]
    pub clients: u64,
    /// Seconds each system is measured (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=DURATION_SECONDS_MAX))]
    pub duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=DURATION_SECONDS_MAX))]
    pub warmup: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys per client (no two clients, in any region, share a key).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Give up on one request after this many milliseconds (it counts as an error).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Region whose etcd member leads during the etcd run (moved there first) [default: the
    /// region with the smallest sum of delays to the others, etcd's best placement].
    #[arg(long, value_name = "REGION")]
    pub etcd_leader: Option<String>,
    /// Systems (run in this order), binaries and data directories.
    #[command(flatten)]
    pub systems: SystemsArgs,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// One-way delays between the regions, in milliseconds; symmetric, zero on the diagonal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayMatrix {
    one_way_ms: [[u64; REGIONS]; REGIONS],
}

/// The region named `name`, or an error listing the names.
pub fn region_index(name: &str) -> Result<usize, String> {
    REGION_NAMES
        .iter()
        .position(|n| *n == name.trim())
        .ok_or_else(|| format!("{name:?} is not a region; the regions are {}", REGION_NAMES.join(", ")))
}

impl DelayMatrix {
    /// Parses `x-y=ms` words, one for every pair of regions (in either order).
    pub fn parse(words: &[String]) -> Result<DelayMatrix, String> {
        let mut one_way_ms = [[0; REGIONS]; REGIONS];
        let mut given = [[false; REGIONS]; REGIONS];
        for word in words {
            let bad = |why: &str| format!("--delays: {word:?} {why}; give x-y=ms, e.g. a-b=30");
            let (pair, ms) = word.split_once('=').ok_or_else(|| bad("has no `=`"))?;
            let (x, y) = pair.split_once('-').ok_or_else(|| bad("does not name a pair x-y"))?;
            let (x, y) = (region_index(x).map_err(|e| bad(&e))?, region_index(y).map_err(|e| bad(&e))?);
            if x == y {
                return Err(bad("pairs a region with itself"));
            }
            let ms: u64 = ms.trim().parse().map_err(|_| bad("has no whole number of milliseconds"))?;
            if ms > ONE_WAY_MS_MAX {
                return Err(bad(&format!("is longer than {ONE_WAY_MS_MAX} ms")));
            }
            if given[x][y] {
                return Err(bad("repeats a pair"));
            }
            (given[x][y], given[y][x]) = (true, true);
            (one_way_ms[x][y], one_way_ms[y][x]) = (ms, ms);
        }
        let missing: Vec<String> = Self::pairs()
            .filter(|&(x, y)| !given[x][y])
            .map(|(x, y)| format!("{}-{}", REGION_NAMES[x], REGION_NAMES[y]))
            .collect();
        if !missing.is_empty() {
            return Err(format!("--delays has no delay for {}; give every pair", missing.join(", ")));
        }
        Ok(DelayMatrix { one_way_ms })
    }

    /// Every unordered pair of regions, in order: (0,1), (0,2), (1,2).
    fn pairs() -> impl Iterator<Item = (usize, usize)> {
        (0..REGIONS).flat_map(|x| (x + 1..REGIONS).map(move |y| (x, y)))
    }

    pub fn one_way_ms(&self, from: usize, to: usize) -> u64 {
        self.one_way_ms[from][to]
    }

    pub fn one_way(&self, from: usize, to: usize) -> Duration {
        Duration::from_millis(self.one_way_ms(from, to))
    }

    /// The region with the smallest sum of delays to the others (the first on a tie): where a
    /// leader serves the others best.
    pub fn center(&self) -> usize {
        (0..REGIONS).min_by_key(|&r| self.one_way_ms[r].iter().sum::<u64>()).expect("there are regions")
    }

    /// Every pair with its delay, for the JSON report.
    pub fn links(&self) -> Vec<Link> {
        Self::pairs()
            .map(|(x, y)| Link {
                regions: [REGION_NAMES[x].to_string(), REGION_NAMES[y].to_string()],
                one_way_ms: self.one_way_ms[x][y],
            })
            .collect()
    }

    /// The matrix as a table of one-way delays.
    pub fn table(&self) -> Table {
        let mut header = vec!["one-way ms"];
        header.extend(REGION_NAMES);
        let mut table = Table::new(&header);
        for (from, name) in REGION_NAMES.iter().enumerate() {
            let mut row = vec![name.to_string()];
            row.extend(
                (0..REGIONS).map(|to| {
                    if to == from { "-".to_string() } else { self.one_way_ms[from][to].to_string() }
                }),
            );
            table.push(row);
        }
        table
    }
}

/// The one-way delay of one pair of regions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Link {
    pub regions: [String; 2],
    pub one_way_ms: u64,
}

/// Replicas an EPaxos command leader needs on its fast path (itself included) in a cluster of
/// one replica per region.
pub fn fast_quorum() -> usize {
    let replicas = (1..=REGIONS as u32).map(mortar_epoxy::ReplicaId).collect();
    mortar_epoxy::Config::new(mortar_epoxy::ReplicaId(1), replicas)
        .expect("a valid configuration")
        .fast_quorum()
}

/// The other region nearest to `region` by `rtt_ms`, and the round trip to a fast quorum of
/// `fast_quorum` replicas (itself and the nearest `fast_quorum - 1` others).
pub fn fast_quorum_rtt(
    rtt_ms: &[[f64; REGIONS]; REGIONS],
    region: usize,
    fast_quorum: usize,
) -> (usize, f64) {
    assert!((2..=REGIONS).contains(&fast_quorum), "fast quorum {fast_quorum} is not between 2 and {REGIONS}");
    let mut others: Vec<usize> = (0..REGIONS).filter(|&r| r != region).collect();
    others.sort_by(|&x, &y| rtt_ms[region][x].total_cmp(&rtt_ms[region][y]));
    (others[0], rtt_ms[region][others[fast_quorum - 2]])
}

/// etcd's floor for a write sent to `region`'s member: the round trip to the leader (none in the
/// leader's region), the leader's round trip to its nearest follower (a majority of 3), one fsync.
pub fn etcd_floor_ms(rtt_ms: &[[f64; REGIONS]; REGIONS], region: usize, leader: usize, fsync_ms: f64) -> f64 {
    let to_leader = if region == leader { 0.0 } else { rtt_ms[region][leader] };
    let majority =
        (0..REGIONS).filter(|&r| r != leader).map(|r| rtt_ms[leader][r]).fold(f64::INFINITY, f64::min);
    to_leader + majority + fsync_ms
}

/// The median of `samples` (the upper middle one for an even count), in milliseconds.
pub fn median_ms(samples: &[Duration]) -> f64 {
    assert!(!samples.is_empty(), "median of no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2].as_secs_f64() * 1e3
}

/// What one region's member did while its system ran, from its `/metrics` before and after.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ServerSide {
    /// Synced writes per second (Mortar: RocksDB write batches with sync, for its own and its
    /// peers' instances; etcd: WAL fsyncs and backend commits).
    pub syncs_per_sec: f64,
    /// Mean duration of one synced write, in milliseconds.
    pub sync_ms_mean: f64,
    /// Mortar: share of the instances this node led that committed on the slow path.
    pub slow_path_fraction: Option<f64>,
}

impl ServerSide {
    /// From the change of the counters over `seconds`.
    pub fn new(target: Target, change: Sample, seconds: f64) -> ServerSide {
        let committed = change.fast_path + change.slow_path;
        ServerSide {
            syncs_per_sec: if seconds > 0.0 { change.syncs / seconds } else { 0.0 },
            sync_ms_mean: if change.syncs > 0.0 { change.sync_seconds / change.syncs * 1e3 } else { 0.0 },
            slow_path_fraction: (target == Target::Mortar && committed > 0.0)
                .then(|| change.slow_path / committed),
        }
    }
}

/// What one region measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegionReport {
    pub region: String,
    /// Median echo round trip through the proxies to each other region, by region name.
    pub rtt_ms: std::collections::BTreeMap<String, f64>,
    /// Median 4 KiB overwrite + fdatasync in a preallocated file in the region's data directory.
    pub fsync_ms: f64,
    /// The nearest other region: Mortar's fast quorum partner.
    pub nearest: String,
    /// Mortar's floor: round trip to the nearest fast quorum plus one fsync.
    pub mortar_floor_ms: f64,
    /// etcd's floor with the leader where it was: see [`etcd_floor_ms`].
    pub etcd_floor_ms: Option<f64>,
    pub mortar: Option<KvBenchResult>,
    pub etcd: Option<KvBenchResult>,
    pub mortar_server: Option<ServerSide>,
    pub etcd_server: Option<ServerSide>,
}

/// Everything `bench wan` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WanReport {
    pub delays: Vec<Link>,
    /// `etcd <version>`, when etcd ran.
    pub etcd_version: Option<String>,
    /// Region of etcd's leader during the etcd run.
    pub etcd_leader: Option<String>,
    /// Replicas on Mortar's fast path, itself included.
    pub fast_quorum: usize,
    pub clients_per_region: u64,
    pub duration: u64,
    pub warmup: u64,
    pub value_size: usize,
    pub regions: Vec<RegionReport>,
    #[serde(skip)]
    pub matrix: Option<DelayMatrix>,
}

/// What a run starts, stopped and removed in reverse order by [`World::shutdown`].
#[derive(Default)]
struct World {
    lab: Option<Lab>,
    nets: Vec<RegionNet>,
    mortar: Vec<Server>,
    etcd: Vec<Server>,
}

impl World {
    async fn shutdown(&mut self) {
        let mut servers: Vec<Server> = self.mortar.drain(..).chain(self.etcd.drain(..)).collect();
        Server::stop_all(&mut servers).await;
        drop(servers);
        for net in &mut self.nets {
            net.stop();
        }
        self.nets.clear();
        if let Some(mut lab) = self.lab.take() {
            for error in lab.teardown() {
                eprintln!("cleanup: {error}; remove it by hand");
            }
        }
    }
}

/// The settings every region's load shares.
#[derive(Debug, Clone, Copy)]
struct Load {
    clients: u64,
    duration: u64,
    warmup: u64,
    value_size: usize,
    keys: u64,
    timeout_ms: u64,
}

/// Builds the WAN, starts the clusters, measures, and removes everything again.
pub async fn run(args: WanArgs) -> anyhow::Result<WanReport> {
    let matrix = DelayMatrix::parse(&args.delays).map_err(anyhow::Error::msg)?;
    let leader = match &args.etcd_leader {
        Some(name) => region_index(name).map_err(|e| anyhow::anyhow!("--etcd-leader: {e}"))?,
        None => matrix.center(),
    };
    let targets = args.systems.targets()?;
    anyhow::ensure!(
        args.value_size <= VALUE_BYTES_MAX,
        "--value-size {} is too large: give at most {VALUE_BYTES_MAX} bytes",
        args.value_size
    );
    let with_etcd = targets.contains(&Target::Etcd);
    wan_net::preflight(with_etcd.then_some(args.systems.etcd_bin.as_path()))?;
    let etcd_version = if with_etcd { Some(args.systems.etcd_version()?) } else { None };
    let bin = args.systems.bin()?;
    let _lock = wan_net::lock()?;
    for removed in wan_net::clean_stale()? {
        eprintln!("removed a leftover of an earlier run: {removed}");
    }
    let root = args.systems.create_root("wan")?;
    // Every node starts from the same build even if the binary is rebuilt meanwhile.
    let bin = crate::run::procs::pin_binary(&bin, &root);

    // Handlers before starting anything, so Ctrl-C during startup still removes what started.
    let mut sigint = signal(SignalKind::interrupt()).context("handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("handle SIGTERM")?;
    let mut world = World::default();
    let cleaned = "stopped every server and removed the namespaces";
    let outcome = tokio::select! {
        outcome = measure(&args, &matrix, leader, &targets, &bin, &root, &mut world) => outcome,
        _ = sigint.recv() => Err(anyhow::anyhow!("interrupted; {cleaned}")),
        _ = sigterm.recv() => Err(anyhow::anyhow!("terminated; {cleaned}")),
    };
    world.shutdown().await;
    args.systems.finish(&root);
    let (regions, etcd_leader) = outcome?;
    Ok(WanReport {
        delays: matrix.links(),
        etcd_version,
        etcd_leader: etcd_leader.map(|r| REGION_NAMES[r].to_string()),
        fast_quorum: fast_quorum(),
        clients_per_region: args.clients,
        duration: args.duration,
        warmup: args.warmup,
        value_size: args.value_size,
        regions,
        matrix: Some(matrix),
    })
}

async fn measure(
    args: &WanArgs,
    matrix: &DelayMatrix,
    leader: usize,
    targets: &[Target],
    bin: &Path,
    root: &Path,
    world: &mut World,
) -> anyhow::Result<(Vec<RegionReport>, Option<usize>)> {
    let links: Vec<String> = matrix
        .links()
        .iter()
        .map(|l| format!("{}-{} {} ms", l.regions[0], l.regions[1], l.one_way_ms))
        .collect();
    eprintln!("building 3 regions on {} (one-way {})", wan_net::SUBNET, links.join(", "));
    world.lab = Some(Lab::create()?);
    for (region, name) in REGION_NAMES.iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let routes = wan_net::routes(region, |from, to| matrix.one_way(from, to));
        world.nets.push(RegionNet::start(region, routes, &dir.join("proxy.log")).await?);
    }
    let rtt_ms = measure_rtts().await?;
    let mut fsync_ms = [0.0; REGIONS];
    for (region, fsync) in fsync_ms.iter_mut().enumerate() {
        let dir = root.join(REGION_NAMES[region]);
        *fsync = tokio::task::spawn_blocking(move || measure_fsync(&dir)).await.context("fsync probe")??;
    }
    for target in targets {
        match target {
            Target::Mortar => world.mortar = spawn_mortar(bin, root)?,
            Target::Etcd => world.etcd = spawn_etcd(&args.systems.etcd_bin, root)?,
        }
    }
    for target in targets {
        let servers = match target {
            Target::Mortar => &mut world.mortar,
            Target::Etcd => &mut world.etcd,
        };
        wait_ready(*target, servers).await?;
    }
    let load = Load {
        clients: args.clients,
        duration: args.duration,
        warmup: args.warmup,
        value_size: args.value_size,
        keys: args.keys,
        timeout_ms: args.timeout_ms,
    };
    eprintln!(
        "both clusters answer; each system runs {} s (+{} s warm-up) with {} clients in each region",
        args.duration, args.warmup, args.clients
    );
    let mut results: [Vec<Option<(KvBenchResult, ServerSide)>>; 2] =
        [vec![None; REGIONS], vec![None; REGIONS]];
    let mut etcd_leader = None;
    for &target in targets {
        if target == Target::Etcd {
            etcd_leader = Some(place_etcd_leader(leader).await?);
        }
        let runs =
            (0..REGIONS).map(|region| wan_net::in_region(region, move || region_load(target, region, load)));
        let outcomes = futures::future::join_all(runs).await;
        for (region, outcome) in outcomes.into_iter().enumerate() {
            let (result, server) = outcome
                .with_context(|| format!("run {target} clients in region {}", REGION_NAMES[region]))?;
            println!("{}: {}", REGION_NAMES[region], result.line());
            results[usize::from(target == Target::Etcd)][region] = Some((result, server));
        }
        if target == Target::Etcd {
            let (_, after) = etcd_members().await?;
            if Some(after) != etcd_leader {
                eprintln!(
                    "warning: etcd's leader moved from region {} to {} during the run",
                    REGION_NAMES[leader], REGION_NAMES[after]
                );
            }
        }
        tokio::time::sleep(SETTLE).await;
    }
    let fast_quorum = fast_quorum();
    let [mortar, etcd] = results;
    let regions = (0..REGIONS)
        .map(|region| {
            let (nearest, rtt) = fast_quorum_rtt(&rtt_ms, region, fast_quorum);
            RegionReport {
                region: REGION_NAMES[region].to_string(),
                rtt_ms: (0..REGIONS)
                    .filter(|&r| r != region)
                    .map(|r| (REGION_NAMES[r].to_string(), rtt_ms[region][r]))
                    .collect(),
                fsync_ms: fsync_ms[region],
                nearest: REGION_NAMES[nearest].to_string(),
                mortar_floor_ms: rtt + fsync_ms[region],
                etcd_floor_ms: etcd_leader.map(|l| etcd_floor_ms(&rtt_ms, region, l, fsync_ms[region])),
                mortar: mortar[region].as_ref().map(|(r, _)| r.clone()),
                etcd: etcd[region].as_ref().map(|(r, _)| r.clone()),
                mortar_server: mortar[region].as_ref().map(|(_, s)| *s),
                etcd_server: etcd[region].as_ref().map(|(_, s)| *s),
            }
        })
        .collect();
    Ok((regions, etcd_leader))
}

/// Median echo round trip from every region to every other, through the proxies.
async fn measure_rtts() -> anyhow::Result<[[f64; REGIONS]; REGIONS]> {
    let probes = (0..REGIONS).map(|from| {
        wan_net::in_region(from, move || async move {
            let mut row = [0.0; REGIONS];
            for (to, rtt) in row.iter_mut().enumerate().filter(|(to, _)| *to != from) {
                *rtt = median_ms(&wan_net::echo_round_trips(to, RTT_SAMPLES, RTT_TIMEOUT).await?);
            }
            anyhow::Ok(row)
        })
    });
    let mut rtt_ms = [[0.0; REGIONS]; REGIONS];
    for (from, row) in futures::future::join_all(probes).await.into_iter().enumerate() {
        rtt_ms[from] = row.with_context(|| format!("time round trips from region {}", REGION_NAMES[from]))?;
    }
    Ok(rtt_ms)
}

/// Median duration of overwriting [`FSYNC_BYTES`] in a preallocated file in `dir` and
/// fdatasync: the cheapest durable write (a write-ahead log with preallocated segments; appending
/// to a growing file also syncs its size and costs more).
pub(crate) fn measure_fsync(dir: &Path) -> anyhow::Result<f64> {
    use std::io::Write as _;
    use std::os::unix::fs::FileExt as _;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    file.write_all(&vec![0; FSYNC_BYTES * FSYNC_SAMPLES])
        .and_then(|()| file.sync_all())
        .with_context(|| format!("preallocate {}", path.display()))?;
    let block = vec![0x5a_u8; FSYNC_BYTES];
    let mut samples = Vec::with_capacity(FSYNC_SAMPLES);
    for k in 0..FSYNC_SAMPLES {
        let started = Instant::now();
        file.write_all_at(&block, (k * FSYNC_BYTES) as u64)
            .with_context(|| format!("write {}", path.display()))?;
        file.sync_data().with_context(|| format!("fdatasync {}", path.display()))?;
        samples.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(median_ms(&samples))
}

fn socket(addr: std::net::Ipv4Addr, port: u16) -> String {
    std::net::SocketAddr::new(addr.into(), port).to_string()
}

/// Where clients in `region` reach their own member of `target`.
fn endpoint(target: Target, region: usize) -> String {
    let port = match target {
        Target::Mortar => MORTAR_GRPC_PORT,
        Target::Etcd => ETCD_CLIENT_PORT,
    };
    socket(wan_net::host_addr(region), port)
}

fn os(words: &[String]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

/// One `mortar node` per region. Peers are named by their proxy addresses, so epoxy traffic
/// crosses the delays; gossip (UDP, membership only) goes between the regions' own addresses.
fn spawn_mortar(bin: &Path, root: &Path) -> anyhow::Result<Vec<Server>> {
    let cluster: Vec<String> = (0..REGIONS)
        .map(|r| format!("{}={}", r + 1, socket(wan_net::proxy_addr(r), MORTAR_GRPC_PORT)))
        .collect();
    let mut servers = Vec::with_capacity(REGIONS);
    for (region, name) in REGION_NAMES.iter().enumerate() {
        let dir = root.join(name);
        let host = wan_net::host_addr(region);
        let seeds: Vec<String> = (0..REGIONS)
            .filter(|&r| r != region)
            .map(|r| socket(wan_net::host_addr(r), MORTAR_GRPC_PORT))
            .collect();
        let mut args = os(&[
            "node".into(),
            "--id".into(),
            (region + 1).to_string(),
            "--listen".into(),
            socket(host, MORTAR_GRPC_PORT),
            "--http".into(),
            socket(host, MORTAR_HTTP_PORT),
            "--initial-cluster".into(),
            cluster.join(","),
            "--region".into(),
            name.to_string(),
            "--gossip-listen".into(),
            socket(host, MORTAR_GRPC_PORT),
            "--gossip-seeds".into(),
            seeds.join(","),
            "--data-dir".into(),
        ]);
        args.push(dir.join("mortar").into_os_string());
        servers.push(Server::spawn(
            format!("mortar node {} in region {name}", region + 1),
            region,
            bin,
            &args,
            &[("MORTAR_LOG", "warn")],
            dir.join("mortar.log"),
        )?);
    }
    Ok(servers)
}

/// One etcd member per region, with default settings (a WAL fsync per Raft batch). Each
/// advertises its proxy address as its peer URL, so Raft traffic crosses the delays.
fn spawn_etcd(bin: &Path, root: &Path) -> anyhow::Result<Vec<Server>> {
    let peer_url = |r: usize| format!("http://{}", socket(wan_net::proxy_addr(r), ETCD_PEER_PORT));
    let cluster: Vec<String> = (0..REGIONS).map(|r| format!("{}={}", REGION_NAMES[r], peer_url(r))).collect();
    let token = format!("mortar-bench-wan-{}", std::process::id());
    let mut servers = Vec::with_capacity(REGIONS);
    for (region, name) in REGION_NAMES.iter().enumerate() {
        let dir = root.join(name);
        let host = wan_net::host_addr(region);
        let client_url = format!("http://{}", socket(host, ETCD_CLIENT_PORT));
        let mut args = os(&[
            "--name".into(),
            name.to_string(),
            "--listen-client-urls".into(),
            client_url.clone(),
            "--advertise-client-urls".into(),
            client_url,
            "--listen-peer-urls".into(),
            format!("http://{}", socket(host, ETCD_PEER_PORT)),
            "--initial-advertise-peer-urls".into(),
            peer_url(region),
            "--initial-cluster".into(),
            cluster.join(","),
            "--initial-cluster-state".into(),
            "new".into(),
            "--initial-cluster-token".into(),
            token.clone(),
            "--logger".into(),
            "zap".into(),
            "--log-outputs".into(),
            "stderr".into(),
            "--log-level".into(),
            "warn".into(),
            "--data-dir".into(),
        ]);
        args.push(dir.join("etcd").into_os_string());
        servers.push(Server::spawn(
            format!("etcd member in region {name}"),
            region,
            bin,
            &args,
            &[],
            dir.join("etcd.log"),
        )?);
    }
    Ok(servers)
}

/// One put through `endpoint`.
async fn probe(target: Target, endpoint: String) -> anyhow::Result<()> {
    let work = async {
        let mut connection = LabConnection::open(target, &endpoint, &Default::default()).await?;
        let put = Op::Put(Bytes::from_static(b"bench/ready"));
        connection.send(&put, &Bytes::from_static(b"1")).await.map_err(anyhow::Error::msg)
    };
    tokio::time::timeout(PROBE_TIMEOUT, work)
        .await
        .map_err(|_| anyhow::anyhow!("no answer to a write within {} s", PROBE_TIMEOUT.as_secs()))?
}

/// Waits until every region's member answers a write from inside its region, or fails with the
/// log of a member that exited.
async fn wait_ready(target: Target, servers: &mut [Server]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = [false; REGIONS];
    let mut last_error = String::new();
    while ready.iter().any(|r| !r) {
        for server in servers.iter_mut() {
            server.check_running()?;
        }
        let waiting: Vec<usize> = (0..REGIONS).filter(|&r| !ready[r]).collect();
        let probes = waiting
            .iter()
            .map(|&region| wan_net::in_region(region, move || probe(target, endpoint(target, region))));
        for (region, outcome) in waiting.iter().zip(futures::future::join_all(probes).await) {
            match outcome {
                Ok(()) => ready[*region] = true,
                Err(e) => last_error = format!("region {}: {e:#}", REGION_NAMES[*region]),
            }
        }
        if ready.iter().all(|r| *r) {
            break;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = servers.iter().map(|s| s.log.display().to_string()).collect();
            anyhow::bail!(
                "the {target} cluster did not answer writes within {} s ({last_error}); logs: {} (pass \
                 --keep-data to keep them)",
                READY_TIMEOUT.as_secs(),
                logs.join(", ")
            );
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    Ok(())
}

/// Every region's etcd member id, and the leader's id, asked of each member in its region.
async fn etcd_members() -> anyhow::Result<([u64; REGIONS], usize)> {
    let asks = (0..REGIONS).map(|region| {
        wan_net::in_region(region, move || async move {
            let url = format!("http://{}", endpoint(Target::Etcd, region));
            let options = etcd_client::ConnectOptions::new().with_connect_timeout(PROBE_TIMEOUT);
            let status = tokio::time::timeout(PROBE_TIMEOUT, async {
                let mut client = etcd_client::Client::connect([url.as_str()], Some(options)).await?;
                client.status().await
            })
            .await
            .map_err(|_| anyhow::anyhow!("no status from {url} within {} s", PROBE_TIMEOUT.as_secs()))?
            .with_context(|| format!("ask {url} for its status"))?;
            let member = status.header().map(|h| h.member_id()).context("etcd status without a header")?;
            anyhow::Ok((member, status.leader()))
        })
    });
    let mut members = [0; REGIONS];
    let mut leaders = Vec::with_capacity(REGIONS);
    for (region, outcome) in futures::future::join_all(asks).await.into_iter().enumerate() {
        let (member, leader) = outcome?;
        members[region] = member;
        leaders.push(leader);
    }
    let leader = leaders[0];
    anyhow::ensure!(leaders.iter().all(|l| *l == leader), "etcd members disagree on the leader: {leaders:?}");
    let region = members
        .iter()
        .position(|m| *m == leader)
        .with_context(|| format!("etcd's leader {leader:x} is none of the members {members:x?}"))?;
    Ok((members, region))
}

/// Moves etcd's leadership to `want`'s member (asking the current leader) and returns the
/// leader's region once it is there.
async fn place_etcd_leader(want: usize) -> anyhow::Result<usize> {
    let deadline = Instant::now() + LEADER_MOVE_TIMEOUT;
    loop {
        let (members, leader) = etcd_members().await?;
        if leader == want {
            eprintln!("etcd's leader is in region {}", REGION_NAMES[want]);
            return Ok(leader);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "etcd's leader stayed in region {} instead of moving to {} within {} s",
            REGION_NAMES[leader],
            REGION_NAMES[want],
            LEADER_MOVE_TIMEOUT.as_secs()
        );
        eprintln!("moving etcd's leader from region {} to {}", REGION_NAMES[leader], REGION_NAMES[want]);
        let target = members[want];
        wan_net::in_region(leader, move || async move {
            let url = format!("http://{}", endpoint(Target::Etcd, leader));
            let mut client = etcd_client::Client::connect([url.as_str()], None).await?;
            tokio::time::timeout(PROBE_TIMEOUT, client.move_leader(target))
                .await
                .map_err(|_| {
                    anyhow::anyhow!("no answer to move-leader within {} s", PROBE_TIMEOUT.as_secs())
                })?
                .context("ask etcd to move its leader")?;
            anyhow::Ok(())
        })
        .await?;
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// What one client measured.
struct Tally {
    latency: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// The counters of `region`'s member of `target`; run inside the region.
async fn scrape(target: Target, region: usize) -> anyhow::Result<Sample> {
    Ok(match target {
        Target::Mortar => Sample::from_mortar(
            &metrics::http_get((wan_net::host_addr(region), MORTAR_HTTP_PORT).into(), "/metrics").await?,
        ),
        Target::Etcd => Sample::from_etcd(
            &metrics::http_get((wan_net::host_addr(region), ETCD_CLIENT_PORT).into(), "/metrics").await?,
        ),
    })
}

/// Closed-loop puts from `load.clients` clients in `region` to the region's own member, and what
/// the member did meanwhile; runs inside the region. Client numbers are distinct across regions,
/// so no two clients share a key.
async fn region_load(
    target: Target,
    region: usize,
    load: Load,
) -> anyhow::Result<(KvBenchResult, ServerSide)> {
    let endpoint = endpoint(target, region);
    let args = KvBenchArgs {
        clients: load.clients,
        duration: load.duration,
        warmup: load.warmup,
        value_size: load.value_size,
        keys: load.keys,
        timeout_ms: load.timeout_ms,
        ..KvBenchArgs::new(target, vec![endpoint.clone()])
    };
    args.validate()?;
    let connection = LabConnection::open(target, &endpoint, &Default::default()).await?;
    let (before, started) = (scrape(target, region).await?, Instant::now());
    let value = Bytes::from(vec![b'x'; args.value_size]);
    let measure_from = Instant::now() + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let timeout = Duration::from_millis(args.timeout_ms);
    let ops_per_client = args.ops_max.div_ceil(args.clients) as usize;
    let workload = Workload { keys: args.keys, conflict: 0.0, reads: 0.0 };
    let mut tasks = Vec::with_capacity(args.clients as usize);
    for c in 0..args.clients {
        let mut connection = connection.clone();
        let ops = Ops::new(workload, region as u64 * args.clients + c).take(ops_per_client);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally { latency: new_histogram(), errors: 0, first_error: None };
            for op in ops {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = match tokio::time::timeout(timeout, connection.send(&op, &value)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                };
                if sent < measure_from {
                    continue;
                }
                match outcome {
                    Ok(()) => {
                        let us = sent.elapsed().min(LATENCY_MAX).as_micros().max(1) as u64;
                        tally.latency.saturating_record(us);
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                }
            }
            tally
        }));
    }
    let mut latency = new_histogram();
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        let tally = task.await.context("a benchmark client panicked")?;
        latency.add(&tally.latency).context("merge latency histograms")?;
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    let change = scrape(target, region).await? - before;
    let server = ServerSide::new(target, change, started.elapsed().as_secs_f64());
    Ok((KvBenchResult::new(&args, &latency, errors, 0, first_error), server))
}

/// Per region: the floor, then each system's throughput and latency, and etcd ÷ Mortar.
pub fn results_table(report: &WanReport) -> Table {
    let mortar = report.regions.iter().any(|r| r.mortar.is_some());
    let etcd = report.regions.iter().any(|r| r.etcd.is_some());
    let mut header = vec!["region", "nearest", "RTT ms", "fsync ms"];
    if mortar {
        header.extend(["mortar floor ms", "mortar ops/s", "mortar p50 ms", "mortar p99 ms"]);
    }
    if etcd {
        header.extend(["etcd floor ms", "etcd ops/s", "etcd p50 ms", "etcd p99 ms"]);
    }
    if mortar && etcd {
        header.extend(["p50 etcd÷mortar", "p99 etcd÷mortar"]);
    }
    header.push("errors");
    let mut table = Table::new(&header);
    for region in &report.regions {
        let leader = report.etcd_leader.as_deref() == Some(region.region.as_str());
        let mut cells = vec![
            if leader { format!("{} (etcd leader)", region.region) } else { region.region.clone() },
            region.nearest.clone(),
            table::ms(region.rtt_ms.get(&region.nearest).copied().unwrap_or_default()),
            table::ms(region.fsync_ms),
        ];
        let figures = |floor: f64, result: &Option<KvBenchResult>| match result {
            Some(r) => {
                [table::ms(floor), table::ops(r.ops_per_sec), table::ms(r.p50_ms), table::ms(r.p99_ms)]
            }
            None => [table::ms(floor), "-".into(), "-".into(), "-".into()],
        };
        if mortar {
            cells.extend(figures(region.mortar_floor_ms, &region.mortar));
        }
        if etcd {
            cells.extend(figures(region.etcd_floor_ms.unwrap_or_default(), &region.etcd));
        }
        if let (true, true, Some(m), Some(e)) = (mortar, etcd, &region.mortar, &region.etcd) {
            cells.push(table::ratio(e.p50_ms, m.p50_ms));
            cells.push(table::ratio(e.p99_ms, m.p99_ms));
        } else if mortar && etcd {
            cells.extend(["-".to_string(), "-".to_string()]);
        }
        let errors: Vec<String> = [&region.mortar, &region.etcd]
            .into_iter()
            .zip([mortar, etcd])
            .filter(|(_, shown)| *shown)
            .map(|(r, _)| r.as_ref().map_or("-".to_string(), |r| r.errors.to_string()))
            .collect();
        cells.push(errors.join("/"));
        table.push(cells);
    }
    table
}

/// Per region: what each system's member did during its run.
pub fn servers_table(report: &WanReport) -> Table {
    let mortar = report.regions.iter().any(|r| r.mortar_server.is_some());
    let etcd = report.regions.iter().any(|r| r.etcd_server.is_some());
    let mut header = vec!["region"];
    if mortar {
        header.extend(["mortar syncs/s", "mortar sync ms", "mortar slow path"]);
    }
    if etcd {
        header.extend(["etcd syncs/s", "etcd sync ms"]);
    }
    let mut table = Table::new(&header);
    let dash = || "-".to_string();
    for region in &report.regions {
        let mut cells = vec![region.region.clone()];
        if mortar {
            match &region.mortar_server {
                Some(s) => cells.extend([
                    format!("{:.0}", s.syncs_per_sec),
                    format!("{:.2}", s.sync_ms_mean),
                    s.slow_path_fraction.map_or_else(dash, |f| format!("{:.0}%", f * 100.0)),
                ]),
                None => cells.extend([dash(), dash(), dash()]),
            }
        }
        if etcd {
            match &region.etcd_server {
                Some(s) => {
                    cells.extend([format!("{:.0}", s.syncs_per_sec), format!("{:.2}", s.sync_ms_mean)])
                }
                None => cells.extend([dash(), dash()]),
            }
        }
        table.push(cells);
    }
    table
}

/// Prints the delay matrix, the tables and a legend, and with `json` the report as one JSON
/// object on the last line.
pub fn print(report: &WanReport, json: bool) {
    println!();
    if let Some(matrix) = &report.matrix {
        println!("One-way delays between the regions (user-space proxies, both directions):");
        println!();
        println!("{}", matrix.table().markdown());
        println!();
    }
    let mut systems = Vec::new();
    if report.regions.iter().any(|r| r.mortar.is_some()) {
        systems.push("mortar".to_string());
    }
    if report.regions.iter().any(|r| r.etcd.is_some()) {
        systems.push(report.etcd_version.clone().unwrap_or_else(|| "etcd".to_string()));
    }
    println!(
        "{} (3 members each, one per region, fsync on); {} clients per region on their region's member, \
         closed-loop {}-byte puts, all regions at once; {} s per system after {} s of warm-up",
        systems.join(" vs "),
        report.clients_per_region,
        report.value_size,
        report.duration,
        report.warmup
    );
    println!();
    println!("{}", results_table(report).markdown());
    println!();
    println!(
        "RTT = median TCP echo round trip to the nearest region through the proxies; fsync = median 4 KiB \
         overwrite + fdatasync in a preallocated file in the region's data directory; both measured \
         before the run. Mortar floor = RTT to the nearest fast quorum ({} of 3 replicas: the region and \
         its nearest) + fsync. etcd floor = RTT to the leader (none in the leader's region) + the \
         leader's RTT to its nearest follower + fsync. Ratios above 1 mean Mortar is faster. errors = \
         failed and timed-out requests ({}).",
        report.fast_quorum,
        systems.join("/")
    );
    println!();
    println!("{}", servers_table(report).markdown());
    println!();
    println!(
        "Each region's member while its system ran, warm-up included: synced writes per second and their \
         mean duration (Mortar: RocksDB synced write batches for its own and its peers' instances; etcd: \
         WAL fsyncs + backend commits); Mortar: share of the instances it led that took the slow path."
    );
    if json {
        println!("{}", serde_json::to_string(report).expect("serialize wan report"));
    }
}

#[cfg(test)]
#[path = "wan_test.rs"]
mod wan_test;
