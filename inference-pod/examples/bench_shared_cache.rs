//! The shared result cache's benchmark (issue #15): throughput of a document stream of
//! which half was already read by another replica, with the shared cache and without, and
//! the latency of a Redis hit beside an in-memory hit and a computed page. Writes a
//! markdown report; `make bench-inference` runs it after `bench_server`. Every row is
//! measured in this one run, on the same machine state: compare ratios, not absolutes.
//!
//! The servers run in this process on 127.0.0.1 with a real `redis-server` (started like
//! the tests start it). "Another replica" is a second server that read the golden pages
//! first; the measured server has never seen them, so its hits come through Redis.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use kube_ocr_golden::{GoldenSet, Task};
use kube_ocr_inference::model::{DeviceRequest, ModelOptions};
use kube_ocr_inference::serve::{
    BatcherConfig, CorsPolicy, DEFAULT_MAX_PRECISION_ACCURACY_DROP, PdfSettings, RunningServer, ServerConfig,
    SharedCacheSettings, start,
};
use kube_ocr_proto::v1::ocr_client::OcrClient;
use kube_ocr_proto::v1::{RecognizeRequest, Task as ProtoTask};
use kube_ocr_test_servers::RedisServer;
use kube_ocr_vision::image::DecodeLimits;
use tokio::sync::Mutex;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "OCR_BUNDLE")]
    bundle: PathBuf,
    #[arg(long, env = "OCR_GOLDEN_SET")]
    golden: PathBuf,
    #[arg(long, env = "OCR_BENCH_REPORT")]
    report: PathBuf,
    /// libtorch threads of every server.
    #[arg(long, env = "OCR_BENCH_THREADS", default_value_t = 2)]
    threads: i32,
    /// Callers of the mixed stream (each sends its next page when answered).
    #[arg(long, env = "OCR_BENCH_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// Passes over the golden pages at concurrency 1 for the latency table.
    #[arg(long, env = "OCR_BENCH_ROUNDS", default_value_t = 3)]
    rounds: usize,
}

/// Goal: the stream with half its pages already read elsewhere runs at least this many
/// times faster with the shared cache (2 is the ceiling: the other half is computed).
const THROUGHPUT_GOAL: f64 = 1.6;
/// Goal: a Redis hit costs at most this much more than an in-memory hit (p50, ms): the
/// repeated fraction is served at memory speed.
const HIT_GAP_GOAL_MS: f64 = 2.0;
/// Goal: an in-memory hit's round trip (p50, ms). Nothing is computed, so anything above
/// a few milliseconds is transport: it caught responses held back by Nagle's algorithm
/// (≈ 44 ms per page before the pod set TCP_NODELAY on the sockets it accepts).
const MEMORY_HIT_GOAL_MS: f64 = 5.0;

fn config(args: &Args, shared: Option<SharedCacheSettings>, memory_bytes: usize) -> ServerConfig {
    ServerConfig {
        bundle_dir: args.bundle.clone(),
        device: DeviceRequest::Cpu,
        listen_host: std::net::Ipv4Addr::LOCALHOST.into(),
        grpc_port: 0,
        http_api_port: 0,
        http_port: 0,
        cors: CorsPolicy::Off,
        batching: BatcherConfig { max_batch_size: 8, max_queue_delay: Duration::from_millis(5), max_queue: 256 },
        decode_limits: DecodeLimits::default(),
        max_image_bytes: 20 << 20,
        max_pages: 50,
        pdf: PdfSettings::with_program("ocr-pdf-render".into()),
        request_timeout: Duration::from_secs(120),
        cache_bytes: memory_bytes,
        shared_cache: shared,
        jobs: None,
        self_test_dir: None,
        self_test_min_accuracy: None,
        max_precision_accuracy_drop: DEFAULT_MAX_PRECISION_ACCURACY_DROP,
        torch_threads: Some(args.threads),
        deadline_admission: true,
        model_options: ModelOptions::default(),
        drain_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(30),
    }
}

fn shared(redis: &RedisServer) -> SharedCacheSettings {
    SharedCacheSettings {
        url: redis.url(),
        username: None,
        password: None,
        ca_file: None,
        ttl: Duration::from_secs(3600),
        timeout: Duration::from_millis(50),
        key_prefix: "bench".into(),
        max_pending_writes: 64,
    }
}

struct Served {
    server: RunningServer,
    client: OcrClient<Channel>,
}

