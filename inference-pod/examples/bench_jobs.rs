//! The document jobs' benchmark: pages/s of 50-page PDFs read as jobs against the same
//! documents read by synchronous `RecognizeDocument` calls at the same concurrency (goal:
//! jobs no more than 10 % slower), and the time from a job's submit to its first page done
//! on an idle server beside a synchronous stream's first page. Writes a markdown report;
//! `make bench-inference` runs it after `bench_shared_cache`. Every row is measured in this
//! one run, on the same machine state: compare ratios, not absolutes.
//!
//! The servers run in this process on 127.0.0.1 with a real `redis-server` (the job queue)
//! and SeaweedFS's `weed mini` (the bucket), started as the tests start them. Per
//! concurrency two servers are up, one with jobs at the synchronous call's 4 pages in
//! flight (it also answers the synchronous calls) and one with the default 2; only one
//! computes at a time. The three measurements run in turn, every other round in the
//! reverse order, so that a change in the machine's load falls on all of them. The in-process result cache is off and every call and job sets
//! `bypass_cache`, so every page is computed; every measurement reads documents of its own
//! (another PDF comment, the same pages), so no submit finds an earlier job.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use kube_ocr_inference::model::{DeviceRequest, ModelOptions};
use kube_ocr_inference::serve::{
    BatcherConfig, CorsPolicy, DEFAULT_MAX_PRECISION_ACCURACY_DROP, JobSettings, PdfSettings, RunningServer,
    ServerConfig, SharedCacheSettings, start,
};
use kube_ocr_proto::v1::ocr_client::OcrClient;
use kube_ocr_proto::v1::{
    CancelJobRequest, GetJobRequest, GetJobResultRequest, JobState, RecognizeOptions, RecognizeRequest, ResultFormat,
    SubmitJobRequest, Task as ProtoTask, submit_job_request,
};
use kube_ocr_s3::{Addressing, S3Settings};
use kube_ocr_test_servers::{RedisServer, S3Server};
use kube_ocr_vision::image::DecodeLimits;
use tokio::sync::Mutex;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "OCR_BUNDLE")]
    bundle: PathBuf,
    #[arg(long, env = "OCR_BENCH_REPORT")]
    report: PathBuf,
    /// libtorch threads of every server.
    #[arg(long, env = "OCR_BENCH_THREADS", default_value_t = 2)]
    threads: i32,
    /// Concurrencies measured: documents in flight (synchronous) and jobs running at once
    /// (`JobSettings::max_concurrent`). Repeat the flag for several.
    #[arg(long = "concurrency", default_values_t = [1, 2])]
    concurrencies: Vec<usize>,
    /// Documents per caller (per job slot) in each measurement: a measurement at
    /// concurrency C reads C times this many documents.
    #[arg(long, env = "OCR_BENCH_JOB_DOCUMENTS", default_value_t = 1)]
    documents_per_caller: usize,
    /// Rounds of the three measurements (synchronous, jobs at 4, jobs at 2 pages in flight)
    /// per concurrency, every other round in the reverse order.
    #[arg(long, env = "OCR_BENCH_JOB_ROUNDS", default_value_t = 1)]
    rounds: usize,
    /// Pages of each document (the pod's --max-pages is 50).
    #[arg(long, default_value_t = 50)]
    pages: usize,
    /// The resolution the PDFs are rendered at.
    #[arg(long, default_value_t = 150)]
    pdf_dpi: u32,
    /// Submits (and synchronous streams) timed to their first page on an idle server (the
    /// concurrency-1 server with the pod's default 2 pages in flight).
    #[arg(long, env = "OCR_BENCH_FIRST_PAGE_TRIALS", default_value_t = 5)]
    first_page_trials: usize,
}

/// Goal: jobs read pages at least this fraction of the synchronous rate at the same
/// concurrency ("no more than 10 % slower").
const RATE_GOAL: f64 = 0.90;
/// What a synchronous document call keeps in the engine (the pod's PAGES_IN_FLIGHT).
const SYNC_PAGES_IN_FLIGHT: usize = 4;
/// The pod's default `--jobs-pages-in-flight`.
const DEFAULT_JOB_PAGES_IN_FLIGHT: usize = 2;
const BUCKET: &str = "ocr-jobs";
/// How often a caller polls GetJob while timing a job to its end, and to its first page.
const POLL_DONE: Duration = Duration::from_millis(50);
const POLL_FIRST_PAGE: Duration = Duration::from_millis(10);
/// Left to the engine after a first-page trial is abandoned, so that its pages in flight
/// finish before the next: at least this, and twice the first page's time (one batch).
const SETTLE: Duration = Duration::from_secs(2);

