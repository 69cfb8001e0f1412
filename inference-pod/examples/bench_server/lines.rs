//! Figure 3: LINE throughput at concurrency 32 against the peer's recogniser and against
//! the best raw configuration of our own recogniser (one line per forward, or sorted
//! batches), with the server's batching on and off.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use kube_ocr_golden::GoldenSet;
use kube_ocr_inference::model::{Bundle, ComputeDevice, ModelOptions, Recognizer};
use kube_ocr_proto::v1::Task as ProtoTask;
use kube_ocr_vision::input::scaled_width;

use crate::client::{LoadRun, Serving, Stop, WARM_UP_PASSES, closed_loop};
use crate::golden::Sample;
use crate::peer::{PeerRun, cer};
use crate::report::{Goal, Report};
use crate::stats::{ms, per_second, percentile};

/// Our lines/s at concurrency 32 over the peer's.
const PEER_GOAL: f64 = 1.5;
/// Our lines/s at concurrency 32 over the best raw configuration.
const RAW_GOAL: f64 = 0.9;
pub const CONCURRENCY: usize = 32;

/// One raw loop: the recogniser called directly on decoded images, `batch` lines a forward.
#[derive(Debug)]
pub struct RawRate {
    pub batch: usize,
    pub lines_per_second: f64,
}

/// Each configuration takes one pass over `lines` in turn, until each has had `duration`.
pub fn raw_recognizer(
    bundle: &Path,
    lines: &[Sample],
    batch_sizes: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<RawRate>> {
    let recognizer = Recognizer::load(&Bundle::load(bundle)?, ComputeDevice::Cpu, ModelOptions::default())?;
    let (height, default_width) = recognizer.input_geometry();
    // Batches of lines of similar width, as the server's width buckets try to form: the
    // best case for padding. Batch 1 goes in golden-set order.
    let mut by_width: Vec<&RgbImage> = lines.iter().map(|s| &s.pixels).collect();
    by_width.sort_by_key(|p| scaled_width(p.width(), p.height(), height).max(default_width));
    let configs: Vec<(usize, Vec<Vec<RgbImage>>)> = batch_sizes
        .iter()
        .map(|&batch| {
            let order: Vec<&RgbImage> =
                if batch == 1 { lines.iter().map(|s| &s.pixels).collect() } else { by_width.clone() };
            (batch, order.chunks(batch.max(1)).map(|c| c.iter().map(|p| (*p).clone()).collect()).collect())
        })
        .collect();
    let pass = |batches: &[Vec<RgbImage>]| -> anyhow::Result<Duration> {
        let started = Instant::now();
        for batch in batches {
            recognizer.recognize(batch)?;
        }
        Ok(started.elapsed())
    };
    for _ in 0..WARM_UP_PASSES {
        for (_, batches) in &configs {
            pass(batches)?;
        }
    }
    let mut spent = vec![Duration::ZERO; configs.len()];
    let mut passes = vec![0usize; configs.len()];
    while spent.iter().any(|s| *s < duration) {
        for (i, (_, batches)) in configs.iter().enumerate() {
            spent[i] += pass(batches)?;
            passes[i] += 1;
        }
    }
    Ok(configs
        .iter()
        .zip(spent.iter().zip(&passes))
        .map(|((batch, _), (spent, passes))| RawRate {
            batch: *batch,
            lines_per_second: per_second(lines.len() * passes, *spent),
        })
        .collect())
}

/// The server at concurrency 32 for `window`.
pub async fn server_rate(serving: &Serving, lines: &Arc<Vec<Sample>>, window: Duration) -> anyhow::Result<LoadRun> {
    closed_loop(&serving.client, lines.clone(), ProtoTask::Line, CONCURRENCY, Stop::Window(window)).await
}

/// What figure 3 measured.
#[derive(Debug)]
pub struct LineFigures {
    pub raw: Vec<RawRate>,
    /// `--max-batch-size` 8 (the default), then 1.
    pub batched: LoadRun,
    pub unbatched: LoadRun,
    pub images: usize,
}

pub fn write(report: &mut Report, figures: &LineFigures, peer: &PeerRun, set: &GoldenSet) -> anyhow::Result<()> {
    let out = &mut report.body;
    let peer_rate = peer.lines.best_rate();
    let best_raw = figures.raw.iter().max_by(|a, b| a.lines_per_second.total_cmp(&b.lines_per_second));
    let best_raw_rate = best_raw.map_or(f64::NAN, |r| r.lines_per_second);
    let ours = figures.batched.rate();
    writeln!(out, "## 3. Lines: lines/s at concurrency {CONCURRENCY}\n")?;
    writeln!(
        out,
        "Meaning: LINE requests completed per second by the server with {CONCURRENCY} callers each keeping one \
         call open (all {} golden LINE images in turn; completions counted in a window that opens once every \
         caller had an answer and closes after at least the set time and one pass's worth of lines), against (a) the peer's recogniser alone (`use_det=False, use_cls=False`) reading \
         the same images one at a time in its process with {} onnxruntime threads, fastest of {} passes, and (b) \
         our own recogniser called directly on the decoded images in a loop, one line per forward or in batches \
         of lines sorted by width (the best case for padding), whichever is fastest: the model's limit on this \
         machine without any server.\n",
        figures.images, peer.threads, peer.lines.rounds
    )?;
    writeln!(out, "| configuration | lines/s | vs peer | vs best raw | p50 ms | p95 ms | CER (LINE) | failed calls |")?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    writeln!(
        out,
        "| {} recogniser (peer), one line at a time | {peer_rate:.1} | 1.00 | {:.2} | | | {:.4} | |",
        peer.engine,
        peer_rate / best_raw_rate,
        peer.lines.cer
    )?;
    for raw in &figures.raw {
        let name = if raw.batch == 1 {
            "raw recogniser, one line per forward".to_owned()
        } else {
            format!("raw recogniser, width-sorted batches of {}", raw.batch)
        };
        writeln!(
            out,
            "| {name} | {:.1} | {:.2} | {:.2} | | | | |",
            raw.lines_per_second,
            raw.lines_per_second / peer_rate,
            raw.lines_per_second / best_raw_rate
        )?;
    }
    for (name, run) in [
        ("server, `--max-batch-size 8` (default)", &figures.batched),
        ("server, `--max-batch-size 1`", &figures.unbatched),
    ] {
        writeln!(
            out,
            "| {name} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} | {:.4} | {} |",
            run.rate(),
            run.rate() / peer_rate,
            run.rate() / best_raw_rate,
            ms(percentile(&run.latencies, 0.5)),
            ms(percentile(&run.latencies, 0.95)),
            cer(set, &run.predictions, "LINE")?,
            run.errors_text()
        )?;
    }
    writeln!(
        out,
        "\nBatching on vs off at concurrency {CONCURRENCY}: {:.2}x the lines/s. Best raw configuration: {}.\n",
        ours / figures.unbatched.rate(),
        best_raw.map_or("none".to_owned(), |r| format!("batch {}", r.batch))
    )?;
    report.goal(Goal::at_least(
        format!("3. lines at concurrency {CONCURRENCY}: lines/s vs the peer"),
        ours / peer_rate,
        PEER_GOAL,
        "x",
    ));
    report.goal(Goal::at_least(
        format!("3. lines at concurrency {CONCURRENCY}: lines/s vs our best raw configuration"),
        ours / best_raw_rate,
        RAW_GOAL,
        "x",
    ));
    Ok(())
}
