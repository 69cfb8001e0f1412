//! Wires the pod together: model load, self-test, gRPC (OCR, health, reflection), the
//! HTTP API, the HTTP side port and metrics. Used by the binary and, in process on `127.0.0.1:0`, by the
//! integration tests.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use kube_ocr_proto::v1::ocr_server::OcrServer;
use kube_ocr_proto::v1::{FILE_DESCRIPTOR_SET, OCR_SERVICE_NAME};
use kube_ocr_vision::image::DecodeLimits;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;

use crate::model::{
    Bundle, ComputeDevice, DeviceRequest, ModelOptions, Precision, cuda_device_count, resolve_device,
    set_intra_op_threads,
};
use crate::serve::api::{ApiLimits, OcrApi};
use crate::serve::batcher::{BatchObserver, BatcherConfig};
use crate::serve::cache::{ResultCache, ResultCaches, SharedCache, SharedCacheSettings, redis_client, result_identity};
use crate::serve::engine::{Engine, EngineConfig, OcrOutput, OcrTask};
use crate::serve::error::ServeError;
use crate::serve::grpc::OcrGrpcService;
use crate::serve::http::{HttpState, router};
use crate::serve::http_api::{self, CorsPolicy, HttpApiState, max_body_bytes};
use crate::serve::jobs::{JobSettings, Jobs, start_worker};
use crate::serve::pdf::{PdfRenderer, PdfSettings};
use crate::serve::running::RunningServer;
use crate::serve::self_test::{
    SelfTestGate, SelfTestSample, builtin_samples, run_self_test_at_precision, samples_from_dir,
};
use crate::serve::serving_state::{Phase, ServingState};
use crate::serve::telemetry::gpu::{GpuCollector, GpuMonitor};
use crate::serve::telemetry::job_metrics::JobMetrics;
use crate::serve::telemetry::metrics::{ModelIdentity, OcrMetrics};
use crate::serve::telemetry::process::ProcessCollector;

/// Everything the pod is configured with (the binary fills it from flags and env).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bundle_dir: PathBuf,
    pub device: DeviceRequest,
    pub listen_host: IpAddr,
    pub grpc_port: u16,
    /// The HTTP/JSON API (`POST /v1/ocr`).
    pub http_api_port: u16,
    /// The side port: probes and metrics.
    pub http_port: u16,
    /// Cross-origin access to the HTTP API (off by default).
    pub cors: CorsPolicy,
    pub batching: BatcherConfig,
    pub decode_limits: DecodeLimits,
    pub max_image_bytes: usize,
    /// Most pages of a document (PDF, multi-page TIFF) read per request.
    pub max_pages: usize,
    /// How PDFs are rendered; its `limits.max_pages` is set from `max_pages`.
    pub pdf: PdfSettings,
    pub request_timeout: Duration,
    pub cache_bytes: usize,
    /// The shared (Redis) result cache behind the in-process one; `None` = none.
    pub shared_cache: Option<SharedCacheSettings>,
    /// Asynchronous document jobs (queue in the shared cache's Redis, documents and
    /// results in a bucket); `None` = the job calls answer UNIMPLEMENTED.
    pub jobs: Option<JobSettings>,
    /// Golden-set folder for the self-test; `None` = `<bundle>/selftest` if present, else
    /// the samples built into the binary.
    pub self_test_dir: Option<PathBuf>,
    /// Overrides the bundle's `selfTest.minAccuracy`.
    pub self_test_min_accuracy: Option<f64>,
    /// At a precision other than fp32: the most self-test accuracy (a fraction) it may lose
    /// against an fp32 load of the same bundle before the pod refuses to serve
    /// ([`DEFAULT_MAX_PRECISION_ACCURACY_DROP`](crate::serve::DEFAULT_MAX_PRECISION_ACCURACY_DROP)).
    pub max_precision_accuracy_drop: f64,
    /// libtorch intra-op threads; `None` = libtorch's default (all cores).
    pub torch_threads: Option<i32>,
    /// Refuse at once a request whose deadline the queued work ahead makes it miss
    /// (otherwise only `batching.max_queue` bounds admission).
    pub deadline_admission: bool,
    /// Precision and memory format the modules run in.
    pub model_options: ModelOptions,
    /// After SIGTERM, how long to keep serving while NOT_SERVING, so load balancers and
    /// EndpointSlices stop sending before the listener closes.
    pub drain_delay: Duration,
    /// Longest wait for in-flight requests once the listener is closed.
    pub shutdown_grace: Duration,
}