fn settle(first_page: Duration) -> Duration {
    SETTLE.max(first_page * 2)
}

/// Redis (queue) and SeaweedFS (bucket) for every server of the run.
struct Backends {
    redis: RedisServer,
    s3: S3Server,
}

impl Backends {
    fn start() -> anyhow::Result<Self> {
        let backends = Self { redis: RedisServer::start()?, s3: S3Server::start()? };
        backends.s3.create_bucket(BUCKET)?;
        Ok(backends)
    }

    /// A server with jobs: `max_concurrent` jobs at once, `pages_in_flight` pages of each.
    fn config(&self, args: &Args, name: &str, max_concurrent: usize, pages_in_flight: usize) -> ServerConfig {
        let prefix = format!("bench-jobs/{name}");
        let shared = SharedCacheSettings {
            url: self.redis.url(),
            username: None,
            password: None,
            ca_file: None,
            ttl: Duration::from_secs(3600),
            timeout: Duration::from_millis(200),
            key_prefix: prefix.clone(),
            max_pending_writes: 64,
        };
        let jobs = JobSettings {
            s3: S3Settings {
                endpoint: self.s3.endpoint().parse().expect("the S3 server's endpoint is a URL"),
                region: self.s3.region().to_owned(),
                access_key_id: self.s3.access_key().to_owned(),
                secret_access_key: self.s3.secret_key().to_owned(),
                session_token: None,
                addressing: Addressing::Path,
                ca_file: None,
                timeout: Duration::from_secs(10),
            },
            bucket: BUCKET.to_owned(),
            prefix: prefix.clone(),
            ttl: Duration::from_secs(3600),
            max_concurrent,
            pages_in_flight,
            // The pod's flag defaults.
            claim_after: Duration::from_secs(60),
            max_attempts: 3,
            job_timeout: Duration::from_secs(3600),
            slo: Duration::from_secs(900),
            consumer: format!("{name}-in-process"),
            manage_expiry: true,
        };
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
            // target/<profile>/examples/bench_jobs → target/<profile>/ocr-pdf-render (`make
            // bench-inference` builds it).
            pdf: PdfSettings::with_program(
                std::env::current_exe()
                    .ok()
                    .and_then(|exe| Some(exe.parent()?.parent()?.join("ocr-pdf-render")))
                    .unwrap_or_else(|| "ocr-pdf-render".into()),
            ),
            request_timeout: Duration::from_secs(300),
            cache_bytes: 0,
            shared_cache: Some(shared),
            jobs: Some(jobs),
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
}

/// The word page N carries: `WORDS[N % 5]` (as the tests' `numbered_pages_pdf`).
const WORDS: [&str; 5] = ["invoice", "receipt", "letter", "notice", "form"];

/// A PDF of `count` small square pages (360 × 360 pt: 750 × 750 px at 150 dpi), page N
/// drawing `Page N <word>` in Helvetica. `tag` goes into a comment: another document
/// (another sha256, another job id), the same pages to render and read.
///
/// Square, not a strip like the tests' 420 × 90 pt: the detector scales a page's short side
/// up to 736 px (the bundle's `limitType: min`), so a strip at 150 dpi (874 × 187 px) is
/// detected at 3440 × 736, about 2.5 MP (2.3–3.3 s of CPU a page in this benchmark's first
/// runs, on a busy 2-core machine); this page stays at 0.56 MP.
const PAGE_SIDE_PT: u32 = 360;

fn numbered_pages_pdf(count: usize, tag: &str) -> Vec<u8> {
    // Objects: 1 catalog, 2 pages, 3 font, then per page its page and its content.
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        String::new(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut kids = Vec::new();
    for page in 1..=count {
        let content = format!("BT /F1 30 Tf 20 165 Td (Page {page} {}) Tj ET", WORDS[page % WORDS.len()]);
        let page_object = objects.len() + 1;
        kids.push(format!("{page_object} 0 R"));
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_SIDE_PT} {PAGE_SIDE_PT}] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            page_object + 1
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {count} >>", kids.join(" "));
    let mut pdf = format!("%PDF-1.7\n%kube-ocr bench_jobs {tag}\n").into_bytes();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", index + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

/// Whether a page's text is page `number`'s: its number and word side by side
/// (whitespace aside).
fn names_page(text: &str, number: u32) -> bool {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    text.contains(&format!("{number}{}", WORDS[number as usize % WORDS.len()]))
}

fn options(args: &Args) -> RecognizeOptions {
    RecognizeOptions { bypass_cache: true, pdf_dpi: args.pdf_dpi, ..RecognizeOptions::default() }
}

struct Served {
    server: RunningServer,
    client: OcrClient<Channel>,
}

/// How one measurement read its documents, in the order they run and are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum How {
    Sync,
    /// Jobs at the synchronous call's pages in flight.
    JobsLikeSync,
    /// Jobs at the pod's default pages in flight.
    JobsDefault,
}

impl How {
    const ALL: [How; 3] = [How::Sync, How::JobsLikeSync, How::JobsDefault];

