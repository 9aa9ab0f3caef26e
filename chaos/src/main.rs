//! The `mortar-chaos` binary: parses the command line, starts logging, runs the command.

use std::fs::File;
use std::io::{BufReader, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mortar_chaos::{History, check};
use tracing_subscriber::EnvFilter;

/// Environment variable holding the log filter (`info`, `debug`, `mortar_chaos=debug`, ...).
const LOG_ENV: &str = "MORTAR_LOG";
const LOG_DEFAULT: &str = "warn";

/// Exit status: the history is valid.
const EXIT_VALID: u8 = 0;
/// Exit status: a checker found an anomaly.
const EXIT_INVALID: u8 = 1;
/// Exit status: the history could not be read or parsed (also clap's status for bad arguments).
const EXIT_UNREADABLE: u8 = 2;

/// Jepsen-style chaos harness for Mortar.
#[derive(Parser)]
#[command(name = "mortar-chaos", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a recorded history (JSON lines) with every checker that applies to its operations.
    ///
    /// Prints `valid` or `invalid`, then each checker's verdict and the events that show each
    /// anomaly. Exit status: 0 valid, 1 invalid, 2 unreadable history.
    Check {
        /// The history file, one event per line.
        history: PathBuf,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Check { history, json } => ExitCode::from(run_check(&history, json)),
    }
}

fn run_check(path: &PathBuf, json: bool) -> u8 {
    let history = match read_history(path) {
        Ok(history) => history,
        Err(e) => {
            eprintln!("error: {}: {e:#}", path.display());
            return EXIT_UNREADABLE;
        }
    };
    let report = check::check(&history);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a report always serializes"));
    } else {
        print!("{report}");
    }
    if report.valid { EXIT_VALID } else { EXIT_INVALID }
}

fn read_history(path: &PathBuf) -> anyhow::Result<History> {
    let file = File::open(path).context("open history")?;
    Ok(History::from_jsonl(BufReader::new(file))?)
}

fn init_tracing() {
    let (filter, bad_filter) = match std::env::var(LOG_ENV) {
        Err(_) => (EnvFilter::new(LOG_DEFAULT), None),
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(LOG_DEFAULT), Some((text, e))),
        },
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    if let Some((text, e)) = bad_filter {
        tracing::warn!(filter = %text, error = %e, "ignoring invalid {LOG_ENV}; logging at {LOG_DEFAULT}");
    }
}
