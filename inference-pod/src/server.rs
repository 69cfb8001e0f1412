//! Wires the pod together: model load, self-test, gRPC (OCR, health, reflection), the
//! HTTP side port, metrics, and the drain on shutdown. Used by the binary and, in
//! process on `127.0.0.1:0`, by the integration tests.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube_ocr_proto::v1::ocr_server::OcrServer;
use kube_ocr_proto::v1::{FILE_DESCRIPTOR_SET, OCR_SERVICE_NAME};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::batcher::{BatchObserver, BatcherConfig};
use crate::bundle::Bundle;
use crate::cache::ResultCache;
use crate::decode::DecodeLimits;
use crate::engine::{Engine, EngineConfig, OcrOutput};
use crate::gpu::{GpuCollector, GpuMonitor};
use crate::http::{HttpState, router};
use crate::metrics::{ModelLabels, OcrMetrics, StageLabels};
use crate::process_metrics::ProcessCollector;
use crate::self_test::{SelfTestSample, builtin_samples, run_self_test, samples_from_dir};
use crate::service::{OcrService, ServiceLimits};
use crate::serving_state::{Phase, ServingState};
use crate::torchscript::{DeviceRequest, cuda_device_count, device_name, resolve_device};

/// Everything the pod is configured with (the binary fills it from flags and env).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bundle_dir: PathBuf,
    pub device: DeviceRequest,
    pub listen_host: IpAddr,
    pub grpc_port: u16,
    pub http_port: u16,
    pub batching: BatcherConfig,
    pub decode_limits: DecodeLimits,
    pub max_image_bytes: usize,
    pub request_timeout: Duration,
    pub cache_bytes: usize,
    /// Golden-set folder for the self-test; `None` = `<bundle>/selftest` if present, else
    /// the samples built into the binary.
    pub self_test_dir: Option<PathBuf>,
    /// Overrides the bundle's `selfTest.minAccuracy`.
    pub self_test_min_accuracy: Option<f64>,
    /// libtorch intra-op threads; `None` = libtorch's default (all cores).
    pub torch_threads: Option<i32>,
    /// After SIGTERM, how long to keep serving while NOT_SERVING, so load balancers and
    /// EndpointSlices stop sending before the listener closes.
    pub drain_delay: Duration,
    /// Longest wait for in-flight requests once the listener is closed.
    pub shutdown_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("loading the model: {0}")]
    LoadModel(String),
    #[error("{0}")]
    Device(String),
    #[error("building gRPC reflection: {0}")]
    Reflection(String),
    #[error("gRPC server: {0}")]
    Serve(String),
}

/// A started pod. `shutdown` drains it; dropping it without shutdown aborts the tasks.
#[derive(Debug)]
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub serving: ServingState,
    pub metrics: Arc<OcrMetrics>,
    stop_grpc: Option<oneshot::Sender<()>>,
    grpc_task: JoinHandle<Result<(), ServerError>>,
    http_task: JoinHandle<()>,
    startup_task: JoinHandle<()>,
    drain_delay: Duration,
    shutdown_grace: Duration,
}

