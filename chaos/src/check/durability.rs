//! No acknowledged write lost across a whole-cluster restart.
//!
//! The history records each restart with a marker event
//! (`{"process":-1,"type":"info","f":"restart","key":"","value":null,"time":T}`, see
//! [`crate::history`]) and, after the last restart, a read of every key. Those reads are ordinary
//! operations, so a lost write shows up as a read that no linearization explains: the checker runs
//! the [linearizability search](crate::check::linearizable) over the whole history, markers
//! ignored. An anomaly whose blocked operation started after a restart, with an operation in its
//! witness that changed the register and was acknowledged before that restart, is reported as
//! [`AnomalyKind::LostAcrossRestart`] with the marker in its evidence; any other as
//! [`AnomalyKind::NotLinearizable`].

use crate::check::linearizable::{
    CONFIGURATIONS_MAX, KeyVerdict, check_key, register_ops, undecided_anomaly, witness_anomaly,
};
use crate::check::{AnomalyKind, CheckResult};
use crate::history::History;

/// Checks every register key of `history` across its restarts.
pub fn check(history: &History) -> CheckResult {
    let restarts: Vec<(u64, usize)> =
        history.restarts().iter().map(|&index| (history.events()[index].time, index)).collect();
    let mut anomalies = Vec::new();
    for (key, ops) in register_ops(history) {
        let witness = match check_key(ops, CONFIGURATIONS_MAX) {
            KeyVerdict::Linearizable => continue,
            KeyVerdict::Undecided { configurations } => {
                anomalies.push(undecided_anomaly(history, key, configurations));
                continue;
            }
            KeyVerdict::NotLinearizable(witness) => witness,
        };
        let blocked = witness.ops[witness.blocked];
        let restart = restarts.iter().rev().find(|(time, _)| *time <= blocked.invoke).copied();
        let lost = restart.filter(|(restart_time, _)| {
            witness.ops.iter().any(|op| {
                op.call.writes().is_some() && op.complete.is_some_and(|complete| complete < *restart_time)
            })
        });
        anomalies.push(match lost {
            Some((_, marker)) => witness_anomaly(
                history,
                key,
                &witness,
                AnomalyKind::LostAcrossRestart,
                &format!("after the cluster restart on line {}, ", history.line(marker)),
                &[marker],
            ),
            None => witness_anomaly(history, key, &witness, AnomalyKind::NotLinearizable, "", &[]),
        });
    }
    CheckResult::from_anomalies(anomalies)
}

#[cfg(test)]
#[path = "durability_test.rs"]
mod tests;
