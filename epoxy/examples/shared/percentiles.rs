//! Summaries of per-run measurements in the simulation examples.

/// p50, p90, p99 and the largest (with its N and seed) of `(value, n, seed)`s.
pub fn percentiles<T: PartialOrd + Copy + std::fmt::Debug>(values: &mut [(T, usize, u64)]) -> String {
    values.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("comparable"));
    let Some(&(max, n, seed)) = values.last() else { return "none".into() };
    let at = |q: f64| values[((values.len() as f64 * q) as usize).min(values.len() - 1)].0;
    format!(
        "p50 {:?}, p90 {:?}, p99 {:?}, max {max:?} (N={n} seed {seed}), over {}",
        at(0.5),
        at(0.9),
        at(0.99),
        values.len()
    )
}
