//! `mortar kv`: linearizable get, put, delete and compare-and-set against any node.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::PathBuf;

use bytes::Bytes;
use clap::{Args, Subcommand};
use mortar_proto::v1::kv_client::KvClient;
use mortar_proto::v1::{CasRequest, DeleteRequest, GetRequest, PutRequest, cas_request};

use super::{ConnectArgs, EXIT_NO, EXIT_OK, Failure, note, say, write_stdout};

#[derive(Debug, Args)]
#[command(after_help = "Keys and values are taken byte for byte from the command line. A value \
    can also come from stdin (`-`) or a file (--value-file): any bytes, up to the node's \
    --value-bytes-max (1 MiB by default).\n\n\
    Examples:\n  \
    mortar kv put hello world\n  \
    mortar kv put photo - < photo.jpg\n  \
    mortar kv get photo --raw > copy.jpg\n  \
    mortar kv get hello\n  \
    mortar kv cas hello --expect world --value mortar\n  \
    mortar kv cas photo --expect-file old.jpg --value-file new.jpg\n  \
    mortar kv cas lock --absent --value me\n  \
    mortar kv delete hello --endpoint 10.0.0.2:7100")]
pub struct KvArgs {
    #[command(subcommand)]
    pub command: KvCommand,
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print the value of a key (exit 1 with "not found" on stderr when it has none).
    Get(GetArgs),
    /// Set a key to a value.
    Put(PutArgs),
    /// Remove a key.
    Delete(DeleteArgs),
    /// Compare-and-set: write --value only if the key holds --expect (or is --absent).
    #[command(long_about = "Compare-and-set: write --value only if the key currently holds \
        --expect, or has no value when --absent is given.\n\n\
        Exit 0 when the value was swapped. Exit 1 when it was not, printing the value the key \
        holds, or `(absent)`, on stdout.")]
    Cas(CasArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key to read.
    pub key: OsString,
    /// Print the value exactly as stored, without the newline after it (for binary values).
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
#[command(
    group = clap::ArgGroup::new("new_value").required(true).args(["value", "value_file"]),
    override_usage = "mortar kv put [OPTIONS] <KEY> <VALUE | - | --value-file PATH>"
)]
pub struct PutArgs {
    /// The key to write.
    pub key: OsString,
    /// Its new value; `-` reads it from stdin (to store a lone `-`, use --value-file).
    pub value: Option<OsString>,
    /// Read the value from this file, byte for byte.
    #[arg(long, value_name = "PATH")]
    pub value_file: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The key to remove.
    pub key: OsString,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
#[command(
    group = clap::ArgGroup::new("expectation").required(true).args(["expect", "expect_file", "absent"]),
    group = clap::ArgGroup::new("new_value").required(true).args(["value", "value_file"])
)]
pub struct CasArgs {
    /// The key to compare and set.
    pub key: OsString,
    /// Swap only if the key currently holds this value.
    #[arg(long, value_name = "OLD")]
    pub expect: Option<OsString>,
    /// Swap only if the key currently holds the contents of this file.
    #[arg(long, value_name = "PATH")]
    pub expect_file: Option<PathBuf>,
    /// Swap only if the key currently has no value.
    #[arg(long)]
    pub absent: bool,
    /// The value to write; `-` reads it from stdin.
    #[arg(long, value_name = "NEW")]
    pub value: Option<OsString>,
    /// Read the value to write from this file.
    #[arg(long, value_name = "PATH")]
    pub value_file: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn bytes(arg: OsString) -> Bytes {
    Bytes::from(arg.into_vec())
}

/// Most bytes read for one value: no node accepts more ([`mortar_proto::VALUE_BYTES_LIMIT`]).
pub const VALUE_READ_BYTES_MAX: usize = mortar_proto::VALUE_BYTES_LIMIT;

/// Why a value may not be longer than [`VALUE_READ_BYTES_MAX`], in [`read_bounded`]'s error.
const VALUE_LIMIT: &str =
    "more than any node accepts; nodes take up to their --value-bytes-max (1 MiB by default)";

/// Where a value comes from: the command line, stdin (`-`) or a file.
fn value_of(value: Option<OsString>, file: Option<PathBuf>) -> Result<Bytes, Failure> {
    match (value, file) {
        (Some(value), None) if value == "-" => {
            read_source(None, "", VALUE_READ_BYTES_MAX, VALUE_LIMIT).map(|(data, _)| Bytes::from(data))
        }
        (Some(value), None) => Ok(bytes(value)),
        (None, Some(path)) => file_value(&path, "--value-file"),
        // clap's argument group admits exactly one of them.
        _ => Err(Failure::error("give the value, `-` for stdin, or --value-file PATH")),
    }
}

/// The contents of `path`, given with `flag`, as a value.
fn file_value(path: &std::path::Path, flag: &str) -> Result<Bytes, Failure> {
    read_source(Some(path), flag, VALUE_READ_BYTES_MAX, VALUE_LIMIT).map(|(data, _)| Bytes::from(data))
}

/// Reads stdin (`path` is `None`) or the file `path` given with `flag`, refusing more than `max`
/// bytes (`limit` says why, in the error): the bytes, and the name of where they came from.
pub fn read_source(
    path: Option<&std::path::Path>,
    flag: &str,
    max: usize,
    limit: &str,
) -> Result<(Vec<u8>, String), Failure> {
    match path {
        None => Ok((read_bounded(std::io::stdin().lock(), "stdin", max, limit)?, "stdin".to_string())),
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Failure::error(format!("cannot open {flag} {} ({e})", path.display())))?;
            let what = path.display().to_string();
            Ok((read_bounded(file, &what, max, limit)?, what))
        }
    }
}

