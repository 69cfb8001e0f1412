//! `make bench-inference`: every figure of issue #16 in one run, with the Python peer's
//! numbers (run just before by `tools/bench/peer_rapidocr.py`) beside ours.
//!
//! 1. overhead at concurrency 1: server round trip vs the same work in process, and the
//!    HTTP API vs gRPC on the same lines;
//! 2. documents: pages/s at concurrency 4 and 16 vs the peer, CER side by side; 2b. PDF
//!    pages/s by resolution vs the peer's PDFium + rapidocr (`tools/bench/peer_pdf.py`);
//! 3. lines: lines/s at concurrency 32 vs the peer's recogniser and our best raw loop,
//!    batching on and off;
//! 4. overload: open-loop DOCUMENT arrivals at 4× capacity with deadlines;
//! 5. memory over many requests.
//!
//! Everything runs in this one process, one scenario after another, on the CPU with the
//! same libtorch thread count; each goal's mark is computed from the numbers. Compare
//! ratios within one report, not absolute numbers across machines.

mod arrivals;
mod client;
mod documents;
mod golden;
mod http_vs_grpc;
mod in_process;
mod lines;
mod memory;
mod overhead;
mod overload;
mod pdf;
mod peer;
mod report;
mod stats;
mod window;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube_ocr_golden::{GoldenSet, Task};
use kube_ocr_inference::model::{TorchThreadMode, set_intra_op_threads, set_torch_thread_mode};
use kube_ocr_proto::v1::Task as ProtoTask;
use kube_ocr_vision::image::DecodeLimits;

use crate::client::{Serving, WARM_UP_PASSES, server_config};
use crate::in_process::{InProcess, Worker};
use crate::report::Report;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "OCR_BUNDLE")]
    bundle: PathBuf,
    #[arg(long, env = "OCR_GOLDEN_SET")]
    golden: PathBuf,
    /// The golden document set, whose PDFs figure 2b sends.
    #[arg(long, env = "OCR_GOLDEN_DOCUMENTS")]
    documents: PathBuf,
    /// Resolutions of figure 2b (the peer ran the same ones).
    #[arg(long, env = "OCR_BENCH_PDF_DPIS", value_delimiter = ',', default_value = "100,150,200,300")]
    pdf_dpis: Vec<u32>,
    /// Folder with the peer's peer-timing.json and answers.
    #[arg(long, env = "OCR_BENCH_PEER")]
    peer: PathBuf,
    #[arg(long, env = "OCR_BENCH_REPORT")]
    report: PathBuf,
    /// libtorch threads for every configuration (the peer uses the same count).
    #[arg(long, env = "OCR_BENCH_THREADS", default_value_t = 2)]
    threads: i32,
    /// Seconds of each LINE measurement (figure 1 LINE, figure 3 rows); DOCUMENT windows
    /// (figure 2) run twice as long.
    #[arg(long, env = "OCR_BENCH_SECONDS", default_value_t = 15)]
    seconds: u64,
    /// Passes over the golden pages at concurrency 1 (figure 1 DOCUMENT, and the unloaded
    /// latency before figure 4).
    #[arg(long, env = "OCR_BENCH_ROUNDS", default_value_t = 3)]
    rounds: usize,
    /// Seconds of open-loop arrivals in figure 4.
    #[arg(long, env = "OCR_BENCH_OVERLOAD_SECONDS", default_value_t = 20)]
    overload_seconds: u64,
    /// Offered load of figure 4, as a multiple of the unloaded pages/s.
    #[arg(long, env = "OCR_BENCH_OVERLOAD_FACTOR", default_value_t = 4.0)]
    overload_factor: f64,
    /// Requests of the memory run (RSS is read after a tenth of them and at the end).
    #[arg(long, env = "OCR_BENCH_MEMORY_REQUESTS", default_value_t = 10_000)]
    memory_requests: usize,
    /// Batch sizes of the raw recogniser loops (figure 3's "best raw configuration").
    #[arg(long, env = "OCR_BENCH_RAW_BATCH_SIZES", value_delimiter = ',', default_value = "1,4,8")]
    raw_batch_sizes: Vec<usize>,
    /// The server's `--max-batch-size` (its default); figure 3 also runs it at 1.
    #[arg(long, env = "OCR_BENCH_MAX_BATCH_SIZE", default_value_t = 8)]
    max_batch_size: usize,
    /// Which threads call libtorch, as the pod's `--torch-thread-mode`.
    #[arg(long, env = "OCR_BENCH_TORCH_THREAD_MODE", default_value_t = TorchThreadMode::default())]
    torch_thread_mode: TorchThreadMode,
    /// The figures to run (all by default). Figure 4 offers a multiple of figure 2's best
    /// rate; without figure 2 it measures that rate first, at concurrency 4.
    #[arg(long, env = "OCR_BENCH_FIGURES", value_delimiter = ',', value_enum, default_values_t = Figure::ALL)]
    figures: Vec<Figure>,
}