    fn pages_in_flight(self) -> usize {
        match self {
            How::Sync | How::JobsLikeSync => SYNC_PAGES_IN_FLIGHT,
            How::JobsDefault => DEFAULT_JOB_PAGES_IN_FLIGHT,
        }
    }

    fn label(self) -> &'static str {
        match self {
            How::Sync => "synchronous RecognizeDocument",
            How::JobsLikeSync | How::JobsDefault => "jobs",
        }
    }
}

/// One measurement: pages read, the wall time, this process's CPU time (with the renderer
/// children it reaped), and the pages whose text named their page.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    pages: usize,
    time: Duration,
    cpu: Duration,
    legible: usize,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.pages as f64 / self.time.as_secs_f64()
    }

    fn cpu_ms_per_page(&self) -> f64 {
        ms(self.cpu) / self.pages as f64
    }

    fn add(&mut self, other: Measured) {
        self.pages += other.pages;
        self.time += other.time;
        self.cpu += other.cpu;
        self.legible += other.legible;
    }
}

impl Served {
    async fn start(config: ServerConfig) -> anyhow::Result<Self> {
        let server = start(config).await?;
        server.wait_until_serving(Duration::from_secs(300)).await.map_err(anyhow::Error::msg)?;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))?.connect().await?;
        Ok(Self { server, client: OcrClient::new(channel).max_decoding_message_size(64 << 20) })
    }

    /// Reads `documents` synchronously over `concurrency` callers, each taking the next
    /// document when its stream ends.
    async fn sync_run(
        &self,
        options: RecognizeOptions,
        documents: Vec<Vec<u8>>,
        pages_each: usize,
        concurrency: usize,
    ) -> anyhow::Result<Measured> {
        let count = documents.len();
        let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(documents)));
        let cpu = cpu_time();
        let started = Instant::now();
        let callers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (queue, client) = (queue.clone(), self.client.clone());
                tokio::spawn(async move {
                    let (mut pages, mut legible) = (0, 0);
                    loop {
                        let Some(document) = queue.lock().await.pop_front() else { break };
                        let (read, named) = read_document(&client, document, options).await?;
                        pages += read;
                        legible += named;
                    }
                    anyhow::Ok((pages, legible))
                })
            })
            .collect();
        let (mut pages, mut legible) = (0, 0);
        for caller in callers {
            let (read, named) = caller.await??;
            pages += read;
            legible += named;
        }
        let time = started.elapsed();
        let cpu = cpu_time().saturating_sub(cpu);
        anyhow::ensure!(pages == count * pages_each, "read {pages} pages of {}", count * pages_each);
        Ok(Measured { pages, time, cpu, legible })
    }

    /// Submits every document as a job at once (the server works `max_concurrent` of them
    /// at a time) and polls each every [`POLL_DONE`] until all succeeded: the time from the
    /// first submit to the last success seen. The results are read back afterwards, untimed.
    async fn job_run(
        &self,
        options: RecognizeOptions,
        documents: Vec<Vec<u8>>,
        pages_each: usize,
    ) -> anyhow::Result<Measured> {
        let mut client = self.client.clone();
        let cpu = cpu_time();
        let started = Instant::now();
        let mut ids = Vec::new();
        for document in documents {
            let job = client.submit_job(submit_request(document, options)).await?.into_inner();
            anyhow::ensure!(job.created, "a submit found an earlier job: {job:?}");
            ids.push(job.id);
        }
        let mut pending = ids.clone();
        let mut pages = 0;
        let give_up = started + Duration::from_secs(1800);
        while !pending.is_empty() {
            anyhow::ensure!(Instant::now() < give_up, "the jobs did not finish in 30 minutes");
            tokio::time::sleep(POLL_DONE).await;
            let mut still = Vec::new();
            for id in pending {
                let job = client.get_job(GetJobRequest { id: id.clone() }).await?.into_inner();
                match job.state() {
                    JobState::Succeeded => {
                        anyhow::ensure!(
                            (job.pages_done as usize, job.pages_total as usize) == (pages_each, pages_each),
                            "job {id} read {} of {} pages, not {pages_each}",
                            job.pages_done,
                            job.pages_total
                        );
                        pages += pages_each;
                    }
                    JobState::Failed | JobState::Cancelled => anyhow::bail!("job {id} ended {job:?}"),
                    _ => still.push(id),
                }
            }
            pending = still;
        }
        let time = started.elapsed();
        let cpu = cpu_time().saturating_sub(cpu);
        let mut legible = 0;
        for id in &ids {
            legible += legible_pages(&job_text(&mut client, id).await?);
        }
        Ok(Measured { pages, time, cpu, legible })
    }

    /// One job timed from its submit to its first page done (GetJob every
    /// [`POLL_FIRST_PAGE`]), then cancelled and left to settle: (submit → first page,
    /// the SubmitJob call alone, submitted → started as the job records it).
    async fn job_first_page(
        &self,
        options: RecognizeOptions,
        document: Vec<u8>,
    ) -> anyhow::Result<(Duration, Duration, Duration)> {
        let mut client = self.client.clone();
        let sent = Instant::now();
        let job = client.submit_job(submit_request(document, options)).await?.into_inner();
        let submit = sent.elapsed();
        anyhow::ensure!(job.created, "a submit found an earlier job: {job:?}");
        let (first, started) = loop {
            let now = client.get_job(GetJobRequest { id: job.id.clone() }).await?.into_inner();
            if now.pages_done >= 1 {
                let picked_up = (now.started_unix_ms - now.submitted_unix_ms).max(0) as u64;
                break (sent.elapsed(), Duration::from_millis(picked_up));
            }
            anyhow::ensure!(
                matches!(now.state(), JobState::Queued | JobState::Running),
                "job {} ended before its first page: {now:?}",
                job.id
            );
            anyhow::ensure!(sent.elapsed() < Duration::from_secs(300), "no first page in 300 s: {now:?}");
            tokio::time::sleep(POLL_FIRST_PAGE).await;
        };
        client.cancel_job(CancelJobRequest { id: job.id.clone() }).await?;
        // The worker sees the cancel at its next heartbeat (≤ 1 s) and stops; then the
        // pages it had in the engine finish.
        let give_up = Instant::now() + Duration::from_secs(120);
        while metric_sum(self.server.http_addr, "ocr_jobs_running").await? > 0.0 {
            anyhow::ensure!(Instant::now() < give_up, "the cancelled job {} did not stop", job.id);
            tokio::time::sleep(POLL_DONE).await;
        }
        tokio::time::sleep(settle(first)).await;
        Ok((first, submit, started))
    }

    /// A synchronous stream timed from its call to its first page message, then dropped
    /// and left to settle.
    async fn sync_first_page(&self, options: RecognizeOptions, document: Vec<u8>) -> anyhow::Result<Duration> {
        let mut client = self.client.clone();
        let sent = Instant::now();
        let mut stream = client.recognize_document(recognize_request(document, options)).await?.into_inner();
        let first = loop {
            let message = stream.message().await?.ok_or_else(|| anyhow::anyhow!("the stream ended with no page"))?;
            if message.page.is_some() {
                break sent.elapsed();
            }
        };
        drop(stream);
        tokio::time::sleep(settle(first)).await;
        Ok(first)
    }
}

