//! Model execution settings, measured through tch: forward time per stage for the
//! baseline (fp32, NCHW, profiling executor on), channels-last weights and inputs, the
//! profiling executor off, both, and bf16; first-call cost per new input shape with the
//! executor on and off; libtorch intra-op threads per stage; recogniser batch throughput.
//!
//! All rows run in this one process, in interleaved rounds (config after config, round
//! after round), on golden inputs, so machine noise hits every row alike. Compare ratios
//! within one run, not absolute numbers across machines.
//!
//! `cargo run --release -p kube-ocr-inference --example bench_model -- --bundle models/ppocr-v4 --golden golden/data`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use image::RgbImage;
use kube_ocr_golden::{GoldenSet, Task};
use kube_ocr_inference::model::{
    Bundle, ComputeDevice, DEFAULT_PROFILING_EXECUTOR, ModelOptions, Precision, Recognizer, TorchScriptModule,
    best_batch_size, inter_op_threads, intra_op_threads, set_intra_op_threads, set_profiling_executor,
};
use kube_ocr_vision::input::{classifier_input, line_tensor_data};
use kube_ocr_vision::layout::prepare_document;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "OCR_BUNDLE")]
    bundle: PathBuf,
    #[arg(long, env = "OCR_GOLDEN_SET")]
    golden: PathBuf,
    /// Timed rounds; every configuration runs every workload once per round.
    #[arg(long, env = "OCR_BENCH_ROUNDS", default_value_t = 7)]
    rounds: usize,
    /// libtorch intra-op threads for the configuration table.
    #[arg(long, env = "OCR_TORCH_THREADS", default_value_t = 2)]
    threads: i32,
    /// Which tables to measure (comma-separated): configurations, first-calls, threads, batch.
    #[arg(long, value_delimiter = ',', default_value = "configurations,first-calls,threads,batch")]
    sections: Vec<String>,
    /// Also write the report here.
    #[arg(long, env = "OCR_BENCH_REPORT")]
    report: Option<PathBuf>,
}

/// One forward pass's input: stacked items of one shape.
struct Workload {
    name: String,
    stage: Stage,
    items: Vec<Vec<f32>>,
    shape: Vec<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Detector,
    Classifier,
    Recognizer,
}

struct Config {
    name: &'static str,
    options: ModelOptions,
    profiling: bool,
}

/// One configuration's modules, loaded with its options.
struct Loaded {
    detector: TorchScriptModule,
    classifier: TorchScriptModule,
    recognizer: TorchScriptModule,
}

impl Loaded {
    fn load(bundle: &Bundle, options: ModelOptions) -> anyhow::Result<Self> {
        let load = |name: &str, file: &std::path::Path| {
            TorchScriptModule::load(name, &bundle.path_of(file), ComputeDevice::Cpu, options)
        };
        Ok(Self {
            detector: load("detector", &bundle.files.detector.file)?,
            classifier: load("classifier", &bundle.files.classifier.file)?,
            recognizer: load("recognizer", &bundle.files.recognizer.file)?,
        })
    }

    fn module(&self, stage: Stage) -> &TorchScriptModule {
        match stage {
            Stage::Detector => &self.detector,
            Stage::Classifier => &self.classifier,
            Stage::Recognizer => &self.recognizer,
        }
    }
}

fn forward(module: &TorchScriptModule, workload: &Workload) -> anyhow::Result<Duration> {
    let slices: Vec<&[f32]> = workload.items.iter().map(Vec::as_slice).collect();
    let started = Instant::now();
    module.forward_stacked(&slices, &workload.shape)?;
    Ok(started.elapsed())
}