/// One figure of the report (`--figures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Figure {
    /// 1 and 1b: overhead at concurrency 1, HTTP against gRPC.
    Overhead,
    /// 2: documents against the peer.
    Documents,
    /// 2b: PDF pages by resolution.
    Pdf,
    /// 3: lines at concurrency 32.
    Lines,
    /// 4: overload.
    Overload,
    /// 5: memory over many requests.
    Memory,
}

impl Figure {
    const ALL: [Figure; 6] =
        [Figure::Overhead, Figure::Documents, Figure::Pdf, Figure::Lines, Figure::Overload, Figure::Memory];
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    set_torch_thread_mode(args.torch_thread_mode);
    let load_at_start = load_average();
    let set = GoldenSet::load(&args.golden)?;
    let lines = Arc::new(golden::samples(&set, Task::Line)?);
    let documents = Arc::new(golden::samples(&set, Task::Document)?);
    let peer = peer::PeerRun::load(&args.peer, &set)?;
    let seconds = Duration::from_secs(args.seconds);
    let config = |max_batch_size| server_config(&args.bundle, args.threads, max_batch_size);
    set_intra_op_threads(args.threads)?;
    let mut report = Report::default();
    let started = std::time::Instant::now();
    let progress = |step: &str| eprintln!("[{:>4.0} s] {step}", started.elapsed().as_secs_f64());

    let runs = |figure: Figure| args.figures.contains(&figure);

    // Before any server starts: in per-stage mode each thread that calls libtorch gets an
    // OpenMP team, and once the process has more teams than cores every forward slows
    // (docs/benchmarks.md), so the raw loops measured later would not be the model's limit.
    let raw = if runs(Figure::Lines) {
        progress("3. lines: raw recogniser loops");
        Some(lines::raw_recognizer(&args.bundle, &lines, &args.raw_batch_sizes, seconds)?)
    } else {
        None
    };

    let mut serving = None;
    let both_tasks = [(lines.as_slice(), ProtoTask::Line), (documents.as_slice(), ProtoTask::Document)];
    let serve_all = || Serving::start(config(args.max_batch_size), &both_tasks);
    if runs(Figure::Overhead) {
        progress("1. overhead at concurrency 1: starting the server, warm-up");
        let mut server = serve_all().await?;
        let pipeline = Worker::start(InProcess::load(&args.bundle, args.max_batch_size, DecodeLimits::default())?)?;
        for _ in 0..WARM_UP_PASSES {
            for (samples, task) in [(&lines, Task::Line), (&documents, Task::Document)] {
                for sample in samples.iter() {
                    pipeline.read(&sample.bytes, task).await?; // warm-up, as the server had
                }
            }
        }
        progress("1. overhead at concurrency 1: LINE");
        let line_overhead = overhead::compare(&mut server, &pipeline, &lines, Task::Line, 1, seconds).await?;
        progress("1. overhead at concurrency 1: DOCUMENT");
        let document_overhead =
            overhead::compare(&mut server, &pipeline, &documents, Task::Document, args.rounds, Duration::ZERO).await?;
        let recognizer_batch = pipeline.recognizer_batch;
        drop(pipeline);
        overhead::write(&mut report, &[line_overhead, document_overhead], recognizer_batch)?;
        progress("1b. HTTP vs gRPC at concurrency 1: LINE");
        let protocols = http_vs_grpc::compare(&mut server, &lines, seconds).await?;
        http_vs_grpc::write(&mut report, &protocols)?;
        serving = Some(server);
    }

    let mut capacity = None;
    if runs(Figure::Documents) {
        progress("2. documents at concurrency 4 and 16");
        let server = match serving.take() {
            Some(server) => server,
            None => serve_all().await?,
        };
        let document_runs = documents::measure(&server, &set, &documents, &[4, 16], seconds * 2).await?;
        documents::write(&mut report, &document_runs, &peer, documents.len())?;
        capacity = Some(documents::best_rate(&document_runs));
        serving = Some(server);
    }

