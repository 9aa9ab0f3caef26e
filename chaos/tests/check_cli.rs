//! Hand-made histories under `tests/histories/`, checked through the library and through the
//! `mortar-chaos check` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

use mortar_chaos::check::{self, AnomalyKind, Checker};
use mortar_chaos::{History, HistoryWriter};

/// A fixture and what the checkers must say about it.
struct Case {
    file: &'static str,
    /// `None`: valid. `Some`: the checker that must object and the kind of its first anomaly.
    anomaly: Option<(Checker, AnomalyKind)>,
    /// Lines the first anomaly must show, exactly (the smallest evidence).
    lines: &'static [usize],
}

const CASES: &[Case] = &[
    Case {
        file: "stale_read.jsonl",
        anomaly: Some((Checker::Linearizability, AnomalyKind::NotLinearizable)),
        lines: &[1, 2, 3, 4, 5, 6],
    },
    // Write 1, the acknowledged write 2, and one read of 1 after it: the earlier read (concurrent
    // with write 2) and the later reads are not needed to show the loss.
    Case {
        file: "lost_write.jsonl",
        anomaly: Some((Checker::Linearizability, AnomalyKind::NotLinearizable)),
        lines: &[1, 4, 5, 8, 9, 10],
    },
    // The initial write and both CAS from 0; the final read is not needed.
    Case {
        file: "double_cas.jsonl",
        anomaly: Some((Checker::Linearizability, AnomalyKind::NotLinearizable)),
        lines: &[1, 2, 3, 4, 5, 6],
    },
    // The read and every add that could have counted (the failed one and the later one could not).
    Case {
        file: "counter_above_attempted.jsonl",
        anomaly: Some((Checker::CounterBounds, AnomalyKind::CounterAboveAttempted)),
        lines: &[1, 2, 3, 4, 5, 7, 9, 10],
    },
    // The read and the single acknowledged add of 5 that already exceeds it.
    Case {
        file: "counter_below_acknowledged.jsonl",
        anomaly: Some((Checker::CounterBounds, AnomalyKind::CounterBelowAcknowledged)),
        lines: &[1, 3, 6, 8],
    },
    Case {
        file: "set_lost_element.jsonl",
        anomaly: Some((Checker::SetCompleteness, AnomalyKind::SetElementLost)),
        lines: &[2, 5, 9, 10],
    },
    // Both writes, the restart marker, and the read after it; key k2 survived.
    Case {
        file: "lost_across_restart.jsonl",
        anomaly: Some((Checker::Durability, AnomalyKind::LostAcrossRestart)),
        lines: &[1, 2, 3, 5, 7, 8, 9],
    },
    Case { file: "concurrent_writes.jsonl", anomaly: None, lines: &[] },
    Case { file: "info_write_appears.jsonl", anomaly: None, lines: &[] },
    Case { file: "info_write_never_appears.jsonl", anomaly: None, lines: &[] },
    Case { file: "cas_failed_correctly.jsonl", anomaly: None, lines: &[] },
    Case { file: "counter_and_set_valid.jsonl", anomaly: None, lines: &[] },
    Case { file: "restart_valid.jsonl", anomaly: None, lines: &[] },
];

fn fixture(file: &str) -> PathBuf {
    // Cargo sets the crate's directory for the test process too. Prefer that to the one compiled
    // in: builds of other checkouts that share the target directory reuse this binary.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    crate_dir.join("tests/histories").join(file)
}