impl Served {
    async fn start(config: ServerConfig) -> anyhow::Result<Self> {
        let server = start(config).await?;
        server.wait_until_serving(Duration::from_secs(300)).await.map_err(anyhow::Error::msg)?;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))?.connect().await?;
        Ok(Self { server, client: OcrClient::new(channel).max_decoding_message_size(64 << 20) })
    }

    async fn read(&self, page: &[u8]) -> anyhow::Result<(Duration, bool)> {
        read(&self.client, page).await
    }

    /// Sends `pages` in order over `concurrency` callers; the wall time and each answer.
    async fn stream(&self, pages: &[Vec<u8>], concurrency: usize) -> anyhow::Result<(Duration, Vec<(Duration, bool)>)> {
        let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(pages.to_vec())));
        let started = Instant::now();
        let callers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (queue, client) = (queue.clone(), self.client.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    loop {
                        let Some(page) = queue.lock().await.pop_front() else { break };
                        answers.push(read(&client, &page).await?);
                    }
                    anyhow::Ok(answers)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for caller in callers {
            answers.extend(caller.await??);
        }
        Ok((started.elapsed(), answers))
    }

    /// Waits until this server has stored `count` results in Redis (writes follow replies).
    async fn stored(&self, count: f64) -> anyhow::Result<()> {
        let give_up = Instant::now() + Duration::from_secs(30);
        while Instant::now() < give_up {
            let body = metrics_text(self.server.http_addr).await?;
            let stored: f64 = body
                .lines()
                .filter(|l| l.starts_with("ocr_shared_cache_writes_total") && l.contains("result=\"stored\""))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum();
            if stored >= count {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("{count} results were never stored in Redis")
    }
}

/// One DOCUMENT call: its round trip and whether a cache answered.
async fn read(client: &OcrClient<Channel>, page: &[u8]) -> anyhow::Result<(Duration, bool)> {
    let request = RecognizeRequest {
        request_id: String::new(),
        image: page.to_vec(),
        task: ProtoTask::Document as i32,
        options: None,
    };
    let sent = Instant::now();
    let response = client.clone().recognize(request).await?.into_inner();
    Ok((sent.elapsed(), response.cached))
}

/// The pod's `/metrics` text over a plain HTTP/1.1 GET.
async fn metrics_text(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// The golden page with one pixel's lowest bit flipped: another document to every cache
/// (another sha256), the same work to the models.
fn variant(page: &[u8], flip: u8) -> anyhow::Result<Vec<u8>> {
    let mut pixels = image::load_from_memory(page)?.to_rgb8();
    let pixel = pixels.get_pixel_mut(0, 0);
    pixel.0[0] ^= flip;
    let mut encoded = Vec::new();
    pixels.write_to(&mut std::io::Cursor::new(&mut encoded), image::ImageFormat::Png)?;
    Ok(encoded)
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    let rank = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[rank]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `rounds` passes at concurrency 1; the round trips.
async fn latencies(
    served: &Served,
    pages: &[Vec<u8>],
    rounds: usize,
    expect_cached: bool,
) -> anyhow::Result<Vec<Duration>> {
    let mut found = Vec::new();
    for _ in 0..rounds {
        for page in pages {
            let (latency, cached) = served.read(page).await?;
            anyhow::ensure!(cached == expect_cached, "a page was {}cached", if cached { "" } else { "not " });
            found.push(latency);
        }
    }
    Ok(found)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let set = GoldenSet::load(&args.golden)?;
    let originals: Vec<Vec<u8>> = set
        .items
        .iter()
        .filter(|item| item.task == Task::Document)
        .map(|item| set.image_bytes(item))
        .collect::<Result<_, _>>()?;
    let unseen: Vec<Vec<u8>> = originals.iter().map(|page| variant(page, 1)).collect::<anyhow::Result<_>>()?;
    let warm_up: Vec<Vec<u8>> = originals.iter().map(|page| variant(page, 2)).collect::<anyhow::Result<_>>()?;
    // Half the stream was read by the other replica, half is new, interleaved.
    let stream: Vec<Vec<u8>> =
        originals.iter().zip(&unseen).flat_map(|(seen, new)| [seen.clone(), new.clone()]).collect();
    let redis = RedisServer::start()?;
    let progress = |step: &str| eprintln!("bench_shared_cache: {step}");

    progress("the other replica reads the golden pages into Redis");
    let other = Served::start(config(&args, Some(shared(&redis)), 0)).await?;
    latencies(&other, &warm_up, 1, false).await?;
    latencies(&other, &originals, 1, false).await?;
    other.stored((warm_up.len() + originals.len()) as f64).await?;

    progress("without the shared cache: warm-up, the stream, computed latency");
    let alone = Served::start(config(&args, None, 0)).await?;
    latencies(&alone, &warm_up, 1, false).await?;
    let (alone_time, alone_answers) = alone.stream(&stream, args.concurrency).await?;
    anyhow::ensure!(alone_answers.iter().all(|(_, cached)| !cached), "no cache: nothing may be cached");
    let computed = latencies(&alone, &originals, args.rounds, false).await?;
    alone.server.shutdown().await?;

    progress("with the shared cache: warm-up, the stream, memory hits");
    let sharing = Served::start(config(&args, Some(shared(&redis)), 64 << 20)).await?;
    latencies(&sharing, &warm_up, 1, true).await?; // the other replica's work: Redis hits
    let (sharing_time, sharing_answers) = sharing.stream(&stream, args.concurrency).await?;
    let hits = sharing_answers.iter().filter(|(_, cached)| *cached).count();
    let memory_hits = latencies(&sharing, &originals, args.rounds, true).await?;
    sharing.server.shutdown().await?;

    progress("Redis hits at concurrency 1 (the other replica keeps no memory cache)");
    let redis_hits = latencies(&other, &originals, args.rounds, true).await?;
    other.server.shutdown().await?;

    let rate = |time: Duration| stream.len() as f64 / time.as_secs_f64();
    let speedup = rate(sharing_time) / rate(alone_time);
    let memory_hit = ms(percentile(memory_hits.clone(), 0.5));
    let gap = ms(percentile(redis_hits.clone(), 0.5)) - memory_hit;
    let mut out = String::new();
    writeln!(out, "# kube-ocr shared result cache benchmark\n")?;
    writeln!(
        out,
        "Produced by `make bench-inference`:\n\n```\ncargo run --release --locked -p kube-ocr-inference --example bench_shared_cache -- {}\n```\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    )?;
    writeln!(
        out,
        "Machine: {} cores, CPU only, libtorch threads {}; Redis 127.0.0.1 (`redis-server`, no persistence). Servers \
         in this process, one at a time. Date {}.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.threads,
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default()
    )?;
    writeln!(out, "## Goals\n\n| goal | measured | target | mark |\n|---|---:|---:|---|")?;
    for (goal, measured, target, met) in [
        (
            "stream with half its pages read by another replica: pages/s with ÷ without the shared cache",
            format!("{speedup:.2}×"),
            format!("≥ {THROUGHPUT_GOAL}×"),
            speedup >= THROUGHPUT_GOAL,
        ),
        (
            "Redis hit p50 − in-memory hit p50 at concurrency 1",
            format!("{gap:+.2} ms"),
            format!("≤ {HIT_GAP_GOAL_MS} ms"),
            gap <= HIT_GAP_GOAL_MS,
        ),
        (
            "in-memory hit p50 at concurrency 1 (the answer crosses loopback, nothing is computed)",
            format!("{memory_hit:.2} ms"),
            format!("≤ {MEMORY_HIT_GOAL_MS} ms"),
            memory_hit <= MEMORY_HIT_GOAL_MS,
        ),
    ] {
        writeln!(out, "| {goal} | {measured} | {target} | {} |", if met { "met" } else { "**missed**" })?;
    }
    writeln!(out, "\n## Throughput of a mixed stream\n")?;
    writeln!(
        out,
        "Meaning: {} DOCUMENT pages (the {} golden pages, each followed by a one-pixel variant no one has read) at \
         concurrency {}, once through a server without a shared cache and once through one whose Redis holds \
         another replica's answers to the golden pages. It does not show a stream whose repeats this pod already \
         holds in memory (that is the in-process cache's job) or Redis across a network.\n",
        stream.len(),
        originals.len(),
        args.concurrency
    )?;
    writeln!(out, "| server | pages | answered from a cache | seconds | pages/s |\n|---|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| no shared cache | {} | 0 | {:.1} | {:.2} |",
        stream.len(),
        alone_time.as_secs_f64(),
        rate(alone_time)
    )?;
    writeln!(
        out,
        "| shared cache (Redis) | {} | {hits} | {:.1} | {:.2} |\n",
        stream.len(),
        sharing_time.as_secs_f64(),
        rate(sharing_time)
    )?;
    writeln!(out, "## Latency of one page at concurrency 1\n")?;
    writeln!(out, "{} calls each ({} rounds over the golden pages).\n", computed.len(), args.rounds)?;
    writeln!(out, "| answered by | p50 ms | p95 ms |\n|---|---:|---:|")?;
    for (by, values) in
        [("the models (no cache)", &computed), ("Redis", &redis_hits), ("the in-process cache", &memory_hits)]
    {
        writeln!(
            out,
            "| {by} | {:.2} | {:.2} |",
            ms(percentile(values.clone(), 0.5)),
            ms(percentile(values.clone(), 0.95))
        )?;
    }
    write_report(&args.report, &out)?;
    println!("{out}");
    Ok(())
}

fn write_report(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
