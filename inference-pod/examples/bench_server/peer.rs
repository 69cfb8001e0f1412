//! The Python peer's results (`tools/bench/peer_rapidocr.py`, run by `make bench` just
//! before this program): its timings and its answers, scored here with the same scorer
//! as the server's.

use std::path::Path;

use anyhow::Context;
use kube_ocr_golden::{GoldenSet, Predictions, evaluate};
use serde::Deserialize;

/// `peer-timing.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRun {
    pub engine: String,
    pub command: String,
    pub threads: u32,
    pub documents: PeerTask,
    pub lines: PeerTask,
}

/// One task of the peer: images read one at a time, `rounds` timed passes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerTask {
    pub task: String,
    pub images: usize,
    pub rounds: usize,
    pub round_seconds: Vec<f64>,
    /// File name of its answers, beside `peer-timing.json`.
    pub predictions: String,
    /// CER of those answers on this task, filled in by [`PeerRun::load`].
    #[serde(skip)]
    pub cer: f64,
}

impl PeerTask {
    /// Images per second of the fastest pass.
    pub fn best_rate(&self) -> f64 {
        let best = self.round_seconds.iter().copied().fold(f64::INFINITY, f64::min);
        self.images as f64 / best
    }
}

impl PeerRun {
    pub fn load(dir: &Path, set: &GoldenSet) -> anyhow::Result<Self> {
        let path = dir.join("peer-timing.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("{} (run tools/bench/peer_rapidocr.py first; `make bench` does)", path.display())
        })?;
        let mut run: PeerRun = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for task in [&mut run.documents, &mut run.lines] {
            let predictions = Predictions::load(dir.join(&task.predictions))?;
            task.cer = cer(set, &predictions, &task.task)?;
        }
        Ok(run)
    }
}

/// CER of `predictions` over the golden items of `task` ("LINE" or "DOCUMENT").
pub fn cer(set: &GoldenSet, predictions: &Predictions, task: &str) -> anyhow::Result<f64> {
    let report = evaluate(set, predictions);
    Ok(report.by_task.get(task).with_context(|| format!("no {task} items in the golden set"))?.cer)
}
