//! Figure 2: DOCUMENT pages per second at concurrency 4 and 16 against the peer, which
//! reads one page at a time in its process, at the same thread count; CER side by side.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use kube_ocr_golden::GoldenSet;
use kube_ocr_proto::v1::Task as ProtoTask;

use crate::client::{LoadRun, Serving, Stop, closed_loop};
use crate::golden::Sample;
use crate::peer::{PeerRun, cer};
use crate::report::{Goal, Report};
use crate::stats::{ms, percentile};

/// Our pages/s over the peer's, at each concurrency.
const SPEED_GOAL: f64 = 1.2;
/// Our CER may exceed the peer's by at most this many points (hundredths).
const CER_GOAL_POINTS: f64 = 0.5;

/// One concurrency level.
#[derive(Debug)]
pub struct DocumentRun {
    pub concurrency: usize,
    pub load: LoadRun,
    pub cer: f64,
}

pub async fn measure(
    serving: &Serving,
    set: &GoldenSet,
    documents: &Arc<Vec<Sample>>,
    concurrencies: &[usize],
    window: Duration,
) -> anyhow::Result<Vec<DocumentRun>> {
    let mut runs = Vec::new();
    for &concurrency in concurrencies {
        let load =
            closed_loop(&serving.client, documents.clone(), ProtoTask::Document, concurrency, Stop::Window(window))
                .await?;
        let cer = cer(set, &load.predictions, "DOCUMENT")?;
        runs.push(DocumentRun { concurrency, load, cer });
    }
    Ok(runs)
}

/// The best pages/s of the runs: the unloaded capacity figure 4 overloads.
pub fn best_rate(runs: &[DocumentRun]) -> f64 {
    runs.iter().map(|r| r.load.rate()).fold(0.0, f64::max)
}

pub fn write(report: &mut Report, runs: &[DocumentRun], peer: &PeerRun, pages: usize) -> anyhow::Result<()> {
    let out = &mut report.body;
    let peer_rate = peer.documents.best_rate();
    writeln!(out, "## 2. Documents: pages/s against the peer at equal threads\n")?;
    writeln!(
        out,
        "Meaning: how many golden DOCUMENT pages ({pages}, all variants, sent in turn) the server completes per \
         second with 4 and 16 callers each keeping one call open, against {} reading one page at a time in its one \
         process, with {} onnxruntime threads as the server has libtorch threads. The server's rate counts \
         completions in a window that opens once every caller had an answer and closes after at least the set \
         time and {pages} pages; the peer's is its fastest of {} passes. CER is scored by kube-ocr-golden on every page's last answer.\n",
        peer.engine, peer.threads, peer.documents.rounds
    )?;
    writeln!(
        out,
        "| engine | concurrency | pages/s | vs peer | p50 ms | p95 ms | CER | CER − peer (points) | failed calls |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|")?;
    writeln!(
        out,
        "| {} (peer) | 1 page at a time | {peer_rate:.2} | 1.00 | | | {:.4} | | |",
        peer.engine, peer.documents.cer
    )?;
    for run in runs {
        writeln!(
            out,
            "| kube-ocr server | {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.4} | {:+.2} | {} |",
            run.concurrency,
            run.load.rate(),
            run.load.rate() / peer_rate,
            ms(percentile(&run.load.latencies, 0.5)),
            ms(percentile(&run.load.latencies, 0.95)),
            run.cer,
            100.0 * (run.cer - peer.documents.cer),
            run.load.errors_text()
        )?;
    }
    writeln!(out, "\nServer timings, mean per page (ms):\n")?;
    writeln!(out, "| concurrency | pages in window | queue | preprocess | inference | postprocess | total |")?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|")?;
    for run in runs {
        let s = &run.load.phases;
        writeln!(
            out,
            "| {} | {} in {:.0} s | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            run.concurrency,
            run.load.completed,
            run.load.window.as_secs_f64(),
            ms(s.mean(s.queue)),
            ms(s.mean(s.preprocess)),
            ms(s.mean(s.inference)),
            ms(s.mean(s.postprocess)),
            ms(s.mean(s.total))
        )?;
    }
    writeln!(
        out,
        "\nUnder load, queue and inference overlap between requests (inference is the wall time of the batches a \
         page's items ran in), so these do not add up to 1 / pages/s.\n"
    )?;
    for run in runs {
        report.goal(Goal::at_least(
            format!("2. documents at concurrency {}: pages/s vs the peer", run.concurrency),
            run.load.rate() / peer_rate,
            SPEED_GOAL,
            "x",
        ));
        report.goal(Goal::at_most(
            format!("2. documents at concurrency {}: CER − peer's CER", run.concurrency),
            100.0 * (run.cer - peer.documents.cer),
            CER_GOAL_POINTS,
            " points",
        ));
    }
    Ok(())
}
