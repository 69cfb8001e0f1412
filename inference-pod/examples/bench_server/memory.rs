//! Memory over many requests: the process's resident memory after a tenth of the
//! requests and after all of them, LINE calls at concurrency 32 with the cache off.

use std::fmt::Write as _;
use std::sync::Arc;

use kube_ocr_proto::v1::Task as ProtoTask;

use crate::client::{Serving, Stop, closed_loop};
use crate::golden::Sample;
use crate::report::{Goal, Report};

/// RSS growth from a tenth of the requests to the end, percent.
const GROWTH_GOAL_PERCENT: f64 = 5.0;

#[derive(Debug)]
pub struct MemoryRun {
    pub requests: usize,
    pub early_requests: usize,
    pub rss_early: u64,
    pub rss_late: u64,
}

impl MemoryRun {
    fn growth_percent(&self) -> f64 {
        100.0 * (self.rss_late as f64 / self.rss_early as f64 - 1.0)
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

pub async fn measure(serving: &Serving, lines: &Arc<Vec<Sample>>, requests: usize) -> anyhow::Result<MemoryRun> {
    let early_requests = (requests / 10).max(1);
    closed_loop(&serving.client, lines.clone(), ProtoTask::Line, 32, Stop::Requests(early_requests)).await?;
    let rss_early = rss_bytes();
    let rest = requests.saturating_sub(early_requests).max(1);
    closed_loop(&serving.client, lines.clone(), ProtoTask::Line, 32, Stop::Requests(rest)).await?;
    Ok(MemoryRun { requests: early_requests + rest, early_requests, rss_early, rss_late: rss_bytes() })
}

pub fn write(report: &mut Report, run: &MemoryRun) -> anyhow::Result<()> {
    let out = &mut report.body;
    writeln!(out, "## 5. Memory over many requests\n")?;
    writeln!(
        out,
        "Meaning: whether the pod's resident memory keeps growing with requests (a leak, or caches without a \
         bound): RSS of this whole process (server and client; the in-process models are dropped before) after a \
         tenth of the LINE requests at concurrency 32 and after all of them, result cache off.\n"
    )?;
    writeln!(out, "| after requests | RSS MiB |")?;
    writeln!(out, "|---:|---:|")?;
    writeln!(out, "| {} | {:.1} |", run.early_requests, run.rss_early as f64 / 1048576.0)?;
    writeln!(out, "| {} | {:.1} |\n", run.requests, run.rss_late as f64 / 1048576.0)?;
    report.goal(Goal::at_most(
        format!("5. memory: RSS growth from {} to {} requests", run.early_requests, run.requests),
        run.growth_percent(),
        GROWTH_GOAL_PERCENT,
        " %",
    ));
    Ok(())
}