/// The sum of a metric's samples in the pod's `/metrics` (a plain HTTP/1.1 GET).
async fn metric_sum(addr: std::net::SocketAddr, name: &str) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let samples: Vec<f64> = response
        .lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse().ok())
        .collect();
    anyhow::ensure!(!samples.is_empty(), "{name} is not in /metrics");
    Ok(samples.iter().sum())
}

fn submit_request(document: Vec<u8>, options: RecognizeOptions) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: String::new(),
        source: Some(submit_job_request::Source::Document(document)),
        task: ProtoTask::Document as i32,
        options: Some(options),
    }
}

fn recognize_request(document: Vec<u8>, options: RecognizeOptions) -> RecognizeRequest {
    RecognizeRequest {
        request_id: String::new(),
        image: document,
        task: ProtoTask::Document as i32,
        options: Some(options),
    }
}

/// One synchronous document stream to its end: (pages, pages whose text names their page).
async fn read_document(
    client: &OcrClient<Channel>,
    document: Vec<u8>,
    options: RecognizeOptions,
) -> anyhow::Result<(usize, usize)> {
    let mut stream = client.clone().recognize_document(recognize_request(document, options)).await?.into_inner();
    let (mut pages, mut legible) = (0, 0);
    while let Some(message) = stream.message().await? {
        if let Some(page) = message.page {
            anyhow::ensure!(!page.cached, "page {} was answered from a cache", page.page_number);
            pages += 1;
            legible += usize::from(names_page(&page.text, page.page_number));
        }
    }
    Ok((pages, legible))
}

