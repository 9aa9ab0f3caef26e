//! What the servers did during a run, read from outside: their Prometheus counters (`/metrics`)
//! and their CPU time (`/proc/<pid>/stat`). `mortar-chaos bench compare` takes a [`Sample`] before and
//! after each run and prints the difference per operation.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Bound on one scrape of `/metrics`.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest `/metrics` answer read.
pub const SCRAPE_BYTES_MAX: u64 = 16 << 20;
/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`: 100 on every Linux platform
/// Mortar builds for).
const USER_HZ: f64 = 100.0;

/// The counters `compare` reads, summed over the members of one cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// CPU seconds (user and system) of the member processes.
    pub cpu_seconds: f64,
    /// Synced writes (Mortar: RocksDB write batches with sync; etcd: WAL fsyncs plus backend
    /// commits).
    pub syncs: f64,
    /// Seconds spent in those synced writes.
    pub sync_seconds: f64,
    /// Mortar: instances proposed, and the commands in them.
    pub batches: f64,
    pub batch_commands: f64,
    /// Mortar: instances committed on the fast and on the slow path.
    pub fast_path: f64,
    pub slow_path: f64,
}

impl std::ops::Sub for Sample {
    type Output = Sample;

    fn sub(self, before: Sample) -> Sample {
        Sample {
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            syncs: self.syncs - before.syncs,
            sync_seconds: self.sync_seconds - before.sync_seconds,
            batches: self.batches - before.batches,
            batch_commands: self.batch_commands - before.batch_commands,
            fast_path: self.fast_path - before.fast_path,
            slow_path: self.slow_path - before.slow_path,
        }
    }
}

impl std::ops::Add for Sample {
    type Output = Sample;

    fn add(self, other: Sample) -> Sample {
        Sample {
            cpu_seconds: self.cpu_seconds + other.cpu_seconds,
            syncs: self.syncs + other.syncs,
            sync_seconds: self.sync_seconds + other.sync_seconds,
            batches: self.batches + other.batches,
            batch_commands: self.batch_commands + other.batch_commands,
            fast_path: self.fast_path + other.fast_path,
            slow_path: self.slow_path + other.slow_path,
        }
    }
}

impl Sample {
    /// Mean time of a synced write, in milliseconds (0 without any).
    pub fn sync_ms_mean(&self) -> f64 {
        if self.syncs > 0.0 { self.sync_seconds / self.syncs * 1e3 } else { 0.0 }
    }

    /// Commands per proposed instance (Mortar); None when nothing was proposed.
    pub fn commands_per_instance(&self) -> Option<f64> {
        (self.batches > 0.0).then(|| self.batch_commands / self.batches)
    }

    /// Share of committed instances that took the slow path (Mortar); None when none committed.
    pub fn slow_path_fraction(&self) -> Option<f64> {
        let committed = self.fast_path + self.slow_path;
        (committed > 0.0).then(|| self.slow_path / committed)
    }

    /// Reads the counters of one Mortar node from its `/metrics` text.
    pub fn from_mortar(text: &str) -> Sample {
        Sample {
            cpu_seconds: 0.0,
            syncs: metric_sum(text, "mortar_storage_sync_write_seconds_count"),
            sync_seconds: metric_sum(text, "mortar_storage_sync_write_seconds_sum"),
            batches: metric_sum(text, "mortar_epoxy_batch_commands_count"),
            batch_commands: metric_sum(text, "mortar_epoxy_batch_commands_sum"),
            fast_path: metric_sum(text, "mortar_epoxy_fast_path_commits_total"),
            slow_path: metric_sum(text, "mortar_epoxy_slow_path_commits_total"),
        }
    }

    /// Reads the counters of one etcd member from its `/metrics` text.
    pub fn from_etcd(text: &str) -> Sample {
        Sample {
            syncs: metric_sum(text, "etcd_disk_wal_fsync_duration_seconds_count")
                + metric_sum(text, "etcd_disk_backend_commit_duration_seconds_count"),
            sync_seconds: metric_sum(text, "etcd_disk_wal_fsync_duration_seconds_sum")
                + metric_sum(text, "etcd_disk_backend_commit_duration_seconds_sum"),
            ..Sample::default()
        }
    }
}

/// The sum of every series named `name` (any labels) in Prometheus text; 0 when there is none.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if let Some(labelled) = rest.strip_prefix('{') {
                labelled.rsplit_once('}')?.1
            } else if rest.starts_with(' ') {
                rest
            } else {
                return None; // A longer name with the same prefix.
            };
            // A value may be followed by a timestamp.
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .filter(|v| v.is_finite())
        .sum()
}

/// `GET http://<address><path>`: the body of a 200 answer, or an error that says what failed.
pub async fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(SCRAPE_BYTES_MAX).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow::anyhow!("GET http://{address}{path}: no answer within {SCRAPE_TIMEOUT:?}"))?
        .map_err(|e| anyhow::anyhow!("GET http://{address}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("GET http://{address}{path}: not an HTTP answer"))?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    anyhow::ensure!(status == "200", "GET http://{address}{path}: status {status}");
    Ok(body.to_string())
}

/// CPU seconds (user and system, all threads) that process `pid` has used, from `/proc`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| anyhow::anyhow!("read /proc/{pid}/stat: {e}"))?;
    parse_cpu_seconds(&stat).ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat is malformed: {stat:?}"))
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// CPU seconds (user and system) of the threads of process `pid` whose name is `thread`, from
/// `/proc/<pid>/task/*/stat` (the whole process is [`cpu_seconds`]). A thread that ends between
/// the listing and its read is skipped.
pub fn thread_cpu_seconds(pid: u32, thread: &str) -> anyhow::Result<f64> {
    let tasks = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&tasks).map_err(|e| anyhow::anyhow!("list {tasks}: {e}"))?;
    let mut named = 0.0;
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if parse_comm(&stat) == Some(thread) {
            named += parse_cpu_seconds(&stat).unwrap_or(0.0);
        }
    }
    Ok(named)
}

