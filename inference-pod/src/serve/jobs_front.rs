//! The job front: the service's job API without a model. It takes submits, status,
//! cancels and results while the service's pods (which work the jobs) may be at zero,
//! so a new job can wake them. No libtorch is initialised, so it starts in a moment and
//! runs in a few tens of megabytes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use kube_ocr_proto::v1::ocr_server::OcrServer;
use kube_ocr_proto::v1::{FILE_DESCRIPTOR_SET, OCR_SERVICE_NAME};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;

use crate::serve::api::CallChecker;
use crate::serve::cache::{SharedCacheSettings, redis_client};
use crate::serve::error::ServeError;
use crate::serve::grpc::JobsFrontGrpcService;
use crate::serve::http::{HttpState, router};
use crate::serve::http_api::jobs::JobsHttpState;
use crate::serve::http_api::{CorsPolicy, jobs_front_router, max_body_bytes};
use crate::serve::jobs::{JobSettings, Jobs};
use crate::serve::pdf::PdfSettings;
use crate::serve::running::RunningServer;
use crate::serve::serving_state::{Phase, ServingState};
use crate::serve::telemetry::job_metrics::JobMetrics;
use crate::serve::telemetry::process::ProcessCollector;

/// Least time the job calls give Redis (as on a serving pod).
const JOB_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a job front is configured with (the binary's `--jobs-front` mode).
#[derive(Debug, Clone)]
pub struct JobsFrontConfig {
    pub listen_host: IpAddr,
    pub grpc_port: u16,
    pub http_api_port: u16,
    pub http_port: u16,
    pub cors: CorsPolicy,
    /// The Redis of the queue.
    pub redis: SharedCacheSettings,
    pub jobs: JobSettings,
    /// Checked at submit as the pods check it: the document limit and the PDF resolutions.
    pub max_image_bytes: usize,
    pub pdf: PdfSettings,
    pub drain_delay: Duration,
    pub shutdown_grace: Duration,
}

/// Binds the three ports and serves the job API at once (there is nothing to load).
pub async fn start_jobs_front(config: JobsFrontConfig) -> Result<RunningServer, ServeError> {
    let bind = |what: &'static str, port: u16| async move {
        let addr = SocketAddr::new(config.listen_host, port);
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what, addr, source })?;
        let local = listener.local_addr().map_err(|source| ServeError::Bind { what, addr, source })?;
        Ok::<_, ServeError>((listener, local))
    };
    let (grpc_listener, grpc_addr) = bind("gRPC", config.grpc_port).await?;
    let (http_api_listener, http_api_addr) = bind("HTTP API", config.http_api_port).await?;
    let (http_listener, http_addr) = bind("HTTP", config.http_port).await?;

    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProcessCollector));
    let metrics = Arc::new(JobMetrics::register(&mut registry));
    let checker = CallChecker::new(config.max_image_bytes, &config.pdf);
    let timeout = config.redis.timeout.max(JOB_REDIS_TIMEOUT);
    let client = redis_client(&config.redis)?;
    let jobs = Arc::new(Jobs::new(config.jobs.clone(), client, &config.redis.key_prefix, timeout, checker, metrics)?);
    tracing::info!(jobs = ?config.jobs, "job front: taking document jobs, working none");

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let serving = ServingState::new(health_reporter, vec![OCR_SERVICE_NAME], Arc::new(|_| {}));
    serving.set(Phase::Serving).await;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(ServeError::BuildReflection)?;
    let message_cap = config.max_image_bytes.saturating_mul(2).max(4 << 20);
    let ocr = OcrServer::new(JobsFrontGrpcService::new(jobs.clone())).max_decoding_message_size(message_cap);
    let (stop_grpc, grpc_stopped) = oneshot::channel::<()>();
    let grpc_task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(ocr)
            .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener).with_nodelay(Some(true)), async {
                let _ = grpc_stopped.await;
            })
            .await
            .map_err(ServeError::ServeGrpc)
    });
    let state = JobsHttpState { jobs: Some(jobs.clone()), max_body_bytes: max_body_bytes(config.max_image_bytes) };
    let http_api = jobs_front_router(state, &config.cors).map_err(ServeError::ConfigureCors)?;
    let (stop_http_api, http_api_stopped) = oneshot::channel::<()>();
    let http_api_task = tokio::spawn(async move {
        axum::serve(
            http_api_listener.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            }),
            http_api,
        )
        .with_graceful_shutdown(async {
            let _ = http_api_stopped.await;
        })
        .await
        .map_err(ServeError::ServeHttpApi)
    });
    let http_state = HttpState {
        serving: serving.clone(),
        registry: Arc::new(registry),
        before_scrape: Arc::new(|| {}),
        health_report: Arc::new(|| serde_json::json!({ "role": "jobs-front" })),
    };
    let http_task = tokio::spawn(async move {
        if let Err(error) = axum::serve(http_listener, router(http_state)).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    // The queue's group and the bucket's expiry rule, as a worker pod sets them: a front
    // may be the only pod for a while.
    let startup_task = tokio::spawn(async move {
        while !jobs.prepare().await {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
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
        jobs_worker: None,
        drain_delay: config.drain_delay,
        shutdown_grace: config.shutdown_grace,
    })
}