/// The fastest of a row's rounds: on a shared machine the other processes only ever add
/// time, so the minimum is the least disturbed estimate of what the code itself costs.
fn fastest(times: &[Duration]) -> Duration {
    times.iter().min().copied().unwrap_or_default()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn golden_images(set: &GoldenSet, task: Task) -> anyhow::Result<Vec<RgbImage>> {
    set.items
        .iter()
        .filter(|item| item.task == task && item.variant == "clean")
        .map(|item| Ok(image::load_from_memory(&set.image_bytes(item)?)?.to_rgb8()))
        .collect()
}

fn workloads(bundle: &Bundle, set: &GoldenSet) -> anyhow::Result<Vec<Workload>> {
    let params = &bundle.manifest.params;
    let page = golden_images(set, Task::Document)?.into_iter().next().context("no clean golden page")?;
    let det = prepare_document(&page, params).context("golden page has no pixels")?.detector_input;
    let lines = golden_images(set, Task::Line)?;
    anyhow::ensure!(lines.len() >= 8, "the golden set needs at least 8 clean lines");
    let rec = &params.recognizer;
    let line_batch = |count: usize, width: u32| -> anyhow::Result<Workload> {
        let items = lines[..count]
            .iter()
            .map(|line| line_tensor_data(line, rec.input_height, width, &rec.normalization, params.color_order))
            .collect::<Result<_, _>>()?;
        Ok(Workload {
            name: format!("rec {count}×3×{}×{width}", rec.input_height),
            stage: Stage::Recognizer,
            items,
            shape: vec![3, i64::from(rec.input_height), i64::from(width)],
        })
    };
    let cls = &params.classifier;
    let cls_items = lines[..6]
        .iter()
        .map(|line| classifier_input(line, cls, params.color_order).context("empty golden line"))
        .collect::<anyhow::Result<_>>()?;
    let [c, h, w] = cls.input_shape;
    Ok(vec![
        Workload {
            name: format!("det 1×3×{}×{}", det.height, det.width),
            stage: Stage::Detector,
            shape: vec![3, i64::from(det.height), i64::from(det.width)],
            items: vec![det.data],
        },
        line_batch(1, 320)?,
        line_batch(8, 320)?,
        line_batch(1, 640)?,
        line_batch(8, 640)?,
        Workload {
            name: format!("cls 6×{c}×{h}×{w}"),
            stage: Stage::Classifier,
            items: cls_items,
            shape: vec![i64::from(c), i64::from(h), i64::from(w)],
        },
    ])
}

/// The configuration table: ms per forward, fastest of the interleaved rounds.
fn configurations(
    report: &mut String,
    bundle: &Bundle,
    work: &[Workload],
    configs: &[Config],
    rounds: usize,
) -> anyhow::Result<()> {
    let mut loaded = Vec::with_capacity(configs.len());
    for config in configs {
        set_profiling_executor(config.profiling);
        loaded.push(Loaded::load(bundle, config.options)?);
    }
    // times[config][workload][round]
    let mut times = vec![vec![Vec::with_capacity(rounds); work.len()]; configs.len()];
    for round in 0..=rounds {
        for (c, (config, modules)) in configs.iter().zip(&loaded).enumerate() {
            set_profiling_executor(config.profiling);
            for (w, workload) in work.iter().enumerate() {
                let elapsed = forward(modules.module(workload.stage), workload)?;
                // Round 0 warms up: the profiling executor's first two calls per module
                // profile and optimise, and oneDNN builds its kernels per shape.
                if round > 0 {
                    times[c][w].push(elapsed);
                }
            }
        }
        eprintln!("configurations: round {round}/{rounds}");
    }

    writeln!(report, "### Forward time per configuration\n")?;
    writeln!(
        report,
        "ms per forward pass (fastest of {rounds} interleaved rounds after one warm-up round) and ratio to the \
         baseline; {} intra-op threads.\n",
        intra_op_threads()?
    )?;
    write!(report, "| workload |")?;
    for config in configs {
        write!(report, " {} |", config.name)?;
    }
    writeln!(report)?;
    writeln!(report, "|---|{}", "---|".repeat(configs.len()))?;
    for (w, workload) in work.iter().enumerate() {
        write!(report, "| {} |", workload.name)?;
        let base = fastest(&times[0][w]);
        for config_times in &times {
            let m = fastest(&config_times[w]);
            write!(report, " {:.1} ({:.2}×) |", ms(m), m.as_secs_f64() / base.as_secs_f64())?;
        }
        writeln!(report)?;
    }
    writeln!(report)?;
    Ok(())
}

/// First call per new recogniser input width, and a later call at that width, with the
/// profiling executor on and off: fresh modules per trial, the two executors interleaved,
/// the fastest trial kept per width.
fn first_calls(
    report: &mut String,
    bundle: &Bundle,
    lines: &[RgbImage],
    options: ModelOptions,
    trials: usize,
) -> anyhow::Result<()> {
    let params = &bundle.manifest.params;
    let rec = &params.recognizer;
    let widths = [320u32, 400, 480, 560, 640, 720, 800, 960];
    let workloads: Vec<Workload> = widths
        .iter()
        .map(|&width| {
            Ok(Workload {
                name: String::new(),
                stage: Stage::Recognizer,
                items: vec![line_tensor_data(
                    &lines[0],
                    rec.input_height,
                    width,
                    &rec.normalization,
                    params.color_order,
                )?],
                shape: vec![3, i64::from(rec.input_height), i64::from(width)],
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // [executor][width] → fastest (first call, third call) over the trials
    let mut best = [[(Duration::MAX, Duration::MAX); 8]; 2];
    for trial in 0..trials {
        for (e, profiling) in [true, false].into_iter().enumerate() {
            set_profiling_executor(profiling);
            let path = bundle.path_of(&bundle.files.recognizer.file);
            let module = TorchScriptModule::load("recognizer", &path, ComputeDevice::Cpu, options)?;
            for (w, workload) in workloads.iter().enumerate() {
                let first = forward(&module, workload)?;
                forward(&module, workload)?;
                let third = forward(&module, workload)?;
                best[e][w] = (best[e][w].0.min(first), best[e][w].1.min(third));
            }
        }
        eprintln!("first calls: trial {}/{trials}", trial + 1);
    }
    writeln!(report, "### First call per new input shape (recogniser, batch 1)\n")?;
    writeln!(
        report,
        "A fresh module per trial runs widths {widths:?} in order, three calls each; fastest of {trials} \
         interleaved trials per width; ms.\n"
    )?;
    writeln!(
        report,
        "| executor | very first call | 1st call at a later new width (mean) | 3rd call at a width (mean) |"
    )?;
    writeln!(report, "|---|---|---|---|")?;
    for (e, name) in ["profiling on", "profiling off"].into_iter().enumerate() {
        let later_firsts: Vec<Duration> = best[e][1..].iter().map(|(first, _)| *first).collect();
        let thirds: Vec<Duration> = best[e].iter().map(|(_, third)| *third).collect();
        let mean = |times: &[Duration]| ms(times.iter().sum::<Duration>()) / times.len().max(1) as f64;
        writeln!(report, "| {name} | {:.1} | {:.1} | {:.1} |", ms(best[e][0].0), mean(&later_firsts), mean(&thirds))?;
    }
    writeln!(report)?;
    Ok(())
}

/// Per stage: one worker at 2 intra-op threads, one at 1, and two workers at 1 each
/// running forwards side by side (throughput: wall time / forwards). Needs the default
/// per-stage torch thread mode: with one shared thread the pair runs one after the other.
fn threads(report: &mut String, loaded: &Loaded, work: &[Workload], rounds: usize) -> anyhow::Result<()> {
    writeln!(report, "### libtorch threads per stage (2 cores)\n")?;
    writeln!(
        report,
        "ms per forward, fastest of {rounds} rounds: one model thread with 2 or 1 intra-op threads (latency), and \
         two model threads with 1 intra-op thread each running side by side (wall time / forwards, i.e. \
         throughput). Inter-op threads: {} (libtorch default).\n",
        inter_op_threads()?
    )?;
    writeln!(report, "| workload | 1 thread × 2 intra-op | 1 thread × 1 intra-op | 2 threads × 1 intra-op |")?;
    writeln!(report, "|---|---|---|---|")?;
    for workload in work {
        let module = loaded.module(workload.stage);
        let (mut two, mut one, mut side_by_side) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=rounds {
            set_intra_op_threads(2)?;
            let t2 = forward(module, workload)?;
            set_intra_op_threads(1)?;
            let t1 = forward(module, workload)?;
            let started = Instant::now();
            std::thread::scope(|scope| -> anyhow::Result<()> {
                let other = scope.spawn(|| forward(module, workload));
                forward(module, workload)?;
                other.join().map_err(|_| anyhow::anyhow!("forward thread panicked"))??;
                Ok(())
            })?;
            let pair = started.elapsed() / 2;
            if round > 0 {
                two.push(t2);
                one.push(t1);
                side_by_side.push(pair);
            }
        }
        writeln!(
            report,
            "| {} | {:.1} | {:.1} | {:.1} |",
            workload.name,
            ms(fastest(&two)),
            ms(fastest(&one)),
            ms(fastest(&side_by_side))
        )?;
    }
    writeln!(report)?;
    Ok(())
}

fn batch_sizes(report: &mut String, recognizer: &Recognizer, lines: &[RgbImage], height: u32) -> anyhow::Result<()> {
    let widths: Vec<u32> =
        lines.iter().map(|line| kube_ocr_vision::input::scaled_width(line.width(), line.height(), height)).collect();
    let sizes = [1, 2, 4, 8];
    let started = Instant::now();
    let measured = recognizer.measure_batch_throughput(&widths, &sizes)?;
    let took = started.elapsed();
    writeln!(report, "### Recogniser batch size by measurement\n")?;
    writeln!(
        report,
        "`Recognizer::measure_batch_throughput` on white crops of the {} clean golden lines' widths \
         ({took:.1?} in all):\n",
        widths.len()
    )?;
    writeln!(report, "| max batch size | lines/s |")?;
    writeln!(report, "|---|---|")?;
    for (size, rate) in &measured {
        writeln!(report, "| {size} | {rate:.1} |")?;
    }
    writeln!(report, "\n`best_batch_size` → {}.\n", best_batch_size(&measured))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    set_intra_op_threads(args.threads)?;
    let bundle = Bundle::load(&args.bundle)?;
    let set = GoldenSet::load(&args.golden)?;
    let work = workloads(&bundle, &set)?;
    let lines = golden_images(&set, Task::Line)?;

    let fp32 = ModelOptions { precision: Precision::Fp32, channels_last: false };
    let channels_last = ModelOptions { channels_last: true, ..fp32 };
    let bf16 = ModelOptions { precision: Precision::Bf16, ..fp32 };
    let bf16_channels_last = ModelOptions { precision: Precision::Bf16, ..channels_last };
    let configs = [
        Config { name: "baseline", options: fp32, profiling: true },
        Config { name: "channels-last", options: channels_last, profiling: true },
        Config { name: "profiling off", options: fp32, profiling: false },
        Config { name: "both", options: channels_last, profiling: false },
        Config { name: "bf16", options: bf16, profiling: true },
        Config { name: "bf16 + both", options: bf16_channels_last, profiling: false },
    ];

    let mut report = String::new();
    writeln!(report, "Command: `{}`  ", std::env::args().collect::<Vec<_>>().join(" "))?;
    writeln!(report, "CPU, {} intra-op threads unless a table says otherwise.\n", args.threads)?;
    let section = |name: &str| args.sections.iter().any(|s| s == name);
    if section("configurations") {
        configurations(&mut report, &bundle, &work, &configs, args.rounds)?;
    }
    // The settings the pod runs with: the model defaults and the executor setting.
    let chosen = ModelOptions::default();
    if section("first-calls") {
        first_calls(&mut report, &bundle, &lines, chosen, args.rounds.div_ceil(2))?;
    }
    set_profiling_executor(DEFAULT_PROFILING_EXECUTOR);
    if section("threads") {
        threads(&mut report, &Loaded::load(&bundle, chosen)?, &work, args.rounds)?;
        set_intra_op_threads(args.threads)?;
    }
    if section("batch") {
        let recognizer = Recognizer::load(&bundle, ComputeDevice::Cpu, chosen)?;
        batch_sizes(&mut report, &recognizer, &lines, bundle.manifest.params.recognizer.input_height)?;
    }

    print!("{report}");
    if let Some(path) = &args.report {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &report)?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
