use super::*;

#[test]
fn cpu_per_call_is_each_process_s_growth_over_the_calls() {
    // [this process, node 1, node 2, node 3], each (driver thread, whole process) in seconds.
    let before = [(0.0, 10.0), (1.0, 5.0), (2.0, 6.0), (3.0, 7.0)];
    let after = [(0.0, 10.2), (1.1, 5.4), (2.2, 6.3), (3.1, 7.3)];
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
}

#[test]
fn no_calls_divide_by_one_not_zero() {
    let snapshot = [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0)];
    let later = [(0.0, 1.5), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0)];
    let cpu = CallCpu::between(&snapshot, &later, 0);
    assert!(cpu.load_generator_us.is_finite());
    assert_eq!(cpu.node1_us, 0.0);
}