/// A succeeded job's text result.
async fn job_text(client: &mut OcrClient<Channel>, id: &str) -> anyhow::Result<String> {
    let request = GetJobResultRequest { id: id.to_owned(), format: ResultFormat::Text as i32 };
    let mut stream = client.get_job_result(request).await?.into_inner();
    let mut body = Vec::new();
    while let Some(chunk) = stream.message().await? {
        body.extend_from_slice(&chunk.data);
    }
    Ok(String::from_utf8(body)?)
}

/// Pages of a text result (separated by form feeds) whose text names their page.
fn legible_pages(text: &str) -> usize {
    text.split('\u{c}').zip(1..).filter(|(page, number)| names_page(page, *number)).count()
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

/// `count` documents of `pages` pages tagged `<tag>-<n>`.
fn documents(pages: usize, tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|n| numbered_pages_pdf(pages, &format!("{tag}-{n}"))).collect()
}

/// An 8-page document read synchronously, then one as a job: first calls of a shape
/// allocate, and the job path's connections (Redis, S3) open.
async fn warm_up(served: &Served, options: RecognizeOptions, name: &str) -> anyhow::Result<()> {
    const PAGES: usize = 8;
    served.sync_run(options, documents(PAGES, &format!("{name}-warm-up"), 1), PAGES, 1).await?;
    served.job_run(options, documents(PAGES, &format!("{name}-warm-up-job"), 1), PAGES).await?;
    Ok(())
}

/// Idle-server first-page trials, a job and a synchronous stream in turn.
#[derive(Default)]
struct FirstPage {
    job: Vec<Duration>,
    submit_call: Vec<Duration>,
    picked_up: Vec<Duration>,
    sync: Vec<Duration>,
}

/// Every measurement of one kind at one concurrency, summed, with each round's pages/s.
#[derive(Default)]
struct Row {
    total: Measured,
    rates: Vec<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!((1..=50).contains(&args.pages), "--pages must be 1..=50 (the pod's --max-pages)");
    anyhow::ensure!(args.rounds >= 1 && args.documents_per_caller >= 1, "--rounds and --documents-per-caller ≥ 1");
    let load_at_start = load_average();
    let started_at = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let progress = |step: &str| eprintln!("bench_jobs: {step}");
    progress("starting redis-server and weed mini");
    let backends = Backends::start()?;
    let options = options(&args);

