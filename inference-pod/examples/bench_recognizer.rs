//! Recogniser throughput through libtorch, and the standard vs `slow` variant side by side.
//! Writes a markdown report; `make bench` runs it. Numbers are only comparable within one
//! report: every row is measured in the same run, interleaved, on the same thread count.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use image::RgbImage;
use kube_ocr_golden::{GoldenSet, Task};
use kube_ocr_inference::model::{Bundle, ComputeDevice, ModelOptions, Recognizer, intra_op_threads};

#[derive(Parser)]
struct Args {
    /// The standard bundle; its `-slow` sibling is measured beside it.
    #[arg(long, env = "OCR_BUNDLE")]
    bundle: PathBuf,
    #[arg(long, env = "OCR_GOLDEN_SET")]
    golden: PathBuf,
    #[arg(long, env = "OCR_BENCH_REPORT")]
    report: PathBuf,
    /// Timed passes over the clean golden lines per configuration.
    #[arg(long, env = "OCR_BENCH_ROUNDS", default_value_t = 5)]
    rounds: usize,
}

struct Row {
    config: String,
    lines: usize,
    times: Vec<Duration>,
}

impl Row {
    fn median(&self) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }
}

fn pass(recognizer: &Recognizer, lines: &[RgbImage], batch: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for chunk in lines.chunks(batch) {
        recognizer.recognize(chunk)?;
    }
    Ok(started.elapsed())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let set = GoldenSet::load(&args.golden)?;
    let lines: Vec<RgbImage> = set
        .items
        .iter()
        .filter(|item| item.task == Task::Line && item.variant == "clean")
        .map(|item| Ok(image::load_from_memory(&set.image_bytes(item)?)?.to_rgb8()))
        .collect::<anyhow::Result<_>>()?;
    let slow_dir = args.bundle.with_file_name(format!(
        "{}-slow",
        args.bundle.file_name().context("bundle path has no folder name")?.to_string_lossy()
    ));
    let standard = Recognizer::load(&Bundle::load(&args.bundle)?, ComputeDevice::Cpu, ModelOptions::default())?;
    let slow = Recognizer::load(&Bundle::load(&slow_dir)?, ComputeDevice::Cpu, ModelOptions::default())?;

    let configs: [(&str, &Recognizer, usize); 4] = [
        ("standard, batch 1", &standard, 1),
        ("standard, batch 6", &standard, 6),
        ("slow, batch 1", &slow, 1),
        ("slow, batch 6", &slow, 6),
    ];
    let mut rows: Vec<Row> = configs
        .iter()
        .map(|(name, _, _)| Row { config: (*name).to_owned(), lines: lines.len(), times: vec![] })
        .collect();
    for (_, recognizer, batch) in &configs {
        pass(recognizer, &lines, *batch)?; // warm-up: first calls run libtorch's profiling passes
    }
    for round in 0..args.rounds {
        for (row, (_, recognizer, batch)) in rows.iter_mut().zip(&configs) {
            row.times.push(pass(recognizer, &lines, *batch)?);
        }
        eprintln!("round {}/{} done", round + 1, args.rounds);
    }

    let mut report = String::new();
    writeln!(report, "# Recogniser benchmark\n")?;
    writeln!(
        report,
        "Command: `make bench` (`cargo run --release -p kube-ocr-inference --example bench_recognizer`).  \n\
         {} clean golden lines per pass, {} timed passes per row after one warm-up, rows interleaved; \
         CPU, libtorch intra-op threads: {}.\n",
        lines.len(),
        args.rounds,
        intra_op_threads()?
    )?;
    writeln!(report, "| configuration | median pass | lines/s | min | max |")?;
    writeln!(report, "|---|---|---|---|---|")?;
    for row in &rows {
        let min = row.times.iter().min().copied().unwrap_or_default();
        let max = row.times.iter().max().copied().unwrap_or_default();
        writeln!(
            report,
            "| {} | {:.1} ms | {:.1} | {:.1} ms | {:.1} ms |",
            row.config,
            row.median().as_secs_f64() * 1e3,
            row.lines as f64 / row.median().as_secs_f64(),
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        )?;
    }
    let ratio = |slow: &Row, standard: &Row| slow.median().as_secs_f64() / standard.median().as_secs_f64();
    writeln!(
        report,
        "\n`slow` variant latency ratio (goal ≥ 3x): batch 1 {:.2}x, batch 6 {:.2}x.  \n\
         Batching gain of the standard recogniser (batch 6 vs 1): {:.2}x lines/s.",
        ratio(&rows[2], &rows[0]),
        ratio(&rows[3], &rows[1]),
        rows[0].median().as_secs_f64() / rows[1].median().as_secs_f64()
    )?;
    if let Some(parent) = args.report.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.report, &report)?;
    print!("{report}");
    println!("\nreport written to {}", args.report.display());
    Ok(())
}
