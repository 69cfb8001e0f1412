//! `make bench`: the server against the raw model, batching on and off, the Python peer
//! (rapidocr on onnxruntime), and memory over many requests. Everything runs in one
//! process, one after another, at the same libtorch thread count; compare ratios within
//! one report, not absolute numbers across machines.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use image::RgbImage;
use kube_ocr_golden::{GoldenSet, Predictions, Task, evaluate};
use kube_ocr_inference::model::{Bundle, ComputeDevice, DeviceRequest, Recognizer, set_intra_op_threads};
use kube_ocr_inference::serve::{BatcherConfig, RunningServer, ServerConfig, start};
use kube_ocr_proto::v1::ocr_client::OcrClient;
use kube_ocr_proto::v1::{RecognizeOptions, RecognizeRequest, RecognizeResponse, Task as ProtoTask};
use kube_ocr_vision::image::DecodeLimits;
use kube_ocr_vision::input::scaled_width;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "OCR_BUNDLE")]
    bundle: PathBuf,
    #[arg(long, env = "OCR_GOLDEN_SET")]
    golden: PathBuf,
    /// Folder with the peer's peer-predictions.jsonl and peer-timing.json.
    #[arg(long, env = "OCR_BENCH_PEER")]
    peer: PathBuf,
    #[arg(long, env = "OCR_BENCH_REPORT")]
    report: PathBuf,
    /// libtorch threads for every configuration (the peer uses the same count).
    #[arg(long, env = "OCR_BENCH_THREADS", default_value_t = 2)]
    threads: i32,
    /// Seconds each throughput measurement runs.
    #[arg(long, env = "OCR_BENCH_SECONDS", default_value_t = 15)]
    seconds: u64,
    /// Requests of the memory run (RSS is read after a tenth of them and at the end).
    #[arg(long, env = "OCR_BENCH_MEMORY_REQUESTS", default_value_t = 10_000)]
    memory_requests: usize,
    /// Passes over the golden documents.
    #[arg(long, env = "OCR_BENCH_DOCUMENT_ROUNDS", default_value_t = 3)]
    document_rounds: usize,
}

/// A golden image: id, encoded bytes, decoded pixels.
struct Sample {
    id: String,
    bytes: Vec<u8>,
    pixels: RgbImage,
}

fn samples(set: &GoldenSet, task: Task, clean_only: bool) -> anyhow::Result<Vec<Sample>> {
    set.items
        .iter()
        .filter(|item| item.task == task && (!clean_only || item.variant == "clean"))
        .map(|item| {
            let bytes = set.image_bytes(item)?;
            let pixels = image::load_from_memory(&bytes)?.to_rgb8();
            Ok(Sample { id: item.id.clone(), bytes, pixels })
        })
        .collect()
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn server_config(args: &Args, max_batch_size: usize, cache_bytes: usize) -> ServerConfig {
    ServerConfig {
        bundle_dir: args.bundle.clone(),
        device: DeviceRequest::Cpu,
        listen_host: std::net::Ipv4Addr::LOCALHOST.into(),
        grpc_port: 0,
        http_port: 0,
        batching: BatcherConfig { max_batch_size, max_queue_delay: Duration::from_millis(5), max_queue: 1024 },
        decode_limits: DecodeLimits::default(),
        max_image_bytes: 20 << 20,
        request_timeout: Duration::from_secs(120),
        cache_bytes,
        self_test_dir: None,
        self_test_min_accuracy: None,
        torch_threads: Some(args.threads),
        drain_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(30),
    }
}

/// A started, self-tested server and a client, warmed up with one pass over `warm_up`.
async fn serving(config: ServerConfig, warm_up: &[Sample]) -> anyhow::Result<(RunningServer, OcrClient<Channel>)> {
    let server = start(config).await?;
    server.wait_until_serving(Duration::from_secs(300)).await.map_err(anyhow::Error::msg)?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))?.connect().await?;
    let mut client = OcrClient::new(channel).max_decoding_message_size(64 << 20);
    for sample in warm_up {
        client.recognize(request(sample, ProtoTask::Line)).await?;
    }
    Ok((server, client))
}

