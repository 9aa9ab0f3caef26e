//! The nemesis timeline: `nemesis.jsonl` in the run directory, one line per fault start or end,
//! heal, or node crash:
//!
//! ```text
//! {"time":12000000000,"nemesis":"kill","event":"start","detail":{"nodes":[2],"text":"kill n2"}}
//! {"time":21000000000,"nemesis":"kill","event":"end","detail":{"nodes":[2],"text":"kill n2"}}
//! ```
//!
//! `time` is nanoseconds since the start of the run, on the history's clock.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::nemesis::Fault;
use crate::stats::FaultInterval;

#[derive(Serialize)]
struct Line<'a> {
    time: u64,
    nemesis: &'a str,
    event: &'a str,
    detail: serde_json::Value,
}

pub struct Timeline {
    out: BufWriter<File>,
    /// Faults started and not yet ended, by (window, index in window), with their start time.
    open: BTreeMap<(usize, usize), (Fault, u64)>,
    /// Faults that ended.
    pub intervals: Vec<FaultInterval>,
}

impl Timeline {
    pub fn create(path: &Path) -> anyhow::Result<Timeline> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        Ok(Timeline { out: BufWriter::new(file), open: BTreeMap::new(), intervals: Vec::new() })
    }

    pub fn write(
        &mut self,
        time: u64,
        nemesis: &str,
        event: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<()> {
        let line = serde_json::to_string(&Line { time, nemesis, event, detail })
            .expect("a timeline line serializes");
        writeln!(self.out, "{line}").context("write the nemesis timeline")?;
        self.out.flush().context("write the nemesis timeline")
    }

    pub fn start(&mut self, time: u64, id: (usize, usize), fault: &Fault) -> anyhow::Result<()> {
        self.write(time, fault.kind().name(), "start", fault.detail())?;
        self.open.insert(id, (fault.clone(), time));
        Ok(())
    }

    pub fn end(&mut self, time: u64, id: (usize, usize)) -> anyhow::Result<()> {
        let Some((fault, start)) = self.open.remove(&id) else { return Ok(()) };
        self.write(time, fault.kind().name(), "end", fault.detail())?;
        self.intervals.push(FaultInterval {
            kind: fault.kind(),
            text: fault.to_string(),
            start_ns: start,
            end_ns: time,
        });
        Ok(())
    }

    /// Faults active now, in start order.
    pub fn active(&self) -> impl Iterator<Item = &Fault> {
        self.open.values().map(|(fault, _)| fault)
    }

    /// Ends every open fault at `time` (the heal, or an interrupted run).
    pub fn end_all(&mut self, time: u64) -> anyhow::Result<()> {
        let ids: Vec<(usize, usize)> = self.open.keys().copied().collect();
        for id in ids {
            self.end(time, id)?;
        }
        Ok(())
    }
}
