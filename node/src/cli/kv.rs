//! `mortar kv`: linearizable get, put, delete and compare-and-set against any node.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use bytes::Bytes;
use clap::{Args, Subcommand};
use mortar_proto::v1::kv_client::KvClient;
use mortar_proto::v1::{CasRequest, DeleteRequest, GetRequest, PutRequest, cas_request};

use super::{ConnectArgs, EXIT_NO, EXIT_OK, Failure, note, say, write_stdout};

#[derive(Debug, Args)]
#[command(after_help = "Keys and values are taken byte for byte from the command line.\n\n\
    Examples:\n  \
    mortar kv put hello world\n  \
    mortar kv get hello\n  \
    mortar kv cas hello --expect world --value mortar\n  \
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
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key to write.
    pub key: OsString,
    /// Its new value.
    pub value: OsString,
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
#[command(group = clap::ArgGroup::new("expectation").required(true).args(["expect", "absent"]))]
pub struct CasArgs {
    /// The key to compare and set.
    pub key: OsString,
    /// Swap only if the key currently holds this value.
    #[arg(long, value_name = "OLD")]
    pub expect: Option<OsString>,
    /// Swap only if the key currently has no value.
    #[arg(long)]
    pub absent: bool,
    /// The value to write.
    #[arg(long, value_name = "NEW")]
    pub value: OsString,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn bytes(arg: OsString) -> Bytes {
    Bytes::from(arg.into_vec())
}

/// Writes `value` and a newline to stdout.
fn print_value(value: &[u8]) -> Result<(), Failure> {
    write_stdout(value, true)
}

pub async fn run(args: KvArgs) -> Result<u8, Failure> {
    match args.command {
        KvCommand::Get(a) => {
            let mut client = KvClient::new(a.connect.connect().await?);
            let request = a.connect.request(GetRequest { key: bytes(a.key) });
            let response = a.connect.call("the read did not finish", client.get(request)).await?;
            if !response.found {
                note("not found");
                return Ok(EXIT_NO);
            }
            print_value(&response.value)?;
            Ok(EXIT_OK)
        }
        KvCommand::Put(a) => {
            let mut client = KvClient::new(a.connect.connect().await?);
            let request = a.connect.request(PutRequest {
                key: bytes(a.key),
                value: bytes(a.value),
                ..Default::default()
            });
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
            let expect = match a.expect {
                Some(old) => cas_request::Expect::ExpectValue(bytes(old)),
                None => cas_request::Expect::ExpectAbsent(true),
            };
            let mut client = KvClient::new(a.connect.connect().await?);
            let request = a.connect.request(CasRequest {
                key: bytes(a.key),
                expect: Some(expect),
                value: bytes(a.value),
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
                print_value(&response.current)?;
            } else {
                note("not swapped: the key has no value");
                print_value(b"(absent)")?;
            }
            Ok(EXIT_NO)
        }
    }
}
