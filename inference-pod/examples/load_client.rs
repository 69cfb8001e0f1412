//! `load_client`: a closed-loop gRPC load generator against a running `ocr-inference-pod`
//! (any process, any machine), for `tools/gpu-check.sh`. `concurrency` callers each send
//! the next golden image of one task as soon as their previous answer came, with the
//! result cache bypassed; answers in the first `--warm-up-secs` are not counted (new
//! shapes, batches forming), nor is the call each caller has in flight when the window
//! closes. Prints one JSON object: images per second (lines/s for LINE,
//! pages/s for DOCUMENT), text lines returned per second, p50/p99 round trip, refusals
//! (RESOURCE_EXHAUSTED: the caller waits the pod's retry hint) and other errors.
//!
//! ```text
//! cargo run --release -p kube-ocr-inference --example load_client -- \
//!     --endpoint http://127.0.0.1:50051 --golden golden/data --task line --concurrency 32 --duration-secs 10
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use kube_ocr_golden::dataset::{GoldenSet, Task as GoldenTask};
use kube_ocr_proto::v1::ocr_client::OcrClient;
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, Task as ProtoTask};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    Line,
    Document,
}

impl TaskArg {
    fn golden(self) -> GoldenTask {
        match self {
            Self::Line => GoldenTask::Line,
            Self::Document => GoldenTask::Document,
        }
    }

