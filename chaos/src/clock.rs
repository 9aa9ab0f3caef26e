//! One clock for every process of a run: `CLOCK_MONOTONIC`, which is system-wide (network
//! namespaces do not change it), so the runner, the client worker in its namespace and the
//! nemesis timeline all measure time from the same origin.

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn monotonic_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable on Linux");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

/// Nanoseconds since `origin_ns` (a [`monotonic_ns`] reading), never negative.
pub fn since(origin_ns: u64) -> u64 {
    monotonic_ns().saturating_sub(origin_ns)
}