fn load(file: &str) -> History {
    let text = std::fs::read(fixture(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
    History::from_jsonl(text.as_slice()).unwrap_or_else(|e| panic!("parse {file}: {e}"))
}

fn mortar_chaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mortar-chaos")).args(args).output().expect("run mortar-chaos")
}

#[test]
fn library_verdicts_match_the_fixtures() {
    for case in CASES {
        let report = check::check(&load(case.file));
        match case.anomaly {
            None => assert!(report.valid, "{} must be valid:\n{report}", case.file),
            Some((checker, kind)) => {
                assert!(!report.valid, "{} must be invalid", case.file);
                let check =
                    report.checks.iter().find(|c| c.checker == checker).unwrap_or_else(|| {
                        panic!("{}: {} did not run:\n{report}", case.file, checker.name())
                    });
                let anomaly =
                    check.result.anomalies.first().unwrap_or_else(|| {
                        panic!("{}: {} found nothing:\n{report}", case.file, checker.name())
                    });
                assert_eq!(anomaly.kind, kind, "{}:\n{report}", case.file);
                assert_eq!(anomaly.lines, case.lines, "{}: evidence lines:\n{report}", case.file);
                // Only the expected checker objects, once.
                let anomalies: usize = report.checks.iter().map(|c| c.result.anomalies.len()).sum();
                assert_eq!(anomalies, 1, "{}:\n{report}", case.file);
            }
        }
    }
}

/// The events of an anomaly are a history of their own that the same checker rejects, for the
/// same reason.
#[test]
fn evidence_is_an_invalid_history_on_its_own() {
    for case in CASES {
        let Some((checker, kind)) = case.anomaly else { continue };
        let report = check::check(&load(case.file));
        let anomaly = &report.checks.iter().find(|c| c.checker == checker).unwrap().result.anomalies[0];
        let mut writer = HistoryWriter::new(Vec::new());
        for event in &anomaly.events {
            writer.write(event).unwrap();
        }
        let evidence = History::from_jsonl(writer.into_inner().as_slice()).unwrap();
        let result = checker.run(&evidence);
        assert!(!result.valid, "{}: the evidence alone is valid: {:?}", case.file, anomaly.events);
        // Other anomalies may appear (a set read's other elements have no adds in the evidence),
        // but the one shown is among them.
        assert!(result.anomalies.iter().any(|a| a.kind == kind), "{}: {:?}", case.file, result.anomalies);
    }
}

#[test]
fn cli_exit_status_and_output_match_the_fixtures() {
    for case in CASES {
        let path = fixture(case.file);
        let output = mortar_chaos(&["check", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let first_line = stdout.lines().next().unwrap_or("");
        match case.anomaly {
            None => {
                assert_eq!(output.status.code(), Some(0), "{}:\n{stdout}", case.file);
                assert_eq!(first_line, "valid", "{}", case.file);
            }
            Some((checker, kind)) => {
                assert_eq!(output.status.code(), Some(1), "{}:\n{stdout}", case.file);
                assert_eq!(first_line, "invalid", "{}", case.file);
                assert!(stdout.contains(&format!("{}: invalid", checker.name())), "{}:\n{stdout}", case.file);
                assert!(stdout.contains(kind.name()), "{}:\n{stdout}", case.file);
                for line in case.lines {
                    assert!(
                        stdout.contains(&format!("    line {line}: {{")),
                        "{}: line {line}:\n{stdout}",
                        case.file
                    );
                }
            }
        }
    }
}

#[test]
fn cli_json_report() {
    let path = fixture("stale_read.jsonl");
    let output = mortar_chaos(&["check", path.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["valid"], false);
    let check = &report["checks"][0];
    assert_eq!(check["checker"], "linearizability");
    assert_eq!(check["valid"], false);
    let anomaly = &check["anomalies"][0];
    assert_eq!(anomaly["kind"], "not-linearizable");
    assert_eq!(anomaly["key"], "k1");
    assert_eq!(anomaly["lines"], serde_json::json!([1, 2, 3, 4, 5, 6]));
    // Events are exactly the history's lines.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(anomaly["events"], serde_json::Value::Array(lines));
}

#[test]
fn cli_names_file_and_line_of_a_malformed_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"process":0,"type":"invoke","f":"write","key":"k1","value":1,"time":0}"#,
            "\n",
            r#"{"process":0,"type":"ok","f":"write","key":"k1","value":1,"time":10}"#,
            "\n",
            r#"{"process":0,"type":"invoke","f":"write","key":"k1","value":2"#,
            "\n",
        ),
    )
    .unwrap();
    let output = mortar_chaos(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with(&format!("error: {}: line 3", path.display())), "{stderr}");
}

#[test]
fn cli_names_line_of_an_inconsistent_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orphan.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"process":0,"type":"invoke","f":"read","key":"k1","value":null,"time":0}"#,
            "\n\n",
            r#"{"process":1,"type":"ok","f":"read","key":"k1","value":null,"time":10}"#,
            "\n",
        ),
    )
    .unwrap();
    let output = mortar_chaos(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3: ok of read for process 1, which has no operation in flight"),
        "{stderr}"
    );
}

#[test]
fn cli_reports_a_missing_file() {
    let output = mortar_chaos(&["check", "/nonexistent/history.jsonl"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: /nonexistent/history.jsonl: open history: "), "{stderr}");
}