    fn proto(self) -> ProtoTask {
        match self {
            Self::Line => ProtoTask::Line,
            Self::Document => ProtoTask::Document,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Line => "line",
            Self::Document => "document",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Closed-loop gRPC load against a running ocr-inference-pod; prints JSON")]
struct Args {
    /// gRPC endpoint of the pod, e.g. http://127.0.0.1:50051.
    #[arg(long, env = "OCR_LOAD_ENDPOINT")]
    endpoint: String,
    /// Golden-set folder (truth.jsonl and the images); every image of `--task` is sent in turn.
    #[arg(long, env = "OCR_LOAD_GOLDEN")]
    golden: std::path::PathBuf,
    #[arg(long, env = "OCR_LOAD_TASK", value_enum)]
    task: TaskArg,
    /// Callers with one request in flight each.
    #[arg(long, env = "OCR_LOAD_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Length of the counted window, in seconds.
    #[arg(long, env = "OCR_LOAD_DURATION_SECS", default_value_t = 10.0)]
    duration_secs: f64,
    /// Load before the counted window, in seconds (not counted).
    #[arg(long, env = "OCR_LOAD_WARM_UP_SECS", default_value_t = 2.0)]
    warm_up_secs: f64,
    /// Deadline of each request, in milliseconds.
    #[arg(long, env = "OCR_LOAD_TIMEOUT_MS", default_value_t = 30_000)]
    timeout_ms: u64,
    /// HTTP/2 connections the callers share round-robin.
    #[arg(long, env = "OCR_LOAD_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    connections: u32,
}

/// One answer inside the counted window.
struct Completion {
    latency: Duration,
    lines: usize,
}

/// What one caller saw in the counted window.
#[derive(Default)]
struct CallerTally {
    completions: Vec<Completion>,
    /// RESOURCE_EXHAUSTED answers (the pod's admission refusing work it cannot finish in
    /// time); the caller waits the pod's retry hint before its next call.
    refused: usize,
    errors: usize,
    first_error: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let set = GoldenSet::load(&args.golden).with_context(|| format!("loading {}", args.golden.display()))?;
    let images: Vec<(String, Vec<u8>)> = set
        .items
        .iter()
        .filter(|item| item.task == args.task.golden())
        .map(|item| Ok((item.id.clone(), set.image_bytes(item)?)))
        .collect::<Result<_, kube_ocr_golden::GoldenError>>()?;
    anyhow::ensure!(!images.is_empty(), "{} has no {} images", args.golden.display(), args.task.name());
    let images = Arc::new(images);

    let timeout = Duration::from_millis(args.timeout_ms);
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        let endpoint = Endpoint::from_shared(args.endpoint.clone())?.connect_timeout(timeout).timeout(timeout);
        channels.push(endpoint.connect().await.with_context(|| format!("connecting to {}", args.endpoint))?);
    }

    let warm_up = Duration::try_from_secs_f64(args.warm_up_secs).context("--warm-up-secs")?;
    let window = Duration::try_from_secs_f64(args.duration_secs).context("--duration-secs")?;
    let started = Instant::now();
    let window_start = started + warm_up;
    let window_end = window_start + window;
    let callers: Vec<_> = (0..args.concurrency as usize)
        .map(|caller| {
            let client = OcrClient::new(channels[caller % channels.len()].clone()).max_decoding_message_size(64 << 20);
            let images = images.clone();
            tokio::spawn(run_caller(client, images, caller, args.task.proto(), window_start, window_end))
        })
        .collect();
    let mut tally = CallerTally::default();
    for caller in callers {
        let one = caller.await?;
        tally.completions.extend(one.completions);
        tally.refused += one.refused;
        tally.errors += one.errors;
        if tally.first_error.is_none() {
            tally.first_error = one.first_error;
        }
    }

    let mut latencies: Vec<Duration> = tally.completions.iter().map(|c| c.latency).collect();
    latencies.sort();
    let seconds = window.as_secs_f64();
    let lines: usize = tally.completions.iter().map(|c| c.lines).sum();
    let report = serde_json::json!({
        "task": args.task.name(),
        "concurrency": args.concurrency,
        "window_s": seconds,
        "images": images.len(),
        "completed": tally.completions.len(),
        "refused": tally.refused,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "images_per_s": tally.completions.len() as f64 / seconds,
        "text_lines_per_s": lines as f64 / seconds,
        "p50_ms": percentile_ms(&latencies, 0.50),
        "p99_ms": percentile_ms(&latencies, 0.99),
    });
    println!("{report}");
    Ok(())
}

/// Sends images `caller, caller + 1, ...` (wrapping) until `window_end`; counts the answers
/// that arrive inside `[window_start, window_end]` (throughput is answers per second of
/// the window, whenever they were sent). The call in flight at `window_end` is dropped.
async fn run_caller(
    mut client: OcrClient<Channel>,
    images: Arc<Vec<(String, Vec<u8>)>>,
    caller: usize,
    task: ProtoTask,
    window_start: Instant,
    window_end: Instant,
) -> CallerTally {
    let mut tally = CallerTally::default();
    let mut next = caller;
    loop {
        let (id, bytes) = &images[next % images.len()];
        next += 1;
        let request = RecognizeRequest {
            request_id: format!("load-{caller}-{next}-{id}"),
            image: bytes.clone(),
            task: task as i32,
            options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
        };
        let sent = Instant::now();
        let result = tokio::select! {
            result = client.recognize(request) => result,
            () = tokio::time::sleep_until(window_end.into()) => return tally,
        };
        let done = Instant::now();
        if done < window_start {
            continue;
        }
        match result {
            Ok(response) => {
                tally.completions.push(Completion { latency: done - sent, lines: response.into_inner().lines.len() })
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                tally.refused += 1;
                // Back off as the pod asks, rather than spin on refusals and take its CPU.
                let hint = status.get_details_retry_info().and_then(|retry| retry.retry_delay);
                let pause = hint.unwrap_or(DEFAULT_RETRY_DELAY).min(MAX_RETRY_DELAY);
                tokio::time::sleep_until((Instant::now() + pause).min(window_end).into()).await;
            }
            Err(status) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }
}

/// The pause after a refusal without a retry hint (a full queue).
const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The longest pause after a refusal, whatever the hint says.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// The nearest-rank quantile of sorted latencies, in milliseconds; null when there are none.
fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let index = (last as f64 * p).round() as usize;
    Some(sorted[index].as_secs_f64() * 1000.0)
}
