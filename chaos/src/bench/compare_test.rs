use super::*;

fn result(target: Target, clients: u64, ops_per_sec: f64, p99_ms: f64) -> KvBenchResult {
    KvBenchResult {
        target: target.name().to_string(),
        mode: "closed".to_string(),
        clients,
        rate: None,
        conflict: 0.0,
        reads: 0.0,
        value_size: 100,
        ops: (ops_per_sec * 10.0) as u64,
        errors: 0,
        missed: 0,
        seconds: 10.0,
        ops_per_sec,
        p50_ms: p99_ms / 2.0,
        p90_ms: p99_ms * 0.8,
        p99_ms,
        p999_ms: p99_ms * 2.0,
        max_ms: p99_ms * 3.0,
        first_error: None,
    }
}

fn row(clients: u64, conflict: f64) -> Row {
    Row { clients, conflict, reads: 0.0, value_size: 100, rate: None }
}

fn report() -> CompareReport {
    let server = Sample {
        cpu_seconds: 1.1,
        syncs: 2200.0,
        sync_seconds: 2.2,
        batches: 1100.0,
        batch_commands: 2200.0,
        fast_path: 900.0,
        slow_path: 100.0,
    };
    let runs = |clients, mortar, etcd| {
        vec![
            SystemRun::new(result(Target::Mortar, clients, mortar, 2.0), server, 0.11, 1),
            SystemRun::new(result(Target::Etcd, clients, etcd, 4.0), Sample::default(), 0.0, 1),
        ]
    };
    CompareReport {
        etcd_version: Some("etcd 3.4.23".to_string()),
        duration: 10,
        warmup: 1,
        rows: vec![
            RowRun::new(row(1, 0.0), runs(1, 100.0, 50.0)),
            RowRun::new(row(16, 1.0), runs(16, 1000.0, 0.0)),
        ],
        floor: Floor { rtt_ms: 0.05, fsync_ms: 0.2 },
        dimensions: vec![Dimension::Clients, Dimension::Conflict],
        targets: vec![Target::Mortar, Target::Etcd],
    }
}

#[test]
fn per_operation_costs_divide_by_requests_answered_including_warm_up() {
    let run = &report().rows[0].runs[0];
    // 100 ops/s over 10 s plus 1 s of warm-up: 1100 requests.
    assert!((run.server_cpu_us_per_op - 1000.0).abs() < 1e-6, "{}", run.server_cpu_us_per_op);
    assert!((run.client_cpu_us_per_op - 100.0).abs() < 1e-6);
    assert!((run.syncs_per_op - 2.0).abs() < 1e-9);
    assert!((run.sync_ms_mean - 1.0).abs() < 1e-9);
    assert_eq!(run.commands_per_instance, Some(2.0));
    assert_eq!(run.slow_path_fraction, Some(0.1));
    assert_eq!(report().rows[0].runs[1].commands_per_instance, None, "etcd has no instances");
}

#[test]
fn results_table_puts_systems_side_by_side_with_ratios() {
    let table = results_table(&report());
    assert_eq!(
        table.header[..7],
        [
            "clients",
            "conflict",
            "mortar ops/s",
            "etcd ops/s",
            "ops/s mortar÷etcd",
            "mortar p50 ms",
            "etcd p50 ms"
        ]
    );
    assert_eq!(table.rows[0][..5], ["1", "0%", "100", "50", "2.00×"]);
    let p99 = table.header.iter().position(|h| h == "p99 etcd÷mortar").unwrap();
    assert_eq!(table.rows[0][p99], "2.00×");
    assert_eq!(table.rows[1][..5], ["16", "100%", "1,000", "0", "-"], "no ratio against zero");
    assert_eq!(table.rows[0].last().unwrap(), "0/0");
    assert_eq!(table.header.last().unwrap(), "errors mortar/etcd");
    assert!(table.markdown().lines().count() == 4);
}

#[test]
fn one_system_alone_has_no_ratio_columns() {
    let mut report = report();
    report.targets = vec![Target::Mortar];
    let table = results_table(&report);
    assert!(!table.header.iter().any(|h| h.contains('÷')), "{:?}", table.header);
    assert!(!table.header.iter().any(|h| h.starts_with("etcd")), "{:?}", table.header);
    let costs = costs_table(&report);
    assert_eq!(costs.rows[0][2..], ["1000", "100", "2.00", "1.00", "2.0", "10%"]);
}

#[test]
fn the_floor_line_puts_each_one_client_p50_against_the_floor() {
    let line = report().floor.line(&report().rows);
    assert!(line.contains("0.050 ms + ") && line.contains("0.200 ms = 0.250 ms"), "{line}");
    // The 1-client row's p50s (1.0 and 2.0 ms), not the 16-client row's.
    assert!(line.contains("mortar p50 1.000 ms = 4.0 × the floor"), "{line}");
    assert!(line.contains("etcd p50 2.000 ms = 8.0 × the floor"), "{line}");
    assert_eq!(line.matches("× the floor").count(), 2, "{line}");
}

/// The loopback figure comes from real round trips through an echo socket.
#[tokio::test]
async fn the_loopback_round_trip_is_measured() {
    let ms = loopback_round_trip_ms(20).await.unwrap();
    assert!(ms > 0.0, "{ms}");
}

/// `mortar-chaos bench <args>`, parsed as the binary parses it.
fn parse_bench(args: &[&str]) -> crate::bench::BenchCommand {
    #[derive(clap::Parser)]
    struct Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    }
    use clap::Parser as _;
    let args = std::iter::once("mortar-chaos bench").chain(args.iter().copied());
    Bench::try_parse_from(args).unwrap().command
}

#[test]
fn compare_arguments_default_to_the_issue_matrix() {
    let crate::bench::BenchCommand::Compare(args) = parse_bench(&["compare"]) else {
        panic!("parsed as another command");
    };
    assert_eq!(args.matrix, ["clients=1,16,64,256", "conflict=0,1"]);
    assert_eq!(args.systems.targets, [Target::Mortar, Target::Etcd]);
    let crate::bench::BenchCommand::Compare(args) =
        parse_bench(&["compare", "--duration", "5", "--matrix", "clients=1,16", "conflict=0,1", "--json"])
    else {
        panic!("parsed as another command");
    };
    assert_eq!((args.duration, args.json), (5, true));
    assert_eq!(args.matrix, ["clients=1,16", "conflict=0,1"]);
}

#[test]
fn median_run_keeps_every_runs_ops() {
    let run = |ops| SystemRun::new(result(Target::Mortar, 1, ops, 1.0), Sample::default(), 0.0, 1);
    let median = SystemRun::median(vec![run(300.0), run(100.0), run(200.0)]);
    assert_eq!(median.result.ops_per_sec, 200.0);
    assert_eq!(median.ops_per_sec_runs, [300.0, 100.0, 200.0]);
    assert_eq!(SystemRun::median(vec![run(100.0), run(200.0)]).result.ops_per_sec, 200.0);
}