impl RunningServer {
    /// Not serving any more (health says so at once), then after `drain_delay` stops
    /// accepting and waits up to `shutdown_grace` for in-flight requests to finish.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.startup_task.abort();
        self.serving.set(Phase::Draining).await;
        tracing::info!(drain_delay_ms = self.drain_delay.as_millis() as u64, "draining: NOT_SERVING");
        tokio::time::sleep(self.drain_delay).await;
        if let Some(stop) = self.stop_grpc.take() {
            let _ = stop.send(());
        }
        let result = match tokio::time::timeout(self.shutdown_grace, &mut self.grpc_task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ServerError::Serve(join.to_string())),
            Err(_) => {
                tracing::warn!(
                    grace_ms = self.shutdown_grace.as_millis() as u64,
                    "in-flight requests outlived the grace period"
                );
                self.grpc_task.abort();
                Ok(())
            }
        };
        self.http_task.abort();
        result
    }

    /// Waits until the pod serves or start-up failed (`Err` with the reason).
    pub async fn wait_until_serving(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.serving.phase() {
                Phase::Serving => return Ok(()),
                Phase::Failed { reason } => return Err(reason),
                Phase::Draining => return Err("draining".into()),
                Phase::Starting { .. } if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("still {} after {timeout:?}", self.serving.phase().describe()));
                }
                Phase::Starting { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// Binds both ports, loads the bundle, starts serving gRPC (NOT_SERVING) and HTTP, then
/// runs the self-test in the background and flips to SERVING when it passes.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let grpc_listener = bind("gRPC", SocketAddr::new(config.listen_host, config.grpc_port)).await?;
    let http_listener = bind("HTTP", SocketAddr::new(config.listen_host, config.http_port)).await?;
    let grpc_addr = grpc_listener.local_addr().map_err(|source| ServerError::Bind {
        what: "gRPC",
        addr: SocketAddr::new(config.listen_host, config.grpc_port),
        source,
    })?;
    let http_addr = http_listener.local_addr().map_err(|source| ServerError::Bind {
        what: "HTTP",
        addr: SocketAddr::new(config.listen_host, config.http_port),
        source,
    })?;

    if let Some(threads) = config.torch_threads {
        tch::set_num_threads(threads);
    }
    let device = resolve_device(config.device, cuda_device_count()).map_err(ServerError::Device)?;
    let gpu = Arc::new(match device {
        tch::Device::Cpu if config.device == DeviceRequest::Cpu => GpuMonitor::disabled("--device cpu"),
        _ => GpuMonitor::init(),
    });

    let mut registry = Registry::default();
    let metrics = Arc::new(OcrMetrics::register(&mut registry));
    registry.register_collector(Box::new(ProcessCollector));
    registry.register_collector(Box::new(GpuCollector(gpu.clone())));

    let bundle_dir = config.bundle_dir.clone();
    let bundle = tokio::task::spawn_blocking(move || Bundle::load(&bundle_dir))
        .await
        .map_err(|e| ServerError::LoadModel(e.to_string()))?
        .map_err(|e| ServerError::LoadModel(e.to_string()))?;
    let model = ModelLabels { model: bundle.manifest.name.clone(), version: bundle.manifest.version.clone() };
    let observer = batch_observer(metrics.clone(), model.clone());
    let engine_config = EngineConfig { batching: config.batching, decode_limits: config.decode_limits };
    let engine = tokio::task::spawn_blocking(move || Engine::load(bundle, device, engine_config, observer))
        .await
        .map_err(|e| ServerError::LoadModel(e.to_string()))?
        .map_err(|e| ServerError::LoadModel(e.to_string()))?;
    let engine = Arc::new(engine);
    tracing::info!(
        model = %model.model, version = %model.version, device = %device_name(device),
        max_batch_size = config.batching.max_batch_size, "model loaded"
    );

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let ready_gauge = metrics.ready.get_or_create(&model).clone();
    let serving = ServingState::new(
        health_reporter,
        vec![OCR_SERVICE_NAME],
        Arc::new(move |serving| {
            ready_gauge.set(i64::from(serving));
        }),
    );
    serving.set(Phase::Starting { step: "self-test".into() }).await;

    let cache = Arc::new(ResultCache::<OcrOutput>::new(config.cache_bytes));
    let limits = ServiceLimits { request_timeout: config.request_timeout, max_image_bytes: config.max_image_bytes };
    let service = OcrService::new(engine.clone(), cache.clone(), metrics.clone(), serving.clone(), limits);
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    // Images up to the limit are refused by the handler with RESOURCE_EXHAUSTED and a
    // reason; tonic's own cap (OUT_OF_RANGE) only stops messages far beyond it.
    let message_cap = config.max_image_bytes.saturating_mul(2).max(4 << 20);
    let ocr = OcrServer::new(service).max_decoding_message_size(message_cap).max_encoding_message_size(64 << 20);
    let (stop_grpc, stopped) = oneshot::channel::<()>();
    let grpc_task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(ocr)
            .serve_with_incoming_shutdown(TcpListenerStream::new(grpc_listener), async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| ServerError::Serve(e.to_string()))
    });

    let http_state = HttpState {
        serving: serving.clone(),
        registry: Arc::new(registry),
        before_scrape: scrape_refresh(engine.clone(), cache, metrics.clone(), model.clone()),
        health_report: health_report(gpu, device, model.clone()),
    };
    let http_task = tokio::spawn(async move {
        if let Err(error) = axum::serve(http_listener, router(http_state)).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });

    let samples = self_test_samples(&config)?;
    let min_accuracy =
        config.self_test_min_accuracy.unwrap_or(f64::from(engine.bundle().manifest.self_test.min_accuracy));
    let startup_task =
        tokio::spawn(self_test_then_serve(engine, samples, min_accuracy, serving.clone(), metrics.clone(), model));

    tracing::info!(%grpc_addr, %http_addr, "listening");
    Ok(RunningServer {
        grpc_addr,
        http_addr,
        serving,
        metrics,
        stop_grpc: Some(stop_grpc),
        grpc_task,
        http_task,
        startup_task,
        drain_delay: config.drain_delay,
        shutdown_grace: config.shutdown_grace,
    })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { what, addr, source })
}

