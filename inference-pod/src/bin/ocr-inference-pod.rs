//! `ocr-inference-pod`: the kube-ocr OCR server (gRPC and HTTP). Every flag has an `OCR_*`
//! environment variable; only this file reads the environment.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use kube_ocr_inference::model::{
    DeviceRequest, ModelOptions, Precision, TorchThreadMode, bundle_path_from_uri, set_torch_thread_mode,
};
use kube_ocr_inference::serve::{
    BatcherConfig, CorsPolicy, DEFAULT_MAX_PRECISION_ACCURACY_DROP, DEFAULT_PDF_DPI, JobSettings, JobsFrontConfig,
    PdfSettings, ServerConfig, SharedCacheSettings, start, start_jobs_front,
};
use kube_ocr_runtime::{LogFormat, Logging, ShutdownSignals, run_main};
use kube_ocr_s3::{Addressing, S3Settings};
use kube_ocr_vision::image::DecodeLimits;
use kube_ocr_vision::pdf::PdfLimits;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "kube-ocr inference pod: OCR over gRPC and HTTP on libtorch with batching, health and metrics"
)]
struct Args {
    /// Model bundle: a folder, or a file:// URI of one. Not with --jobs-front (a front
    /// ignores OCR_BUNDLE, which the image sets for the server).
    #[arg(long, env = "OCR_BUNDLE", required_unless_present = "jobs_front")]
    bundle: Option<String>,
    /// Run as the service's job front: take document jobs (submit, status, cancel,
    /// results) without loading a model or working any, so jobs can be submitted while
    /// the service's pods are scaled to zero. Needs --jobs-bucket.
    #[arg(long, env = "OCR_JOBS_FRONT", requires = "jobs_bucket")]
    jobs_front: bool,
    /// auto (first GPU if libtorch sees one, else CPU), cpu, cuda or cuda:N.
    #[arg(long, env = "OCR_DEVICE", default_value = "auto")]
    device: DeviceRequest,
    /// Address both servers listen on.
    #[arg(long, env = "OCR_LISTEN_HOST", default_value = "0.0.0.0")]
    listen_host: IpAddr,
    #[arg(long, env = "OCR_GRPC_PORT", default_value_t = 50051)]
    grpc_port: u16,
    /// Port of the HTTP/JSON API (`POST /v1/ocr`, `GET /openapi.json`).
    #[arg(long, env = "OCR_HTTP_API_PORT", default_value_t = 8000)]
    http_api_port: u16,
    /// Origins browsers may call the HTTP API from (comma-separated, `*` for any); empty:
    /// no CORS headers.
    #[arg(long, env = "OCR_HTTP_CORS_ALLOW_ORIGINS", value_delimiter = ',', default_value = "")]
    http_cors_allow_origins: Vec<String>,
    /// Port of /healthz, /readyz and /metrics.
    #[arg(long, env = "OCR_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// Most items per model forward pass.
    #[arg(long, env = "OCR_MAX_BATCH_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    max_batch_size: u32,
    /// Upper bound on holding a partial batch open for more items, under load only (an idle
    /// worker takes what is queued at once).
    #[arg(long, env = "OCR_MAX_QUEUE_DELAY_MS", default_value_t = 5)]
    max_queue_delay_ms: u64,
    /// Items that may wait per model stage; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "OCR_MAX_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_queue: u32,
    /// Largest image accepted, in bytes.
    #[arg(long, env = "OCR_MAX_IMAGE_BYTES", default_value_t = 20 << 20)]
    max_image_bytes: usize,
    /// Most pages of a document (PDF, multi-page TIFF) read per request; more are refused
    /// with RESOURCE_EXHAUSTED (HTTP 413) before any page is read: callers send a page
    /// range (first_page, last_page).
    #[arg(long, env = "OCR_MAX_PAGES", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_pages: u32,
    /// The PDF renderer run for each PDF request (default: ocr-pdf-render beside this binary).
    #[arg(long, env = "OCR_PDF_RENDERER")]
    pdf_renderer: Option<PathBuf>,
    /// Resolution PDF pages are rendered at when the caller names none, in dots per inch.
    #[arg(long, env = "OCR_PDF_DPI", default_value_t = DEFAULT_PDF_DPI)]
    pdf_dpi: u32,
    /// Lowest and highest resolution a caller may ask for (pdf_dpi).
    #[arg(long, env = "OCR_PDF_MIN_DPI", default_value_t = 50)]
    pdf_min_dpi: u32,
    #[arg(long, env = "OCR_PDF_MAX_DPI", default_value_t = 600)]
    pdf_max_dpi: u32,
    /// Most pages a PDF or TIFF may have at all (a page-count bomb is refused whatever range is asked).
    #[arg(long, env = "OCR_PDF_MAX_DOCUMENT_PAGES", default_value_t = 10_000)]
    pdf_max_document_pages: usize,
    /// Address-space limit of each PDF renderer process, in bytes.
    #[arg(long, env = "OCR_PDF_MEMORY_LIMIT_BYTES", default_value_t = 2 << 30)]
    pdf_memory_limit_bytes: u64,
    /// CPU-time limit of each PDF renderer process, in seconds.
    #[arg(long, env = "OCR_PDF_CPU_SECONDS", default_value_t = 60)]
    pdf_cpu_seconds: u64,
    /// Longest wait for a PDF renderer's next page before it is killed.
    #[arg(long, env = "OCR_PDF_PAGE_TIMEOUT_SECS", default_value_t = 30.0)]
    pdf_page_timeout_secs: f64,
    /// PDF renderer processes at a time; more PDF requests wait (within their deadline).
    #[arg(long, env = "OCR_PDF_MAX_RENDERERS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pdf_max_renderers: u32,
    /// Largest image accepted, in decoded pixels (width × height).
    #[arg(long, env = "OCR_MAX_IMAGE_PIXELS", default_value_t = DecodeLimits::default().max_pixels)]
    max_image_pixels: u64,
    /// Server-side limit on a request's total time, whatever the client's deadline.
    #[arg(long, env = "OCR_REQUEST_TIMEOUT_SECS", default_value_t = 25.0)]
    request_timeout_secs: f64,
    /// Result cache size in bytes; 0 disables it.
    #[arg(long, env = "OCR_CACHE_BYTES", default_value_t = 64 << 20)]
    cache_bytes: usize,
    /// Shared result cache behind the in-process one: `redis://host:port[/db]`, or
    /// `rediss://` for TLS. Unset: no shared cache. A Redis that is down or slow is skipped
    /// (counted in ocr_shared_cache_lookups_total), never an error.
    #[arg(long, env = "OCR_REDIS_URL")]
    redis_url: Option<String>,
    /// Redis ACL user (default: the URL's, else `default`).
    #[arg(long, env = "OCR_REDIS_USERNAME", requires = "redis_url")]
    redis_username: Option<String>,
    /// Redis password (AUTH); best given through the environment, from a Secret.
    #[arg(long, env = "OCR_REDIS_PASSWORD", hide_env_values = true, requires = "redis_url")]
    redis_password: Option<String>,
    /// PEM CA bundle that signed the Redis server's certificate (`rediss://`; default:
    /// the system's roots).
    #[arg(long, env = "OCR_REDIS_CA_FILE", requires = "redis_url")]
    redis_ca_file: Option<PathBuf>,
    /// Prefix of the shared cache's keys, to keep services sharing one Redis apart.
    #[arg(long, env = "OCR_REDIS_KEY_PREFIX", default_value = "kube-ocr")]
    redis_key_prefix: String,
    /// How long a shared cache entry lives, in seconds.
    #[arg(long, env = "OCR_SHARED_CACHE_TTL_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    shared_cache_ttl_secs: u64,
    /// Longest a shared cache lookup or write may take, in milliseconds; a slower one is
    /// skipped and counted as an error.
    #[arg(long, env = "OCR_SHARED_CACHE_TIMEOUT_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    shared_cache_timeout_ms: u64,
    /// Background writes to the shared cache in flight at most; more are dropped.
    #[arg(long, env = "OCR_SHARED_CACHE_MAX_PENDING_WRITES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    shared_cache_max_pending_writes: u32,
    /// Asynchronous document jobs: the bucket their uploads and results go to. Needs
    /// --redis-url (the job queue lives there) and --jobs-s3-endpoint. Unset: the job
    /// calls answer UNIMPLEMENTED (HTTP 501).
    #[arg(long, env = "OCR_JOBS_BUCKET", requires_all = ["redis_url", "jobs_s3_endpoint"])]
    jobs_bucket: Option<String>,
    /// The S3-compatible server: `https://s3.eu-west-1.amazonaws.com`, `http://seaweedfs:8333`.
    #[arg(long, env = "OCR_JOBS_S3_ENDPOINT")]
    jobs_s3_endpoint: Option<String>,
    /// The region requests are signed for.
    #[arg(long, env = "OCR_JOBS_S3_REGION", default_value = "us-east-1")]
    jobs_s3_region: String,
    /// Access key id (best from a Secret, through the environment).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "", hide_env_values = true)]
    jobs_s3_access_key_id: String,
    /// Secret access key (best from a Secret, through the environment).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", default_value = "", hide_env_values = true)]
    jobs_s3_secret_access_key: String,
    /// Session token of temporary credentials.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    jobs_s3_session_token: Option<String>,
    /// Name buckets in the host (`bucket.endpoint`) instead of the path (`endpoint/bucket`).
    #[arg(long, env = "OCR_JOBS_S3_VIRTUAL_HOSTED")]
    jobs_s3_virtual_hosted: bool,
    /// PEM CA bundle trusted for an https endpoint beside the system's roots.
    #[arg(long, env = "OCR_JOBS_S3_CA_FILE")]
    jobs_s3_ca_file: Option<PathBuf>,
    /// Longest one S3 call may take, in seconds.
    #[arg(long, env = "OCR_JOBS_S3_TIMEOUT_SECS", default_value_t = 60.0)]
    jobs_s3_timeout_secs: f64,
    /// Key prefix of this service's objects in the bucket (the expiry rule's filter).
    #[arg(long, env = "OCR_JOBS_PREFIX", default_value = "kube-ocr/jobs")]
    jobs_prefix: String,
    /// How long a job, its upload and its result live, in seconds (the bucket expires
    /// objects in whole days, so S3 keeps them up to a day longer).
    #[arg(long, env = "OCR_JOBS_TTL_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    jobs_ttl_secs: u64,
    /// Jobs this pod works at a time.
    #[arg(long, env = "OCR_JOBS_MAX_CONCURRENT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs_max_concurrent: u32,
    /// Pages of a job's document in the engine at a time (a synchronous document takes
    /// 4): a synchronous call waits behind at most this many job pages per running job.
    #[arg(long, env = "OCR_JOBS_PAGES_IN_FLIGHT", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs_pages_in_flight: u32,
    /// A running job whose pod has not heartbeaten it for this many seconds is taken over
    /// by another pod (its pod died or hung).
    #[arg(long, env = "OCR_JOBS_CLAIM_AFTER_SECS", default_value_t = 60.0)]
    jobs_claim_after_secs: f64,
    /// Starts of one job before it fails (a document that kills every pod that reads it).
    #[arg(long, env = "OCR_JOBS_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    jobs_max_attempts: u32,
    /// Longest one job may run, in seconds.
    #[arg(long, env = "OCR_JOBS_TIMEOUT_SECS", default_value_t = 3600.0)]
    jobs_timeout_secs: f64,
    /// The age past which an unfinished job breaks its objective, in seconds: exported as
    /// ocr_jobs_slo_seconds for the OcrJobsOlderThanSlo alert.
    #[arg(long, env = "OCR_JOBS_SLO_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    jobs_slo_secs: u64,
    /// Set the bucket's expiry rule for --jobs-prefix at start (needs
    /// s3:PutLifecycleConfiguration); false when the bucket's owner manages it.
    #[arg(long, env = "OCR_JOBS_MANAGE_EXPIRY", default_value_t = true, action = clap::ArgAction::Set)]
    jobs_manage_expiry: bool,
    /// This pod's name in the job queue's consumer group (a random suffix keeps restarts
    /// apart); default: the host name.
    #[arg(long, env = "OCR_POD_NAME")]
    pod_name: Option<String>,
    /// Golden-set folder for the start-up self-test (default: <bundle>/selftest, else built in).
    #[arg(long, env = "OCR_SELF_TEST_DIR")]
    self_test_dir: Option<PathBuf>,
    /// Overrides the bundle's selfTest.minAccuracy.
    #[arg(long, env = "OCR_SELF_TEST_MIN_ACCURACY")]
    self_test_min_accuracy: Option<f64>,
    /// At --precision fp16 or bf16: the most self-test accuracy (a fraction; 0.005 = 0.5
    /// points) it may lose against an fp32 load of the same bundle, checked at start-up;
    /// more and the pod refuses to serve.
    #[arg(long, env = "OCR_MAX_PRECISION_ACCURACY_DROP", default_value_t = DEFAULT_MAX_PRECISION_ACCURACY_DROP, allow_negative_numbers = true)]
    max_precision_accuracy_drop: f64,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long, env = "OCR_TORCH_THREADS")]
    torch_threads: Option<i32>,
    /// Which threads call libtorch: per-stage (each stage's worker) or shared (one thread
    /// for every call: 1.5-3x faster forwards on CPU when the pod has its cores to itself,
    /// slower when other processes' OpenMP threads share them).
    #[arg(long, env = "OCR_TORCH_THREAD_MODE", default_value_t = TorchThreadMode::default())]
    torch_thread_mode: TorchThreadMode,
    /// Refuse at once (RESOURCE_EXHAUSTED with a retry hint, or DEADLINE_EXCEEDED) a
    /// request whose deadline the work already queued makes it miss; false: only
    /// --max-queue bounds admission and such requests wait until their deadline.
    #[arg(long, env = "OCR_DEADLINE_ADMISSION", default_value_t = true, action = clap::ArgAction::Set)]
    deadline_admission: bool,
    /// Precision the models run in: fp32, fp16 (GPU) or bf16.
    #[arg(long, env = "OCR_PRECISION", default_value_t = ModelOptions::default().precision)]
    precision: Precision,
    /// Weights and inputs in channels-last memory format (`--channels-last=false` turns it off).
    #[arg(long, env = "OCR_CHANNELS_LAST", action = clap::ArgAction::Set, default_value_t = ModelOptions::default().channels_last)]
    channels_last: bool,
    /// After SIGTERM, seconds to keep serving as NOT_SERVING before closing the listener.
    #[arg(long, env = "OCR_DRAIN_DELAY_SECS", default_value_t = 5.0)]
    drain_delay_secs: f64,
    /// Seconds in-flight requests get to finish once the listener is closed.
    #[arg(long, env = "OCR_SHUTDOWN_GRACE_SECS", default_value_t = 20.0)]
    shutdown_grace_secs: f64,
    #[arg(long, env = "OCR_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. `info,kube_ocr_inference=debug`).
    #[arg(long, env = "OCR_LOG", default_value = "info")]
    log_filter: String,
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("--{flag} must be a non-negative number of seconds"))
}

