//! `mortar-chaos`: a Jepsen-style harness for Mortar.
//!
//! It runs a real cluster — one `mortar node` process per test host, each host a Linux network
//! namespace — under a client workload while a *nemesis* partitions, kills, pauses, drops and
//! delays; it records what the clients asked and heard in a *history*; and its checkers decide
//! whether any promise was broken (a stale read, a lost acknowledged write).
//!
//! # Running a cluster under faults
//!
//! As root, with `ip` and `nft` installed (`apt-get install -y iproute2 nftables`) and both
//! binaries built (`mortar` is found beside `mortar-chaos`, or give `--mortar-bin`):
//!
//! ```text
//! $ export CARGO_TARGET_DIR=/root/.cache/mortar-target
//! $ cargo build --release -p mortar-node -p mortar-chaos
//! $ sudo $CARGO_TARGET_DIR/release/mortar-chaos run --nodes 5 --workload register \
//!       --nemesis partition,kill,pause --time-limit 120
//! seed 3141592653
//! run directory /tmp/mortar-chaos/1763718000-seed-3141592653
//! schedule, in seconds after the workload starts (all of it in schedule.json):
//!       5.0 -    19.4  partition isolate [3] | [4,2,1,5]
//!      21.8 -    34.1  kill n2,n5
//!   ...
//! cluster ready after 0.6 s; workload and nemesis start (9 fault windows in 120 s)
//!     6.9s faults      412 ops/s (ok 380 fail 20 info 12)  total 4512  faults: partition isolate [3] | [4,2,1,5]
//!   ...
//! healed at 120.6 s; waiting for every node to serve (up to 30 s)
//! recovered: every node served within 35 ms of the heal
//! == summary ==
//! operations: 61204 invoked: 55010 ok, 5871 fail, 323 info, 0 in flight at the end
//! availability (answered / invoked): outside faults 99.9% of 40112, during faults 81.0% of 21092
//! recovery after the heal: first ok 29 ms, every node 35 ms (bound 30000 ms)
//! checker linearizability: valid
//! PASSED
//! ```
//!
//! The seed comes first, then the schedule, a progress line every second (operations per second
//! by outcome, faults active), and a summary: operations by outcome, errors, latency,
//! availability during faults (the share of operations invoked while a fault was active that got
//! a definite answer) and per node over the whole run (a node that stopped serving while the
//! others went on stands out), recovery time after the heal, and each checker's verdict. Exit status:
//! 0 passed (every checker valid, every node served within `--recovery-timeout` of the heal, no
//! node crashed); 1 failed (the reasons are printed and in `summary.json`); 2 the run could not be
//! carried out (not root, a binary missing, the cluster never became ready); 130 interrupted.
//!
//! A run goes: build the network ([`topology`]), start a node and a delay proxy in every node
//! namespace and the client worker in the client namespace, wait until every node answers a
//! read, run the workload for `--time-limit` seconds while the [`schedule`] injects faults, heal
//! (every fault removed, killed nodes restarted), wait for every node to serve again, run a few
//! seconds more, stop, remove the network, check. See [`run`].
//!
//! | `--nemesis` | fault ([`nemesis`]) |
//! |---|---|
//! | `partition` | nftables drop rules: random halves, one node isolated, a bridge node seeing both sides, or a majorities ring |
//! | `kill` | `SIGKILL` a minority of nodes, restart them on the same data directory at the window's end |
//! | `pause` | `SIGSTOP` a minority of nodes, `SIGCONT` at the window's end |
//! | `loss` | nftables drops 5-`--loss-percent-max`% of the packets some nodes send to their peers |
//! | `latency` | every peer link's [`proxy`] holds data back `--latency-ms-max`/4 to `--latency-ms-max` ms each way (TCP only: gossip is UDP and goes direct) |
//! | `mixed` | all of the above, sometimes two at once |
//! | `none` | no faults: a baseline |
//!
//! The `register` workload ([`workload`]): 10 client tasks (`--concurrency`) read, write and
//! compare-and-set 5 keys (`--keys`) through nodes picked at random, with unique integer values;
//! a client timeout (`--op-timeout-ms`, 1.5 s) or an unknown error is recorded as `info` and
//! retires the process id. The history is checked for linearizability.
//!
//! The `counter`, `set`, `queue` and `alarms` workloads ([`workload_actors`]) call the stock
//! actors through `mortar.v1.Actors`, through nodes picked at random (a node forwards to the
//! actor's owner):
//!
//! * `--workload counter`: increments of 1-5 (`increment {"amount": n}`, recorded as `add`) and
//!   reads (`getCount`, recorded as `read`) of the counters `c0`..`c{keys-1}`; checked for bounds
//!   (every read between the increments acknowledged before it began and all those attempted
//!   before it ended).
//! * `--workload set`: messages whose text is a unique integer sent to `chatRoom` actors
//!   (`sendMessage`, recorded as `set_add`) and a few reads of their messages (`getHistory`,
//!   recorded as `set_read`); `--keys` rooms are open at a time, each retiring after 900
//!   messages. Checked for completeness: the final read of a room holds every acknowledged
//!   message, and no read holds a message never sent or holds one twice.
//! * `--workload queue`: jobs whose id is a unique integer sent to the durable queue `jobs` of
//!   `worker` actors `w0`..`w{keys-1}` (`Send`; a quarter of them wait until the job is handled,
//!   a fifth simulate up to 30 ms of work), recorded as `set_add`. After the heal, each worker's
//!   `processed` is read every 0.5 s until it has not grown for 3 s (its queue drained; at most
//!   60 s in all), recorded as `set_read` of the ids handled, an id handled twice listed twice.
//!   Checked for completeness, by the set checker: every acknowledged job was handled, none
//!   handled that was never sent or whose send failed, none handled twice.
//! * `--workload alarms`: alarms in 200 to 3000 ms, each with a unique integer note, asked of
//!   `reminder` actors `a0`..`a{keys-1}` (`remindIn`, recorded as `alarm_set` with the delay and
//!   the client's wall clock). After the heal, once every acknowledged alarm is 5 s past due,
//!   each reminder's `fired` is read (`alarm_read`). Checked for delivery: every acknowledged
//!   alarm fired exactly once, none fired before it was due nor was due before its delay had
//!   passed, none fired that was never asked for or whose request failed; an unknown one fired at
//!   most once. The report adds how late alarms fired (p50, p99, max), for information.
//!
//! All end, after the heal, with a final read of every counter, room, worker or reminder
//! (retried through other nodes until one answers, at most 30 s in all; 60 s for the polls of the
//! queue workload). An answer marked not applied (`UNAVAILABLE` with `mortar-not-applied`,
//! `RESOURCE_EXHAUSTED`, `FAILED_PRECONDITION`) is a `fail`: a failed increment that still counts
//! shows up as a read above the attempted sum, a failed send that is handled all the same as an
//! unexpected job.
//!
//! The run directory holds:
//!
//! | file | what |
//! |---|---|
//! | `history.jsonl` | every invoke and completion (the format below); `mortar-chaos check` re-checks it |
//! | `nemesis.jsonl` | the timeline: `{"time": ns, "nemesis": "kill", "event": "start", "detail": {...}}` per fault start and end, the heal, node crashes |
//! | `completions.jsonl` | every completion with the node that served it, its latency, and the error behind a `fail` or `info` |
//! | `schedule.json` | the schedule the seed produced |
//! | `summary.json` | the summary, machine-readable |
//! | `report.txt`, `check.json` | the checkers' report, with the events of every anomaly |
//! | `plot.svg` | latency and throughput per second, fault windows shaded, the heal marked |
//! | `logs/` | `n<i>.log` per node (every restart marked), `proxy-n<i>.log`, `client.log` |
//! | `data/`, `bin/mortar` | the nodes' data directories and the exact binary run; removed when the run passes unless `--keep-data` |
//! | `command.txt` | the command line that replays the run |
//!
//! Safety of the host: everything lives in namespaces named `mch-*` on the private subnet
//! 10.77.0.0/24, which the root namespace blackholes while a run lasts; clients run inside the
//! client namespace. Only one run at a time owns the network. An error, a panic, Ctrl-C or
//! SIGTERM ends every process the run started (by pid) and removes namespaces, route and rules;
//! after a `SIGKILL` of the runner, the next run removes the leftovers first.
//!
//! # Benchmarks that build clusters
//!
//! `mortar-chaos bench compare|wan|actors` start their own clusters (on loopback, or across
//! emulated regions in network namespaces) and measure Mortar next to etcd, or the actor runtime;
//! `mortar-chaos bench kv` loads a running Mortar or etcd cluster. See [`bench`].
//!
//! # Seeds and replay
//!
//! `--seed` decides the nemesis schedule (which faults, when, on which nodes) and every choice
//! of the workload (operation, key, node, per client task). It does *not* make a run
//! deterministic: the nodes are real processes with real clocks, the kernel schedules them, so
//! the interleaving of operations and the cluster's answers differ from one run to the next. To
//! replay a run, give its seed and the same flags — `command.txt` in its run directory holds the
//! exact command line:
//!
//! ```text
//! $ sudo mortar-chaos run $(cat /tmp/mortar-chaos/1763718000-seed-3141592653/command.txt | cut -d' ' -f3-)
//! ```
//!
//! A failed run keeps `bin/mortar` (a hard link to the binary it ran, immune to rebuilds) and the
//! nodes' data directories, so the failing build and state can be inspected after a fix.
//!
//! # Long hunts
//!
//! Many runs with fresh seeds find more than one long run: each run heals, recovers and checks,
//! and a short history checks in well under a second. A loop that keeps every failing run:
//!
//! ```text
//! for i in $(seq 1 100); do
//!   sudo mortar-chaos run --nodes 5 --nemesis mixed --time-limit 300 --out hunt/$i \
//!     || echo "run $i failed: see hunt/$i/summary.json" >> hunt/failures.txt
//! done
//! ```
//!
//! Passing runs delete their data directories, so a hunt needs little disk. Use 7 nodes
//! (`--nodes 7`) now and then: only N=7 tells a wrong fast-quorum size from a majority. Long
//! single runs are bounded by `--ops-max` (2,000,000 operations); the checker's cost grows with
//! the operations per key, so prefer more keys (`--keys`) for runs of hours.
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
//! (`add`/`read`) for bounds; sets (`set_add`/`set_read`) for completeness; alarms
//! (`alarm_set`/`alarm_read`) for delivery. Each anomaly comes
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

pub mod bench;
pub mod check;
pub mod clock;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod svg;
pub mod topology;
pub mod workload;
pub mod workload_actors;

pub use check::{Anomaly, AnomalyKind, CheckResult, Checker, Report};
pub use history::{Event, EventType, Function, History, HistoryError, HistoryWriter, Op, Outcome, Value};
