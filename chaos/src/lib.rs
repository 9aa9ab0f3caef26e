//! `mortar-chaos`: a Jepsen-style harness for Mortar.
//!
//! Clients record what they asked a cluster to do and what they heard back in a *history*; the
//! checkers then decide whether any behaviour the cluster promised was broken. This release reads
//! and checks histories; the runner that drives a real cluster under faults comes next.
//!
//! # Recording a history
//!
//! A history is a JSON-lines file, one [`Event`] per line, in time order (the full format is in
//! [`history`]):
//!
//! ```text
//! {"process":0,"type":"invoke","f":"write","key":"k1","value":1,"time":0}
//! {"process":0,"type":"ok","f":"write","key":"k1","value":1,"time":10}
//! ```
//!
//! Every operation is an `invoke` followed by `ok` (it happened), `fail` (it certainly did not) or
//! `info` (unknown: a timeout). A timeout must be recorded as `info`, never as `fail`: the write
//! may still land. A process that got an `info` is retired and a new process id takes over.
//! [`HistoryWriter`] writes events; [`History::from_jsonl`] reads and validates them.
//!
//! # Checking a history
//!
//! ```text
//! $ mortar-chaos check history.jsonl          # or --json for a machine-readable report
//! invalid
//! linearizability: invalid, 1 anomaly
//!   not-linearizable on key "k1": process 2 read k1: ok 1 cannot be linearized; ...
//!     line 1: {"process":0,"type":"invoke","f":"write","key":"k1","value":1,"time":0}
//!     ...
//! ```
//!
//! The exit status is 0 when the history is valid, 1 when it is not, 2 when the file cannot be
//! read or parsed (the message names the file and line). The checkers that run are chosen from
//! the operations present (see [`check`]): registers (`read`/`write`/`cas`) are checked for
//! linearizability, across whole-cluster restarts when the history marks them; counters
//! (`add`/`read`) for bounds; sets (`set_add`/`set_read`) for completeness. Each anomaly comes
//! with the few original events that show it; those events, saved as a file, form a history the
//! checker rejects on its own.
//!
//! The same from Rust:
//!
//! ```
//! use mortar_chaos::{History, check};
//!
//! // Process 1 reads 1 after process 0's write of 2 completed: a stale read.
//! let jsonl = r#"{"process":0,"type":"invoke","f":"write","key":"k1","value":1,"time":0}
//! {"process":0,"type":"ok","f":"write","key":"k1","value":1,"time":10}
//! {"process":0,"type":"invoke","f":"write","key":"k1","value":2,"time":20}
//! {"process":0,"type":"ok","f":"write","key":"k1","value":2,"time":30}
//! {"process":1,"type":"invoke","f":"read","key":"k1","value":null,"time":40}
//! {"process":1,"type":"ok","f":"read","key":"k1","value":1,"time":50}
//! "#;
//! let history = History::from_jsonl(jsonl.as_bytes())?;
//! let report = check::check(&history);
//! assert!(!report.valid);
//! let anomaly = &report.checks[0].result.anomalies[0];
//! assert_eq!(anomaly.kind, check::AnomalyKind::NotLinearizable);
//! assert_eq!(anomaly.lines, [1, 2, 3, 4, 5, 6]); // both writes and the read
//! println!("{report}");
//! # Ok::<(), mortar_chaos::HistoryError>(())
//! ```

pub mod check;
pub mod history;

pub use check::{Anomaly, AnomalyKind, CheckResult, Checker, Report};
pub use history::{Event, EventType, Function, History, HistoryError, HistoryWriter, Op, Outcome, Value};
