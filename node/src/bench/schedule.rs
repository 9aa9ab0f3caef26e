//! The open-loop schedule: when each client sends each of its requests.
//!
//! With `--rate R` and `--clients N`, the clients take turns: request `k` of client `c` is due at
//! `(k * N + c) / R` seconds after the start, so the requests of all clients together leave
//! evenly spaced, `1/R` apart, whatever the server does. A client whose previous request is still
//! unanswered sends late, and the latency it records counts from the due time, not from the late
//! send: a slow answer cannot hide the requests it delayed (no coordinated omission).

use std::time::Duration;

/// Highest `--rate`, in requests per second.
pub const RATE_MAX: f64 = 1_000_000.0;

/// When request `k` (0-based) of `client` (0-based, one of `clients`) is due, counted from the
/// start of the run, for `rate` requests per second from all clients together.
pub fn due(client: u64, k: u64, clients: u64, rate: f64) -> Duration {
    assert!(client < clients, "client {client} out of range: clients={clients}");
    assert!(rate > 0.0 && rate <= RATE_MAX, "rate out of range: rate={rate}");
    let slot = k.saturating_mul(clients).saturating_add(client);
    Duration::from_secs_f64(slot as f64 / rate)
}

#[cfg(test)]
#[path = "schedule_test.rs"]
mod schedule_test;
