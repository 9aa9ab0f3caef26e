//! `mortar cert`: a cluster CA and node certificates for `--tls-cert/--tls-key/--tls-ca`, for
//! tests, development and small clusters (a production cluster may use its own PKI instead).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Failure, say};
use crate::tls;

#[derive(Debug, clap::Args)]
pub struct CertArgs {
    #[command(subcommand)]
    pub command: CertCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Create the cluster's CA: DIR/ca.pem (give it to every node as --tls-ca and to clients as
    /// --ca) and DIR/ca.key (keep it secret; only `mortar cert node` needs it).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
    },
    /// Create a node certificate signed by DIR/ca.pem: DIR/NAME.pem and DIR/NAME.key (the node's
    /// --tls-cert and --tls-key), naming every HOST peers and clients dial the node at.
    Node {
        /// Directory holding ca.pem and ca.key, and to write into.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// File name of the certificate and key, without extension.
        #[arg(long, default_value = "node", value_name = "NAME")]
        name: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
        /// DNS names and IP addresses the node is dialed at, e.g. 10.0.0.1 mortar-0.mortar.
        #[arg(required = true, value_name = "HOST")]
        hosts: Vec<String>,
    },
}

pub fn run(args: CertArgs) -> Result<u8, Failure> {
    match args.command {
        CertCommand::Ca { dir, days } => {
            create_dir(&dir)?;
            let ca =
                tls::generate_ca(days).map_err(|e| Failure::error(format!("cannot create a CA: {e}")))?;
            write_new(&dir.join("ca.pem"), &ca.ca_cert, false)?;
            write_new(&dir.join("ca.key"), &ca.ca_key, true)?;
            say(&format!(
                "wrote {0}/ca.pem (the CA: --tls-ca for nodes, --ca for clients) and {0}/ca.key (secret)",
                dir.display()
            ))?;
        }
        CertCommand::Node { dir, name, days, hosts } => {
            if name.is_empty() || name.contains('/') || name == "ca" {
                return Err(Failure::error(format!(
                    "--name {name:?}: give a plain file name other than \"ca\""
                )));
            }
            let read = |file: &str| {
                let path = dir.join(file);
                std::fs::read_to_string(&path).map_err(|e| {
                    Failure::error(format!(
                        "cannot read {}: {e}; create the CA first with `mortar cert ca --dir {}`",
                        path.display(),
                        dir.display()
                    ))
                })
            };
            let ca = tls::Generated { ca_cert: read("ca.pem")?, ca_key: read("ca.key")? };
            let (cert, key) = tls::generate_node(&ca, &hosts, days)
                .map_err(|e| Failure::error(format!("cannot create the certificate for {hosts:?}: {e}")))?;
            let cert_path = dir.join(format!("{name}.pem"));
            let key_path = dir.join(format!("{name}.key"));
            write_new(&cert_path, &cert, false)?;
            write_new(&key_path, &key, true)?;
            say(&format!(
                "wrote {} (--tls-cert) and {} (--tls-key) for {}",
                cert_path.display(),
                key_path.display(),
                hosts.join(", ")
            ))?;
        }
    }
    Ok(super::EXIT_OK)
}

fn create_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::error(format!("cannot create {}: {e}", dir.display())))
}

/// Writes `text` to a new file (never over an existing one); `secret` files are readable by
/// their owner only.
fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::error(format!(
                "{} exists; remove it first or choose another --dir/--name",
                path.display()
            ))
        } else {
            Failure::error(format!("cannot create {}: {e}", path.display()))
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::error(format!("cannot write {}: {e}", path.display())))
}