fn request(sample: &Sample, task: ProtoTask) -> RecognizeRequest {
    RecognizeRequest {
        request_id: sample.id.clone(),
        image: sample.bytes.clone(),
        task: task as i32,
        options: Some(RecognizeOptions { bypass_cache: true, ..Default::default() }),
    }
}

/// Requests from `concurrency` clients for `duration` (or until `limit` requests);
/// returns (requests done, elapsed, latencies).
async fn load(
    client: &OcrClient<Channel>,
    samples: Arc<Vec<Sample>>,
    concurrency: usize,
    duration: Duration,
    limit: usize,
) -> anyhow::Result<(usize, Duration, Vec<Duration>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (mut client, samples, next) = (client.clone(), samples.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= limit {
                        break;
                    }
                    let sample = &samples[n % samples.len()];
                    let sent = Instant::now();
                    client.recognize(request(sample, ProtoTask::Line)).await?;
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok((latencies.len(), started.elapsed(), latencies))
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let set = GoldenSet::load(&args.golden)?;
    let lines = Arc::new(samples(&set, Task::Line, true)?);
    let documents = Arc::new(samples(&set, Task::Document, false)?);
    let duration = Duration::from_secs(args.seconds);
    let mut report = String::new();
    writeln!(report, "# kube-ocr benchmarks\n")?;
    writeln!(
        report,
        "Produced by `make bench` (`cargo run --release -p kube-ocr-inference --example bench_server`), {} libtorch \
         threads, CPU, {} cores, one run; {} s per throughput row. Ratios within this report are the result; \
         absolute numbers depend on the machine and its load.\n",
        args.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.seconds
    )?;

    // 1. The raw recogniser in a loop: the model's limit.
    set_intra_op_threads(args.threads);
    let bundle = Bundle::load(&args.bundle)?;
    let recognizer = Recognizer::load(&bundle, ComputeDevice::Cpu)?;
    let (height, default_width) = recognizer.input_geometry();
    // Warm-up: TorchScript specialises its graph on the first inputs of each shape; the
    // server's self-test does the same before it serves.
    for sample in lines.iter() {
        recognizer.recognize(std::slice::from_ref(&sample.pixels))?;
    }
    let mut raw_single = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        for sample in lines.iter() {
            let t = Instant::now();
            recognizer.recognize(std::slice::from_ref(&sample.pixels))?;
            raw_single.push(t.elapsed());
        }
    }
    let raw_single_rate = raw_single.len() as f64 / started.elapsed().as_secs_f64();
    let mut sorted: Vec<&RgbImage> = lines.iter().map(|s| &s.pixels).collect();
    sorted.sort_by_key(|p| scaled_width(p.width(), p.height(), height).max(default_width));
    let batches: Vec<Vec<RgbImage>> = sorted.chunks(8).map(|c| c.iter().map(|p| (*p).clone()).collect()).collect();
    for batch in &batches {
        recognizer.recognize(batch)?;
    }
    let mut raw_batched_lines = 0;
    let started = Instant::now();
    while started.elapsed() < duration {
        for batch in &batches {
            recognizer.recognize(batch)?;
            raw_batched_lines += batch.len();
        }
    }
    let raw_batched_rate = raw_batched_lines as f64 / started.elapsed().as_secs_f64();
    drop(recognizer);

    // 1 + 2. The server at concurrency 1 and 32, batching on (8) and off (1).
    let (server, client) = serving(server_config(&args, 8, 0), &lines).await?;
    let (n1, t1, mut lat1) = load(&client, lines.clone(), 1, duration, usize::MAX).await?;
    let (n32, t32, mut lat32) = load(&client, lines.clone(), 32, duration, usize::MAX).await?;
    server.shutdown().await?;
    let (server, client) = serving(server_config(&args, 1, 0), &lines).await?;
    let (u32_n, u32_t, mut lat_unbatched) = load(&client, lines.clone(), 32, duration, usize::MAX).await?;
    server.shutdown().await?;
    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64();
    let server1 = rate(n1, t1);
    let server32 = rate(n32, t32);
    let unbatched32 = rate(u32_n, u32_t);
    let p50_raw = percentile(&mut raw_single, 0.5);
    let p50_server = percentile(&mut lat1, 0.5);

    writeln!(report, "## 1. Server overhead (LINE requests, {} clean golden lines)\n", lines.len())?;
    writeln!(report, "| configuration | lines/s | p50 ms | p95 ms | vs raw |")?;
    writeln!(report, "|---|---:|---:|---:|---:|")?;
    writeln!(
        report,
        "| raw recogniser, one line per forward | {raw_single_rate:.1} | {:.1} | {:.1} | 1.00 |",
        ms(p50_raw),
        ms(percentile(&mut raw_single, 0.95))
    )?;
    writeln!(report, "| raw recogniser, sorted batches of 8 | {raw_batched_rate:.1} | | | 1.00 |")?;
    writeln!(
        report,
        "| server, concurrency 1 | {server1:.1} | {:.1} | {:.1} | {:.2} of one-line raw |",
        ms(p50_server),
        ms(percentile(&mut lat1, 0.95)),
        server1 / raw_single_rate
    )?;
    writeln!(
        report,
        "| server, concurrency 32 (batch ≤ 8) | {server32:.1} | {:.1} | {:.1} | {:.2} of batched raw |",
        ms(percentile(&mut lat32, 0.5)),
        ms(percentile(&mut lat32, 0.95)),
        server32 / raw_batched_rate
    )?;
    writeln!(
        report,
        "\nAdded p50 at concurrency 1: {:.2} ms (goal ≤ 2 ms). Throughput at concurrency 32: {:.0} % of the raw \
         batched loop (goal ≥ 90 %).\n",
        ms(p50_server.saturating_sub(p50_raw)),
        100.0 * server32 / raw_batched_rate
    )?;

    writeln!(report, "## 2. Batching (concurrency 32)\n")?;
    writeln!(report, "| --max-batch-size | lines/s | p50 ms | p95 ms |")?;
    writeln!(report, "|---:|---:|---:|---:|")?;
    writeln!(
        report,
        "| 1 | {unbatched32:.1} | {:.1} | {:.1} |",
        ms(percentile(&mut lat_unbatched, 0.5)),
        ms(percentile(&mut lat_unbatched, 0.95))
    )?;
    writeln!(
        report,
        "| 8 (default) | {server32:.1} | {:.1} | {:.1} |",
        ms(percentile(&mut lat32, 0.5)),
        ms(percentile(&mut lat32, 0.95))
    )?;
    writeln!(report, "\nBatching gives {:.2}x the throughput of batch size 1.\n", server32 / unbatched32)?;

    // 3. Documents against the peer.
    let (server, mut client) = serving(server_config(&args, 8, 0), &[]).await?;
    client.recognize(request(&documents[0], ProtoTask::Document)).await?; // warm-up, as the peer does
    let mut predictions = Predictions::new();
    let mut phase_totals = [Duration::ZERO; 5];
    let mut round_seconds = Vec::new();
    for _ in 0..args.document_rounds {
        let started = Instant::now();
        for sample in documents.iter() {
            let response: RecognizeResponse =
                client.recognize(request(sample, ProtoTask::Document)).await?.into_inner();
            let t = response.timings.unwrap_or_default();
            for (total, us) in
                phase_totals.iter_mut().zip([t.queue_us, t.preprocess_us, t.inference_us, t.postprocess_us, t.total_us])
            {
                *total += Duration::from_micros(us);
            }
            predictions.insert(sample.id.clone(), response.text);
        }
        round_seconds.push(started.elapsed().as_secs_f64());
    }
    server.shutdown().await?;
    let ours = evaluate(&set, &predictions);
    let peer_predictions = Predictions::load(args.peer.join("peer-predictions.jsonl"))
        .context("peer predictions (run tools/bench/peer_rapidocr.py first; `make bench` does)")?;
    let peer = evaluate(&set, &peer_predictions);
    let peer_timing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(args.peer.join("peer-timing.json"))?)?;
    let peer_best = peer_timing["roundSeconds"]
        .as_array()
        .context("peer-timing.json roundSeconds")?
        .iter()
        .filter_map(|v| v.as_f64())
        .fold(f64::INFINITY, f64::min);
    let our_best = round_seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let pages = documents.len() as f64;
    let our_cer = ours.by_task["DOCUMENT"].cer;
    let peer_cer = peer.by_task["DOCUMENT"].cer;
    writeln!(report, "## 3. Documents: kube-ocr vs the Python peer\n")?;
    writeln!(
        report,
        "All {} golden DOCUMENT images, one page at a time, best of {} rounds each; {} threads for both.\n",
        documents.len(),
        args.document_rounds,
        args.threads
    )?;
    writeln!(report, "| engine | pages/s | CER (DOCUMENT) |")?;
    writeln!(report, "|---|---:|---:|")?;
    writeln!(
        report,
        "| {} | {:.2} | {:.4} |",
        peer_timing["engine"].as_str().unwrap_or("peer"),
        pages / peer_best,
        peer_cer
    )?;
    writeln!(report, "| kube-ocr server (libtorch, gRPC) | {:.2} | {our_cer:.4} |", pages / our_best)?;
    writeln!(
        report,
        "\nThroughput {:.2}x the peer's (goal ≥ 1.2x); CER {:+.2} points vs the peer (goal within 0.5).\n",
        peer_best / our_best,
        100.0 * (our_cer - peer_cer)
    )?;
    let requests = (documents.len() * args.document_rounds) as u32;
    writeln!(report, "Where a page's time goes (server, mean per page):\n")?;
    writeln!(report, "| queue | preprocess | inference | postprocess | total |")?;
    writeln!(report, "|---:|---:|---:|---:|---:|")?;
    let mean = |d: Duration| format!("{:.0} ms", ms(d / requests));
    writeln!(
        report,
        "| {} | {} | {} | {} | {} |\n",
        mean(phase_totals[0]),
        mean(phase_totals[1]),
        mean(phase_totals[2]),
        mean(phase_totals[3]),
        mean(phase_totals[4])
    )?;

    // 4. Memory over many requests.
    let (server, client) = serving(server_config(&args, 8, 0), &lines).await?;
    let tenth = args.memory_requests / 10;
    load(&client, lines.clone(), 32, Duration::from_secs(3600), tenth).await?;
    let rss_early = rss_bytes();
    load(&client, lines.clone(), 32, Duration::from_secs(3600), args.memory_requests - tenth).await?;
    let rss_late = rss_bytes();
    server.shutdown().await?;
    let growth = rss_late as f64 / rss_early as f64 - 1.0;
    writeln!(
        report,
        "## 4. Memory (LINE requests at concurrency 32, result cache off: every request runs the pipeline)\n"
    )?;
    writeln!(report, "| after requests | RSS MiB |")?;
    writeln!(report, "|---:|---:|")?;
    writeln!(report, "| {tenth} | {:.1} |", rss_early as f64 / 1048576.0)?;
    writeln!(report, "| {} | {:.1} |", args.memory_requests, rss_late as f64 / 1048576.0)?;
    writeln!(report, "\nGrowth {:+.1} % (goal ≤ 5 %).", growth * 100.0)?;

    if let Some(dir) = args.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.report, &report)?;
    println!("{report}");
    Ok(())
}