/// Reads all of `input` (named `what` in errors), refusing more than `max` bytes before it has
/// read more than one byte past them; `limit` says why.
fn read_bounded(input: impl std::io::Read, what: &str, max: usize, limit: &str) -> Result<Vec<u8>, Failure> {
    use std::io::Read as _;
    let mut data = Vec::new();
    input
        .take(max as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| Failure::error(format!("cannot read {what} ({e})")))?;
    if data.len() > max {
        return Err(Failure::error(format!("{what} holds more than {max} bytes, {limit}")));
    }
    Ok(data)
}

/// Writes `value` and a newline to stdout (no newline when `raw`).
fn print_value(value: &[u8], raw: bool) -> Result<(), Failure> {
    write_stdout(value, !raw)
}

pub async fn run(args: KvArgs) -> Result<u8, Failure> {
    match args.command {
        KvCommand::Get(a) => {
            let mut client = KvClient::new(a.connect.connect().await?)
                .max_decoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX);
            let request = a.connect.request(GetRequest { key: bytes(a.key) });
            let response = a.connect.call("the read did not finish", client.get(request)).await?;
            if !response.found {
                note("not found");
                return Ok(EXIT_NO);
            }
            print_value(&response.value, a.raw)?;
            Ok(EXIT_OK)
        }
        KvCommand::Put(a) => {
            let value = value_of(a.value, a.value_file)?;
            let mut client = KvClient::new(a.connect.connect().await?)
                .max_encoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX);
            let request = a.connect.request(PutRequest { key: bytes(a.key), value, ..Default::default() });
            a.connect.call("the write may or may not have happened", client.put(request)).await?;
            say("ok")?;
            Ok(EXIT_OK)
        }
        KvCommand::Delete(a) => {
            let mut client = KvClient::new(a.connect.connect().await?);
            let request = a.connect.request(DeleteRequest { key: bytes(a.key), ..Default::default() });
            let response =
                a.connect.call("the delete may or may not have happened", client.delete(request)).await?;
            say(if response.existed { "deleted" } else { "ok (the key had no value)" })?;
            Ok(EXIT_OK)
        }
        KvCommand::Cas(a) => {
            let expect = match (a.expect, a.expect_file) {
                (Some(old), _) => cas_request::Expect::ExpectValue(bytes(old)),
                (None, Some(path)) => cas_request::Expect::ExpectValue(file_value(&path, "--expect-file")?),
                (None, None) => cas_request::Expect::ExpectAbsent(true),
            };
            let value = value_of(a.value, a.value_file)?;
            let mut client = KvClient::new(a.connect.connect().await?)
                .max_encoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX)
                .max_decoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX);
            let request = a.connect.request(CasRequest {
                key: bytes(a.key),
                expect: Some(expect),
                value,
                ..Default::default()
            });
            let response =
                a.connect.call("the swap may or may not have happened", client.cas(request)).await?;
            if response.swapped {
                say("swapped")?;
                return Ok(EXIT_OK);
            }
            if response.found {
                note("not swapped: the key holds another value (on stdout)");
                print_value(&response.current, false)?;
            } else {
                note("not swapped: the key has no value");
                print_value(b"(absent)", false)?;
            }
            Ok(EXIT_NO)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_up_to_the_bound() {
        let data = vec![0xffu8; 10];
        assert_eq!(read_bounded(&data[..], "stdin", 10, VALUE_LIMIT).unwrap(), data);
        let e = read_bounded(&data[..], "stdin", 9, VALUE_LIMIT).unwrap_err();
        assert_eq!(
            e.message,
            "stdin holds more than 9 bytes, more than any node accepts; nodes take up to their \
             --value-bytes-max (1 MiB by default)"
        );
    }

    #[test]
    fn a_value_comes_from_the_argument_or_a_file() {
        assert_eq!(value_of(Some("v".into()), None).unwrap(), Bytes::from_static(b"v"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        std::fs::write(&path, [0u8, 0xfe, b'\n']).unwrap();
        assert_eq!(value_of(None, Some(path.clone())).unwrap(), Bytes::from_static(&[0, 0xfe, b'\n']));
        let e = value_of(None, Some(dir.path().join("missing"))).unwrap_err();
        assert!(e.message.starts_with("cannot open --value-file "), "{}", e.message);
    }
}