/// Least time the job queue's Redis calls get (the shared cache's own timeout is tuned
/// for the request path and may be shorter).
const JOB_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the three ports, loads the bundle, starts serving gRPC (NOT_SERVING) and HTTP, then
/// runs the self-test in the background and flips to SERVING when it passes.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServeError> {
    let grpc_listener = bind("gRPC", SocketAddr::new(config.listen_host, config.grpc_port)).await?;
    let http_api_listener = bind("HTTP API", SocketAddr::new(config.listen_host, config.http_api_port)).await?;
    let http_listener = bind("HTTP", SocketAddr::new(config.listen_host, config.http_port)).await?;
    let grpc_addr = local_addr(&grpc_listener, "gRPC", config.listen_host, config.grpc_port)?;
    let http_api_addr = local_addr(&http_api_listener, "HTTP API", config.listen_host, config.http_api_port)?;
    let http_addr = local_addr(&http_listener, "HTTP", config.listen_host, config.http_port)?;
    let http_api_router = |api, jobs| {
        let state = HttpApiState { api, jobs, max_body_bytes: max_body_bytes(config.max_image_bytes) };
        http_api::router(state, &config.cors).map_err(ServeError::ConfigureCors)
    };

    if let Some(threads) = config.torch_threads {
        set_intra_op_threads(threads).map_err(ServeError::SetTorchThreads)?;
    }
    let device = resolve_device(config.device, cuda_device_count()).map_err(ServeError::SelectDevice)?;
    let gpu = Arc::new(match device {
        ComputeDevice::Cpu if config.device == DeviceRequest::Cpu => GpuMonitor::disabled("--device cpu"),
        _ => GpuMonitor::init(),
    });

    let bundle_dir = config.bundle_dir.clone();
    let bundle = tokio::task::spawn_blocking(move || Bundle::load(&bundle_dir))
        .await
        .map_err(ServeError::JoinModelLoader)?
        .map_err(ServeError::LoadModel)?;
    let digest_bundle = bundle.clone();
    let bundle_digest = tokio::task::spawn_blocking(move || digest_bundle.content_digest())
        .await
        .map_err(ServeError::JoinModelLoader)?
        .map_err(ServeError::DigestBundle)?;
    // The OCR series are labelled with the model, so they are registered once it is known.
    let model = ModelIdentity { name: bundle.manifest.name.clone(), version: bundle.manifest.version.clone() };
    let mut registry = Registry::default();
    let metrics = Arc::new(OcrMetrics::register(&mut registry, &model));
    registry.register_collector(Box::new(ProcessCollector));
    registry.register_collector(Box::new(GpuCollector(gpu.clone())));

    let observer = batch_observer(metrics.clone());
    let engine_config = EngineConfig {
        batching: config.batching,
        decode_limits: config.decode_limits,
        model_options: config.model_options,
        deadline_admission: config.deadline_admission,
    };
    let engine = tokio::task::spawn_blocking(move || Engine::load(bundle, device, engine_config, observer))
        .await
        .map_err(ServeError::JoinModelLoader)??;
    let engine = Arc::new(engine);
    tracing::info!(
        model = %model.name, version = %model.version, device = %device,
        max_batch_size = config.batching.max_batch_size, "model loaded"
    );

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let ready_metrics = metrics.clone();
    let serving = ServingState::new(
        health_reporter,
        vec![OCR_SERVICE_NAME],
        Arc::new(move |serving| ready_metrics.set_ready(serving)),
    );
    serving.set(Phase::Starting { step: "self-test".into() }).await;

    let manifest = &engine.bundle().manifest;
    let identity = result_identity(
        (&manifest.name, &manifest.version, &manifest.variant),
        &bundle_digest,
        &config.model_options.precision.to_string(),
        &device.to_string(),
    );
    let shared_cache = match config.shared_cache.clone() {
        Some(settings) => {
            tracing::info!(shared_cache = ?settings, "shared result cache configured");
            let write_metrics = metrics.clone();
            Some(SharedCache::new(settings, Arc::new(move |write| write_metrics.record_shared_write(write)))?)
        }
        None => None,
    };
    let cache = Arc::new(ResultCaches::new(
        ResultCache::<OcrOutput>::new(config.cache_bytes),
        shared_cache,
        metrics.clone(),
        identity,
    ));
    let limits = ApiLimits {
        request_timeout: config.request_timeout,
        max_image_bytes: config.max_image_bytes,
        max_pages: config.max_pages,
    };
    let mut pdf = config.pdf.clone();
    pdf.limits.max_pages = config.max_pages;
    pdf.limits.max_page_pixels = config.decode_limits.max_pixels;
    pdf.limits.max_side = config.decode_limits.max_side;
    let pdf = Arc::new(PdfRenderer::new(pdf));
    let api = Arc::new(OcrApi::new(engine.clone(), cache.clone(), metrics.clone(), serving.clone(), limits, pdf));
    let jobs = match (&config.jobs, &config.shared_cache) {
        (None, _) => None,
        (Some(_), None) => return Err(ServeError::JobsWithoutRedis),
        (Some(settings), Some(redis)) => {
            tracing::info!(jobs = ?settings, "document jobs configured");
            let job_metrics = Arc::new(JobMetrics::register(&mut registry));
            let client = redis_client(redis)?;
            // Job calls are not on a request's hot path: give Redis more than the cache's
            // few tens of milliseconds before calling it down.
            let timeout = redis.timeout.max(JOB_REDIS_TIMEOUT);
            let checker = api.checker().clone();
            Some(Arc::new(Jobs::new(settings.clone(), client, &redis.key_prefix, timeout, checker, job_metrics)?))
        }
    };
    let service = OcrGrpcService::new(api.clone(), jobs.clone());
    let api_for_jobs = api.clone();
    let http_api = http_api_router(api, jobs.clone())?;
    let jobs_worker = jobs.map(|jobs| start_worker(jobs, api_for_jobs));
    let reflection = reflection_builder().build_v1().map_err(ServeError::BuildReflection)?;
    let reflection_v1alpha = reflection_builder().build_v1alpha().map_err(ServeError::BuildReflection)?;
    // Images up to the limit are refused by the handler with RESOURCE_EXHAUSTED and a
    // reason; tonic's own cap (OUT_OF_RANGE) only stops messages far beyond it.
    let message_cap = config.max_image_bytes.saturating_mul(2).max(4 << 20);
    let ocr = OcrServer::new(service).max_decoding_message_size(message_cap).max_encoding_message_size(64 << 20);
    let (stop_grpc, stopped) = oneshot::channel::<()>();
    let (stop_http_api, http_api_stopped) = oneshot::channel::<()>();
    let http_api_task = tokio::spawn(async move {
        axum::serve(http_api_listener.tap_io(no_delay), http_api)
            .with_graceful_shutdown(async {
                let _ = http_api_stopped.await;
            })
            .await
            .map_err(ServeError::ServeHttpApi)
    });
    let grpc_task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(ocr)
            .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener).with_nodelay(Some(true)), async {
                let _ = stopped.await;
            })
            .await
            .map_err(ServeError::ServeGrpc)
    });

    let http_state = HttpState {
        serving: serving.clone(),
        registry: Arc::new(registry),
        before_scrape: scrape_refresh(engine.clone(), cache, metrics.clone()),
        health_report: health_report(gpu, device, config.model_options.precision, model),
    };
    let http_task = tokio::spawn(async move {
        if let Err(error) = axum::serve(http_listener, router(http_state)).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });

    let samples = self_test_samples(&config)?;
    let min_accuracy =
        config.self_test_min_accuracy.unwrap_or(f64::from(engine.bundle().manifest.self_test.min_accuracy));
    let gate = SelfTestGate { min_accuracy, max_precision_drop: config.max_precision_accuracy_drop };
    let startup_task = tokio::spawn(self_test_then_serve(engine, samples, gate, serving.clone(), metrics));

    tracing::info!(%grpc_addr, %http_api_addr, %http_addr, "listening");
    Ok(RunningServer {
        grpc_addr,
        http_api_addr,
        http_addr,
        serving,
        stop_grpc: Some(stop_grpc),
        grpc_task,
        stop_http_api: Some(stop_http_api),
        http_api_task,
        http_task,
        startup_task,
        jobs_worker,
        drain_delay: config.drain_delay,
        shutdown_grace: config.shutdown_grace,
    })
}