fn pdf_settings(args: &Args) -> anyhow::Result<PdfSettings> {
    let program = match &args.pdf_renderer {
        Some(program) => program.clone(),
        None => std::env::current_exe()?.with_file_name("ocr-pdf-render"),
    };
    anyhow::ensure!(
        args.pdf_min_dpi >= 1 && args.pdf_min_dpi <= args.pdf_dpi && args.pdf_dpi <= args.pdf_max_dpi,
        "--pdf-min-dpi ({}) <= --pdf-dpi ({}) <= --pdf-max-dpi ({}) must hold, from 1 up",
        args.pdf_min_dpi,
        args.pdf_dpi,
        args.pdf_max_dpi
    );
    let defaults = PdfSettings::with_program(program);
    Ok(PdfSettings {
        default_dpi: args.pdf_dpi,
        min_dpi: args.pdf_min_dpi,
        max_dpi: args.pdf_max_dpi,
        limits: PdfLimits { max_document_pages: args.pdf_max_document_pages, ..defaults.limits },
        memory_limit_bytes: args.pdf_memory_limit_bytes,
        cpu_seconds: args.pdf_cpu_seconds,
        page_timeout: seconds(args.pdf_page_timeout_secs, "pdf-page-timeout-secs")?,
        max_renderers: args.pdf_max_renderers as usize,
        ..defaults
    })
}

