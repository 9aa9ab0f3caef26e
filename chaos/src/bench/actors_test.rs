use super::*;
use crate::bench::metrics::MachineCpu;

#[test]
fn cpu_per_call_is_each_process_s_growth_over_the_calls() {
    // [this process, node 1, node 2, node 3], each (driver thread, whole process) in seconds.
    let machine = |idle_seconds, total_seconds| MachineCpu { idle_seconds, total_seconds, cpus: 2 };
    let before = CpuSnapshot {
        processes: vec![(0.0, 10.0), (1.0, 5.0), (2.0, 6.0), (3.0, 7.0)],
        machine: machine(100.0, 400.0),
    };
    let after = CpuSnapshot {
        processes: vec![(0.0, 10.2), (1.1, 5.4), (2.2, 6.3), (3.1, 7.3)],
        machine: machine(100.5, 402.0),
    };
    let cpu = CallCpu::between(&before, &after, 10_000);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(cpu.load_generator_us, 20.0), "{cpu:?}");
    assert!(close(cpu.node1_us, 40.0), "{cpu:?}");
    assert!(close(cpu.node1_driver_us, 10.0), "{cpu:?}");
    assert!(close(cpu.others_us, 60.0), "nodes 2 and 3 together: {cpu:?}");
    assert!(close(cpu.others_driver_us, 30.0), "{cpu:?}");
    assert!(close(cpu.total_us(), 120.0), "{cpu:?}");
    let line = cpu.line();
    assert!(
        line.starts_with("CPU per call: 120 µs = load generator 20 + node 1 40 (epoxy driver 10)"),
        "{line}"
    );
    assert!((cpu.machine_idle - 0.25).abs() < 1e-9, "{cpu:?}");
    assert!(line.ends_with("the machine's 2 CPUs 25% idle (not bound by CPU alone)"), "{line}");
    let busy = CallCpu::between(&before, &CpuSnapshot { machine: machine(100.1, 402.0), ..after }, 10_000);
    assert!(
        busy.line().ends_with("5% idle (bound by CPU: calls/s ≈ cores ÷ CPU per call)"),
        "{}",
        busy.line()
    );
}

#[test]
fn no_calls_divide_by_one_not_zero() {
    let snapshot = CpuSnapshot { processes: vec![(0.0, 1.0); 4], ..CpuSnapshot::default() };
    let later = CpuSnapshot {
        processes: vec![(0.0, 1.5), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0)],
        ..CpuSnapshot::default()
    };
    let cpu = CallCpu::between(&snapshot, &later, 0);
    assert!(cpu.load_generator_us.is_finite());
    assert_eq!(cpu.node1_us, 0.0);
}

fn run(action: &str, counters: &str, calls_per_sec: f64) -> Throughput {
    Throughput {
        action: action.into(),
        counters: counters.into(),
        calls: 0,
        errors: 0,
        calls_per_sec,
        latency: Latency { count: 0, p50_ms: 0.0, p99_ms: 0.0, max_ms: 0.0 },
        cpu: CallCpu::default(),
        epoxy: EpoxyCost::default(),
    }
}

#[test]
fn ratios_name_the_target_of_each_calls_run_and_mark_the_ceilings() {
    let runs = [
        run("increment", SPREAD, 5_000.0),
        run("getCount", SPREAD, 20_000.0),
        run("getCount", NODE1_OWNS, 30_000.0),
        run(KV_PUT, KV_NODE1, 15_000.0),
        run(KV_PUT, KV_ALL_NODES, 16_000.0),
    ];
    let lines = ratio_lines(&runs, 10_000.0, 32);
    assert_eq!(
        lines[0],
        "increment calls/s ÷ etcd puts/s at 32 clients: 0.50 (5000 / 10000; issue 21's target ≥ 1.5)"
    );
    assert!(lines[1].ends_with("2.00 (20000 / 10000; issue 21's target ≥ 4)"), "{}", lines[1]);
    assert!(lines[2].starts_with("getCount (node 1's counters) calls/s"), "{}", lines[2]);
    assert!(lines[2].ends_with("3.00 (30000 / 10000; ceiling: nothing forwarded)"), "{}", lines[2]);
    assert!(lines[3].starts_with("kv put puts/s"), "{}", lines[3]);
    assert!(lines[3].ends_with("1.50 (15000 / 10000; ceiling of increment)"), "{}", lines[3]);
    assert!(lines[4].starts_with("kv put (all three nodes) puts/s"), "{}", lines[4]);
    assert!(lines[4].ends_with("1.60 (16000 / 10000; three leaders, nothing forwarded)"), "{}", lines[4]);
}

#[test]
fn the_ceilings_part_is_a_part_but_not_a_default_one() {
    assert!(PARTS.contains(&"ceilings"));
    let args = <ActorBenchArgs as clap::FromArgMatches>::from_arg_matches(
        &<ActorBenchArgs as clap::Args>::augment_args(clap::Command::new("t")).get_matches_from(["t"]),
    )
    .unwrap();
    assert!(!args.parts.iter().any(|p| p == "ceilings"), "{:?}", args.parts);
}

#[test]
fn epoxy_cost_divides_the_nodes_counters_by_calls_and_instances() {
    let delta = Sample {
        syncs: 500.0,
        sync_seconds: 0.25,
        batches: 200.0,
        batch_commands: 600.0,
        fast_path: 570.0,
        slow_path: 30.0,
        ..Sample::default()
    };
    let cost = EpoxyCost::of(&delta, 1000);
    assert_eq!(cost.commands_per_instance, Some(3.0));
    assert_eq!(cost.syncs_per_call, 0.5);
    assert_eq!(cost.sync_ms_mean, 0.5);
    assert_eq!(cost.slow_path_fraction, Some(0.05));
    assert_eq!(
        cost.line(),
        "epoxy: 3.0 commands per instance, 0.50 synced writes per call (0.50 ms each), 5% of instances on the slow path"
    );
    // A run that proposed nothing (reads under the lease) prints dashes, not NaN.
    let idle = EpoxyCost::of(&Sample::default(), 1000);
    assert_eq!(
        idle.line(),
        "epoxy: - commands per instance, 0.00 synced writes per call (0.00 ms each), - of instances on the slow path"
    );
}