    let mut rows: BTreeMap<(usize, How), Row> = BTreeMap::new();
    let mut first_page = None;
    for &concurrency in &args.concurrencies {
        progress(&format!("concurrency {concurrency}: starting and warming up the servers"));
        let like_sync = format!("c{concurrency}-p{SYNC_PAGES_IN_FLIGHT}");
        let defaults = format!("c{concurrency}-p{DEFAULT_JOB_PAGES_IN_FLIGHT}");
        // Jobs at the synchronous value, and the synchronous calls; jobs at the default.
        let like_sync_server =
            Served::start(backends.config(&args, &like_sync, concurrency, SYNC_PAGES_IN_FLIGHT)).await?;
        let default_server =
            Served::start(backends.config(&args, &defaults, concurrency, DEFAULT_JOB_PAGES_IN_FLIGHT)).await?;
        warm_up(&like_sync_server, options, &like_sync).await?;
        warm_up(&default_server, options, &defaults).await?;
        let count = concurrency * args.documents_per_caller;
        for round in 0..args.rounds {
            // Every other round in the reverse order, so that neither warms up nor cools
            // down first: ABC, CBA, ABC, …
            let mut order = How::ALL;
            if round % 2 == 1 {
                order.reverse();
            }
            for how in order {
                progress(&format!(
                    "concurrency {concurrency}, round {}: {} ({} pages in flight), {count} × {} pages",
                    round + 1,
                    how.label(),
                    how.pages_in_flight(),
                    args.pages
                ));
                let tag = format!("c{concurrency}-{how:?}-round{round}");
                let documents = documents(args.pages, &tag, count);
                let measured = match how {
                    How::Sync => like_sync_server.sync_run(options, documents, args.pages, concurrency).await?,
                    How::JobsLikeSync => like_sync_server.job_run(options, documents, args.pages).await?,
                    How::JobsDefault => default_server.job_run(options, documents, args.pages).await?,
                };
                let row = rows.entry((concurrency, how)).or_default();
                row.total.add(measured);
                row.rates.push(measured.rate());
            }
        }
        // The pod's defaults (one job at a time, 2 pages in flight), idle: the first page.
        if concurrency == 1 && first_page.is_none() && args.first_page_trials > 0 {
            progress("submit → first page on an idle server, job and synchronous in turn");
            let served = &default_server;
            tokio::time::sleep(SETTLE).await;
            let mut found = FirstPage::default();
            for trial in 0..args.first_page_trials {
                let document = numbered_pages_pdf(args.pages, &format!("first-page-job-{trial}"));
                let (first, submit, picked_up) = served.job_first_page(options, document).await?;
                found.job.push(first);
                found.submit_call.push(submit);
                found.picked_up.push(picked_up);
                let document = numbered_pages_pdf(args.pages, &format!("first-page-sync-{trial}"));
                found.sync.push(served.sync_first_page(options, document).await?);
            }
            first_page = Some(found);
        }
        like_sync_server.server.shutdown().await?;
        default_server.server.shutdown().await?;
    }
    let load_at_end = load_average();

    let out = report(&args, &rows, first_page.as_ref(), &started_at, &load_at_start, &load_at_end)?;
    write_report(&args.report, &out)?;
    println!("{out}");
    Ok(())
}