/// Answers go out as soon as they are written. With Nagle's algorithm on, a response
/// written in more than one piece (an answer with many lines: HTTP/2 headers, data and
/// trailers) waits for the client's delayed ACK, about 40 ms on Linux, for its second
/// piece; tonic sets this itself only on listeners it binds, and these are bound here.
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
    }
}

/// Reflection over the OCR and health services. Served as `grpc.reflection.v1` and as
/// `v1alpha`, which Python's grpcio-reflection client and older grpcurl builds still call.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what, addr, source })
}

fn local_addr(listener: &TcpListener, what: &'static str, host: IpAddr, port: u16) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(|source| ServeError::Bind { what, addr: SocketAddr::new(host, port), source })
}

fn self_test_samples(config: &ServerConfig) -> Result<Vec<SelfTestSample>, ServeError> {
    let bundled = config.bundle_dir.join("selftest");
    match &config.self_test_dir {
        Some(dir) => samples_from_dir(dir),
        None if bundled.is_dir() => samples_from_dir(&bundled),
        None => Ok(builtin_samples()),
    }
}

async fn self_test_then_serve(
    engine: Arc<Engine>,
    samples: Vec<SelfTestSample>,
    gate: SelfTestGate,
    serving: ServingState,
    metrics: Arc<OcrMetrics>,
) {
    let outcome = run_self_test_at_precision(&engine, &samples).await.and_then(|outcome| {
        let served = &outcome.served;
        metrics.set_self_test_accuracy(outcome.precision, served.accuracy);
        if let Some(fp32) = &outcome.fp32 {
            metrics.set_self_test_accuracy(Precision::Fp32, fp32.accuracy);
        }
        tracing::info!(
            precision = %outcome.precision,
            accuracy = served.accuracy,
            fp32_accuracy = outcome.fp32.as_ref().map(|fp32| fp32.accuracy),
            min_accuracy = gate.min_accuracy,
            max_precision_accuracy_drop = outcome.fp32.as_ref().map(|_| gate.max_precision_drop),
            samples = served.samples,
            elapsed_ms = (served.elapsed + outcome.fp32.as_ref().map_or(Duration::ZERO, |fp32| fp32.elapsed)).as_millis()
                as u64,
            "self-test finished"
        );
        outcome.verdict(&gate)
    });
    match outcome {
        Ok(()) => {
            serving.set(Phase::Serving).await;
            tracing::info!("serving");
        }
        Err(error) => {
            let reason = error.to_string();
            tracing::error!(%reason, "self-test failed: the pod will not become ready");
            serving.set(Phase::Failed { reason }).await;
        }
    }
}