fn self_test_samples(config: &ServerConfig) -> Result<Vec<SelfTestSample>, ServerError> {
    let bundled = config.bundle_dir.join("selftest");
    match &config.self_test_dir {
        Some(dir) => samples_from_dir(dir).map_err(ServerError::LoadModel),
        None if bundled.is_dir() => samples_from_dir(&bundled).map_err(ServerError::LoadModel),
        None => Ok(builtin_samples()),
    }
}

async fn self_test_then_serve(
    engine: Arc<Engine>,
    samples: Vec<SelfTestSample>,
    min_accuracy: f64,
    serving: ServingState,
    metrics: Arc<OcrMetrics>,
    model: ModelLabels,
) {
    let outcome = run_self_test(&engine, &samples).await.and_then(|report| {
        metrics.self_test_accuracy.get_or_create(&model).set(report.accuracy);
        tracing::info!(
            accuracy = report.accuracy,
            min_accuracy,
            samples = report.samples,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "self-test finished"
        );
        report.verdict(min_accuracy)
    });
    match outcome {
        Ok(()) => {
            serving.set(Phase::Serving).await;
            tracing::info!("serving");
        }
        Err(reason) => {
            tracing::error!(%reason, "self-test failed: the pod will not become ready");
            serving.set(Phase::Failed { reason }).await;
        }
    }
}

fn batch_observer(metrics: Arc<OcrMetrics>, model: ModelLabels) -> BatchObserver {
    Arc::new(move |stage, size, expired| {
        let labels =
            StageLabels { model: model.model.clone(), version: model.version.clone(), stage: stage.to_owned() };
        if size > 0 {
            metrics.batch_size.get_or_create(&labels).observe(size as f64);
        }
        if expired > 0 {
            metrics.expired_in_queue.get_or_create(&labels).inc_by(expired as u64);
        }
    })
}

fn scrape_refresh(
    engine: Arc<Engine>,
    cache: Arc<ResultCache<OcrOutput>>,
    metrics: Arc<OcrMetrics>,
    model: ModelLabels,
) -> Arc<dyn Fn() + Send + Sync> {
    Arc::new(move || {
        for (stage, depth) in engine.queue_depths() {
            let labels =
                StageLabels { model: model.model.clone(), version: model.version.clone(), stage: stage.to_owned() };
            metrics.queue_depth.get_or_create(&labels).set(depth as i64);
        }
        let (entries, bytes) = cache.usage();
        metrics.cache_entries.get_or_create(&model).set(entries as i64);
        metrics.cache_bytes.get_or_create(&model).set(bytes as i64);
    })
}

fn health_report(
    gpu: Arc<GpuMonitor>,
    device: tch::Device,
    model: ModelLabels,
) -> Arc<dyn Fn() -> serde_json::Value + Send + Sync> {
    Arc::new(move || {
        serde_json::json!({
            "device": device_name(device),
            "model": {"name": model.model, "version": model.version},
            "nvml": gpu.state(),
        })
    })
}