/// The server's configuration; `bundle_dir` apart because a job front has none.
fn config(args: &Args, bundle_dir: PathBuf) -> anyhow::Result<ServerConfig> {
    Ok(ServerConfig {
        bundle_dir,
        device: args.device,
        listen_host: args.listen_host,
        grpc_port: args.grpc_port,
        http_api_port: args.http_api_port,
        http_port: args.http_port,
        cors: CorsPolicy::from_origins(&args.http_cors_allow_origins),
        batching: BatcherConfig {
            max_batch_size: args.max_batch_size as usize,
            max_queue_delay: Duration::from_millis(args.max_queue_delay_ms),
            max_queue: args.max_queue as usize,
        },
        decode_limits: DecodeLimits { max_pixels: args.max_image_pixels, ..DecodeLimits::default() },
        max_image_bytes: args.max_image_bytes,
        max_pages: args.max_pages as usize,
        pdf: pdf_settings(args)?,
        request_timeout: seconds(args.request_timeout_secs, "request-timeout-secs")?,
        cache_bytes: args.cache_bytes,
        shared_cache: args.redis_url.as_ref().map(|url| SharedCacheSettings {
            url: url.clone(),
            username: args.redis_username.clone(),
            password: args.redis_password.clone(),
            ca_file: args.redis_ca_file.clone(),
            ttl: Duration::from_secs(args.shared_cache_ttl_secs),
            timeout: Duration::from_millis(args.shared_cache_timeout_ms),
            key_prefix: args.redis_key_prefix.clone(),
            max_pending_writes: args.shared_cache_max_pending_writes as usize,
        }),
        jobs: job_settings(args)?,
        self_test_dir: args.self_test_dir.clone(),
        self_test_min_accuracy: args.self_test_min_accuracy,
        max_precision_accuracy_drop: args.max_precision_accuracy_drop,
        torch_threads: args.torch_threads,
        deadline_admission: args.deadline_admission,
        model_options: ModelOptions { precision: args.precision, channels_last: args.channels_last },
        drain_delay: seconds(args.drain_delay_secs, "drain-delay-secs")?,
        shutdown_grace: seconds(args.shutdown_grace_secs, "shutdown-grace-secs")?,
    })
}

