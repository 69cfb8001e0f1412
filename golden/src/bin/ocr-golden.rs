//! `ocr-golden`: score OCR predictions against a golden set, from a file (`score`) or
//! from a live `kube_ocr.v1.Ocr` service (`eval`).
//!
//! Exit codes: 0 success, 1 accuracy below `--min-accuracy`, 2 usage or input error
//! (clap uses 2 for usage errors too, so scripts can tell "worse" from "broken").

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kube_ocr_golden::grpc_eval::{self, EvalOptions};
use kube_ocr_golden::{GoldenSet, Predictions, Report, evaluate, render_text};

#[derive(Debug, Parser)]
#[command(
    name = "ocr-golden",
    version,
    about = "Score OCR output against a golden set (CER, WER, exact match, 1-NED)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score a predictions JSONL file against a golden set.
    Score(ScoreArgs),
    /// Run every golden image through a kube-ocr gRPC service and score the answers.
    Eval(EvalArgs),
    /// Print a golden set as ConfigMap manifests (YAML) for `spec.rollout.analysis.golden`.
    Configmap(ConfigMapArgs),
}

#[derive(Debug, Args)]
struct ConfigMapArgs {
    /// Golden-set folder (holds truth.jsonl and the images).
    #[arg(long, env = "OCR_GOLDEN_SET")]
    set: PathBuf,
    /// ConfigMap name; a set too big for one becomes <name>-1, <name>-2, ...
    #[arg(long, env = "OCR_GOLDEN_CONFIGMAP_NAME")]
    name: String,
    #[arg(long, env = "OCR_GOLDEN_CONFIGMAP_NAMESPACE")]
    namespace: Option<String>,
    /// Payload bytes per ConfigMap (the API server refuses objects over 1 MiB).
    #[arg(long, env = "OCR_GOLDEN_CONFIGMAP_MAX_BYTES", default_value_t = kube_ocr_golden::config_map::DEFAULT_MAX_BYTES)]
    max_bytes: usize,
}

#[derive(Debug, Args)]
struct ScoreArgs {
    /// Golden-set folder (holds truth.jsonl and the images).
    #[arg(long, env = "OCR_GOLDEN_SET")]
    set: PathBuf,
    /// Predictions JSONL: {"id", "text"} or {"id", "lines"} per line.
    #[arg(long, env = "OCR_GOLDEN_PREDICTIONS")]
    predictions: PathBuf,
    /// Accept predictions whose ids are not in the set (they are listed, not scored).
    /// Without it they are an input error: they usually mean the wrong set or version.
    #[arg(long, env = "OCR_GOLDEN_ALLOW_UNKNOWN")]
    allow_unknown: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// gRPC endpoint of the OCR service, e.g. http://127.0.0.1:50051.
    #[arg(long, env = "OCR_GOLDEN_ENDPOINT")]
    endpoint: String,
    /// Golden-set folder (holds truth.jsonl and the images).
    #[arg(long, env = "OCR_GOLDEN_SET")]
    set: PathBuf,
    /// Requests in flight at once.
    #[arg(long, env = "OCR_GOLDEN_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Deadline of each request (and of connecting), in milliseconds.
    #[arg(long, env = "OCR_GOLDEN_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    /// Ask the server to skip its result cache (measure the model, not the cache).
    #[arg(long, env = "OCR_GOLDEN_BYPASS_CACHE")]
    bypass_cache: bool,
    /// Also write the collected predictions as JSONL (re-scorable with `score`).
    #[arg(long, env = "OCR_GOLDEN_SAVE_PREDICTIONS")]
    save_predictions: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Print the full report as JSON on stdout instead of tables.
    #[arg(long, env = "OCR_GOLDEN_JSON")]
    json: bool,
    /// Exit with code 1 when accuracy (1 − micro CER) is below this fraction (0..=1).
    #[arg(long, env = "OCR_GOLDEN_MIN_ACCURACY", value_parser = parse_fraction)]
    min_accuracy: Option<f64>,
    /// How many of the worst items to show in the tables.
    #[arg(long, env = "OCR_GOLDEN_WORST", default_value_t = 5)]
    worst: usize,
}

/// Whether the run met the accuracy gate.
enum Outcome {
    Pass,
    BelowThreshold,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Pass) => ExitCode::SUCCESS,
        Ok(Outcome::BelowThreshold) => ExitCode::from(1),
        Err(error) => {
            eprintln!("ocr-golden: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Score(args) => score(args),
        Command::Eval(args) => eval(args),
        Command::Configmap(args) => config_maps(args),
    }
}

fn config_maps(args: ConfigMapArgs) -> anyhow::Result<Outcome> {
    let set = load_set(&args.set)?;
    let parts = kube_ocr_golden::config_map::split_into_config_maps(&set, &args.name, args.max_bytes)?;
    let mut out = String::new();
    for part in &parts {
        let manifest = part.to_manifest(args.namespace.as_deref(), &args.name);
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&manifest).context("rendering YAML")?);
    }
    print!("{out}");
    eprintln!(
        "ocr-golden: {} item(s) in {} ConfigMap(s): {}",
        set.items.len(),
        parts.len(),
        parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(Outcome::Pass)
}

fn score(args: ScoreArgs) -> anyhow::Result<Outcome> {
    let set = load_set(&args.set)?;
    let predictions = Predictions::load(&args.predictions)?;
    let report = evaluate(&set, &predictions);
    if !args.allow_unknown {
        report.ensure_no_unknown().context("use --allow-unknown to score anyway")?;
    }
    output(&report, &args.output)
}

fn eval(args: EvalArgs) -> anyhow::Result<Outcome> {
    let set = load_set(&args.set)?;
    let options = EvalOptions {
        concurrency: args.concurrency as usize,
        timeout: Duration::from_millis(args.timeout_ms),
        bypass_cache: args.bypass_cache,
    };
    let progress = if args.output.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(set.items.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} images {elapsed} eta {eta}") {
            bar.set_style(style);
        }
        bar
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let recognized = runtime.block_on(async {
        let client = grpc_eval::connect(&args.endpoint, options.timeout).await?;
        let tick = progress.clone();
        grpc_eval::recognize_set(client, &set, &options, move || tick.inc(1)).await
    })?;
    progress.finish_and_clear();

    if let Some(path) = &args.save_predictions {
        recognized.predictions.save(path)?;
    }
    let mut report = evaluate(&set, &recognized.predictions);
    report.request_errors = recognized.error_counts();
    output(&report, &args.output)
}

fn load_set(dir: &Path) -> anyhow::Result<GoldenSet> {
    GoldenSet::load(dir).with_context(|| format!("cannot load golden set {}", dir.display()))
}

/// Prints the report and applies the accuracy gate.
fn output(report: &Report, args: &OutputArgs) -> anyhow::Result<Outcome> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report).context("cannot serialise the report")?);
    } else {
        print!("{}", render_text(report, args.worst));
    }
    match args.min_accuracy {
        Some(min) if report.overall.accuracy < min => {
            eprintln!(
                "ocr-golden: accuracy {:.4} is below --min-accuracy {min:.4} (CER {:.4} over {} items)",
                report.overall.accuracy, report.overall.cer, report.overall.items
            );
            Ok(Outcome::BelowThreshold)
        }
        _ => Ok(Outcome::Pass),
    }
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    let fraction: f64 = value.parse().map_err(|_| format!("{value:?} is not a number"))?;
    if (0.0..=1.0).contains(&fraction) { Ok(fraction) } else { Err(format!("{value} is not within 0..=1")) }
}
