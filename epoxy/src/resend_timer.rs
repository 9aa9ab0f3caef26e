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
//! phases that were resent give none (Karn's rule: the reply may answer either send). So a tick in
//! which phases were resent doubles the timeout (TCP's backoff) until the next sample: otherwise
//! a leader whose round trip is longer than its timeout would resend every phase and never learn
//! (bench wan's region c, 140 ms from its nearest quorum, resent all of them at 100 ms).

/// The timeout never exceeds this many ticks, however slow the samples.
pub const RESEND_TICKS_MAX: u32 = 50;

/// Fixed point: the estimates are kept in eighths of a tick.
const SCALE: u32 = 8;
/// Most doublings of the backoff: enough to pass the cap from one tick.
const BACKOFF_DOUBLINGS_MAX: u32 = 6;
const _: () = assert!(1 << BACKOFF_DOUBLINGS_MAX >= RESEND_TICKS_MAX);

#[derive(Debug, Clone)]
pub(crate) struct ResendTimer {
    /// Smoothed ticks to a quorum, in eighths; None before the first sample.
    srtt: Option<u32>,
    /// Mean deviation of the samples, in eighths.
    rttvar: u32,
    /// Doublings of the timeout since the last sample (ticks in which phases were resent).
    backoff: u32,
    /// Samples and timeouts never exceed this many ticks ([`RESEND_TICKS_MAX`] for phases).
    max: u32,
}

impl Default for ResendTimer {
    fn default() -> Self {
        Self::with_max(RESEND_TICKS_MAX)
    }
}

impl ResendTimer {
    /// A timer whose samples and timeouts are capped at `max` ticks (the same estimator serves
    /// the stall timers of `crate::replica`, whose waits are longer than a phase's).
    pub(crate) fn with_max(max: u32) -> Self {
        assert!(max <= u32::MAX / SCALE, "the estimates are kept in eighths of a tick");
        Self { srtt: None, rttvar: 0, backoff: 0, max }
    }

    /// A phase that was not resent reached its quorum `ticks` ticks after it was sent.
    pub(crate) fn sample(&mut self, ticks: u32) {
        self.backoff = 0;
        let r = ticks.min(self.max) * SCALE;
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

    /// Phases were resent in this tick: the timeout doubles until the next sample.
    pub(crate) fn backed_off(&mut self) {
        self.backoff = (self.backoff + 1).min(BACKOFF_DOUBLINGS_MAX);
    }

    /// Ticks to wait before resending: `initial` before any sample, then the smoothed time plus
    /// four deviations (at least one tick of them); doubled once per backoff; within
    /// `min..=max(cap, min)` (the cap is [`RESEND_TICKS_MAX`] unless built [`Self::with_max`]).
    pub(crate) fn timeout(&self, min: u32, initial: u32) -> u32 {
        let base = match self.srtt {
            None => initial,
            Some(srtt) => (srtt + (4 * self.rttvar).max(SCALE)).div_ceil(SCALE),
        };
        base.saturating_mul(1 << self.backoff).clamp(min, self.max.max(min))
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
    fn resends_double_the_timeout_until_the_next_sample() {
        let mut timer = ResendTimer::default();
        timer.backed_off();
        assert_eq!(timer.timeout(5, 10), 20, "no sample yet: the initial timeout, doubled");
        timer.backed_off();
        assert_eq!(timer.timeout(5, 10), 40);
        timer.backed_off();
        assert_eq!(timer.timeout(5, 10), RESEND_TICKS_MAX, "never past the cap");
        for _ in 0..BACKOFF_DOUBLINGS_MAX {
            timer.backed_off();
        }
        assert_eq!(timer.timeout(5, 1 << 27), RESEND_TICKS_MAX, "a huge initial timeout, doubled, saturates");
        timer.sample(14); // the first phase that was not resent: 140 ms
        let learned = timer.timeout(5, 10);
        assert!(learned > 14, "above the round trip it learned: {learned}");
        for _ in 0..40 {
            timer.sample(14);
        }
        assert!((15..=20).contains(&timer.timeout(5, 10)));
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