fn front_config(args: &Args) -> anyhow::Result<JobsFrontConfig> {
    let server = config(args, PathBuf::new())?;
    let (Some(redis), Some(jobs)) = (server.shared_cache, server.jobs) else {
        anyhow::bail!("--jobs-front needs --jobs-bucket and --redis-url");
    };
    Ok(JobsFrontConfig {
        listen_host: server.listen_host,
        grpc_port: server.grpc_port,
        http_api_port: server.http_api_port,
        http_port: server.http_port,
        cors: server.cors,
        redis,
        jobs,
        max_image_bytes: server.max_image_bytes,
        pdf: server.pdf,
        drain_delay: server.drain_delay,
        shutdown_grace: server.shutdown_grace,
    })
}

fn job_settings(args: &Args) -> anyhow::Result<Option<JobSettings>> {
    let Some(bucket) = &args.jobs_bucket else {
        return Ok(None);
    };
    let endpoint = args.jobs_s3_endpoint.as_deref().unwrap_or_default();
    let endpoint =
        endpoint.parse().map_err(|error| anyhow::anyhow!("--jobs-s3-endpoint {endpoint:?} is not a URL: {error}"))?;
    let pod = args.pod_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "pod".to_owned(), |name| name.trim().to_owned())
    });
    // Unique per process: a restarted container keeps its pod's name, and must not be
    // taken for the process that held its jobs before.
    let nonce = std::process::id()
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| now.subsec_nanos());
    Ok(Some(JobSettings {
        s3: S3Settings {
            endpoint,
            region: args.jobs_s3_region.clone(),
            access_key_id: args.jobs_s3_access_key_id.clone(),
            secret_access_key: args.jobs_s3_secret_access_key.clone(),
            session_token: args.jobs_s3_session_token.clone(),
            addressing: if args.jobs_s3_virtual_hosted { Addressing::VirtualHosted } else { Addressing::Path },
            ca_file: args.jobs_s3_ca_file.clone(),
            timeout: seconds(args.jobs_s3_timeout_secs, "jobs-s3-timeout-secs")?,
        },
        bucket: bucket.clone(),
        prefix: args.jobs_prefix.clone(),
        ttl: Duration::from_secs(args.jobs_ttl_secs),
        max_concurrent: args.jobs_max_concurrent as usize,
        pages_in_flight: args.jobs_pages_in_flight as usize,
        claim_after: seconds(args.jobs_claim_after_secs, "jobs-claim-after-secs")?,
        max_attempts: args.jobs_max_attempts,
        job_timeout: seconds(args.jobs_timeout_secs, "jobs-timeout-secs")?,
        slo: Duration::from_secs(args.jobs_slo_secs),
        consumer: format!("{pod}-{nonce:08x}"),
        manage_expiry: args.jobs_manage_expiry,
    }))
}