/// The command (thread) name of a `/proc/<pid>/stat` line: field 2, between the first `(` and
/// the last `)`.
pub fn parse_comm(stat: &str) -> Option<&str> {
    let start = stat.find('(')? + 1;
    let end = stat.rfind(')')?;
    stat.get(start..end)
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat`, in seconds summed
/// over its CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineCpu {
    /// Spent idle or waiting for I/O (`idle` + `iowait`).
    pub idle_seconds: f64,
    /// Everything: `user` through `steal` (guest time is inside `user`).
    pub total_seconds: f64,
    /// CPUs counted (the `cpuN` lines).
    pub cpus: usize,
}

impl MachineCpu {
    /// The share of the time between `self` and `later` that the machine's CPUs were idle.
    pub fn idle_share_until(&self, later: &MachineCpu) -> f64 {
        let total = later.total_seconds - self.total_seconds;
        if total <= 0.0 { 0.0 } else { ((later.idle_seconds - self.idle_seconds) / total).clamp(0.0, 1.0) }
    }
}

/// How a report says the machine's CPUs were `idle_share` idle: "the machine's 2 CPUs 5% idle".
pub fn idle_words(idle_share: f64, cpus: usize) -> String {
    format!("the machine's {cpus} CPUs {:.0}% idle", idle_share * 100.0)
}

/// The machine's CPU time now ([`parse_machine_cpu`] of `/proc/stat`).
pub fn machine_cpu() -> anyhow::Result<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| anyhow::anyhow!("read /proc/stat: {e}"))?;
    parse_machine_cpu(&stat).ok_or_else(|| anyhow::anyhow!("/proc/stat has no readable `cpu` line"))
}

/// [`MachineCpu`] of a `/proc/stat` text: its `cpu` line (user nice system idle iowait irq
/// softirq steal ..., in `USER_HZ` ticks) and the number of `cpuN` lines.
pub fn parse_machine_cpu(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let ticks: Vec<f64> =
        line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if ticks.len() < 5 {
        return None;
    }
    let cpus = stat
        .lines()
        .filter(|l| l.split_whitespace().next().is_some_and(|w| w.len() > 3 && w.starts_with("cpu")))
        .count();
    Some(MachineCpu {
        idle_seconds: (ticks[3] + ticks[4]) / USER_HZ,
        total_seconds: ticks.iter().sum::<f64>() / USER_HZ,
        cpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_s_idle_share_counts_iowait_as_idle() {
        let before = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n\
            cpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\nctxt 99\n";
        let after = "cpu  250 10 100 1000 100 20 20 0 0 0\ncpu0 1 1 1 1 1 1 1 1\ncpu1 1 1 1 1 1 1 1 1\n";
        let (a, b) = (parse_machine_cpu(before).unwrap(), parse_machine_cpu(after).unwrap());
        assert_eq!(a.cpus, 2);
        assert_eq!(a.total_seconds, 10.0);
        assert_eq!(a.idle_seconds, 8.5);
        // 500 ticks passed, 250 of them idle or waiting for I/O.
        assert!((a.idle_share_until(&b) - 0.5).abs() < 1e-9, "{}", a.idle_share_until(&b));
        assert_eq!(b.idle_share_until(&a), 0.0, "time does not run backwards");
        assert_eq!(parse_machine_cpu("intr 1 2\n"), None);
        assert_eq!(parse_machine_cpu("cpu  1 2 x 4 5\n"), None);
        assert!(machine_cpu().unwrap().cpus >= 1);
    }

    #[test]
    fn metric_sum_adds_every_series_of_one_name() {
        let text = "# TYPE mortar_epoxy_batch_commands summary\n\
            mortar_epoxy_batch_commands{quantile=\"0.5\"} 3\n\
            mortar_epoxy_batch_commands_sum 120\n\
            mortar_epoxy_batch_commands_count 40\n\
            mortar_node_kv_request_seconds_count{op=\"put\"} 10\n\
            mortar_node_kv_request_seconds_count{op=\"get\"} 5 1700000000\n\
            etcd_disk_wal_fsync_duration_seconds_count 7\n";
        assert_eq!(metric_sum(text, "mortar_epoxy_batch_commands_sum"), 120.0);
        assert_eq!(metric_sum(text, "mortar_epoxy_batch_commands_count"), 40.0);
        assert_eq!(metric_sum(text, "mortar_node_kv_request_seconds_count"), 15.0);
        assert_eq!(metric_sum(text, "mortar_epoxy_batch"), 0.0, "a prefix is not a name");
        assert_eq!(metric_sum(text, "absent"), 0.0);
        let etcd = Sample::from_etcd(text);
        assert_eq!(etcd.syncs, 7.0);
    }

    #[test]
    fn cpu_seconds_skip_a_command_name_with_spaces() {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1000 \
            100000 200 18446744073709551615";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
        assert!(cpu_seconds(std::process::id()).is_ok());
    }

    #[test]
    fn a_thread_name_is_read_from_between_the_outer_parentheses() {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1000";
        assert_eq!(parse_comm(stat), Some("my (odd) cmd"));
        assert_eq!(parse_comm("1234 (mortar-epoxy-dr) S 1"), Some("mortar-epoxy-dr"));
        assert_eq!(parse_comm("garbage"), None);
    }

    #[test]
    fn a_named_thread_counts_in_its_share_and_in_the_whole() {
        let name = "mortar-cpu-test";
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinning = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let started = std::time::Instant::now();
                // Burn about 0.3 s of CPU (bounded by a 10 s wall clock).
                let mut x = 0u64;
                while !spinning.load(std::sync::atomic::Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(10)
                {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
            .expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (named, all) = loop {
            let named = thread_cpu_seconds(std::process::id(), name).expect("read");
            let all = cpu_seconds(std::process::id()).expect("read");
            if named >= 0.3 || std::time::Instant::now() > deadline {
                break (named, all);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        thread.join().expect("join");
        assert!(named >= 0.3, "the spinning thread's CPU time is counted under its name: {named}");
        assert!(all >= named, "the whole holds the named share: {all} < {named}");
        let other = thread_cpu_seconds(std::process::id(), "no-such-thread").expect("read");
        assert_eq!(other, 0.0);
    }
}