fn report(
    args: &Args,
    rows: &BTreeMap<(usize, How), Row>,
    first_page: Option<&FirstPage>,
    started_at: &str,
    load_at_start: &str,
    load_at_end: &str,
) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "# kube-ocr document jobs benchmark\n")?;
    writeln!(
        out,
        "Produced by `make bench-inference`:\n\n```\ncargo run --release --locked -p kube-ocr-inference --example bench_jobs -- {}\n```\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    )?;
    writeln!(
        out,
        "Machine: {}, {} cores, CPU only, libtorch threads {}; load average {load_at_start} at the start, \
         {load_at_end} at the end. Redis 127.0.0.1 (`redis-server`, the job queue) and SeaweedFS 127.0.0.1 (`weed \
         mini`, the bucket). Servers in this process; the in-process result cache is off and every call and job \
         sets `bypass_cache`. Started {started_at}, finished {}.\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.threads,
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default()
    )?;
    let sync = |concurrency: usize| rows.get(&(concurrency, How::Sync)).map(|row| row.total);
    writeln!(out, "## Goals\n\n| goal | measured | target | mark |\n|---|---:|---:|---|")?;
    for ((concurrency, how), row) in rows {
        let which = match how {
            How::Sync => continue,
            How::JobsLikeSync => format!("jobs at {SYNC_PAGES_IN_FLIGHT} pages in flight, as a synchronous call"),
            How::JobsDefault => format!("jobs at the pod's default {DEFAULT_JOB_PAGES_IN_FLIGHT} pages in flight"),
        };
        let Some(sync) = sync(*concurrency) else { continue };
        let ratio = row.total.rate() / sync.rate();
        writeln!(
            out,
            "| jobs ÷ synchronous pages/s at concurrency {concurrency} ({which}) | {ratio:.3}× ({:+.1} %) | ≥ {RATE_GOAL}× | {} |",
            (ratio - 1.0) * 100.0,
            if ratio >= RATE_GOAL { "met" } else { "**missed**" }
        )?;
    }
    writeln!(out, "\n## Pages/s: jobs against synchronous calls\n")?;
    writeln!(
        out,
        "Meaning: per measurement, as many {}-page PDFs as the concurrency times {} ({PAGE_SIDE_PT} × {PAGE_SIDE_PT} pt, one line `Page N \
         <word>` in Helvetica, rendered at {} dpi). Synchronous: `RecognizeDocument` streams read to their end by as \
         many callers as the concurrency, each taking the next document when its stream ends. Jobs: every document \
         submitted at once to a server working that many jobs at a time (`max_concurrent`), polled with GetJob every \
         {} ms; the time runs from the first submit to the last success seen, so it includes the upload to the \
         bucket, the queue and the result's write. Per concurrency two servers: one with jobs at {} pages in flight \
         (the synchronous call's value; it also answers the synchronous calls) and one with the pod's default {}, \
         each warmed up on an 8-page document both ways; {} round(s) of the three measurements in turn (every other round in the reverse order). pages/s is \
         the rounds' pages over their summed time. CPU ms/page is this process's user + system time (the servers, \
         the client, and the `ocr-pdf-render` children once they exit; not `redis-server` or `weed mini`) over the \
         pages: less sensitive than wall time to other work on the machine. Pages read right: the page's text names \
         its number and word. It does not show jobs beside synchronous traffic, several pods, or S3 and Redis across \
         a network.\n",
        args.pages,
        args.documents_per_caller,
        args.pdf_dpi,
        POLL_DONE.as_millis(),
        SYNC_PAGES_IN_FLIGHT,
        DEFAULT_JOB_PAGES_IN_FLIGHT,
        args.rounds,
    )?;
    writeln!(
        out,
        "| how | concurrency | pages in flight per document | pages | seconds | pages/s | ÷ synchronous | CPU ms/page | \
         pages read right |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for ((concurrency, how), row) in rows {
        let total = row.total;
        let ratio = sync(*concurrency).map_or("–".to_owned(), |sync| format!("{:.3}×", total.rate() / sync.rate()));
        let rounds = if row.rates.len() > 1 {
            let text: Vec<String> = row.rates.iter().map(|rate| format!("{rate:.2}")).collect();
            format!(" ({})", text.join(", "))
        } else {
            String::new()
        };
        writeln!(
            out,
            "| {} | {concurrency} | {} | {} | {:.1} | {:.2}{rounds} | {ratio} | {:.0} | {} of {} |",
            how.label(),
            how.pages_in_flight(),
            total.pages,
            total.time.as_secs_f64(),
            total.rate(),
            total.cpu_ms_per_page(),
            total.legible,
            total.pages
        )?;
    }
    if let Some(found) = first_page {
        writeln!(out, "\n## Submit → first page at idle\n")?;
        writeln!(
            out,
            "Meaning: on an idle server with the pod's job defaults (one job at a time, {} pages in flight), {} \
             fresh {}-page PDFs submitted one at a time, each polled with GetJob every {} ms until `pages_done` ≥ 1, \
             then cancelled, and once the pod runs no job left twice the first page's time (at least {} s) to \
             settle; in turn with each, a fresh document's synchronous \
             `RecognizeDocument` stream (4 pages in flight) timed to its first page message, then dropped and left \
             to settle likewise. The job's time includes the SubmitJob call (the upload to the bucket and the queue entry), \
             the worker taking the entry, reading the upload back, rendering and reading page 1, recording progress \
             in Redis and up to one poll interval.\n",
            DEFAULT_JOB_PAGES_IN_FLIGHT,
            found.job.len(),
            args.pages,
            POLL_FIRST_PAGE.as_millis(),
            SETTLE.as_secs()
        )?;
        writeln!(out, "| measured | median ms | max ms |\n|---|---:|---:|")?;
        for (what, values) in [
            ("job: submit → first page done", &found.job),
            ("synchronous stream: call → first page message", &found.sync),
            ("of the job's: the SubmitJob call", &found.submit_call),
            ("of the job's: submitted → started (the job's own timestamps, whole ms)", &found.picked_up),
        ] {
            writeln!(
                out,
                "| {what} | {:.1} | {:.1} |",
                ms(percentile(values.clone(), 0.5)),
                ms(values.iter().max().copied().unwrap_or_default())
            )?;
        }
    }
    Ok(out)
}

fn write_report(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// This process's user + system CPU time, with that of the children it has reaped, from
/// /proc/self/stat (fields 14–17, in clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let Some((_, after)) = stat.rsplit_once(')') else { return Duration::ZERO };
    let ticks: u64 = after.split_whitespace().skip(11).take(4).filter_map(|field| field.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
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