async fn run(args: Args, shutdown: ShutdownSignals) -> anyhow::Result<()> {
    let server = if args.jobs_front {
        start_jobs_front(front_config(&args)?).await?
    } else {
        let bundle = args.bundle.as_deref().unwrap_or_default();
        start(config(&args, bundle_path_from_uri(bundle)?)?).await?
    };
    let signal = shutdown.received().await;
    tracing::info!(signal, "draining");
    server.shutdown().await?;
    Ok(())
}

/// `--bundle` beside `--jobs-front` on the command line is a mistake. `OCR_BUNDLE` is not:
/// the image sets it for the server, and a front started from the same image inherits it
/// (clap's `conflicts_with` would count it, and every job front would exit at start).
fn bundle_conflict(jobs_front: bool, bundle_source: Option<ValueSource>) -> Option<&'static str> {
    (jobs_front && bundle_source == Some(ValueSource::CommandLine))
        .then_some("the argument '--jobs-front' cannot be used with '--bundle <BUNDLE>': a front loads no model")
}

fn parse_args() -> Args {
    let mut command = Args::command();
    let matches = command.get_matches_mut();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command).exit());
    if let Some(conflict) = bundle_conflict(args.jobs_front, matches.value_source("bundle")) {
        command.error(clap::error::ErrorKind::ArgumentConflict, conflict).exit();
    }
    args
}