fn batch_observer(metrics: Arc<OcrMetrics>) -> BatchObserver {
    Arc::new(move |stage, size, expired| metrics.record_batch(stage, size, expired))
}

fn scrape_refresh(
    engine: Arc<Engine>,
    cache: Arc<ResultCaches>,
    metrics: Arc<OcrMetrics>,
) -> Arc<dyn Fn() + Send + Sync> {
    Arc::new(move || {
        for (stage, depth) in engine.queue_depths() {
            metrics.set_queue_depth(stage, depth);
        }
        for task in [OcrTask::Line, OcrTask::Document] {
            if let Some(latency) = engine.expected_latency(task) {
                metrics.set_expected_latency(task, latency);
            }
        }
        let (entries, bytes) = cache.memory_usage();
        metrics.set_cache_usage(entries, bytes);
        if let Some(available) = cache.shared_available() {
            metrics.set_shared_cache_available(available);
        }
    })
}

fn health_report(
    gpu: Arc<GpuMonitor>,
    device: ComputeDevice,
    precision: Precision,
    model: ModelIdentity,
) -> Arc<dyn Fn() -> serde_json::Value + Send + Sync> {
    Arc::new(move || {
        serde_json::json!({
            "device": device.to_string(),
            "precision": precision.to_string(),
            "model": {"name": model.name, "version": model.version},
            "nvml": gpu.state(),
        })
    })
}