    if runs(Figure::Pdf) {
        let server = match serving.take() {
            Some(server) => server,
            None => serve_all().await?,
        };
        let pdfs = Arc::new(pdf::golden_pdfs(&args.documents)?);
        let peer_pdf = pdf::PeerPdf::load(&args.peer)?;
        let mut pdf_runs = Vec::new();
        for &dpi in &args.pdf_dpis {
            progress(&format!("2b. PDF pages at {dpi} dpi, concurrency {}", pdf::CONCURRENCY));
            pdf_runs.push(pdf::measure(&server, &pdfs, dpi, seconds * 2).await?);
        }
        pdf::write(&mut report, &pdf_runs, &peer_pdf, &pdfs)?;
        serving = Some(server);
    }

    if let Some(raw) = raw {
        progress("3. lines at concurrency 32");
        let server = match serving.take() {
            Some(server) => server,
            None => serve_all().await?,
        };
        let batched = lines::server_rate(&server, &lines, seconds).await?;
        server.shutdown().await?;
        progress("3. lines at concurrency 32, --max-batch-size 1");
        let unbatched_server = Serving::start(config(1), &[(lines.as_slice(), ProtoTask::Line)]).await?;
        let unbatched = lines::server_rate(&unbatched_server, &lines, seconds).await?;
        unbatched_server.shutdown().await?;
        let figures = lines::LineFigures { raw, batched, unbatched, images: lines.len() };
        lines::write(&mut report, &figures, &peer, &set)?;
    }
    if let Some(server) = serving.take() {
        server.shutdown().await?;
    }

    if runs(Figure::Overload) {
        let capacity = match capacity {
            Some(capacity) => capacity,
            None => {
                progress("4. overload: capacity at concurrency 4 (figure 2 did not run)");
                let server = serve_all().await?;
                let run = documents::measure(&server, &set, &documents, &[4], seconds * 2).await?;
                server.shutdown().await?;
                documents::best_rate(&run)
            }
        };
        progress("4. overload: fresh server, unloaded latency, then the arrivals");
        let overload = overload::measure(
            config(args.max_batch_size),
            &documents,
            capacity,
            args.overload_factor,
            Duration::from_secs(args.overload_seconds),
            args.rounds,
        )
        .await?;
        overload::write(&mut report, &overload)?;
    }

    if runs(Figure::Memory) {
        progress("5. memory");
        let server = Serving::start(config(args.max_batch_size), &[(lines.as_slice(), ProtoTask::Line)]).await?;
        let memory = memory::measure(&server, &lines, args.memory_requests).await?;
        server.shutdown().await?;
        memory::write(&mut report, &memory)?;
    }

    report.body.push_str(
        "The recogniser alone and the `slow` variant are in `recognizer.md` beside this report \
         (`bench_recognizer`, which `make bench-inference` runs next).\n",
    );
    progress("done");
    let header = header(&args, &peer, &load_at_start, &load_average());
    let text = report.render(&header);
    if let Some(dir) = args.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.report, &text)?;
    println!("{text}");
    Ok(())
}

/// Title, the commands that produced the report, and the machine.
fn header(args: &Args, peer: &peer::PeerRun, load_at_start: &str, load_at_end: &str) -> String {
    let this: Vec<String> = std::env::args().skip(1).collect();
    let overrides: Vec<String> =
        std::env::vars().filter(|(name, _)| name.starts_with("OCR_BENCH_")).map(|(n, v)| format!("{n}={v}")).collect();
    let overrides = if overrides.is_empty() { String::new() } else { format!("{} ", overrides.join(" ")) };
    format!(
        "# kube-ocr inference benchmarks\n\n\
         Produced by `make bench-inference`:\n\n\
         ```\n{}\n{overrides}cargo run --release --locked -p kube-ocr-inference --example bench_server -- {}\n```\n\n\
         Machine: {}, {} cores, CPU only; load average {load_at_start} at the start, {load_at_end} at the end. \
         Commit {}, {}. libtorch intra-op threads: {}; the peer's onnxruntime threads: {}. The server runs in this \
         process on 127.0.0.1 and shares the cores with the client. One run: compare ratios within this report; \
         absolute numbers depend on the machine and its load. What each figure means and does not show: \
         docs/benchmarks.md.\n\n",
        peer.command,
        this.join(" "),
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_output("git", &["rev-parse", "--short", "HEAD"]).map_or("unknown".to_owned(), |commit| {
            let dirty = command_output("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{commit} with uncommitted changes") } else { commit }
        }),
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        args.threads,
        peer.threads,
    )
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