fn main() -> ExitCode {
    let args = parse_args();
    // Before anything calls libtorch: the mode decides which thread makes the first call.
    set_torch_thread_mode(args.torch_thread_mode);
    let logging = Logging { format: args.log_format, filter: args.log_filter.clone() };
    run_main("ocr-inference-pod", &logging, |shutdown| run(args, shutdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_front_ignores_the_bundle_the_image_sets_but_not_one_it_is_given() {
        assert_eq!(bundle_conflict(true, Some(ValueSource::EnvVariable)), None, "OCR_BUNDLE from the image");
        assert_eq!(bundle_conflict(true, None), None);
        assert!(bundle_conflict(true, Some(ValueSource::CommandLine)).is_some_and(|m| m.contains("--jobs-front")));
        assert_eq!(bundle_conflict(false, Some(ValueSource::CommandLine)), None, "the server takes its bundle");
    }

    #[test]
    fn the_server_still_needs_a_bundle_and_the_front_does_not() {
        let server = Args::try_parse_from(["ocr-inference-pod"]).map(drop);
        // OCR_BUNDLE is unset in tests: without --bundle the server is refused.
        if std::env::var_os("OCR_BUNDLE").is_none() {
            assert!(server.is_err(), "a server without a bundle must be refused");
        }
        let front = Args::try_parse_from([
            "ocr-inference-pod",
            "--jobs-front",
            "--jobs-bucket=b",
            "--jobs-s3-endpoint=http://s3:8333",
            "--redis-url=redis://redis:6379",
        ]);
        assert!(front.is_ok_and(|args| args.jobs_front), "a front needs no bundle");
    }
}
