//! What `mortar-chaos bench compare` and `bench wan` share: which systems they start, from which
//! binaries, and where the members keep their data.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use mortar_node::bench::Target;

/// The systems a benchmark starts and where their members keep their data.
#[derive(Debug, Clone, Args)]
pub struct SystemsArgs {
    /// Systems to run, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Target::Mortar, Target::Etcd])]
    pub targets: Vec<Target>,
    /// The etcd executable.
    #[arg(long, default_value = "etcd", value_name = "PATH")]
    pub etcd_bin: PathBuf,
    /// The mortar binary to run as nodes [default: `mortar` beside this program].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Where the members keep their data (a new sub-directory, removed at the end) [default: the
    /// system's temporary directory]. Put it on the disk you want to measure.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the data directories and logs instead of removing them.
    #[arg(long)]
    pub keep_data: bool,
}

impl SystemsArgs {
    /// The systems to run, each once, in the order given.
    pub fn targets(&self) -> anyhow::Result<Vec<Target>> {
        anyhow::ensure!(!self.targets.is_empty(), "--targets is empty; give mortar, etcd or both");
        let mut targets = Vec::new();
        for target in &self.targets {
            if !targets.contains(target) {
                targets.push(*target);
            }
        }
        Ok(targets)
    }

    /// The mortar binary the nodes run.
    pub fn bin(&self) -> anyhow::Result<PathBuf> {
        super::mortar_bin(self.bin.as_deref())
    }

    /// Creates this run's directory, `mortar-bench-<name>-<pid>-<ms>` under `--data-dir`.
    pub fn create_root(&self, name: &str) -> anyhow::Result<PathBuf> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
        let parent = self.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        let root = parent.join(format!("mortar-bench-{name}-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&root)
            .with_context(|| format!("create {}; check --data-dir", root.display()))?;
        Ok(root)
    }

    /// The first line of `etcd --version`, or an error saying how to install etcd.
    pub fn etcd_version(&self) -> anyhow::Result<String> {
        let bin = &self.etcd_bin;
        let output = std::process::Command::new(bin).arg("--version").output().with_context(|| {
            format!(
                "cannot run {} --version; install etcd (`apt-get install etcd-server`) or pass --etcd-bin <path>",
                bin.display()
            )
        })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let first = text.lines().next().unwrap_or_default().trim();
        Ok(match first.strip_prefix("etcd Version:") {
            Some(version) => format!("etcd {}", version.trim()),
            None => format!("etcd ({first})"),
        })
    }

    /// Removes the run's directory, or says where it is kept (`--keep-data`).
    pub fn finish(&self, root: &std::path::Path) {
        if self.keep_data {
            eprintln!("data and logs kept in {}", root.display());
        } else if let Err(e) = std::fs::remove_dir_all(root) {
            eprintln!("cannot remove {} ({e}); remove it by hand", root.display());
        }
    }
}
