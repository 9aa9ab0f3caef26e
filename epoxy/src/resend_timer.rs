//! How long a command leader waits for a phase's replies before resending, learned from its own
//! phases as TCP learns its retransmission timeout (Jacobson and Karels; RFC 6298): a smoothed
//! time to a quorum and its mean deviation, the timeout their sum with four deviations, within
//! bounds.
//!
//! A fixed timeout (100 ms before) is wrong both ways. On a LAN a phase takes a tick or less and
//! every lost message cost the whole wait: with F of N = 2F + 1 replicas down every quorum needs
//! every survivor, and a chain of such waits made the survivors' slowest proposal wait about a
//! second in `pair_kill` (N = 7, 2% loss). Across regions a phase takes a round trip of up to
//! 180 ms, so a fixed 100 ms resent nearly every phase to the replicas it was still waiting for.
//! A leader whose replies slow down under load (its peers' queues fill) waits longer before
//! resending instead of adding to the load.
//!
//! A sample is the ticks from a phase's first send to the reply that completed its slow quorum;
//! phases that were resent give none (Karn's rule: the reply may answer either send).

/// The timeout never exceeds this many ticks, however slow the samples.
pub const RESEND_TICKS_MAX: u32 = 50;

/// Fixed point: the estimates are kept in eighths of a tick.
const SCALE: u32 = 8;

#[derive(Debug, Clone, Default)]
pub(crate) struct ResendTimer {
    /// Smoothed ticks to a quorum, in eighths; None before the first sample.
    srtt: Option<u32>,
    /// Mean deviation of the samples, in eighths.
    rttvar: u32,
}

impl ResendTimer {
    /// A phase that was not resent reached its quorum `ticks` ticks after it was sent.
    pub(crate) fn sample(&mut self, ticks: u32) {
        let r = ticks.min(RESEND_TICKS_MAX) * SCALE;
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                self.rttvar = self.rttvar - self.rttvar / 4 + srtt.abs_diff(r) / 4;
                self.srtt = Some(srtt - srtt / 8 + r / 8);
            }
        }
    }

    /// Ticks to wait before resending: `initial` before any sample, then the smoothed time plus
    /// four deviations (at least one tick of them), within `min..=max(RESEND_TICKS_MAX, min)`.
    pub(crate) fn timeout(&self, min: u32, initial: u32) -> u32 {
        let Some(srtt) = self.srtt else { return initial };
        let rto = (srtt + (4 * self.rttvar).max(SCALE)).div_ceil(SCALE);
        rto.clamp(min, RESEND_TICKS_MAX.max(min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_a_sample_the_initial_timeout_holds() {
        assert_eq!(ResendTimer::default().timeout(5, 10), 10);
    }

    #[test]
    fn fast_phases_bring_the_timeout_down_to_its_floor() {
        let mut timer = ResendTimer::default();
        for _ in 0..20 {
            timer.sample(1);
        }
        assert_eq!(timer.timeout(5, 10), 5);
        let unfloored = timer.timeout(1, 10);
        assert!((2..=3).contains(&unfloored), "one tick smoothed, one or two of deviation: {unfloored}");
    }

    #[test]
    fn slow_phases_raise_it_above_the_initial_timeout() {
        let mut timer = ResendTimer::default();
        for _ in 0..20 {
            timer.sample(14); // a 140 ms round trip between regions
        }
        let timeout = timer.timeout(5, 10);
        assert!((15..=20).contains(&timeout), "{timeout}");
    }

    #[test]
    fn varying_phases_wait_out_their_deviation_and_never_past_the_cap() {
        let mut steady = ResendTimer::default();
        let mut varying = ResendTimer::default();
        for i in 0..40 {
            steady.sample(4);
            varying.sample(if i % 2 == 0 { 1 } else { 7 });
        }
        assert!(varying.timeout(1, 10) > steady.timeout(1, 10) + 4);
        let mut slow = ResendTimer::default();
        for _ in 0..40 {
            slow.sample(10_000);
        }
        assert_eq!(slow.timeout(5, 10), RESEND_TICKS_MAX);
        assert_eq!(slow.timeout(80, 10), 80, "a floor above the cap wins");
    }
}
